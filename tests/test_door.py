"""Door family on MuJoCo: a scripted grasp opens the doors, the latch and the reward."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import envs  # noqa: F401  (registers the ids)
from envs import door
from envs.door import DoorEnv
from envs.rotations import quat_mul

GRASP_DEPTH = np.array([0.02, 0.0, 0.0])  # m, end effector past the handle point: bar on the pads


def _act(pos: np.ndarray | None = None, rot_x: float = 0.0, grip: float = 1.0) -> np.ndarray:
    a = np.zeros(7, np.float32)
    if pos is not None:
        a[:3] = np.clip(pos, -1, 1)
    a[3] = rot_x
    a[6] = grip
    return a


def _grasp_turn_pull(env: DoorEnv, seed: int, turn: float) -> dict[str, float]:
    """Reach the handle with the open gripper, close it, turn it ``turn`` x 0.5 rad per step
    about world x for 4 steps, then pull back 8 steps; returns the knob angle after the turn,
    the door angle at the end, and the episode's success."""
    obs, _ = env.reset(seed=seed)
    for _ in range(12):
        obs, *_ = env.step(_act((GRASP_DEPTH - obs[:3]) / 0.05, grip=-1.0))
        if np.linalg.norm(obs[:3] - GRASP_DEPTH) < 0.004:
            break
    for _ in range(3):
        obs, *_ = env.step(_act())
    for _ in range(4 if turn else 0):
        obs, *_ = env.step(_act(rot_x=turn))
    knob = float(obs[25])
    info = {}
    for _ in range(8):
        # pull towards the robot, keeping the gripper level with the handle
        pull = np.array([-0.4, *np.clip(-obs[1:3] / 0.05, -1, 1)])
        obs, _, _, _, info = env.step(_act(pull))
    return {"knob": knob, "door": float(obs[24]), "success": info["success"]}


def test_grasp_and_pull_opens_the_pull_door() -> None:
    env = DoorEnv(task="pull")
    out = _grasp_turn_pull(env, seed=0, turn=0.0)
    assert out["door"] > door.SUCCESS_ANGLE
    assert out["success"]


def test_round_knob_latch_opens_only_in_the_task_direction() -> None:
    env = DoorEnv(task="round_neg")
    pulled = _grasp_turn_pull(env, seed=0, turn=0.0)
    assert pulled["door"] < 0.01  # latched: pulling alone does not open it
    wrong = _grasp_turn_pull(env, seed=0, turn=-0.5)  # positive knob turn: beyond its range
    assert abs(wrong["knob"]) < 0.05 and wrong["door"] < 0.01
    right = _grasp_turn_pull(env, seed=0, turn=0.5)  # negative knob turn
    assert right["knob"] <= -door.LATCH_ANGLE
    assert right["door"] > door.SUCCESS_ANGLE and right["success"]


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
    assert seq.state_kinds[3:7] == ("quat",) * 4 and seq.state_kinds[24:] == ("angle",) * 2
    assert seq.schedule.mpc_steps == 60000 and seq.episode_steps == 200
