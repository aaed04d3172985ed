"""The simulator interface that the robot tasks (push, door) are written against.

A task describes its scene as data (:class:`SceneSpec`: the Panda, URDF objects from
``envs/assets`` with per-task physical parameters, a camera) and drives it through a
:class:`Backend`: reset the state, command the end effector (the controller lives behind
the interface), advance one control step, read poses and joint states, render. The task
logic (observation, reward, success, scripted approach) lives in ``envs/push.py`` and
``envs/door.py`` and never touches a simulator directly, so a second backend (PyBullet)
only implements this class.

Conventions: SI units, world frame, quaternions [w, x, y, z]. The Panda is pybullet_data's
``franka_panda/panda.urdf`` with the real arm's inertias (``envs/panda.py``); its end effector
is the link ``panda_grasptarget`` (between the fingertips), whose z axis points out of the
hand.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")

# backend name -> "module:class"; a backend module is imported only when asked for
BACKENDS: dict[str, str] = {
    "mujoco": "envs.mujoco.backend:MujocoBackend",
    "pybullet": "envs.pybullet.backend:PybulletBackend",
}

ARM_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))
FINGER_JOINTS = ("panda_finger_joint1", "panda_finger_joint2")
# The Franka Panda's joint limits from Franka's datasheet, which the controller
# (envs/controller.py) applies on both backends at every physics substep. pybullet_data's URDF
# allows more (joint 1 +-2.9671 rad, joint 4 up to 0, joint 6 down to -0.0873): the real arm
# cannot go there.
ARM_POSITION_LIMITS = (
    (-2.8973, 2.8973), (-1.7628, 1.7628), (-2.8973, 2.8973), (-3.0718, -0.0698),
    (-2.8973, 2.8973), (-0.0175, 3.7525), (-2.8973, 2.8973),
)  # rad
ARM_VELOCITY_LIMITS = (2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61)  # rad/s
ARM_EFFORT_LIMITS = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0)  # N m, the URDF's and Franka's
EE_LINK = "panda_grasptarget"
FINGER_OPEN = 0.04  # m, each finger's travel in the URDF


def asset(name: str) -> str:
    """Absolute path of a file under ``envs/assets``."""
    return os.path.join(ASSETS, name)


Vec3 = tuple[float, float, float]
Quat = tuple[float, float, float, float]


@dataclass(frozen=True)
class JointParams:
    """Physical parameters applied to one object joint (None: keep the URDF's)."""

    range: tuple[float, float] | None = None  # rad or m
    damping: float | None = None  # N m s / rad
    stiffness: float | None = None  # N m / rad, a spring towards 0
    frictionloss: float | None = None  # N m, dry friction


@dataclass(frozen=True)
class ObjectSpec:
    """A URDF object placed in the scene, with per-task parameters applied by the backend.

    ``link_mass`` overrides a link's mass (kg); its inertia tensor is scaled by the same
    factor, which is exact for a uniform body whose density changes.
    ``friction`` sets a link's sliding friction coefficient.
    """

    name: str
    urdf: str
    pos: Vec3 = (0.0, 0.0, 0.0)
    quat: Quat = (1.0, 0.0, 0.0, 0.0)
    free: bool = False  # a floating base (6 DoF) rather than one fixed to the world
    link_mass: Mapping[str, float] = field(default_factory=dict)
    friction: Mapping[str, float] = field(default_factory=dict)
    joints: Mapping[str, JointParams] = field(default_factory=dict)


@dataclass(frozen=True)
class RobotSpec:
    """The Panda: where its base stands, and the controller's gains and limits."""

    base_pos: Vec3 = (0.0, 0.0, 0.0)
    base_quat: Quat = (1.0, 0.0, 0.0, 0.0)
    # joint servo stiffness (N m / rad) per arm joint; damping is set near-critical
    joint_kp: tuple[float, ...] = (4000.0, 4000.0, 4000.0, 4000.0, 1000.0, 1000.0, 1000.0)
    finger_force: float = 70.0  # N, the most each finger servo pushes (Franka: 70 N grip)
    finger_friction: float = 1.0  # sliding friction of the finger pads


@dataclass(frozen=True)
class CameraSpec:
    """A fixed camera looking from ``pos`` at ``lookat``, vertical field of view in degrees."""

    pos: Vec3
    lookat: Vec3
    fovy: float = 45.0


@dataclass(frozen=True)
class MarkerSpec:
    """A box drawn in the scene but not simulated (no mass, no collisions): a goal to show."""

    half_size: Vec3
    pos: Vec3
    quat: Quat = (1.0, 0.0, 0.0, 0.0)
    rgba: tuple[float, float, float, float] = (0.1, 0.8, 0.2, 0.4)


@dataclass(frozen=True)
class SceneSpec:
    """Everything a backend needs to build a task's scene."""

    robot: RobotSpec
    objects: tuple[ObjectSpec, ...]
    camera: CameraSpec
    control_dt: float = 0.1  # s, one env step (10 Hz)
    physics_dt: float = 0.002  # s, MuJoCo's default step, as in the original
    floor_z: float | None = None  # height of a ground plane, None for none
    markers: tuple[MarkerSpec, ...] = ()


class Backend(ABC):
    """One simulator running one scene. Built once per env; ``reset`` restores a state.

    Joint and link names are those of the URDF; object joints and links are addressed by
    (object name, URDF name).
    """

    scene: SceneSpec

    @abstractmethod
    def reset(
        self,
        arm_qpos: np.ndarray,
        finger_opening: float,
        object_poses: Mapping[str, tuple[np.ndarray, np.ndarray]],
    ) -> None:
        """Put the arm at ``arm_qpos [7]`` (rad) at rest, fingers at ``finger_opening``
        (0 closed .. 1 open), free objects at their (pos [3], quat [4]) and every object
        joint at 0, all at rest; the controller then holds this configuration."""

    @abstractmethod
    def solve_ik(self, pos: np.ndarray, quat: np.ndarray, q_seed: np.ndarray) -> np.ndarray:
        """Arm joint angles ``[7]`` that put the end effector at (pos [3], quat [4]),
        searched from ``q_seed [7]``; kinematics only, the simulation state is untouched."""

    @abstractmethod
    def command(self, pos: np.ndarray, quat: np.ndarray, finger_opening: float) -> None:
        """Set the end-effector target pose (world frame) and the finger opening (0..1) that
        the controller tracks during the following control steps."""

    @abstractmethod
    def step(self) -> None:
        """Advance the simulation by one control step (``scene.control_dt``)."""

    @abstractmethod
    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """End-effector position [3] (m) and orientation [4] in the world frame."""

    @abstractmethod
    def arm_state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Arm joint angles [7] (rad), velocities [7] (rad/s), finger positions [2] (m)."""

    @abstractmethod
    def link_pose(self, obj: str, link: str) -> tuple[np.ndarray, np.ndarray]:
        """World position [3] and orientation [4] of an object's link frame."""

    @abstractmethod
    def joint_state(self, obj: str, joint: str) -> tuple[float, float]:
        """Position (rad or m) and velocity of an object's joint."""

    @abstractmethod
    def set_joint_range(self, obj: str, joint: str, low: float, high: float) -> None:
        """Change an object joint's limits from now on (a latch closes or opens)."""

    @abstractmethod
    def render(self) -> np.ndarray:
        """An RGB frame ``[H, W, 3]`` uint8 from the scene's camera."""

    @abstractmethod
    def physics_steps_per_control(self) -> int:
        """Simulator steps inside one control step (for benchmarks)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release renderer and simulator resources."""


def make_backend(name: str, scene: SceneSpec, render_size: tuple[int, int] = (256, 256)) -> Backend:
    """Build ``scene`` on backend ``name`` ("mujoco" or "pybullet")."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; valid: {sorted(BACKENDS)}")
    module_name, cls_name = BACKENDS[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name is not None and module_name.startswith(err.name):
            raise ValueError(
                f"backend {name!r} is not implemented yet; available: {available_backends()}"
            ) from err
        raise
    return getattr(module, cls_name)(scene, render_size=render_size)


def available_backends() -> list[str]:
    """Backends whose module exists in this installation."""
    found = []
    for name, target in BACKENDS.items():
        module_name = target.split(":")[0]
        if importlib.util.find_spec(module_name.rsplit(".", 1)[0]) is not None:
            found.append(name)
    return found


def resolve_task(task: int | str, names: tuple[str, ...], family: str) -> int:
    """Index of ``task`` given as an index or a name; ValueError lists the valid ones."""
    if isinstance(task, (int, np.integer)) and not isinstance(task, bool):
        if 0 <= int(task) < len(names):
            return int(task)
    elif isinstance(task, str) and task in names:
        return names.index(task)
    valid = ", ".join(f"{i} or {n!r}" for i, n in enumerate(names))
    raise ValueError(f"unknown {family} task {task!r}; valid: {valid}")


def check_backend(backend: str) -> str:
    """``backend`` if it is a known backend name, else a ValueError listing them."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {sorted(BACKENDS)}")
    return backend
