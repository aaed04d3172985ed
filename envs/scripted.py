"""Scripted policies that solve the robot tasks through ``env.step`` alone, in closed loop on
the observation: a pusher (:class:`ScriptedPusher`) and a door opener (:func:`open_door`).
They show that each task can be solved, and they record demonstrations (``launch/record.py``).

The door opener: it approaches the handle, grasps it, turns it the task's way past the latch (round
and lever handles) and pulls the door open along its arc.

Where the handle is comes from the observation: the gripper-handle vector (obs[0:3]), the hand's
orientation in the handle frame (obs[3:7]), the hinge and knob angles (obs[24], obs[25]) and the
door's geometry from ``envs.door`` (knob axis 0.85 m from the hinge, the observed handle point on
the knob). Every step the opener asks for the pose it wants the hand in now (on the handle as
it is, or as it should be after this step's bit of turn or pull) and steps towards it, so it
does not depend on how closely the arm follows one command.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from envs import door, push
from envs.rotations import quat_conjugate, quat_mul, quat_rotate


def _rz(angle: float) -> np.ndarray:
    return np.array([math.cos(angle / 2), 0.0, 0.0, math.sin(angle / 2)])


def _rx(angle: float) -> np.ndarray:
    return np.array([math.cos(angle / 2), math.sin(angle / 2), 0.0, 0.0])


def _rotvec(q: np.ndarray) -> np.ndarray:
    """Rotation vector (axis * angle, rad) of a unit quaternion [w, x, y, z]."""
    q = q if q[0] >= 0 else -q
    s = float(np.linalg.norm(q[1:]))
    if s < 1e-9:
        return 2.0 * q[1:]
    return q[1:] / s * 2.0 * math.atan2(s, float(q[0]))


def knob_frame(hinge: float, knob: float) -> np.ndarray:
    """World orientation of the knob (handle) frame at these hinge and knob angles."""
    return quat_mul(quat_mul(_rz(hinge), _rz(math.pi)), _rx(knob))


def knob_axis(hinge: float) -> np.ndarray:
    """The knob axis point (door mid-plane) relative to the hinge axis, world frame."""
    return quat_rotate(_rz(hinge), np.asarray(door.KNOB_AXIS, float))


# where the hand closes on each handle, in the knob frame (x towards the robot, from the knob's
# axis at the door's mid-plane), the fingers closing vertically (door.Q_GRASP); the finger pads
# reach 7 mm past the grasp point and 4.6 cm back from it: around the pull bar (0.113-0.133 m
# out), the round knob's rim (0.030-0.060 m out) and the lever's grip (0.061-0.082 m out, here
# 7.5 cm along the lever from the axis), each over its whole depth
GRASP = {
    "pull": np.array([0.108, 0.0, 0.0]),
    "round": np.array([0.036, 0.0, 0.0]),
    "lever": np.array([0.064, 0.075, 0.0]),
}
PRE_GRASP = np.array([0.08, 0.0, 0.0])  # m, in front of the grasp point before moving in
TURN_PAST = 0.12  # rad past the latch angle the handle is turned to
TURN_RATE = 0.12  # rad per step of the knob reference
PULL_RATE = 0.04  # rad per step of the hinge reference (3.4 cm of handle travel)
LEAD = 0.2  # rad the references may run ahead of the measured angles


@dataclass
class Outcome:
    success: bool
    steps: int
    knob_turned: float  # rad, the knob angle at the end of the turn phase
    door: float  # rad, the hinge angle at the end
    door_while_latched: float  # rad, the largest hinge angle seen before the latch angle
    log: list[str]


def open_door(
    env: door.DoorEnv,
    seed: int,
    turn: float | None = None,
    max_steps: int = 90,
    stop_at: float = door.SUCCESS_ANGLE + 0.03,
) -> Outcome:
    """Open ``env``'s door from ``env.reset(seed=seed)``; ``turn`` (rad) overrides the knob angle
    turned to before pulling (default: the task's direction, ``TURN_PAST`` beyond the latch;
    0 pulls without turning)."""
    params = env.params
    handle = params["handle"]
    if handle == "pull":
        turn = 0.0
    elif turn is None:
        sign = -1.0 if params["knob_range"][0] < 0 else 1.0
        turn = sign * (door.LATCH_ANGLE + TURN_PAST)
    grasp = GRASP[handle]
    point = np.asarray(door.HANDLE_POINT[handle], float)
    obs, _ = env.reset(seed=seed)
    phase, hold = "pre", 0
    knob_ref, hinge_ref = 0.0, 0.0
    knob_turned, door_latched = 0.0, 0.0
    info: dict = {"success": False}
    log = []
    for t in range(max_steps):
        hinge, knob = float(obs[24]), float(obs[25])
        if abs(knob) < door.LATCH_ANGLE - 0.02:
            door_latched = max(door_latched, hinge)
        frame = knob_frame(hinge, knob)
        hand = knob_axis(hinge) + quat_rotate(frame, point) + obs[0:3]  # from the hinge
        hand_quat = quat_mul(frame, obs[3:7])
        offset, grip = grasp, 1.0
        if phase == "pre":
            offset, grip = grasp + PRE_GRASP, -1.0
        elif phase == "in":
            grip = -1.0
        elif phase == "turn":
            # towards the turn target, at most LEAD ahead of the knob, never back
            sign = math.copysign(1.0, turn - knob_ref)
            ahead = min(TURN_RATE, abs(turn - knob_ref), max(0.0, LEAD - sign * (knob_ref - knob)))
            knob_ref += sign * ahead
        elif phase == "pull":
            hinge_ref += max(0.0, min(PULL_RATE, hinge + LEAD - hinge_ref))
        target_frame = knob_frame(hinge_ref, knob_ref)
        target = knob_axis(hinge_ref) + quat_rotate(target_frame, offset)
        target_quat = quat_mul(target_frame, door.Q_GRASP)
        move = target - hand
        rot = _rotvec(quat_mul(target_quat, quat_conjugate(hand_quat)))
        action = np.zeros(7, np.float32)
        action[:3] = np.clip(move / door.POS_SCALE, -1.0, 1.0)
        rot_u = rot / door.ROT_SCALE
        action[3:6] = rot_u / max(1.0, float(np.abs(rot_u).max()))
        action[6] = grip
        obs, _, _, _, info = env.step(action)
        log.append(
            f"{t:2d} {phase:5s} knob ref {knob_ref:+.3f} hinge ref {hinge_ref:.3f} |move| "
            f"{np.linalg.norm(move) * 100:5.1f} cm |rot| {np.linalg.norm(rot):.2f} -> "
            f"knob {obs[25]:+.3f} door {obs[24]:.3f} finger {obs[7]:.4f} "
            f"q {np.array2string(obs[8:15], precision=2)}"
        )
        # phase changes, from the state this step's action was chosen on
        settled = np.linalg.norm(move) < 0.01 and np.linalg.norm(rot) < 0.05
        if phase == "pre" and settled:
            phase = "in"
        elif phase == "in" and np.linalg.norm(move) < 0.005 and np.linalg.norm(rot) < 0.05:
            phase, hold = "close", 0
        elif phase == "close":
            hold += 1
            if hold >= 3:
                phase = "turn" if turn != 0.0 else "pull"
                knob_ref = knob
        elif phase == "turn" and (
            abs(float(obs[25]) - turn) < 0.03
            or (abs(knob_ref - turn) < 1e-9 and abs(float(obs[25])) >= door.LATCH_ANGLE + 0.04)
        ):
            phase, knob_turned, hinge_ref = "pull", float(obs[25]), float(obs[24])
        elif phase == "pull" and float(obs[24]) >= stop_at:
            break
        if phase == "turn":
            knob_turned = float(obs[25])
    return Outcome(
        bool(info["success"]), t + 1, knob_turned, float(obs[24]), door_latched, log
    )


# ------------------------------------------------------------------ push
def block_yaw(obs: np.ndarray) -> float:
    """Push block yaw (rad) from the observation: its -y edge, back to front corner."""
    c = obs[2:].reshape(4, 2)
    return math.atan2(c[2, 1] - c[0, 1], c[2, 0] - c[0, 0])


def block_centre(obs: np.ndarray) -> np.ndarray:
    """Push block centre xy from the observation."""
    return obs[2:].reshape(4, 2).mean(axis=0)


FINGER_AHEAD = 0.026  # m, the front finger's face ahead of the end effector (fingers along x)
GOAL_CENTRE = np.array([push.BLOCK_START[0] + push.GOAL_SHIFT, push.BLOCK_START[1]])


class ScriptedPusher:
    """Pushes the block to its goal through ``env.step``, in closed loop on the observation.

    The finger pushes the block's back face at an offset from its centre that steers the
    block's heading: a PI loop, whose integral finds the offset that pushes straight (the
    centre of friction, which the task's densities move off the centre). The heading aims
    back at the goal line y = 0 when the block drifts off it; the push slows down to half
    the remaining distance, 1 cm per step at most (a block pushed past its goal stays there).
    """

    def __init__(self) -> None:
        self.integral = 0.0  # m, the integral part of the push offset

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        centre, yaw = block_centre(obs), block_yaw(obs)
        ee = obs[2:6].reshape(2, 2).mean(axis=0) - obs[:2]
        to_goal = GOAL_CENTRE - centre
        error = yaw - float(np.clip(8.0 * to_goal[1], -0.3, 0.3))
        self.integral = float(np.clip(self.integral + 0.1 * error, -0.05, 0.05))
        offset = float(np.clip(self.integral + 1.0 * error, -0.05, 0.05))
        heading = np.array([math.cos(yaw), math.sin(yaw)])
        left = np.array([-math.sin(yaw), math.cos(yaw)])
        advance = float(np.clip(0.5 * (to_goal @ heading), 0.0, 0.01))
        target = centre + heading * (advance - push.BLOCK_HALF - FINGER_AHEAD) + left * offset
        return np.clip((target - ee) / push.ACTION_SCALE, -1.0, 1.0).astype(np.float32)
