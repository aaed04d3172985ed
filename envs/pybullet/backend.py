"""PyBullet implementation of :class:`envs.backend.Backend`.

Each instance owns one physics client in DIRECT mode (no GUI, no shared global client), so
many envs can live in one process; :meth:`PybulletBackend.close` disconnects it. The scene
is loaded from the same files as the MuJoCo backend (pybullet_data's Panda URDF, the object
URDFs under ``envs/assets``) and the task's parameters are applied through PyBullet's API:
``changeDynamics`` for link masses and inertias, frictions, joint damping and joint limits;
a per-step joint torque for joint springs (Bullet has none); a velocity motor with a force
limit for dry joint friction.

Controller: :mod:`envs.controller`, shared with the MuJoCo backend, turns each
:meth:`command` into joint references for every physics substep (its IK runs on
:mod:`envs.kinematics`, never on the simulation state); Bullet's joint position motors
(force-limited by the URDF efforts) track them with their velocity fed forward. Bullet's motors
are velocity constraints, not springs: they hold their target up to the joint effort (gravity
included, as Bullet has no gravity compensation) and ignore ``RobotSpec.joint_kp``, so the arm
is stiffer than MuJoCo's servos when something pushes back: where MuJoCo's hand yields by a
centimetre, this one presses with full effort.

Every reset also clears Bullet's contact caches: Bullet keeps contact manifolds and their
warm-start impulses between bodies that stay close, which would make a rollout depend on the
previous episode. Setting a link's collision filter re-inserts it into the broadphase, which
drops its manifolds; the arm never collides with itself, so doing that for the floor's and
the objects' links drops them all, and a rollout depends on the seed alone (it is the same as
in a fresh env).

Friction: MuJoCo takes the larger of the two geoms' coefficients, Bullet multiplies them; the
links carry the coefficients of :mod:`envs.pybullet.friction`, which make every contact with a
moving object match MuJoCo's. The arm is loaded from :func:`envs.pybullet.urdf.robot_urdf`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pybullet as p

from envs.backend import (
    ARM_JOINTS,
    ARM_POSITION_LIMITS,
    EE_LINK,
    FINGER_JOINTS,
    FINGER_OPEN,
    Backend,
    CameraSpec,
    ObjectSpec,
    SceneSpec,
)
from envs.controller import ArmController
from envs.pybullet.friction import bullet_frictions, finger_spin_friction
from envs.pybullet.urdf import robot_urdf
from envs.rotations import wxyz_to_xyzw, xyzw_to_wxyz

GRAVITY = -9.81  # m/s^2
ROBOT_RGBA = (0.92, 0.92, 0.92, 1.0)  # as the MuJoCo backend paints the arm
FINGER_RGBA = (0.25, 0.25, 0.25, 1.0)
FLOOR_RGBA = (0.55, 0.55, 0.5, 1.0)
FLOOR_HALF_THICKNESS = 0.05  # m, the floor is a thin box whose top is at scene.floor_z
CAMERA_NEAR, CAMERA_FAR = 0.01, 10.0  # m
# Bullet's position-motor gain: the fraction of the position error corrected per physics step
ARM_POSITION_GAIN = 0.1


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
        self._controller = ArmController.for_scene(scene)
        self._ramp = self._controller.hold(np.zeros(7))
        self._view, self._proj = self._camera_matrices(scene.camera)

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
            baseOrientation=wxyz_to_xyzw(quat_wxyz).tolist(),
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
        for marker in scene.markers:
            # drawn only: no collision shape, no mass
            vis = self._call(
                p.createVisualShape, p.GEOM_BOX, halfExtents=list(marker.half_size),
                rgbaColor=list(marker.rgba),
            )
            self._call(
                p.createMultiBody, 0.0, -1, vis, list(marker.pos),
                wxyz_to_xyzw(marker.quat).tolist(),
            )
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
        for j, (low, high) in zip(self._arm, ARM_POSITION_LIMITS, strict=True):
            # the datasheet's range, narrower than the URDF's, held by the simulator too
            self._set_limits(rb.uid, j, low, high)
        finger_links = {self._call(p.getJointInfo, rb.uid, j)[12].decode() for j in self._fingers}
        spin = finger_spin_friction(scene)
        for name, link in rb.links.items():
            mu = frictions.get(("robot", name), frictions[("robot", "*")])
            kwargs = {"lateralFriction": mu}
            if name in finger_links:
                kwargs["spinningFriction"] = spin
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
                wxyz_to_xyzw(quat).tolist(),
                body.inertial_pos,
                body.inertial_orn,
            )
            self._call(p.resetBasePositionAndOrientation, body.uid, com_pos, com_orn)
            self._call(p.resetBaseVelocity, body.uid, [0.0, 0.0, 0.0], [0.0, 0.0, 0.0])
        self._forget_contacts()
        self._ramp = self._controller.reset(arm_qpos)
        self._servo_fingers(finger)
        self._servo_arm(*self._ramp.at(self._nstep))

    def _is_free(self, name: str) -> bool:
        return any(o.name == name and o.free for o in self.scene.objects)

    def _servo_arm(self, q_ref: np.ndarray, v_ref: np.ndarray) -> None:
        # Bullet's position motor drives the joint velocity towards
        # v_ref + ARM_POSITION_GAIN * (q_ref - q) / dt, up to the joint effort
        self._call(
            p.setJointMotorControlArray,
            self._robot.uid,
            self._arm,
            p.POSITION_CONTROL,
            targetPositions=q_ref.tolist(),
            targetVelocities=v_ref.tolist(),
            forces=self._arm_effort,
            positionGains=[ARM_POSITION_GAIN] * 7,
            velocityGains=[1.0] * 7,
        )

    def _servo_fingers(self, finger: float) -> None:
        force = self.scene.robot.finger_force
        self._call(
            p.setJointMotorControlArray,
            self._robot.uid,
            self._fingers,
            p.POSITION_CONTROL,
            targetPositions=[finger, finger],
            forces=[force, force],
        )

    def solve_ik(self, pos: np.ndarray, quat: np.ndarray, q_seed: np.ndarray) -> np.ndarray:
        return self._controller.solve_ik(pos, quat, q_seed)

    def command(self, pos: np.ndarray, quat: np.ndarray, finger_opening: float) -> None:
        q_now, v_now, _ = self.arm_state()
        self._ramp = self._controller.command(pos, quat, q_now, v_now)
        self._servo_fingers(float(np.clip(finger_opening, 0.0, 1.0)) * FINGER_OPEN)

    def step(self) -> None:
        uid = self._robot.uid
        tracker = self._controller.track(self._ramp)
        for k in range(1, self._nstep + 1):
            # the arm tracks the ramp's reference of this substep, its velocity fed forward
            q = np.array([s[0] for s in self._call(p.getJointStates, uid, self._arm)])
            self._servo_arm(*tracker.at(k, q))
            for body, j, stiffness in self._springs:
                angle = self._call(p.getJointState, body, j)[0]
                self._call(
                    p.setJointMotorControl2, body, j, p.TORQUE_CONTROL, force=-stiffness * angle
                )
            self._call(p.stepSimulation)
        # after the step the arm holds where the ramp ended
        self._ramp = self._controller.hold(tracker.end)

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
        return np.array(state[4]), xyzw_to_wxyz(state[5])

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
        quat = xyzw_to_wxyz(orn)
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
