"""Door family: a scripted opener opens every door on both backends, the latch holds until the
handle turns the task's way, the geometry is the original's; the reward and the task data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from envtools import BACKENDS

import envs  # noqa: F401  (registers the ids)
from envs import door
from envs.door import DoorEnv
from envs.rotations import quat_mul
from envs.scripted import open_door

SEEDS = (0, 1, 2)


def _turn_sign(task: str) -> float:
    """+1 if the task's knob turns positive, -1 if negative."""
    return 1.0 if door.task_params(door.TASK_NAMES.index(task))["knob_range"][0] >= 0 else -1.0


OPENER_CASES = [(backend, task) for backend in BACKENDS for task in door.TASK_NAMES]


@pytest.mark.slow
@pytest.mark.parametrize(("backend", "task"), OPENER_CASES)
def test_scripted_opener_opens_the_door(backend: str, task: str) -> None:
    # approach, grasp, turn the handle the task's way past the latch, pull along the arc:
    # through env.step alone, closed loop on the observation, from three seeded starts
    env = DoorEnv(task=task, backend=backend)
    for seed in SEEDS:
        out = open_door(env, seed)
        trace = "\n".join(out.log)
        assert out.success and out.door >= door.SUCCESS_ANGLE, f"seed {seed}:\n{trace}"
        if task != "pull":
            assert _turn_sign(task) * out.knob_turned >= door.LATCH_ANGLE, f"seed {seed}"
            # the hinge did not give before the handle reached the latch angle
            assert out.door_while_latched < 0.01, f"seed {seed}:\n{trace}"
    env.close()


@pytest.mark.parametrize("task", ["round_pos", "lever_neg"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_latched_door_opens_only_by_turning_the_handle_the_task_way(
    backend: str, task: str
) -> None:
    env = DoorEnv(task=task, backend=backend)
    pulled = open_door(env, seed=0, turn=0.0, max_steps=30)  # grasp and pull, no turn
    assert pulled.door < 0.01 and not pulled.success
    wrong = -_turn_sign(task) * (door.LATCH_ANGLE + 0.12)  # beyond the knob's range
    twisted = open_door(env, seed=0, turn=wrong, max_steps=30)
    assert abs(twisted.knob_turned) < 0.05 and twisted.door < 0.01
    env.close()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("handle", ["pull", "round", "lever"])
def test_handle_pose_is_the_documented_geometry(backend: str, handle: str) -> None:
    # the URDF and the constants the docs and the scripted opener use agree: hinge axis at
    # DOOR_POS, knob axis KNOB_AXIS from it, the observed point HANDLE_POINT on the knob
    task = [t[0] for t in door.TASKS if t[1] == handle][0]
    env = DoorEnv(task=task, backend=backend)
    env.reset(seed=0)
    pos, quat = env.sim.link_pose("door", "handle")
    expected = np.add(door.DOOR_POS, door.KNOB_AXIS) + _handle_point_closed(handle)
    np.testing.assert_allclose(pos, expected, atol=1e-5)
    assert abs(float(quat @ np.array([0.0, 0.0, 0.0, 1.0]))) == pytest.approx(1.0, abs=1e-6)
    env.close()


def _handle_point_closed(handle: str) -> np.ndarray:
    """HANDLE_POINT in the world with the door closed, knob at 0 (knob frame turned by pi)."""
    x, y, z = door.HANDLE_POINT[handle]
    return np.array([-x, -y, z])


# the original's joint-space inertias (its XMLs compiled by MuJoCo, armature included):
# hinge0 1.2184 (pull), 1.7198 (round), 1.7188 (lever) kg m^2; hinge1 0.0041093 kg m^2
ORIGINAL_INERTIA = {"pull": (1.2184, None), "round": (1.7198, 0.0041093),
                    "lever": (1.7188, 0.0041093)}


@pytest.mark.parametrize("handle", ["pull", "round", "lever"])
def test_door_and_knob_inertia_are_the_originals(handle: str) -> None:
    mujoco = pytest.importorskip("mujoco")
    task = [t[0] for t in door.TASKS if t[1] == handle][0]
    env = DoorEnv(task=task, backend="mujoco")
    env.reset(seed=0)
    m, d = env.sim.model, env.sim.data
    full = np.zeros((m.nv, m.nv))
    mujoco.mj_fullM(m, d, full)
    hinge, knob = ORIGINAL_INERTIA[handle]
    dof = m.joint("door/hinge").dofadr[0]
    assert full[dof, dof] == pytest.approx(hinge, rel=0.01)
    if knob is not None:
        dof = m.joint("door/knob_hinge").dofadr[0]
        assert full[dof, dof] == pytest.approx(knob, rel=0.01)
    env.close()


def test_observation_layout() -> None:
    env = DoorEnv(task="lever_pos")
    obs, _ = env.reset(seed=3)
    assert np.linalg.norm(obs[:3] - np.array([-door.APPROACH_DIST, 0.0, 0.0])) < 0.02
    assert np.linalg.norm(obs[3:7]) == pytest.approx(1.0, abs=1e-5) and obs[3] >= 0
    # after the scripted approach the hand faces the handle: no roll or pitch penalty
    assert np.allclose(obs[3:7], door.Q_GRASP, atol=1e-3)
    assert obs[7] == pytest.approx(0.04, abs=1e-3)  # gripper open
    assert np.all(obs[22:26] == 0.0)  # door and knob at rest, closed


def test_reward_terms() -> None:
    state = np.zeros(26, np.float32)
    state[3:7] = door.Q_GRASP
    d = 0.1
    state[0] = d
    expected = -d - math.log(d * d + 5e-3) - 5.0
    assert door.reward(state, np.zeros(7), state) == pytest.approx(expected, abs=1e-5)
    # turning the hand about its approach axis (the knob's axis) costs nothing
    twist = np.array([math.cos(0.4), 0.0, 0.0, math.sin(0.4)])
    turned = state.copy()
    turned[3:7] = quat_mul(door.Q_GRASP, twist)
    assert door.reward(state, np.zeros(7), turned) == pytest.approx(expected, abs=1e-5)
    # tilting it does
    tilt = np.array([math.cos(0.2), math.sin(0.2), 0.0, 0.0])
    tilted = state.copy()
    tilted[3:7] = quat_mul(door.Q_GRASP, tilt)
    assert door.reward(state, np.zeros(7), tilted) < expected - 0.3
    opened = state.copy()
    opened[24], opened[25] = 0.2, -0.5
    assert door.reward(state, np.zeros(7), opened) == pytest.approx(expected + 10 + 10, abs=1e-4)
    batch = torch.tensor(np.stack([state, opened]), dtype=torch.float64)
    assert door.success(batch).tolist() == [False, True]


def test_tasks_are_data() -> None:
    seq = envs.sequence("door")
    assert [t.params["handle"] for t in seq] == ["pull", "round", "lever", "round", "lever"]
    assert [t.params["knob_range"] for t in seq][1:] == [
        (-1.57, 0.0),
        (-1.57, 0.0),
        (0.0, 1.57),
        (0.0, 1.57),
    ]
    # the original's hinge0 and hinge1 damping (N m s/rad), hinge1 stiffness (N m/rad)
    assert [t.params["hinge_damping"] for t in seq] == [1.5, 1.9, 1.6, 1.9, 1.6]
    assert [t.params["knob_damping"] for t in seq] == [None, 1.82, 1.73, 1.82, 1.73]
    assert [t.params["knob_spring"] for t in seq] == [None, 0.1, 0.1, 0.1, 0.1]
    assert seq.state_kinds[3:7] == ("quat",) * 4 and seq.state_kinds[24:] == ("angle",) * 2
    assert seq.schedule.mpc_steps == 60000 and seq.episode_steps == 200
