"""Door: a Panda opens a hinged door by its handle (the original's "door_pose").

Tasks differ in the handle and in the way it turns (reference §5.2): pull (a fixed bar, no
latch); round knob turned negative; lever turned negative; round knob positive; lever
positive. A round or lever door is latched: its hinge cannot open until the handle has been
turned at least ``LATCH_ANGLE`` = 0.655 rad (37.5 degrees) in the task's direction (the knob's
range only allows that direction), the angle at which the original's latch box clears the door
frame. Once the door is open by more than ``LATCH_RELEASED`` = 0.02 rad it stays unlatched until
it closes again with the handle back. The latch is decided by the task once per control step
and applied as the hinge's range. The handle has the original's weak return spring (0.1 N m/rad)
against its strong damping (1.82 round, 1.73 lever N m s/rad).

Scene (the original's numbers, as seen from the robot's base; docs/door-geometry.md lists every
one with its source): the Panda's base at the origin, facing +x, 0.913 m above the floor (the
original's pedestal; the floor is at z = -0.913). The door is DoorGym's: a 1.0 m wide panel,
2.17-2.41 m tall, 0.80 kg, in the plane x = 0.70 between a door frame and a wall, hinged on a
vertical axis at y = -0.50; the knob's axis is 0.85 m from the hinge (y = 0.35), 0.087 m above
the base, and carries 2 kg of handle (1.31 kg for the pull bar). The door opens towards the
robot. The observed handle point is the original's: on the knob 4.7 cm (round) or 6.0 cm (pull,
between the bar's posts) in front of the door's mid-plane, or on the lever's grip 6.9 cm in
front and 3.3 cm along it. The handle frame has x out of the door (towards the robot), z up.

- Action ``[7]`` in [-1, 1]: end-effector displacement (x, y, z, scaled to +-5 cm), rotation
  vector (world frame, scaled to +-0.5 rad) and gripper (-1 open, +1 closed), 10 Hz.
- Observation ``[26]``: gripper minus handle position (3, world frame); end-effector
  quaternion in the handle frame (4, [w, x, y, z], w >= 0); finger position (1, m); arm joint
  angles (7) and velocities (7); door hinge velocity, knob velocity, door hinge angle, knob
  angle (4; the knob entries are 0 for the pull door).
- Reward (:func:`reward`): ``50 |door| + 20 |knob| - |euler(q_des ⊗ q)[:2]| - |d| -
  log(|d|^2 + 5e-3) - 5`` with d the gripper-handle vector and q_des = (0.7071, 0, 0.7071, 0).
- Episode: a scripted approach puts the open gripper 10 cm in front of the handle, facing it
  with the fingers closing vertically (the original's reset orientation); then 200 agent
  steps. ``info["success"]`` once the hinge has reached 0.2 rad.

Differences from the original (docs/door-geometry.md): the door, frame, wall and handles are
primitive shapes in ``envs/assets/door_{pull,round,lever}.urdf`` (DoorGym's meshes are not
redistributed here) with the meshes' sizes, the original's masses and inertias (its joint
armature, 1e-4 kg m^2, folded into the link inertias); the latch is the hinge's range switched
at the latch box's release angle rather than a box colliding with the frame (so that both
simulators latch alike); the handle's two damped slide joints (DoorGym's position
randomisation, 30000 N s/m) are rigid; the scripted approach places the arm by inverse
kinematics instead of spending 20 of 220 control steps servoing there.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from envs.backend import (
    FINGER_OPEN,
    CameraSpec,
    JointParams,
    ObjectSpec,
    RobotSpec,
    SceneSpec,
    asset,
)
from envs.robot_env import RobotTaskEnv, family_tasks
from envs.rotations import (
    array_namespace,
    axis_angle_to_quat,
    quat_conjugate,
    quat_mul,
    quat_rotate,
)
from envs.sequences import Schedule, TaskSequence

ENV_ID = "HyperCRL/Door-v0"

# (name, handle, knob range in rad, hinge damping in N m s/rad); reference §5.2, the
# original's door XMLs (joint hinge0 damping)
TASKS: tuple[tuple[str, str, tuple[float, float], float], ...] = (
    ("pull", "pull", (-1.57, 1.57), 1.5),
    ("round_neg", "round", (-1.57, 0.0), 1.9),
    ("lever_neg", "lever", (-1.57, 0.0), 1.6),
    ("round_pos", "round", (0.0, 1.57), 1.9),
    ("lever_pos", "lever", (0.0, 1.57), 1.6),
)
TASK_NAMES = tuple(t[0] for t in TASKS)

# Geometry (docs/door-geometry.md has every number with its source in the original). The
# original's Panda base stands on a 0.913 m pedestal at (0.70, 0, 0) turned by pi, its door
# in the plane x = 0 with the hinge at y = 0.5 and the knob at (0, -0.35, 1.0): seen from the
# base, the door's mid-plane is 0.70 m ahead, the hinge 0.50 m to the right, the knob's axis
# 0.35 m to the left and 0.087 m above the base.
DOOR_POS = (0.70, -0.50, 0.087)  # m, the URDF's "frame": hinge axis, door mid-plane, knob height
FLOOR_Z = -0.913  # m, the floor below the base (robosuite's Panda bottom_offset)
KNOB_AXIS = (0.0, 0.85, 0.0)  # m, the knob's axis from the hinge axis, door frame
# m, the handle point the task observes, in the knob frame (on the knob's axis at the door's
# mid-plane; x towards the robot, z up): the original's door_knob_2/3 midpoint (pull),
# door_knob_2 centroid (round), door_knob_4 centroid (lever, on the lever, off the axis)
HANDLE_POINT = {
    "pull": (0.060265, 0.0, 0.0),
    "round": (0.046961, 0.0, 0.0),
    "lever": (0.069477, 0.032633, 0.0),
}
DOOR_RANGE = (0.0, 1.57)  # rad
# rad the handle must turn (in the task's direction) to unlatch: the original's knob_latch box
# (0.1633 m half-length, 0.05 m half-height, on the knob's axis) overlaps door_frame_0 by
# 3.3 mm until its half-extent 0.1633 cos a + 0.05 sin a drops below 0.16 m, at 0.655 rad
LATCH_ANGLE = 0.655
LATCH_RELEASED = 0.02  # rad of door opening above which the latch cannot re-engage
KNOB_SPRING = 0.1  # N m / rad, returns the handle to 0 (the original's hinge1 stiffness)
KNOB_DAMPING = {"round": 1.82, "lever": 1.73}  # N m s / rad, the original's hinge1 damping
SUCCESS_ANGLE = 0.2  # rad
POS_SCALE = 0.05  # m per step at |u| = 1
ROT_SCALE = 0.5  # rad per step at |u| = 1
APPROACH_DIST = 0.1  # m in front of the handle after the scripted approach
EPISODE_STEPS = 200
Q_DES = (math.sqrt(0.5), 0.0, math.sqrt(0.5), 0.0)  # [w, x, y, z], reference §4.2
# the approach orientation in the handle frame, the original's reset_ori [-0.5, -0.5, 0.5,
# 0.5] (w >= 0 here): the hand faces the door, its fingers close vertically. It is conj(Q_DES)
# turned by -90 degrees about the approach axis, so euler(Q_DES ⊗ q) has no roll or pitch.
Q_GRASP = np.array([0.5, 0.5, -0.5, -0.5])
# the seed of the approach IK: an arm pose with the hand 10 cm in front of the handle, facing
# it (the shoulder turned towards the handle, the forearm rolled to bring the hand level)
HOME_QPOS = np.array([0.8, 0.75, 0.0, -2.1, -2.3, 1.8, 2.2])
JOINT_NOISE = 0.02  # rad
APPROACH_NOISE = 0.01  # m, half-width of uniform noise on the approach point
# m, bounds of the end-effector target, around the handle's path: x from short of where the
# handle of a door open by 0.5 rad is (0.28 m) to 0.15 m past the door's plane, y from the hinge
# to past the latch-side jamb, z about 0.5 m either side of the knob's height
WORKSPACE = ((0.15, 0.85), (-0.45, 0.65), (-0.4, 0.6))


def reward(state: Any, action: Any, next_state: Any) -> Any:
    """Door reward, batched: states ``[..., 26]``, action ``[..., 7]`` -> ``[...]``.

    Works on numpy arrays and torch tensors alike. Only ``next_state`` enters (as in the
    original); ``action`` and ``state`` are accepted for the common signature.
    """
    xp = array_namespace(next_state)
    d = next_state[..., 0:3]
    dist2 = (d * d).sum(-1)
    q = next_state[..., 3:7]
    # roll and pitch of Q_DES ⊗ q (R = Rx(a) Ry(b) Rz(c)), written out so that only the
    # two needed matrix entries are formed
    w0, x0, y0, z0 = Q_DES
    w = w0 * q[..., 0] - x0 * q[..., 1] - y0 * q[..., 2] - z0 * q[..., 3]
    x = w0 * q[..., 1] + x0 * q[..., 0] + y0 * q[..., 3] - z0 * q[..., 2]
    y = w0 * q[..., 2] - x0 * q[..., 3] + y0 * q[..., 0] + z0 * q[..., 1]
    z = w0 * q[..., 3] + x0 * q[..., 2] - y0 * q[..., 1] + z0 * q[..., 0]
    m02 = 2 * (x * z + w * y)
    m12 = 2 * (y * z - w * x)
    m22 = 1 - 2 * (x * x + y * y)
    roll = xp.arctan2(-m12, m22)
    pitch = xp.arctan2(m02, xp.sqrt(m12 * m12 + m22 * m22))
    return (
        50.0 * xp.abs(next_state[..., 24])
        + 20.0 * xp.abs(next_state[..., 25])
        - xp.sqrt(roll * roll + pitch * pitch)
        - xp.sqrt(dist2)
        - xp.log(dist2 + 5e-3)
        - 5.0
    )


def success(state: Any) -> Any:
    """Whether the door hinge is open by at least 0.2 rad; ``[..., 26]`` -> ``[...]`` bool."""
    return state[..., 24] >= SUCCESS_ANGLE


def task_params(task: int) -> dict[str, Any]:
    """Physical parameters of task ``task`` as data."""
    _, handle, knob_range, damping = TASKS[task]
    knob = handle != "pull"
    return {
        "handle": handle,
        "knob_range": knob_range if knob else None,
        "hinge_damping": damping,
        "knob_damping": KNOB_DAMPING[handle] if knob else None,
        "knob_spring": KNOB_SPRING if knob else None,
        "latch_angle": LATCH_ANGLE if knob else None,
    }


def scene(task: int) -> SceneSpec:
    """The door scene of task ``task``: the Panda (its base 0.913 m above the floor, as on the
    original's pedestal) facing a door with the task's handle."""
    params = task_params(task)
    joints = {"hinge": JointParams(range=DOOR_RANGE, damping=params["hinge_damping"])}
    if params["handle"] != "pull":
        joints["knob_hinge"] = JointParams(
            range=params["knob_range"],
            damping=params["knob_damping"],
            stiffness=params["knob_spring"],
        )
    door = ObjectSpec(
        name="door", urdf=asset(f"door_{params['handle']}.urdf"), pos=DOOR_POS, joints=joints
    )
    return SceneSpec(
        robot=RobotSpec(base_pos=(0.0, 0.0, 0.0), finger_friction=1.5),
        objects=(door,),
        # behind the robot on the handle side, looking at the door face and the arm
        camera=CameraSpec(pos=(-0.9, 0.8, 1.1), lookat=(0.45, 0.0, -0.1), fovy=60.0),
        floor_z=FLOOR_Z,
    )


class DoorEnv(RobotTaskEnv):
    """The door task on a simulator backend; see the module docstring."""

    family = "door"
    task_names = TASK_NAMES
    scene = staticmethod(scene)

    def __init__(
        self, task: int | str = 0, backend: str = "mujoco", render_mode: str | None = None
    ) -> None:
        super().__init__(task, backend, render_mode)
        self.params = task_params(self.task)
        self._has_knob = self.params["handle"] != "pull"
        # bounds that only a blown-up simulation would leave
        high = np.full(26, 50.0, np.float32)  # rad/s for the velocities
        high[:3] = 5.0  # m
        high[3:8] = 1.0  # quaternion, finger position
        high[8:15] = 2 * math.pi  # rad
        high[24:26] = math.pi  # rad
        self.observation_space = gym.spaces.Box(-high, high, (26,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (7,), np.float32)
        self._obs = np.zeros(26, np.float32)
        self._t = 0
        self._latched = self._has_knob
        self._succeeded = False

    # ----------------------------------------------------------------- helpers
    def _handle_pose(self) -> tuple[np.ndarray, np.ndarray]:
        return self.sim.link_pose("door", "handle")

    def _observe(self) -> np.ndarray:
        ee_pos, ee_quat = self.sim.ee_pose()
        h_pos, h_quat = self._handle_pose()
        q_rel = quat_mul(quat_conjugate(h_quat), ee_quat)
        if q_rel[0] < 0:  # one sign per rotation, so the model sees no jumps from the sim
            q_rel = -q_rel
        q, qd, fingers = self.sim.arm_state()
        door, door_v = self.sim.joint_state("door", "hinge")
        knob, knob_v = self.sim.joint_state("door", "knob_hinge") if self._has_knob else (0.0, 0.0)
        return np.concatenate(
            [ee_pos - h_pos, q_rel, fingers[:1], q, qd, [door_v, knob_v, door, knob]]
        ).astype(np.float32)

    def _update_latch(self) -> None:
        if not self._has_knob:
            return
        door, _ = self.sim.joint_state("door", "hinge")
        knob, _ = self.sim.joint_state("door", "knob_hinge")
        low, high = self.params["knob_range"]
        turned = knob <= -LATCH_ANGLE if low < 0 else knob >= LATCH_ANGLE
        # a latched door opens only by turning the handle (a hard pull may press the hinge a
        # little past its closed limit: that does not unlatch it); an open door latches
        # again only once it is closed and the handle released
        latched = not turned if self._latched else not turned and door < LATCH_RELEASED
        if latched != self._latched:
            self._update_latch_to(latched)

    # ----------------------------------------------------------------- gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        rng = self.np_random
        # the door's state is known at reset (closed, handle at 0): the handle pose follows
        # from the scene, so the backend is reset once, with the arm already at the approach
        self.sim.reset(HOME_QPOS, 1.0, {})
        self._update_latch_to(self._has_knob)
        h_pos, h_quat = self._handle_pose()
        normal = quat_rotate(h_quat, np.array([1.0, 0.0, 0.0]))
        start = h_pos + APPROACH_DIST * normal + rng.uniform(-APPROACH_NOISE, APPROACH_NOISE, 3)
        target_quat = quat_mul(h_quat, Q_GRASP)
        q_seed = HOME_QPOS + rng.normal(0.0, JOINT_NOISE, 7)
        q = self.sim.solve_ik(start, target_quat, q_seed)
        self.sim.reset(q, 1.0, {})
        self._t = 0
        self._succeeded = False
        self._obs = self._observe()
        return self._obs.copy(), self._info(self._obs)

    def _update_latch_to(self, latched: bool) -> None:
        self._latched = latched
        hi = DOOR_RANGE[0] + 1e-4 if latched else DOOR_RANGE[1]
        self.sim.set_joint_range("door", "hinge", DOOR_RANGE[0], hi)

    def _info(self, obs: np.ndarray) -> dict[str, Any]:
        self._succeeded = self._succeeded or bool(success(obs))
        return {"success": self._succeeded, "task": self.task_name, "latched": self._latched}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = np.asarray(action, dtype=np.float32).reshape(7)
        u = np.clip(action, -1.0, 1.0).astype(np.float64)
        ee_pos, ee_quat = self.sim.ee_pose()
        target = ee_pos + POS_SCALE * u[:3]
        for i, (lo, hi) in enumerate(WORKSPACE):
            target[i] = min(max(target[i], lo), hi)
        target_quat = quat_mul(axis_angle_to_quat(ROT_SCALE * u[3:6]), ee_quat)
        self._update_latch()
        self.sim.command(target, target_quat, 0.5 * (1.0 - u[6]))
        self.sim.step()
        obs = self._observe()
        r = float(reward(self._obs, action, obs))
        self._obs = obs
        self._t += 1
        return obs.copy(), r, False, self._t >= EPISODE_STEPS, self._info(obs)


make_env = DoorEnv.make  # the Gymnasium entry point of ``HyperCRL/Door-v0``


def sequence(backend: str = "mujoco") -> TaskSequence:
    """The door task sequence (pull, round-, lever-, round+, lever+) on ``backend``."""
    tasks = family_tasks("door", TASK_NAMES, task_params, backend, ENV_ID, reward, success)
    kinds = ["delta"] * 26
    kinds[3:7] = ["quat"] * 4
    kinds[24:26] = ["angle"] * 2
    return TaskSequence(
        family="door",
        backend=backend,
        tasks=tasks,
        observation_dim=26,
        action_dim=7,
        action_low=-np.ones(7, np.float32),
        action_high=np.ones(7, np.float32),
        state_kinds=tuple(kinds),
        episode_steps=EPISODE_STEPS,
        schedule=Schedule(
            init_random_steps=2000, mpc_steps=60000, retrain_every=200, train_iters=200,
            batch_size=100, eval_every=1000, curve_episodes=1,
        ),
        extras={
            "control_dt": 0.1,
            "latch_angle": LATCH_ANGLE,
            "success_angle": SUCCESS_ANGLE,
            "q_des": Q_DES,
            "finger_open_m": FINGER_OPEN,
        },
    )
