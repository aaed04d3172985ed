"""PyBullet implementation of :class:`envs.backend.Backend`.

Each instance owns one physics client in DIRECT mode (no GUI, no shared global client), so
many envs can live in one process; :meth:`PybulletBackend.close` disconnects it. The scene
is loaded from the same files as the MuJoCo backend (pybullet_data's Panda URDF, the object
URDFs under ``envs/assets``) and the task's parameters are applied through PyBullet's API:
``changeDynamics`` for link masses and inertias, frictions, joint damping and joint limits;
a per-step joint torque for joint springs (Bullet has none); a velocity motor with a force
limit for dry joint friction.

Controller (the same as MuJoCo's in what it does, not in its code): each :meth:`command`
runs a few damped-least-squares iterations of 6-D differential IK, from the measured arm
configuration, with a null-space pull towards the configuration at reset; Bullet's joint
position motors (force-limited by the URDF efforts) track the result during the control step.
The IK runs on the arm's kinematic chain read from the URDF and evaluated in numpy, so it never
touches the simulation state. Bullet's motors are velocity constraints, not springs: they hold
their target up to the joint effort (gravity included, as Bullet has no gravity compensation)
and ignore ``RobotSpec.joint_kp``, so the arm is stiffer than MuJoCo's servos when something
pushes back: where MuJoCo's hand yields by a centimetre, this one presses with full effort.

Every reset also clears Bullet's contact caches: Bullet keeps contact manifolds and their
warm-start impulses between bodies that stay close, which would make a rollout depend on the
previous episode. Setting a link's collision filter re-inserts it into the broadphase, which
drops its manifolds; the arm never collides with itself, so doing that for the floor's and
the objects' links drops them all, and a rollout depends on the seed alone (it is the same as
in a fresh env).

Friction: MuJoCo takes the larger of the two geoms' coefficients (or the coefficient of a geom
with higher priority: the finger pads), Bullet multiplies them. The contacts the tasks depend
on all involve a moving object, so the moving objects' links get a neutral 1.0 and every other
link carries the coefficient MuJoCo would use against them; see :func:`bullet_frictions`.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pybullet as p

from envs.backend import (
    ARM_JOINTS,
    EE_LINK,
    FINGER_JOINTS,
    FINGER_OPEN,
    Backend,
    CameraSpec,
    ObjectSpec,
    SceneSpec,
    panda_urdf,
)

GRAVITY = -9.81  # m/s^2
MUJOCO_FRICTION = 1.0  # MuJoCo's default sliding friction: what an unspecified geom has there
FINGER_SPIN_FRICTION = 0.01  # m, MuJoCo's torsional friction of the finger pads (condim 4)
IK_DAMPING = 0.05  # damped least squares lambda
IK_NULLSPACE_GAIN = 0.2  # fraction of the distance to the rest pose taken per IK iteration
IK_ROT_WEIGHT = 0.1  # weight of the squared orientation error (rad^2) in the stop test
ROBOT_RGBA = (0.92, 0.92, 0.92, 1.0)  # as the MuJoCo backend paints the arm
FINGER_RGBA = (0.25, 0.25, 0.25, 1.0)
FLOOR_RGBA = (0.55, 0.55, 0.5, 1.0)
FLOOR_HALF_THICKNESS = 0.05  # m, the floor is a thin box whose top is at scene.floor_z
CAMERA_NEAR, CAMERA_FAR = 0.01, 10.0  # m


# ---------------------------------------------------------------------- small rotations
def _xyzw(quat_wxyz: np.ndarray) -> list[float]:
    w, x, y, z = (float(v) for v in quat_wxyz)
    return [x, y, z, w]


def _wxyz(quat_xyzw: tuple[float, ...] | np.ndarray) -> np.ndarray:
    x, y, z, w = quat_xyzw
    return np.array([w, x, y, z])


def _quat_to_mat(quat_wxyz: np.ndarray) -> np.ndarray:
    """Rotation matrix ``[3, 3]`` of a unit quaternion [w, x, y, z]."""
    w, x, y, z = np.asarray(quat_wxyz, float) / np.linalg.norm(quat_wxyz)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def _rpy_to_mat(rpy: np.ndarray) -> np.ndarray:
    """URDF's fixed-axis roll, pitch, yaw: ``R = Rz(yaw) Ry(pitch) Rx(roll)``."""
    cr, sr = math.cos(rpy[0]), math.sin(rpy[0])
    cp, sp = math.cos(rpy[1]), math.sin(rpy[1])
    cy, sy = math.cos(rpy[2]), math.sin(rpy[2])
    return np.array(
        [
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ]
    )


def _rotation_vector(mat: np.ndarray) -> np.ndarray:
    """Axis * angle ``[3]`` (rad) of a rotation matrix; well-behaved near 0 and near pi."""
    cos = min(1.0, max(-1.0, 0.5 * (np.trace(mat) - 1.0)))
    angle = math.acos(cos)
    vee = np.array([mat[2, 1] - mat[1, 2], mat[0, 2] - mat[2, 0], mat[1, 0] - mat[0, 1]])
    if angle < 1e-6:
        return 0.5 * vee
    if angle > math.pi - 1e-4:
        # sin(angle) ~ 0: read the axis from the symmetric part, sign from the skew part
        sym = 0.5 * (mat + np.eye(3))
        axis = sym[int(np.argmax(np.diag(sym)))]
        axis = axis / np.linalg.norm(axis)
        if axis @ vee < 0:
            axis = -axis
        return angle * axis
    return angle / (2.0 * math.sin(angle)) * vee


@functools.cache
def robot_urdf() -> str:
    """Path of the Panda URDF as this backend loads it: pybullet_data's file with the visual
    meshes swapped for the collision meshes, as MuJoCo (``discardvisual``) draws it.

    The visual meshes hold ten times the triangles: TinyRenderer spent most of a frame on
    them, and the first load read 10 MB. The file is written once per machine to the temp
    directory (named by its content, replaced atomically, so concurrent processes agree).
    """
    source = panda_urdf()
    with open(source) as f:
        text = f.read()
    root_dir = os.path.dirname(source)
    text = text.replace("package://meshes/visual/", "package://meshes/collision/")
    text = text.replace("package://", root_dir + "/")
    digest = hashlib.sha1(text.encode()).hexdigest()[:12]
    path = os.path.join(tempfile.gettempdir(), f"hypercrl_panda_{digest}.urdf")
    if not os.path.exists(path):
        try:
            fd, tmp = tempfile.mkstemp(suffix=".urdf", dir=tempfile.gettempdir())
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, path)
        except OSError:  # no writable temp directory: draw the detailed visual meshes
            return source
    return path


# ---------------------------------------------------------------------- arm kinematics
def _urdf_vector(element: ET.Element | None, attribute: str, default: str) -> np.ndarray:
    text = default if element is None else element.get(attribute, default)
    return np.array([float(v) for v in text.split()])


class ArmChain:
    """Forward kinematics and geometric Jacobian of the Panda's arm, from its URDF, in numpy.

    The IK runs here rather than in the simulator so that solving never changes the
    simulation state (PyBullet's kinematics queries read the live joint positions). The
    chain from the base to the end effector is stored as 8 rigid segments (fixed joints
    merged in) between the 7 revolute joints.
    """

    def __init__(self, urdf: str, base_pos: np.ndarray, base_quat: np.ndarray) -> None:
        root = ET.parse(urdf).getroot()
        by_child = {j.find("child").get("link"): j for j in root.findall("joint")}
        walk = []
        link = EE_LINK
        while link in by_child:
            walk.append(by_child[link])
            link = by_child[link].find("parent").get("link")
        base = np.eye(4)
        base[:3, :3] = _quat_to_mat(base_quat)
        base[:3, 3] = base_pos
        segments, axes, names = [base], [], []
        for joint in reversed(walk):
            origin = joint.find("origin")
            frame = np.eye(4)
            frame[:3, :3] = _rpy_to_mat(_urdf_vector(origin, "rpy", "0 0 0"))
            frame[:3, 3] = _urdf_vector(origin, "xyz", "0 0 0")
            segments[-1] = segments[-1] @ frame
            kind = joint.get("type")
            if kind == "revolute":
                axis = _urdf_vector(joint.find("axis"), "xyz", "1 0 0")
                axes.append(axis / np.linalg.norm(axis))
                names.append(joint.get("name"))
                segments.append(np.eye(4))
            elif kind != "fixed":
                raise ValueError(f"joint {joint.get('name')!r} of type {kind!r} on the arm chain")
        if tuple(names) != ARM_JOINTS:
            raise ValueError(f"arm chain joints {names}, expected {list(ARM_JOINTS)}")
        self._segments = [(seg[:3, :3].copy(), seg[:3, 3].copy()) for seg in segments]
        # Rodrigues' terms per joint: R(q) = I + sin(q) K + (1 - cos(q)) K^2
        self._skew = []
        for x, y, z in axes:
            k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
            self._skew.append((k, k @ k))
        self._axes = np.array(axes)
        limits = {j.get("name"): j.find("limit") for j in root.findall("joint")}
        self.lower = np.array([float(limits[n].get("lower")) for n in ARM_JOINTS])
        self.upper = np.array([float(limits[n].get("upper")) for n in ARM_JOINTS])

    def kinematics(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """End-effector position [3], rotation [3, 3] and Jacobian [6, 7] (linear; angular)
        at arm angles ``q [7]`` (rad), world frame."""
        rot, pos = self._segments[0]
        origins, axes = np.empty((7, 3)), np.empty((7, 3))
        eye = np.eye(3)
        for i in range(7):
            origins[i] = pos
            axes[i] = rot @ self._axes[i]
            k, k2 = self._skew[i]
            rot = rot @ (eye + math.sin(q[i]) * k + (1.0 - math.cos(q[i])) * k2)
            seg_rot, seg_pos = self._segments[i + 1]
            pos = pos + rot @ seg_pos
            rot = rot @ seg_rot
        arm = pos - origins
        linear = np.stack(
            [
                axes[:, 1] * arm[:, 2] - axes[:, 2] * arm[:, 1],
                axes[:, 2] * arm[:, 0] - axes[:, 0] * arm[:, 2],
                axes[:, 0] * arm[:, 1] - axes[:, 1] * arm[:, 0],
            ]
        )
        return pos, rot, np.vstack([linear, axes.T])


def solve_dls(
    chain: ArmChain,
    pos: np.ndarray,
    rot: np.ndarray,
    q: np.ndarray,
    q_rest: np.ndarray,
    iters: int,
    tol: float,
    settle: bool = False,
) -> np.ndarray:
    """Damped-least-squares IK: arm angles ``[7]`` moving the end effector towards (pos [3],
    rot [3, 3]) from ``q [7]``, with a null-space pull of the redundant DoF towards
    ``q_rest [7]``; stops early once the weighted pose error is below ``tol`` (m) and, with
    ``settle``, the null-space motion too (so the answer does not depend on the path)."""
    q = np.array(q, dtype=float)
    damp = IK_DAMPING**2 * np.eye(6)
    for _ in range(iters):
        ee_pos, ee_rot, jac = chain.kinematics(q)
        err = np.concatenate([pos - ee_pos, _rotation_vector(rot @ ee_rot.T)])
        jjt = jac @ jac.T
        # the projection uses a nearly undamped pseudo-inverse so the pull leaves the pose be
        pull = IK_NULLSPACE_GAIN * (q_rest - q)
        pull -= jac.T @ np.linalg.solve(jjt + 1e-4 * damp, jac @ pull)
        if err[:3] @ err[:3] + IK_ROT_WEIGHT * (err[3:] @ err[3:]) < tol * tol and (
            not settle or pull @ pull < tol * tol
        ):
            break
        step = jac.T @ np.linalg.solve(jjt + damp, err) + pull
        q = np.clip(q + step, chain.lower, chain.upper)
    return q


# ---------------------------------------------------------------------- friction mapping
def bullet_frictions(scene: SceneSpec) -> dict[tuple[str, str], float]:
    """Bullet lateral friction per (owner, link), owner "robot", "floor" or an object name;
    a link not listed keeps :data:`MUJOCO_FRICTION`.

    Bullet multiplies the two coefficients of a contact; MuJoCo takes the larger one, or the
    one of a higher-priority geom (the finger pads). Moving (free) objects get 1.0, so each
    contact with them gets the coefficient stored on the other link, which is set to what
    MuJoCo would use for that pair: ``max(own, object's)``, or the fingers' own. This is
    exact for every contact with a moving object; contacts between two static or robot
    links (which no task relies on) may differ.
    """
    # a free object's coefficient: the largest of its links' (unspecified ones: MuJoCo's 1)
    moving = [
        max(obj.friction.values(), default=MUJOCO_FRICTION) for obj in scene.objects if obj.free
    ]
    partner = max(moving) if moving else 0.0
    out: dict[tuple[str, str], float] = {}
    for obj in scene.objects:
        if obj.free:
            out.update({(obj.name, link): 1.0 for link in obj.friction})
            out[(obj.name, "*")] = 1.0
        else:
            for link, mu in obj.friction.items():
                out[(obj.name, link)] = max(mu, partner)
            out[(obj.name, "*")] = max(MUJOCO_FRICTION, partner)
    out[("robot", "*")] = max(MUJOCO_FRICTION, partner)
    out[("floor", "*")] = max(MUJOCO_FRICTION, partner)
    for link in ("panda_leftfinger", "panda_rightfinger"):
        out[("robot", link)] = scene.robot.finger_friction
    return out


# ---------------------------------------------------------------------- the backend
@dataclass
class _Body:
    """A loaded URDF: its body id, link and joint indices, base inertial offset."""

    uid: int
    links: dict[str, int]  # link name -> link index (-1 for the base)
    joints: dict[str, int]  # joint name -> joint index (moves the link of the same index)
    inertial_pos: tuple[float, float, float]  # base COM in the base link frame
    inertial_orn: tuple[float, float, float, float]  # [x, y, z, w]


class PybulletBackend(Backend):
    """A :class:`~envs.backend.SceneSpec` loaded and simulated by PyBullet (DIRECT mode)."""

    def __init__(self, scene: SceneSpec, render_size: tuple[int, int] = (256, 256)) -> None:
        if scene.physics_dt <= 0 or scene.control_dt < scene.physics_dt:
            raise ValueError(
                f"scene: need 0 < physics_dt <= control_dt, got {scene.physics_dt}, "
                f"{scene.control_dt}"
            )
        if len(render_size) != 2 or min(render_size) < 1:
            raise ValueError(f"render_size must be (height, width) >= 1, got {render_size}")
        self.scene = scene
        self.render_size = (int(render_size[0]), int(render_size[1]))
        self._nstep = int(round(scene.control_dt / scene.physics_dt))
        self._cid: int | None = p.connect(p.DIRECT)
        if self._cid < 0:
            self._cid = None
            raise RuntimeError("pybullet could not open a DIRECT physics client")
        try:
            self._build(scene)
        except Exception:
            self.close()
            raise
        robot = scene.robot
        self._chain = ArmChain(
            panda_urdf(), np.asarray(robot.base_pos, float), np.asarray(robot.base_quat, float)
        )
        self._view, self._proj = self._camera_matrices(scene.camera)
        self._q_rest = np.zeros(7)

    # ----------------------------------------------------------------- building
    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` on this instance's physics client."""
        return fn(*args, physicsClientId=self._cid, **kwargs)

    def _load(
        self, urdf: str, pos: Sequence[float], quat_wxyz: Sequence[float], fixed: bool
    ) -> _Body:
        """Load a URDF with its link frame at (pos [3], quat_wxyz [4]); index its names."""
        uid = self._call(
            p.loadURDF,
            urdf,
            basePosition=list(pos),
            baseOrientation=_xyzw(np.asarray(quat_wxyz, float)),
            useFixedBase=fixed,
            # inertias as written (as MuJoCo reads them), not recomputed from the shapes
            flags=p.URDF_USE_INERTIA_FROM_FILE,
        )
        base_name = self._call(p.getBodyInfo, uid)[0].decode()
        links, joints = {base_name: -1}, {}
        for j in range(self._call(p.getNumJoints, uid)):
            info = self._call(p.getJointInfo, uid, j)
            joints[info[1].decode()] = j
            links[info[12].decode()] = j
        dyn = self._call(p.getDynamicsInfo, uid, -1)
        return _Body(uid, links, joints, tuple(dyn[3]), tuple(dyn[4]))

    def _build(self, scene: SceneSpec) -> None:
        self._call(p.setGravity, 0.0, 0.0, GRAVITY)
        # one simulator step per stepSimulation call: joint springs act on every substep
        self._call(
            p.setPhysicsEngineParameter,
            fixedTimeStep=scene.physics_dt,
            numSubSteps=0,
            deterministicOverlappingPairs=1,
        )
        self._frictions = bullet_frictions(scene)
        self._build_robot(scene, self._frictions)
        self._surroundings: list[int] = []  # the floor's and the objects' body ids
        if scene.floor_z is not None:
            half = [3.0, 3.0, FLOOR_HALF_THICKNESS]
            col = self._call(p.createCollisionShape, p.GEOM_BOX, halfExtents=half)
            vis = self._call(
                p.createVisualShape, p.GEOM_BOX, halfExtents=half, rgbaColor=list(FLOOR_RGBA)
            )
            floor = self._call(
                p.createMultiBody, 0.0, col, vis, [0.0, 0.0, scene.floor_z - half[2]]
            )
            self._call(p.changeDynamics, floor, -1, lateralFriction=self._frictions[("floor", "*")])
            self._surroundings.append(floor)
        self._objects: dict[str, _Body] = {}
        self._springs: list[tuple[int, int, float]] = []  # (body, joint, N m / rad)
        for obj in scene.objects:
            body = self._build_object(obj, self._frictions)
            self._objects[obj.name] = body
            self._surroundings.append(body.uid)
        self._forget_contacts()

    def _forget_contacts(self) -> None:
        """Drop every contact manifold (and its warm-start impulses): each link of the floor and
        the objects is given the same collision filter again (collide with everything),
        which takes it out of the broadphase and back in, as a fresh load would."""
        for uid in self._surroundings:
            for link in range(-1, self._call(p.getNumJoints, uid)):
                self._call(p.setCollisionFilterGroupMask, uid, link, 1, -1)

    def _build_robot(self, scene: SceneSpec, frictions: dict[tuple[str, str], float]) -> None:
        spec = scene.robot
        if len(spec.joint_kp) != 7:
            raise ValueError(f"robot.joint_kp needs 7 entries, got {len(spec.joint_kp)}")
        # loaded without URDF_USE_SELF_COLLISION: the arm never collides with itself (as in
        # the MuJoCo backend); it does collide with the objects, the table and the floor
        self._robot = self._load(robot_urdf(), spec.base_pos, spec.base_quat, fixed=True)
        rb = self._robot
        self._arm = [rb.joints[n] for n in ARM_JOINTS]
        self._fingers = [rb.joints[n] for n in FINGER_JOINTS]
        self._ee = rb.links[EE_LINK]
        self._arm_effort = [float(self._call(p.getJointInfo, rb.uid, j)[10]) for j in self._arm]
        finger_links = {self._call(p.getJointInfo, rb.uid, j)[12].decode() for j in self._fingers}
        for name, link in rb.links.items():
            mu = frictions.get(("robot", name), frictions[("robot", "*")])
            kwargs = {"lateralFriction": mu}
            if name in finger_links:
                kwargs["spinningFriction"] = FINGER_SPIN_FRICTION
            self._call(p.changeDynamics, rb.uid, link, **kwargs)
            rgba = FINGER_RGBA if name in finger_links else ROBOT_RGBA
            self._call(p.changeVisualShape, rb.uid, link, rgbaColor=list(rgba))

    def _build_object(self, obj: ObjectSpec, frictions: dict[tuple[str, str], float]) -> _Body:
        body = self._load(obj.urdf, obj.pos, obj.quat, fixed=not obj.free)
        uid = body.uid
        for name in (*obj.link_mass, *obj.friction):
            if name not in body.links:
                raise ValueError(
                    f"object {obj.name!r} has no link {name!r}; valid: {sorted(body.links)}"
                )
        for name, link in body.links.items():
            mu = frictions.get((obj.name, name), frictions[(obj.name, "*")])
            self._call(p.changeDynamics, uid, link, lateralFriction=mu)
            if obj.free:
                # a resting block must wake when the gripper arrives
                self._call(
                    p.changeDynamics, uid, link, activationState=p.ACTIVATION_STATE_DISABLE_SLEEPING
                )
        for name, mass in obj.link_mass.items():
            link = body.links[name]
            old_mass, _, inertia = self._call(p.getDynamicsInfo, uid, link)[:3]
            if mass <= 0 or old_mass <= 0:
                raise ValueError(
                    f"object {obj.name!r} link {name!r}: mass must be > 0, "
                    f"got {mass} (URDF {old_mass})"
                )
            # a uniform body whose density changes: inertia scales with the mass
            scale = mass / old_mass
            self._call(
                p.changeDynamics,
                uid,
                link,
                mass=float(mass),
                localInertiaDiagonal=[float(v) * scale for v in inertia],
            )
        dry = {}
        for name, params in obj.joints.items():
            if name not in body.joints:
                raise ValueError(
                    f"object {obj.name!r} has no joint {name!r}; valid: {sorted(body.joints)}"
                )
            j = body.joints[name]
            if params.range is not None:
                low, high = params.range
                self._set_limits(uid, j, low, high)
            if params.damping is not None:
                self._call(p.changeDynamics, uid, j, jointDamping=float(params.damping))
            if params.stiffness:
                self._springs.append((uid, j, float(params.stiffness)))
            if params.frictionloss is not None:
                dry[j] = float(params.frictionloss)
        for j in body.joints.values():
            if self._call(p.getJointInfo, uid, j)[2] == p.JOINT_FIXED:
                continue
            # Bullet motorises every joint by default (a velocity motor holding it still);
            # an object joint is free, but for its dry friction, if it has any
            self._call(
                p.setJointMotorControl2,
                uid,
                j,
                p.VELOCITY_CONTROL,
                targetVelocity=0.0,
                force=dry.get(j, 0.0),
            )
        return body

    def _set_limits(self, uid: int, joint: int, low: float, high: float) -> None:
        if not low <= high:
            raise ValueError(f"joint range: need low <= high, got ({low}, {high})")
        self._call(
            p.changeDynamics, uid, joint, jointLowerLimit=float(low), jointUpperLimit=float(high)
        )

    def _camera_matrices(self, camera: CameraSpec) -> tuple[list[float], list[float]]:
        height, width = self.render_size
        view = self._call(
            p.computeViewMatrix,
            cameraEyePosition=list(camera.pos),
            cameraTargetPosition=list(camera.lookat),
            cameraUpVector=[0, 0, 1],
        )
        # PyBullet's fov, like MuJoCo's fovy, is the vertical field of view in degrees
        proj = self._call(
            p.computeProjectionMatrixFOV,
            fov=camera.fovy,
            aspect=width / height,
            nearVal=CAMERA_NEAR,
            farVal=CAMERA_FAR,
        )
        return view, proj

    # ----------------------------------------------------------------- state
    def reset(
        self,
        arm_qpos: np.ndarray,
        finger_opening: float,
        object_poses: Mapping[str, tuple[np.ndarray, np.ndarray]],
    ) -> None:
        arm_qpos = np.asarray(arm_qpos, float)
        if arm_qpos.shape != (7,):
            raise ValueError(f"arm_qpos must have shape (7,), got {arm_qpos.shape}")
        for name in object_poses:
            if name not in self._objects or not self._is_free(name):
                free = sorted(n for n in self._objects if self._is_free(n))
                raise ValueError(f"object_poses: {name!r} is not a free object; valid: {free}")
        rb = self._robot
        for j, q in zip(self._arm, arm_qpos, strict=True):
            self._call(p.resetJointState, rb.uid, j, float(q), 0.0)
        finger = float(np.clip(finger_opening, 0.0, 1.0)) * FINGER_OPEN
        for j in self._fingers:
            self._call(p.resetJointState, rb.uid, j, finger, 0.0)
        for body in self._objects.values():
            for j in body.joints.values():
                self._call(p.resetJointState, body.uid, j, 0.0, 0.0)
        poses = {o.name: (o.pos, o.quat) for o in self.scene.objects if o.free}
        poses.update(object_poses)
        for name, (pos, quat) in poses.items():
            body = self._objects[name]
            # Bullet places a base by its centre of mass; the pose given is the link frame
            com_pos, com_orn = p.multiplyTransforms(
                [float(v) for v in pos],
                _xyzw(np.asarray(quat, float)),
                body.inertial_pos,
                body.inertial_orn,
            )
            self._call(p.resetBasePositionAndOrientation, body.uid, com_pos, com_orn)
            self._call(p.resetBaseVelocity, body.uid, [0.0, 0.0, 0.0], [0.0, 0.0, 0.0])
        self._forget_contacts()
        self._q_rest = arm_qpos.copy()
        self._servo(arm_qpos, finger)

    def _is_free(self, name: str) -> bool:
        return any(o.name == name and o.free for o in self.scene.objects)

    def _servo(self, q_arm: np.ndarray, finger: float) -> None:
        uid = self._robot.uid
        self._call(
            p.setJointMotorControlArray,
            uid,
            self._arm,
            p.POSITION_CONTROL,
            targetPositions=[float(v) for v in q_arm],
            targetVelocities=[0.0] * 7,
            forces=self._arm_effort,
        )
        force = self.scene.robot.finger_force
        self._call(
            p.setJointMotorControlArray,
            uid,
            self._fingers,
            p.POSITION_CONTROL,
            targetPositions=[finger, finger],
            forces=[force, force],
        )

    def solve_ik(self, pos: np.ndarray, quat: np.ndarray, q_seed: np.ndarray) -> np.ndarray:
        q_seed = np.asarray(q_seed, float)
        if q_seed.shape != (7,):
            raise ValueError(f"q_seed must have shape (7,), got {q_seed.shape}")
        return solve_dls(
            self._chain,
            np.asarray(pos, float),
            _quat_to_mat(quat),
            q_seed,
            q_seed,
            iters=500,
            tol=1e-5,
            settle=True,
        )

    def command(self, pos: np.ndarray, quat: np.ndarray, finger_opening: float) -> None:
        q_now, _, _ = self.arm_state()
        q_des = solve_dls(
            self._chain,
            np.asarray(pos, float),
            _quat_to_mat(quat),
            q_now,
            self._q_rest,
            iters=3,
            tol=1e-4,
        )
        self._servo(q_des, float(np.clip(finger_opening, 0.0, 1.0)) * FINGER_OPEN)

    def step(self) -> None:
        for _ in range(self._nstep):
            for uid, j, k in self._springs:
                q = self._call(p.getJointState, uid, j)[0]
                self._call(p.setJointMotorControl2, uid, j, p.TORQUE_CONTROL, force=-k * q)
            self._call(p.stepSimulation)

    def physics_steps_per_control(self) -> int:
        return self._nstep

    # ----------------------------------------------------------------- benchmark hooks
    def raw_step(self) -> None:
        """The physics of one control step alone: ``stepSimulation`` x k with the current
        motor targets, no joint-spring torques (for timing against :meth:`step`)."""
        for _ in range(self._nstep):
            self._call(p.stepSimulation)

    def save_state(self) -> int:
        """Snapshot positions and velocities in memory (valid until the next reset, which
        reloads the objects); free it with :meth:`remove_state`."""
        return self._call(p.saveState)

    def restore_state(self, state: int) -> None:
        """Go back to a :meth:`save_state` snapshot (motor targets are left as they are)."""
        self._call(p.restoreState, stateId=state)

    def remove_state(self, state: int) -> None:
        """Free a :meth:`save_state` snapshot."""
        self._call(p.removeState, state)

    # ----------------------------------------------------------------- reading
    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        state = self._call(p.getLinkState, self._robot.uid, self._ee, computeForwardKinematics=True)
        return np.array(state[4]), _wxyz(state[5])

    def arm_state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        uid = self._robot.uid
        arm = self._call(p.getJointStates, uid, self._arm)
        fingers = self._call(p.getJointStates, uid, self._fingers)
        return (
            np.array([s[0] for s in arm]),
            np.array([s[1] for s in arm]),
            np.array([s[0] for s in fingers]),
        )

    def _body(self, obj: str) -> _Body:
        if obj not in self._objects:
            raise ValueError(f"unknown object {obj!r}; valid: {sorted(self._objects)}")
        return self._objects[obj]

    def link_pose(self, obj: str, link: str) -> tuple[np.ndarray, np.ndarray]:
        body = self._body(obj)
        if link not in body.links:
            raise ValueError(f"object {obj!r} has no link {link!r}; valid: {sorted(body.links)}")
        index = body.links[link]
        if index == -1:
            com_pos, com_orn = self._call(p.getBasePositionAndOrientation, body.uid)
            inv_pos, inv_orn = p.invertTransform(body.inertial_pos, body.inertial_orn)
            pos, orn = p.multiplyTransforms(com_pos, com_orn, inv_pos, inv_orn)
        else:
            state = self._call(p.getLinkState, body.uid, index, computeForwardKinematics=True)
            pos, orn = state[4], state[5]
        quat = _wxyz(orn)
        return np.array(pos), quat / np.linalg.norm(quat)

    def joint_state(self, obj: str, joint: str) -> tuple[float, float]:
        body = self._body(obj)
        if joint not in body.joints:
            raise ValueError(f"object {obj!r} has no joint {joint!r}; valid: {sorted(body.joints)}")
        q, qd = self._call(p.getJointState, body.uid, body.joints[joint])[:2]
        return float(q), float(qd)

    def set_joint_range(self, obj: str, joint: str, low: float, high: float) -> None:
        body = self._body(obj)
        if joint not in body.joints:
            raise ValueError(f"object {obj!r} has no joint {joint!r}; valid: {sorted(body.joints)}")
        self._set_limits(body.uid, body.joints[joint], low, high)

    def render(self) -> np.ndarray:
        height, width = self.render_size
        _, _, rgba, _, _ = self._call(
            p.getCameraImage,
            width,
            height,
            viewMatrix=self._view,
            projectionMatrix=self._proj,
            renderer=p.ER_TINY_RENDERER,
            flags=p.ER_NO_SEGMENTATION_MASK,
        )
        return np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)[:, :, :3].copy()

    @property
    def client(self) -> int | None:
        """The PyBullet physics client id, None once closed."""
        return self._cid

    def close(self) -> None:
        if self._cid is not None:
            if p.isConnected(self._cid):
                p.disconnect(self._cid)
            self._cid = None

    def __del__(self) -> None:
        # a forgotten close() must not leak a client; never raise from a finaliser
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass
