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
from envs.checks import free_space_ratios, longest_command, random_motion
from envs.rotations import quat_to_axis_angle
from hypercrl import ContinualDynamics
from hypercrl.config import from_sequence

BACKENDS = ("mujoco", "pybullet")
TRANSITIONS = 5000
FIT_STEPS = 4000


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


def unexplained_variance(family: str, backend: str,
                         normalize_targets: bool = False) -> np.ndarray:
    """Per state dimension: held-out MSE / variance of the model's training targets, for a
    plain ``finetune`` MLP of the paper profile's size (every 5th episode held out), fitted
    on raw targets as the original's (or standardised ones); a quaternion block's entries
    are its turn's rotation vector after a 0."""
    seq, s, a, s2, ep = _random_transitions(family, backend, TRANSITIONS)
    cfg = from_sequence(seq, "paper", "finetune")
    torch.manual_seed(0)
    model = ContinualDynamics(
        seq.observation_dim, seq.action_dim, "finetune", seed=0, hidden=cfg.hidden,
        probabilistic=cfg.probabilistic, state_spec=seq.state_kinds,
        normalize_targets=normalize_targets, **cfg.method_options,
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


@pytest.mark.parametrize("family", ["push", "door"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_hand_moves_as_commanded_in_free_space(family: str, backend: str) -> None:
    # away from the block or the door; the first step of each direction starts from rest
    r = free_space_ratios(family, backend)
    assert np.all((r > 0.9) & (r < 1.1)), r


@pytest.mark.slow
@pytest.mark.parametrize("family", ["push", "door"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_random_actions_keep_the_arm_physical(family: str, backend: str) -> None:
    motion = random_motion(family, backend)  # 20 episodes x 100 steps
    assert motion["finite"]
    # 0.01 rad: MuJoCo's limits are (stiff) soft constraints
    assert motion["past"] <= 0.01, motion["past"]
    assert motion["moves"].max() <= 1.1 * longest_command(family), motion["moves"].max()
    if family == "push":
        assert motion["speed"] <= 1.1, motion["speed"]
    # door: a finger striking the handle knocks the light wrist faster than its limit (up to
    # 3.9x for an instant); what the controller commands stays within it
