"""The robot arms do what they are told, so a dynamics model can learn them.

A model-based agent plans through what its model learned of the controller; if the hand does
not move as commanded (IK that does not converge in a step, joints driven past their limits,
speeds that teleport the hand) no model can learn it. These tests measure that from
observations alone, on both backends:

- a plain MLP of the original's size, fitted on 5000 uniform-random transitions, explains at
  least 90 % of the held-out variance of the gripper's position change and 80 % of its
  orientation change (door);
- in free space the hand moves 0.9-1.1x the commanded distance;
- under uniform random actions the hand never moves more than 1.1x the largest command in a
  step, no joint leaves the Panda's limits, nothing is non-finite.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import envs
from envs import door, push
from envs.backend import ARM_POSITION_LIMITS, ARM_VELOCITY_LIMITS
from envs.rotations import quat_to_axis_angle
from hypercrl import ContinualDynamics
from hypercrl.config import from_sequence

BACKENDS = ("mujoco", "pybullet")
TRANSITIONS = 5000
FIT_STEPS = 4000
LIMITS = np.array(ARM_POSITION_LIMITS)


def _random_transitions(family: str, backend: str, n: int, seed: int = 0):
    seq = envs.sequence(family, backend=backend)
    env = seq.tasks[0].make()
    rng = np.random.default_rng(seed)
    s, a, s2, ep = [], [], [], []
    episode = 0
    while len(s) < n:
        obs, _ = env.reset(seed=seed + episode)
        for _ in range(seq.episode_steps):
            u = rng.uniform(-1.0, 1.0, seq.action_dim).astype(np.float32)
            nxt, _, terminated, truncated, _ = env.step(u)
            s.append(obs)
            a.append(u)
            s2.append(nxt)
            ep.append(episode)
            obs = nxt
            if terminated or truncated or len(s) == n:
                break
        episode += 1
    env.close()
    return seq, np.array(s), np.array(a), np.array(s2), np.array(ep)


def unexplained_variance(family: str, backend: str) -> np.ndarray:
    """Per state dimension: held-out MSE / variance of the model's training targets, for a
    plain ``finetune`` MLP of the paper profile's size (every 5th episode held out); a
    quaternion block's entries are its turn's rotation vector after a 0."""
    seq, s, a, s2, ep = _random_transitions(family, backend, TRANSITIONS)
    cfg = from_sequence(seq, "paper", "finetune")
    torch.manual_seed(0)
    model = ContinualDynamics(
        seq.observation_dim, seq.action_dim, "finetune", seed=0, hidden=cfg.hidden,
        probabilistic=cfg.probabilistic, state_spec=seq.state_kinds, **cfg.method_options,
    )
    model.begin_task()
    test = ep % 5 == 4
    model.fit(s[~test], a[~test], s2[~test], steps=FIT_STEPS)
    pred = model.predict(s[test], a[test], task=0)
    spec = model.spec
    true_t = spec.targets(torch.as_tensor(s[test]), torch.as_tensor(s2[test])).numpy()
    pred_t = spec.targets(torch.as_tensor(s[test]), torch.as_tensor(pred)).numpy()
    # an orientation change is compared as a rotation vector (axis * angle), not as the four
    # quaternion entries (w = cos(angle / 2) barely varies)
    for block in spec.quat_blocks:
        true_t[:, block + 1 : block + 4] = quat_to_axis_angle(true_t[:, block : block + 4])
        pred_t[:, block + 1 : block + 4] = quat_to_axis_angle(pred_t[:, block : block + 4])
        true_t[:, block] = pred_t[:, block] = 0.0
    return ((pred_t - true_t) ** 2).mean(0) / true_t.var(0).clip(1e-12)


@pytest.mark.slow
@pytest.mark.xfail(
    reason="issue 10, open: from 5000 transitions 83-87 % of the door gripper's move and "
    "53-68 % of its turn are explained (was 13-21 % and ~0); 15000 give 90-92 % and 74-77 %",
    strict=True,
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_door_gripper_motion_is_learnable(backend: str) -> None:
    ratio = unexplained_variance("door", backend)
    assert ratio[0:3].max() <= 0.10, f"gripper-handle vector: unexplained {ratio[0:3]}"
    assert ratio[4:7].max() <= 0.20, f"hand orientation (rotation vector): unexplained {ratio[4:7]}"


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_push_gripper_motion_is_learnable(backend: str) -> None:
    ratio = unexplained_variance("push", backend)
    # the gripper-to-block vector: in free space it moves as the hand does
    assert ratio[0:2].max() <= 0.10, f"gripper-block vector: unexplained {ratio[0:2]}"


def _free_space_ratio(env, direction: np.ndarray, steps: int) -> np.ndarray:
    ratios = []
    for _ in range(steps):
        before, _ = env.sim.ee_pose()
        env.step(direction)
        after, _ = env.sim.ee_pose()
        moved = after - before
        commanded = 0.05 * np.resize(direction, 3)[: len(moved)]
        commanded[len(direction):] = 0.0
        ratios.append(moved @ commanded / (commanded @ commanded))
    return np.array(ratios)


@pytest.mark.parametrize("backend", BACKENDS)
def test_push_hand_moves_as_commanded_in_free_space(backend: str) -> None:
    env = push.PushEnv(task=0, backend=backend)
    env.reset(seed=0)
    # away from the block (-x) and sideways: nothing touches the fingers
    # (-x only a little: 0.26 m from the base the workspace ends)
    ratios = [_free_space_ratio(env, np.array(d, np.float32), 3)
              for d in ([-0.4, 0.0], [0.0, 1.0], [0.0, -1.0], [0.0, -1.0])]
    env.close()
    r = np.concatenate([x[1:] for x in ratios])  # the first step starts from rest
    assert np.all((r > 0.9) & (r < 1.1)), r


@pytest.mark.parametrize("backend", BACKENDS)
def test_door_hand_moves_as_commanded_in_free_space(backend: str) -> None:
    env = door.DoorEnv(task=0, backend=backend)
    env.reset(seed=0)
    moves = []
    for d in ([-1, 0, 0], [0, 1, 0], [0, 0, 1], [0, -1, 0], [0, 0, -1], [-0.5, 0.5, 0.5]):
        for _ in range(3):
            before, _ = env.sim.ee_pose()
            env.step(np.array([*d, 0, 0, 0, -1], np.float32))
            after, _ = env.sim.ee_pose()
            cmd = 0.05 * np.array(d, float)
            moves.append((after - before) @ cmd / (cmd @ cmd))
    env.close()
    r = np.array(moves).reshape(6, 3)[:, 1:]
    assert np.all((r > 0.9) & (r < 1.1)), r


@pytest.mark.slow
@pytest.mark.parametrize("family", ["push", "door"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_random_actions_keep_the_arm_physical(family: str, backend: str) -> None:
    env = envs.sequence(family, backend=backend).tasks[0].make().unwrapped
    dims = 2 if family == "push" else 3
    largest = 0.05 * np.sqrt(dims)  # m, the longest commanded move
    rng = np.random.default_rng(1)
    worst_move, worst_speed = 0.0, 0.0
    for episode in range(20):
        env.reset(seed=episode)
        for _ in range(100):
            before, _ = env.sim.ee_pose()
            obs, *_ = env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
            after, _ = env.sim.ee_pose()
            q, qd, _ = env.sim.arm_state()
            assert np.all(np.isfinite(obs)) and np.all(np.isfinite(q))
            # 0.01 rad: MuJoCo's limits are (stiff) soft constraints
            assert np.all(q >= LIMITS[:, 0] - 0.01) and np.all(q <= LIMITS[:, 1] + 0.01), q
            worst_move = max(worst_move, float(np.linalg.norm(after - before)))
            worst_speed = max(worst_speed, float(np.max(np.abs(qd) / ARM_VELOCITY_LIMITS)))
    env.close()
    assert worst_move <= 1.1 * largest, worst_move
    if family == "push":
        assert worst_speed <= 1.1, worst_speed
    # door: a finger striking the handle knocks the light wrist faster than its limit (up to
    # 2.9x for an instant); what the controller commands stays within it
