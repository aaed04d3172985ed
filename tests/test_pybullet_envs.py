"""The push and door families on PyBullet: checkers, reward agreement, the same task data as
MuJoCo, behaviour that agrees across the two simulators, and no leaked physics clients."""

from __future__ import annotations

import dataclasses
import math

import gymnasium as gym
import numpy as np
import pybullet
import pytest
from envtools import BACKENDS, FAMILY_IDS, rollout

import envs
from envs import door, push
from envs.checks import push_turn, reference_turns
from envs.pybullet import PybulletBackend


# ------------------------------------------------------------------ gymnasium contract
# (the checkers and the reward agreement run for both backends in test_env_common.py)
@pytest.mark.parametrize("family", FAMILY_IDS)
def test_sequence_is_the_mujoco_one_on_pybullet(family: str) -> None:
    bullet, mujoco = envs.sequence(family, backend="pybullet"), envs.sequence(family)
    assert bullet.backend == "pybullet" and all(t.backend == "pybullet" for t in bullet)
    for field in (
        "observation_dim",
        "action_dim",
        "state_kinds",
        "episode_steps",
        "schedule",
    ):
        assert getattr(bullet, field) == getattr(mujoco, field), field
    np.testing.assert_array_equal(bullet.action_low, mujoco.action_low)
    np.testing.assert_array_equal(bullet.action_high, mujoco.action_high)
    assert dict(bullet.extras) == dict(mujoco.extras)
    for b, m in zip(bullet, mujoco, strict=True):
        assert (b.name, b.index, dict(b.params), b.env_id) == (
            m.name,
            m.index,
            dict(m.params),
            m.env_id,
        )
        assert b.reward is m.reward and b.success is m.success
    env = bullet[1].make()
    assert isinstance(env.unwrapped.sim, PybulletBackend) and env.unwrapped.task == 1
    env.close()


@pytest.mark.parametrize("family", FAMILY_IDS)
def test_deterministic_under_seed(family: str) -> None:
    env = gym.make(FAMILY_IDS[family], task=1, backend="pybullet")
    first = rollout(env, seed=7, steps=8)
    again = rollout(env, seed=7, steps=8)  # the same env, reset: no history leaks in
    fresh_env = gym.make(FAMILY_IDS[family], task=1, backend="pybullet")
    fresh = rollout(fresh_env, seed=7, steps=8)
    for a, b, c in zip(first, again, fresh, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    env.close()
    fresh_env.close()


@pytest.mark.parametrize("family", FAMILY_IDS)
def test_episode_length(family: str) -> None:
    seq = envs.sequence(family, backend="pybullet")
    env = seq[0].make()
    env.reset(seed=0)
    zero = np.zeros(seq.action_dim, np.float32)
    for t in range(seq.episode_steps):
        _, _, terminated, truncated, info = env.step(zero)
        assert not terminated and truncated == (t == seq.episode_steps - 1)
        assert isinstance(info["success"], bool)
    env.close()


# ------------------------------------------------------------------ task parameters
@pytest.mark.parametrize("task", range(5))
def test_push_densities_set_the_block_masses(task: int) -> None:
    env = push.PushEnv(task=task, backend="pybullet")
    sim = env.sim
    block = sim._objects["block"]
    params = push.task_params(task)
    for link, density in (("left", params["density_left"]), ("right", params["density_right"])):
        info = pybullet.getDynamicsInfo(block.uid, block.links[link], physicsClientId=sim.client)
        assert info[0] == pytest.approx(density * push.HALF_VOLUME)
        # inertia scaled with the mass: 0.512 kg is the URDF's half at 500 kg/m^3
        assert info[2][2] == pytest.approx(0.00136533 * density / 500.0, rel=1e-5)
    env.close()


def _door_alone(task: int) -> PybulletBackend:
    """The task's door scene with the robot moved out of reach, reset, hinge unlatched."""
    scene = door.scene(task)
    robot = dataclasses.replace(scene.robot, base_pos=(-3.0, 0.0, 0.0))
    sim = PybulletBackend(dataclasses.replace(scene, robot=robot))
    sim.reset(door.HOME_QPOS, 1.0, {})
    sim.set_joint_range("door", "hinge", *door.DOOR_RANGE)
    return sim


@pytest.mark.parametrize("task", range(5))
def test_door_joints_get_the_task_parameters(task: int) -> None:
    sim, params = _door_alone(task), door.task_params(task)
    body = sim._objects["door"]
    # the hinge's damping acts: a swinging door slows down as exp(-c t / I)
    pybullet.resetJointState(body.uid, body.joints["hinge"], 0.5, 1.0, physicsClientId=sim.client)
    dofs = [0.5] + [0.0] * (len(body.joints) - 1)
    inertia = pybullet.calculateMassMatrix(body.uid, dofs, physicsClientId=sim.client)[0][0]
    sim.step()
    _, velocity = sim.joint_state("door", "hinge")
    expected = math.exp(-params["hinge_damping"] * sim.scene.control_dt / inertia)
    assert velocity == pytest.approx(expected, rel=0.03)
    sim.close()


def _kick(sim: PybulletBackend, joint: str, angle: float, speed: float) -> None:
    """Set a door joint to ``angle`` (rad) moving at ``speed`` (rad/s), run 0.1 s."""
    body = sim._objects["door"]
    pybullet.resetJointState(body.uid, body.joints[joint], angle, speed, physicsClientId=sim.client)
    sim.step()


def test_latch_range_outlives_a_reset() -> None:
    sim = _door_alone(1)
    sim.set_joint_range("door", "hinge", 0.0, 1e-4)
    sim.reset(door.HOME_QPOS, 1.0, {})
    _kick(sim, "hinge", 0.0, 2.0)
    assert sim.joint_state("door", "hinge")[0] < 0.01  # still latched
    sim.set_joint_range("door", "hinge", *door.DOOR_RANGE)
    _kick(sim, "hinge", 0.0, 2.0)
    assert sim.joint_state("door", "hinge")[0] > 0.1
    sim.close()


def test_knob_spring_returns_the_handle() -> None:
    sim, params = _door_alone(3), door.task_params(3)  # round knob, range [0, 1.57]
    body = sim._objects["door"]
    pybullet.resetJointState(
        body.uid, body.joints["knob_hinge"], 1.0, 0.0, physicsClientId=sim.client
    )
    for _ in range(20):
        sim.step()
    knob, _ = sim.joint_state("door", "knob_hinge")
    # the original's weak spring against its strong damping: an overdamped creep back,
    # exp(-k t / c) of the way after t = 2 s (the knob's inertia acts for milliseconds)
    expected = math.exp(-params["knob_spring"] * 2.0 / params["knob_damping"])
    assert knob == pytest.approx(expected, abs=0.02)
    sim.close()


def test_solve_ik_reaches_the_pose_and_leaves_the_simulation_alone() -> None:
    env = push.PushEnv(task=0, backend="pybullet")
    env.reset(seed=0)
    sim = env.sim
    before = sim.arm_state()[0]
    target = np.array([-0.3, 0.1, 0.2])
    q = sim.solve_ik(target, push.EE_QUAT_DOWN, push.HOME_QPOS)
    np.testing.assert_array_equal(sim.arm_state()[0], before)
    sim.reset(q, 0.0, {})
    pos, quat = sim.ee_pose()
    np.testing.assert_allclose(pos, target, atol=1e-4)
    assert abs(float(quat @ push.EE_QUAT_DOWN)) == pytest.approx(1.0, abs=1e-6)
    env.close()


def test_benchmark_hooks_replay_a_control_step() -> None:
    env = push.PushEnv(task=0, backend="pybullet")
    env.reset(seed=0)
    sim = env.sim
    env.step(np.array([1.0, 0.0], np.float32))  # motor targets now move the arm
    before = sim.save_state()
    sim.raw_step()
    moved = sim.ee_pose()[0]
    sim.restore_state(before)
    sim.remove_state(before)
    back = sim.ee_pose()[0]
    assert np.linalg.norm(moved - back) > 0.005  # the raw step moved it, restoring undid it
    sim.raw_step()
    np.testing.assert_allclose(sim.ee_pose()[0], moved, atol=1e-3)
    assert sim.physics_steps_per_control() == 50
    env.close()


# ------------------------------------------------------------------ across simulators
@pytest.mark.parametrize("family", FAMILY_IDS)
def test_reset_observation_agrees_with_mujoco(family: str) -> None:
    obs = {}
    for backend in BACKENDS:
        env = gym.make(FAMILY_IDS[family], task=3, backend=backend)
        obs[backend], _ = env.reset(seed=5)
        env.close()
    # the same scene from the same files, the same seeded approach: the task-space part of
    # the state is the same (the door's arm joint angles come from each backend's IK)
    task_space = slice(0, 10) if family == "push" else slice(0, 8)
    np.testing.assert_allclose(obs["pybullet"][task_space], obs["mujoco"][task_space], atol=2e-3)


def _yaw_deg(obs: np.ndarray) -> float:
    """Block yaw from the observation: direction of its -y edge, back to front corner."""
    c = obs[2:].reshape(4, 2)
    return math.degrees(math.atan2(c[2, 1] - c[0, 1], c[2, 0] - c[0, 0]))


def _scripted_push(backend: str, task: int, steps: int = 15) -> tuple[float, float]:
    """Push forward at 2 cm per step with the gripper held on y = 0 (through the block's
    starting centre); returns the block centre's x displacement (m) and final yaw (deg)."""
    env = push.PushEnv(task=task, backend=backend)
    obs, _ = env.reset(seed=0)
    start = obs[2:].reshape(4, 2).mean(axis=0)
    for _ in range(steps):
        back_y = obs[2:6].reshape(2, 2).mean(axis=0)[1]
        ee_y = back_y - obs[1]
        obs, *_ = env.step(np.array([0.4, np.clip(-ee_y / 0.05, -1, 1)], np.float32))
    env.close()
    return float(obs[2:].reshape(4, 2).mean(axis=0)[0] - start[0]), _yaw_deg(obs)


@pytest.fixture(scope="module")
def pushes() -> dict[tuple[str, int], tuple[float, float]]:
    return {(b, task): _scripted_push(b, task) for b in BACKENDS for task in range(5)}


@pytest.mark.parametrize("task", range(5))
def test_scripted_push_moves_the_block_alike(pushes, task: int) -> None:
    dx = {b: pushes[(b, task)][0] for b in BACKENDS}
    assert dx["mujoco"] > 0.1 and dx["pybullet"] > 0.1, dx
    assert abs(dx["pybullet"] - dx["mujoco"]) <= 0.3 * dx["mujoco"], dx


def _heavy_side(task: int) -> float:
    """The sign of the yaw a centre push gives task ``task``: the heavier half drags more on
    the table and lags, +1 when it is the left (+y) one."""
    return 1.0 if push.TASKS[task][1] > push.TASKS[task][2] else -1.0


@pytest.fixture(scope="module")
def turns() -> dict[str, list[float]]:
    """Block yaw (deg) after ``python -m envs.checks turns``' 20 cm centre push, per backend
    and task."""
    return {b: [push_turn(b, t) for t in range(len(push.TASKS))] for b in BACKENDS}


def test_a_centre_push_keeps_the_uniform_block_square(turns) -> None:
    assert abs(turns["mujoco"][0]) <= 3.0 and abs(turns["pybullet"][0]) <= 3.0, turns


@pytest.mark.parametrize("task", [1, 2, 3, 4])  # the tasks whose halves differ
def test_uneven_tasks_turn_the_heavy_side_back_in_both_simulators(turns, task: int) -> None:
    # the heavier half drags more on the table and lags; the 5:1 tasks clearly, the 2:1 ones
    # by a few degrees (under isotropic friction, as in the original)
    least = 10.0 if task in (1, 2) else 0.5
    for b in BACKENDS:
        assert _heavy_side(task) * turns[b][task] >= least, turns


def test_mujoco_turns_the_block_as_quasi_static_physics_does(turns) -> None:
    # the reference: a quasi-static Coulomb model of the same push (envs.quasistatic)
    reference = np.asarray(reference_turns())
    # 3.5 degrees, and within 70 % (+ 0.5 degrees) of the small turns of tasks 0, 3 and 4
    tolerance = np.minimum(3.5, 0.7 * np.abs(reference) + 0.5)
    assert (np.abs(np.asarray(turns["mujoco"]) - reference) <= tolerance).all(), (
        turns["mujoco"], reference)


# Issue 10's bar: each uneven task turns the same way on both simulators, by 10 degrees or more,
# the two within 30 % of each other. The signs agree. Not met, for two measured reasons
# (docs/ENVIRONMENTS.md, "Open"): PyBullet turns the 5:1 blocks (tasks 1, 2) 1.9-2.5x as far as
# the quasi-static reference (-17.1, +17.1), which MuJoCo matches; and for the 2:1 blocks
# (tasks 3, 4) the reference itself is 3.4 degrees: with the original's densities and the
# Panda's 2 cm finger no correct simulator turns them 10 degrees in this push.
ISOTROPIC = pytest.mark.xfail(
    reason="issue 10, open: PyBullet overturns tasks 1-2 (31, 43 vs 17); tasks 3-4 turn "
    "3.4 degrees in the quasi-static reference, under the 10-degree bar",
    strict=True,  # a pass means the bar is met: take the mark off
    raises=AssertionError,  # any other error is a failure
)


@pytest.mark.parametrize("task", [pytest.param(t, marks=ISOTROPIC) for t in (1, 2, 3, 4)])
def test_uneven_tasks_turn_alike_in_both_simulators(turns, task: int) -> None:
    yaw = {b: turns[b][task] for b in BACKENDS}
    turned = [_heavy_side(task) * yaw[b] for b in BACKENDS]
    assert min(turned) >= 10.0, yaw
    assert min(turned) >= 0.7 * max(turned), yaw


# the scripted opener (tests/scripted.py) opens every door on both backends, and the latch
# holds until the handle turns the task's way: tests/test_door.py


def test_latched_door_needs_its_handle_turned() -> None:
    env = door.DoorEnv(task="round_neg", backend="pybullet")
    obs, _ = env.reset(seed=0)
    for _ in range(10):
        obs, _, _, _, info = env.step(np.array([-1, 0, 0, 0, 0, 0, 1], np.float32))
    assert info["latched"] and obs[24] < 0.01
    env.close()


# ------------------------------------------------------------------ rendering
def _blue_centroid(frame: np.ndarray) -> np.ndarray:
    """Pixel centroid (row, col) of the block's blue half."""
    rgb = frame.astype(int)
    mask = (rgb[..., 2] > rgb[..., 0] + 60) & (rgb[..., 2] > rgb[..., 1] + 30)
    assert mask.sum() > 20, "no blue block in view"
    return np.argwhere(mask).mean(axis=0)


def test_render_matches_the_mujoco_camera() -> None:
    frames = {}
    for backend in BACKENDS:
        env = gym.make("HyperCRL/Push-v0", task=0, backend=backend, render_mode="rgb_array")
        env.reset(seed=0)
        frames[backend] = env.render()
        if backend == "pybullet":
            assert frames[backend].shape == (256, 256, 3)
            assert frames[backend].dtype == np.uint8 and frames[backend].std() > 20.0
            env.step(np.ones(2, np.float32))
            assert not np.array_equal(env.render(), frames[backend])  # the arm moved
        env.close()
    # the same camera pose and field of view: the block lands on the same pixels
    gap = _blue_centroid(frames["pybullet"]) - _blue_centroid(frames["mujoco"])
    assert np.abs(gap).max() < 4.0, gap


# ------------------------------------------------------------------ physics clients
def test_envs_in_one_process_do_not_share_a_simulation() -> None:
    solo_env = gym.make("HyperCRL/Push-v0", task=2, backend="pybullet")
    solo = rollout(solo_env, seed=3, steps=6)
    solo_env.close()
    a = gym.make("HyperCRL/Push-v0", task=2, backend="pybullet")
    b = gym.make("HyperCRL/Push-v0", task=2, backend="pybullet")
    assert a.unwrapped.sim.client != b.unwrapped.sim.client
    obs_a, _ = a.reset(seed=3)
    obs_b, _ = b.reset(seed=3)
    rng = np.random.default_rng(3)
    states = [obs_a]
    for _ in range(6):  # interleaved steps: each env sees only its own client
        action = rng.normal(0.0, 1.0, 2).astype(np.float32)
        obs_a, *_ = a.step(action)
        obs_b, *_ = b.step(action)
        np.testing.assert_array_equal(obs_a, obs_b)
        states.append(obs_a)
    np.testing.assert_array_equal(np.asarray(states[:-1]), solo[0])
    a.close()
    b.close()


def test_closing_envs_disconnects_their_clients() -> None:
    clients = []
    for i in range(50):
        env = gym.make(FAMILY_IDS["push" if i % 2 else "door"], task=i % 5, backend="pybullet")
        client = env.unwrapped.sim.client
        assert pybullet.isConnected(client)
        clients.append(client)
        env.close()
        assert not pybullet.isConnected(client)
        assert pybullet.getConnectionInfo(client)["isConnected"] == 0
    assert not any(pybullet.isConnected(c) for c in set(clients))
    # many envs live side by side, one client each
    live = [gym.make("HyperCRL/Push-v0", task=t, backend="pybullet") for t in range(3)]
    ids = {e.unwrapped.sim.client for e in live}
    assert len(ids) == 3 and all(pybullet.isConnected(c) for c in ids)
    for e in live:
        e.close()
    assert not any(pybullet.isConnected(c) for c in ids)
