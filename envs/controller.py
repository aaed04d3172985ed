"""The arm controller both backends share: a Cartesian target in, joint references out.

One command (an end-effector pose to reach within the coming control step) becomes, in order:

1. **A turn the wrist can make.** The rotation to the target is capped at
   :data:`MAX_TURN_SPEED`; where the whole pose would still move a joint faster than
   :data:`SPEED_HEADROOM` of its limit, the rotation is shortened further (about the same
   axis): translation comes first.
2. **Inverse kinematics to convergence.** Damped least squares on the arm's kinematic chain,
   from the measured joint angles, until the pose error is below :data:`IK_TOL` (or
   :data:`IK_ITERS` iterations), every iterate kept inside the Panda's joint position limits
   (less :data:`LIMIT_MARGIN`); a joint at a limit that a step pushes further drops out of the
   Jacobian so the others take over. A redundant arm drifts in its null space; one null-space
   pull per command brings the elbow back towards the pose at reset without moving the hand.
3. **A reachable joint step.** A step still too fast is scaled down as a whole (every joint by
   the same factor, so the hand still moves along the commanded direction).
4. **A ramp.** During the control step each physics substep tracks a reference that moves from
   the measured angles to the goal, its velocity blending from the measured one to a constant
   cruise over :data:`VELOCITY_BLEND` (no velocity jump for the servos to chase):
   :meth:`JointRamp.trajectory` gives every substep's position and velocity references, which
   the backends feed forward. Positions inside the limits and speeds within the limits hold
   for the references at every substep, not only on average.
5. **No wind-up.** :class:`RampTracker` holds the references back where something holds a
   joint back by more than its servo's saturation lag, so a joint that comes free does not
   race to catch up.

A backend supplies the kinematics (:class:`~envs.kinematics.ArmChain`, the URDF both
simulators load) and applies the ramp with its own servos; this module never touches a
simulator, so the two backends command the arm identically.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from envs.backend import (
    ARM_EFFORT_LIMITS,
    ARM_POSITION_LIMITS,
    ARM_VELOCITY_LIMITS,
    SceneSpec,
)
from envs.kinematics import ArmChain
from envs.panda import panda_urdf
from envs.rotations import axis_angle_to_quat, mat_to_axis_angle, quat_to_mat

# (position [3], rotation [3, 3], Jacobian [6, 7] linear then angular) at joint angles q [7]
Kinematics = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]

IK_DAMPING = 0.05  # damped least squares lambda
IK_NULLSPACE_GAIN = 0.2  # fraction of the distance to the rest pose pulled per command
IK_ROT_WEIGHT = 0.1  # weight of the squared orientation error (rad^2) in the stop test
IK_ITERS = 12  # per command; a 5 cm, 0.5 rad command converges in 3-5
IK_TOL = 1e-4  # m (and 0.3 mrad): the pose error a command's IK stops at
LIMIT_MARGIN = 0.01  # rad kept from each joint position limit
# The reference moves at most this fraction of a joint's speed limit: the servos' tracking
# transients then keep the joints themselves under their limits (push, 2000 random steps: the
# fastest joint reaches 0.97 of its limit)
SPEED_HEADROOM = 0.95
# rad/s, the fastest the hand turns: the wrist's joints (2.61 rad/s) turn it about most axes at
# this speed with the headroom to spare; faster, how much of a turn a step achieved would depend
# on the arm's configuration, and no model could tell
MAX_TURN_SPEED = 1.2
VELOCITY_BLEND = 0.03  # s over which a ramp's velocity goes from the measured one to its own
ROTATION_REFINES = 2  # re-solves with a shorter rotation when the first guess was too fast


@dataclass(frozen=True)
class JointRamp:
    """Joint references for one control step: from ``start`` (moving at ``v0``) to ``end``.

    The velocity blends linearly from ``v0`` to ``cruise`` over the first ``blend`` seconds and
    then stays there, so the reference is smooth where one step's ramp follows another.
    """

    start: np.ndarray  # [7] rad, the measured angles when the command came
    end: np.ndarray  # [7] rad, reached at the end of the control step
    v0: np.ndarray  # [7] rad/s, the measured velocities when the command came
    cruise: np.ndarray  # [7] rad/s, after the blend
    blend: float  # s
    duration: float  # s, the control step
    substeps: int

    def at(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Position and velocity references after substep ``k`` (1 .. substeps)."""
        pos, vel = self.trajectory()
        return pos[k - 1], vel[k - 1]

    def trajectory(self) -> tuple[np.ndarray, np.ndarray]:
        """Position and velocity references ``[substeps, 7]`` each, after substeps 1..n."""
        t = self.duration * np.arange(1, self.substeps + 1)[:, None] / self.substeps
        dv = self.cruise - self.v0
        blending = t < self.blend
        blend = max(self.blend, 1e-12)
        pos = np.where(
            blending,
            self.start + self.v0 * t + dv * (t * t / (2 * blend)),
            self.start + self.v0 * t + dv * (t - 0.5 * self.blend),
        )
        vel = np.where(blending, self.v0 + dv * (t / blend), self.cruise)
        return pos, vel

    @classmethod
    def hold(cls, q: np.ndarray, duration: float, substeps: int) -> JointRamp:
        """Stay at ``q``."""
        q = np.asarray(q, float)
        zero = np.zeros_like(q)
        return cls(q.copy(), q.copy(), zero, zero, 0.0, duration, substeps)


class RampTracker:
    """A ramp's references, pulled back where a joint lags them by more than ``lag_limit``.

    Something the arm pushes against (a block, a door) holds a joint back; its servo's force
    saturates at a lag of effort / stiffness. A reference that ran on regardless would wind
    the servo up, and the joint would race to catch up once free, past its speed limit. Here
    the reference waits instead: it never leads the measured angle by more than the lag limit.
    """

    def __init__(self, ramp: JointRamp, lag_limit: np.ndarray) -> None:
        self.ramp = ramp
        self.lag_limit = lag_limit
        self.held_back = np.zeros_like(ramp.start)
        # every substep's references at once: the per-substep work is then a few additions
        self._q, self._v = ramp.trajectory()

    @property
    def positions(self) -> np.ndarray:
        """The ramp's position references ``[substeps, 7]``, before any holding back."""
        return self._q

    @property
    def velocities(self) -> np.ndarray:
        """The ramp's velocity references ``[substeps, 7]``."""
        return self._v

    def hold_back(self, k: int, q: np.ndarray) -> np.ndarray:
        """How far the references are pulled back ``[7]`` from substep ``k`` on, given the
        measured angles ``q``."""
        lag = self._q[k - 1] - self.held_back - q
        if (np.abs(lag) > self.lag_limit).any():  # the method skips np.any's dispatch
            self.held_back += lag - np.clip(lag, -self.lag_limit, self.lag_limit)
        return self.held_back

    def at(self, k: int, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Position and velocity references for substep ``k`` given the measured angles."""
        return self._q[k - 1] - self.hold_back(k, q), self._v[k - 1]

    @property
    def end(self) -> np.ndarray:
        """Where the references ended."""
        return self.ramp.end - self.held_back


def largest_fraction(a: np.ndarray, b: np.ndarray, bound: np.ndarray) -> float:
    """The largest s in [0, 1] with ``|a + s b| <= bound`` for every entry (0 if even s = 0
    breaks it)."""
    room = bound - np.abs(a)
    if np.any(room < 0):
        return 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        # moving towards the bound on a's side, or first through zero to the other side
        limit = np.where(a * b >= 0, room, bound + np.abs(a)) / np.abs(b)
    return float(min(1.0, np.nanmin(limit, initial=1.0)))


class ArmController:
    """Damped-least-squares IK plus velocity- and position-limited joint ramps.

    ``kinematics(q)`` returns the end effector's world position, rotation and geometric
    Jacobian; ``lower``/``upper`` are joint position limits (rad) and ``velocity`` joint speed
    limits (rad/s); a control step lasts ``control_dt`` seconds of ``substeps`` physics steps.
    """

    def __init__(
        self,
        kinematics: Kinematics,
        lower: np.ndarray,
        upper: np.ndarray,
        velocity: np.ndarray,
        control_dt: float,
        substeps: int,
        lag_limit: np.ndarray | None = None,
    ) -> None:
        self.kinematics = kinematics
        self.lower = np.asarray(lower, float) + LIMIT_MARGIN
        self.upper = np.asarray(upper, float) - LIMIT_MARGIN
        if not np.all(self.lower < self.upper):
            raise ValueError("joint limits: need lower + margin < upper - margin for every joint")
        self.max_speed = SPEED_HEADROOM * np.asarray(velocity, float)
        self.max_step = self.max_speed * control_dt
        self.max_turn = MAX_TURN_SPEED * control_dt
        self.control_dt = control_dt
        self.substeps = substeps
        self._damp = IK_DAMPING**2 * np.eye(6)
        self.q_rest = 0.5 * (self.lower + self.upper)
        # rad, how far a reference may lead its joint (RampTracker); none by default
        self.lag_limit = (
            np.full(len(self.lower), np.inf) if lag_limit is None
            else np.asarray(lag_limit, float)
        )

    @classmethod
    def for_scene(cls, scene: SceneSpec) -> ArmController:
        """The Panda's controller in ``scene``: its chain from the URDF at the robot's base,
        the datasheet's limits, the scene's control step and physics substeps."""
        robot = scene.robot
        if len(robot.joint_kp) != 7:
            raise ValueError(f"robot.joint_kp needs 7 entries, got {len(robot.joint_kp)}")
        chain = ArmChain(
            panda_urdf(), np.asarray(robot.base_pos, float), np.asarray(robot.base_quat, float)
        )
        limits = np.asarray(ARM_POSITION_LIMITS)
        substeps = int(round(scene.control_dt / scene.physics_dt))
        return cls(
            chain.kinematics, limits[:, 0], limits[:, 1], np.asarray(ARM_VELOCITY_LIMITS),
            scene.control_dt, substeps,
            # the lag at which a joint's servo saturates
            lag_limit=np.asarray(ARM_EFFORT_LIMITS) / np.asarray(robot.joint_kp),
        )

    def reset(self, q: np.ndarray) -> JointRamp:
        """The arm was put at rest at ``q``: the null space is pulled towards it from now on;
        returns the ramp that holds it there."""
        self.q_rest = np.asarray(q, float).copy()
        return self.hold(self.q_rest)

    def track(self, ramp: JointRamp) -> RampTracker:
        """Per-substep references for ``ramp`` that wait for joints held back."""
        return RampTracker(ramp, self.lag_limit)

    def hold(self, q: np.ndarray) -> JointRamp:
        """The ramp that holds the arm at ``q``."""
        return JointRamp.hold(q, self.control_dt, self.substeps)

    def clip(self, q: np.ndarray) -> np.ndarray:
        """``q`` inside the joint limits (less the margin)."""
        return np.clip(q, self.lower, self.upper)

    def solve(
        self,
        pos: np.ndarray,
        rot: np.ndarray,
        q: np.ndarray,
        q_rest: np.ndarray,
        iters: int = IK_ITERS,
        tol: float = IK_TOL,
        settle: bool = False,
    ) -> np.ndarray:
        """Joint angles ``[7]`` that put the end effector at (pos [3], rot [3, 3]), searched
        from ``q [7]`` with a null-space pull towards ``q_rest``: on the first iteration only,
        or with ``settle`` on every iteration until it has died out too (then the answer does
        not depend on the seed's null-space position)."""
        q = self.clip(np.array(q, dtype=float))
        for i in range(iters):
            ee_pos, ee_rot, jac = self.kinematics(q)
            err = np.concatenate([pos - ee_pos, mat_to_axis_angle(rot @ ee_rot.T)])
            jjt = jac @ jac.T
            pull = None
            if settle or i == 0:
                # projected with a nearly undamped pseudo-inverse: the pull leaves the hand be
                pull = IK_NULLSPACE_GAIN * (q_rest - q)
                pull -= jac.T @ np.linalg.solve(jjt + 1e-4 * self._damp, jac @ pull)
            done = err[:3] @ err[:3] + IK_ROT_WEIGHT * (err[3:] @ err[3:]) < tol * tol
            if done and (not settle or pull @ pull < tol * tol):
                break
            step = jac.T @ np.linalg.solve(jjt + self._damp, err)
            # a joint at a limit that the step pushes further drops out: the others take over
            pinned = ((q <= self.lower) & (step < 0)) | ((q >= self.upper) & (step > 0))
            if pinned.any():
                free = jac * ~pinned
                step = free.T @ np.linalg.solve(free @ free.T + self._damp, err)
            if pull is not None:
                step += pull
            q = self.clip(q + step)
        return q

    def _span(self) -> float:
        # a ramp covers D within the step at cruise = v_now + (D - v_now T) / span
        return self.control_dt - 0.5 * VELOCITY_BLEND

    def _carry(self, v_now: np.ndarray) -> np.ndarray:
        """The part of the cruise velocity that the measured velocity brings, whatever D."""
        return v_now - v_now * self.control_dt / self._span()

    def ramp(self, q_now: np.ndarray, v_now: np.ndarray, q_goal: np.ndarray) -> JointRamp:
        """The control step's ramp from ``q_now`` (moving at ``v_now``) towards ``q_goal``,
        shortened as a whole so that no joint's reference moves faster than its limit."""
        q_now, v_now = np.asarray(q_now, float), np.asarray(v_now, float)
        dq = self.clip(q_goal) - q_now
        span, carry = self._span(), self._carry(v_now)
        scale = largest_fraction(carry, dq / span, self.max_speed)
        end = q_now + scale * dq
        cruise = carry + scale * dq / span
        return JointRamp(
            q_now.copy(), end, v_now.copy(), cruise, VELOCITY_BLEND, self.control_dt,
            self.substeps,
        )

    def command(
        self, pos: np.ndarray, quat: np.ndarray, q_now: np.ndarray, v_now: np.ndarray
    ) -> JointRamp:
        """The ramp that moves the end effector from the measured ``q_now`` (joints moving at
        ``v_now``) towards the pose (pos [3], quat [4] [w, x, y, z]) within one control step.

        The rotation is at most :data:`MAX_TURN_SPEED` times the step. Translation comes
        first: where the whole pose cannot be reached within the joint speed limits, the
        rotation is shortened (about the same axis) until it can, and only a move that is too
        fast even without rotating is slowed down as a whole.
        """
        q_now, v_now = np.asarray(q_now, float), np.asarray(v_now, float)
        pos = np.asarray(pos, float)
        ee_pos, ee_rot, jac = self.kinematics(q_now)
        turn = mat_to_axis_angle(_rotation(quat) @ ee_rot.T)
        angle = float(np.linalg.norm(turn))
        if angle > self.max_turn:
            turn *= self.max_turn / angle
        # the joint step D a ramp can cover: |carry * span + D| <= max_speed * span
        offset, bound = self._carry(v_now) * self._span(), self.max_speed * self._span()
        fraction = self._rotation_fraction(jac, pos - ee_pos, turn, offset, bound)
        for _ in range(ROTATION_REFINES + 1):
            rot = quat_to_mat(axis_angle_to_quat(fraction * turn)) @ ee_rot
            q_goal = self.solve(pos, rot, q_now, self.q_rest)
            dq = q_goal - q_now
            if fraction == 0.0 or largest_fraction(offset, dq, bound) >= 1.0:
                break
            # the first-order estimate was optimistic: shorten the rotation by what is missing
            need = float(np.max(np.abs(offset + dq) / bound))
            fraction *= max(0.0, 1.0 - 1.2 * (need - 1.0) / need) if need < 2 else 0.0
        return self.ramp(q_now, v_now, q_goal)

    def _rotation_fraction(
        self, jac: np.ndarray, move: np.ndarray, turn: np.ndarray, offset: np.ndarray,
        bound: np.ndarray,
    ) -> float:
        """The largest a in [0, 1] for which the joint step D of (move, a * turn), to first
        order, keeps ``|offset + D| <= bound`` for every joint."""
        jjt_inv = np.linalg.inv(jac @ jac.T + self._damp)
        dq_move = jac.T @ (jjt_inv[:, :3] @ move)
        dq_turn = jac.T @ (jjt_inv[:, 3:] @ turn)
        return largest_fraction(offset + dq_move, dq_turn, bound)

    def solve_ik(self, pos: np.ndarray, quat: np.ndarray, q_seed: np.ndarray) -> np.ndarray:
        """Joint angles ``[7]`` at the pose (pos [3], quat [4]), searched from ``q_seed`` and
        settled towards it in the null space: kinematics only, for placing the arm at reset."""
        q_seed = np.asarray(q_seed, float)
        if q_seed.shape != (7,):
            raise ValueError(f"q_seed must have shape (7,), got {q_seed.shape}")
        return self.solve(
            np.asarray(pos, float), _rotation(quat), q_seed, q_seed, iters=500, tol=1e-5,
            settle=True,
        )


def _rotation(quat: np.ndarray) -> np.ndarray:
    quat = np.asarray(quat, float)
    return quat_to_mat(quat / np.linalg.norm(quat))
