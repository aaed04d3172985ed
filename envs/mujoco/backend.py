"""MuJoCo implementation of :class:`envs.backend.Backend`.

The scene is assembled with ``mujoco.MjSpec``: pybullet_data's Panda URDF and the object
URDFs under ``envs/assets`` are parsed by MuJoCo's URDF reader and attached to a world that
holds the floor, a light and the fixed camera. Task parameters (link masses, frictions, joint
ranges and damping) are applied to the spec before compiling.

Controller: :mod:`envs.controller`, shared with the PyBullet backend, turns each
:meth:`command` into joint references for every physics substep; stiff, near-critically
damped joint position servos track them here, with the references' velocity and acceleration
fed forward through the servo input (``ctrl = q_ref + (kv v_ref + M(q) a_ref) / kp``).
Gravity is compensated on the robot's bodies (``gravcomp``).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping

import mujoco
import numpy as np

from envs.backend import (
    ARM_EFFORT_LIMITS,
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
from envs.kinematics import contiguous
from envs.panda import panda_urdf

ROBOT = "panda"
# collision bits: the robot never collides with itself, objects collide with everything
_ROBOT_TYPE, _ROBOT_AFF = 2, 1
_OBJ_TYPE, _OBJ_AFF = 1, 3
# (solref, solimp) of joint limits stiffer than MuJoCo's default (0.02 s): a latched door
# held shut by its limit must not give way by centimetres, an arm joint not by degrees
_STIFF_LIMIT = ((0.005, 1.0), (0.99, 0.999, 0.001, 0.5, 2.0))
# kg m^2, reflected rotor inertia per arm joint; keeps the stiff servos stable at 2 ms (the
# wrist's is lower: with 0.1 its 12 N m could not follow the controller's ramps)
_ARMATURE = (0.1, 0.1, 0.1, 0.1, 0.02, 0.02, 0.02)


def _urdf_text_for_mujoco(path: str) -> str:
    """The URDF's text with ``package://`` mesh paths made absolute and MuJoCo compiler
    options added (keep full mesh paths, collision geometry only, keep all links)."""

    with open(path) as f:
        text = f.read()
    root_dir = os.path.dirname(os.path.abspath(path))
    text = text.replace("package://", root_dir + "/")
    options = (
        '<mujoco><compiler strippath="false" discardvisual="true" fusestatic="false"/></mujoco>'
    )
    start = text.index("<robot")
    end = text.index(">", start) + 1
    return text[:end] + options + text[end:]


def _urdf_link_colors(path: str) -> dict[str, tuple[float, ...]]:
    """link name -> rgba of its first visual's material (MuJoCo's reader drops colours)."""
    root = ET.parse(path).getroot()
    named = {}
    for mat in root.findall("material"):
        color = mat.find("color")
        if color is not None:
            named[mat.get("name")] = tuple(float(v) for v in color.get("rgba").split())
    colors = {}
    for link in root.findall("link"):
        for visual in link.findall("visual"):
            mat = visual.find("material")
            if mat is None:
                continue
            color = mat.find("color")
            if color is not None:
                colors[link.get("name")] = tuple(float(v) for v in color.get("rgba").split())
            elif mat.get("name") in named:
                colors[link.get("name")] = named[mat.get("name")]
            break
    return colors


def _camera_quat(camera: CameraSpec) -> np.ndarray:
    """Orientation of a MuJoCo camera (looking along its -z, y up) aimed at ``lookat``."""
    forward = np.asarray(camera.lookat, float) - np.asarray(camera.pos, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    mat = np.stack([right, up, -forward], axis=1)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, mat.ravel())
    return quat


class MujocoBackend(Backend):
    """A :class:`~envs.backend.SceneSpec` compiled and simulated by MuJoCo."""

    def __init__(self, scene: SceneSpec, render_size: tuple[int, int] = (256, 256)) -> None:
        self.scene = scene
        self.render_size = render_size
        self.spec = self._build_spec(scene)
        self.model = self.spec.compile()
        self.data = mujoco.MjData(self.model)
        self._renderer: mujoco.Renderer | None = None
        self._nstep = int(round(scene.control_dt / scene.physics_dt))
        self._index()
        self._controller = ArmController.for_scene(scene)
        self._ramp = self._controller.reset(self.model.qpos0[self._arm_qadr])

    # ----------------------------------------------------------------- building
    def _build_spec(self, scene: SceneSpec) -> mujoco.MjSpec:
        spec = mujoco.MjSpec()
        spec.modelname = "hypercrl_scene"
        spec.option.timestep = scene.physics_dt
        spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
        # the original's friction model (robosuite's base.xml, bundled with HyperCRL):
        # elliptic cones, which resist sliding alike in every direction (the default
        # pyramidal cone is a diamond aligned with the world axes: a block pushed along x
        # slid sideways easily and turned 3-5x more than under isotropic friction)
        spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
        spec.option.impratio = 20.0
        spec.visual.global_.offwidth = max(640, self.render_size[1])
        spec.visual.global_.offheight = max(480, self.render_size[0])
        world = spec.worldbody
        world.add_light(pos=[0.0, 0.0, 3.0], dir=[0.0, 0.0, -1.0], diffuse=[0.6, 0.6, 0.6])
        cam = scene.camera
        world.add_camera(name="fixed", pos=list(cam.pos), quat=list(_camera_quat(cam)))
        spec.camera("fixed").fovy = cam.fovy
        if scene.floor_z is not None:
            world.add_geom(
                name="floor",
                type=mujoco.mjtGeom.mjGEOM_PLANE,
                size=[3.0, 3.0, 0.1],
                pos=[0.0, 0.0, scene.floor_z],
                rgba=[0.55, 0.55, 0.5, 1.0],
                contype=_OBJ_TYPE,
                conaffinity=_OBJ_AFF,
            )
        for marker in scene.markers:
            world.add_geom(
                type=mujoco.mjtGeom.mjGEOM_BOX,
                size=list(marker.half_size),
                pos=list(marker.pos),
                quat=list(marker.quat),
                rgba=list(marker.rgba),
                contype=0,
                conaffinity=0,
                mass=0.0,
            )
        self._attach_robot(spec, scene)
        for obj in scene.objects:
            self._attach_object(spec, obj)
        return spec

    def _attach_robot(self, spec: mujoco.MjSpec, scene: SceneSpec) -> None:
        robot = scene.robot
        path = panda_urdf()
        child = mujoco.MjSpec.from_string(_urdf_text_for_mujoco(path))
        frame = spec.worldbody.add_frame(pos=list(robot.base_pos), quat=list(robot.base_quat))
        spec.attach(child, prefix=f"{ROBOT}/", frame=frame)
        for body in spec.bodies:
            if body.name.startswith(f"{ROBOT}/"):
                body.gravcomp = 1.0
        for geom in spec.geoms:
            if geom.name.startswith(f"{ROBOT}/") or self._in_robot(spec, geom):
                geom.contype, geom.conaffinity = _ROBOT_TYPE, _ROBOT_AFF
                geom.rgba = [0.92, 0.92, 0.92, 1.0]
        for body_name in ("panda_leftfinger", "panda_rightfinger"):
            for geom in spec.body(f"{ROBOT}/{body_name}").geoms:
                geom.rgba = [0.25, 0.25, 0.25, 1.0]
                # the fingers grip: torsional friction lets a pinch hold a handle's twist
                geom.friction = [robot.finger_friction, 0.01, 0.0001]
                # MuJoCo otherwise takes the larger friction of the two geoms in contact
                geom.priority = 1
                geom.condim = 4
                # hard pads (the higher priority makes these the contact's parameters): with
                # MuJoCo's default soft contact (solref 0.02 s, impedance 0.9-0.95) a pinch
                # creeps under a steady tangential load and the fingers sink 5 mm into what
                # they squeeze; a round knob turned against its damping (1.82 N m s/rad)
                # followed 30% of the hand's turn, 92-96% with these
                geom.solref = [2.0 * scene.physics_dt, 1.0]
                geom.solimp = [0.995, 0.999, 0.001, 0.5, 2.0]
        for i, name in enumerate(ARM_JOINTS):
            joint = spec.joint(f"{ROBOT}/{name}")
            joint.armature = _ARMATURE[i]
            # the datasheet's range, narrower than the URDF's, held by the simulator too
            joint.range = list(ARM_POSITION_LIMITS[i])
            joint.limited = mujoco.mjtLimited.mjLIMITED_TRUE
            joint.solref_limit = list(_STIFF_LIMIT[0])
            joint.solimp_limit = list(_STIFF_LIMIT[1])
            act = spec.add_actuator(name=f"{ROBOT}/act{i + 1}", target=joint.name)
            act.trntype = mujoco.mjtTrn.mjTRN_JOINT
            act.set_to_position(kp=robot.joint_kp[i], dampratio=1.0)
            effort = ARM_EFFORT_LIMITS[i]
            act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
            act.forcerange = [-effort, effort]
        # each finger has its servo (the URDF's mimic, an equality here, keeps them level);
        # the servo saturates at the finger force, the grip a closed hand exerts
        for i, name in enumerate(FINGER_JOINTS):
            joint = spec.joint(f"{ROBOT}/{name}")
            joint.armature = 0.1  # the real inertias make a 15 g finger: slow it to a hand's pace
            joint.damping[0] = 5.0
            joint.actfrcrange = [-robot.finger_force, robot.finger_force]
            act = spec.add_actuator(name=f"{ROBOT}/finger{i + 1}", target=joint.name)
            act.trntype = mujoco.mjtTrn.mjTRN_JOINT
            act.set_to_position(kp=20000.0, dampratio=1.0)
            act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
            act.forcerange = [-robot.finger_force, robot.finger_force]

    @staticmethod
    def _in_robot(spec: mujoco.MjSpec, geom: mujoco.MjsGeom) -> bool:
        parent = geom.parent
        return parent is not None and parent.name.startswith(f"{ROBOT}/")

    def _attach_object(self, spec: mujoco.MjSpec, obj: ObjectSpec) -> None:
        child = mujoco.MjSpec.from_string(_urdf_text_for_mujoco(obj.urdf))
        colors = _urdf_link_colors(obj.urdf)
        frame = spec.worldbody.add_frame(pos=list(obj.pos), quat=list(obj.quat))
        spec.attach(child, prefix=f"{obj.name}/", frame=frame)
        prefix = f"{obj.name}/"
        bodies = [b for b in spec.bodies if b.name.startswith(prefix)]
        if obj.free:
            bodies[0].add_freejoint(name=f"{prefix}root")
        for body in bodies:
            link = body.name[len(prefix) :]
            for geom in body.geoms:
                geom.contype, geom.conaffinity = _OBJ_TYPE, _OBJ_AFF
                if link in colors:
                    geom.rgba = list(colors[link])
                if link in obj.friction:
                    geom.friction = [obj.friction[link], 0.005, 0.0001]
            if link in obj.link_mass:
                scale = obj.link_mass[link] / body.mass
                body.mass = obj.link_mass[link]
                body.fullinertia = np.asarray(body.fullinertia) * scale
        for joint in spec.joints:
            if joint.name.startswith(prefix):
                # stiffer limits than MuJoCo's default (0.02 s): a latched door held shut by
                # its limit must not give way by centimetres under a strong pull
                joint.solref_limit = list(_STIFF_LIMIT[0])
                joint.solimp_limit = list(_STIFF_LIMIT[1])
        for joint_name, params in obj.joints.items():
            joint = spec.joint(prefix + joint_name)
            if params.range is not None:
                joint.range = list(params.range)
                joint.limited = mujoco.mjtLimited.mjLIMITED_TRUE
            if params.damping is not None:
                joint.damping[0] = params.damping
            if params.stiffness is not None:
                joint.stiffness[0] = params.stiffness
            if params.frictionloss is not None:
                joint.frictionloss = params.frictionloss

    def _index(self) -> None:
        m = self.model
        jid = [m.joint(f"{ROBOT}/{n}").id for n in ARM_JOINTS]
        self._arm_qadr = m.jnt_qposadr[jid].copy()
        self._arm_vadr = m.jnt_dofadr[jid].copy()
        fid = [m.joint(f"{ROBOT}/{n}").id for n in FINGER_JOINTS]
        self._finger_qadr = m.jnt_qposadr[fid].copy()
        self._arm_act = np.array([m.actuator(f"{ROBOT}/act{i + 1}").id for i in range(7)])
        self._finger_act = np.array([m.actuator(f"{ROBOT}/finger{i}").id for i in (1, 2)])
        self._ee_body = m.body(f"{ROBOT}/{EE_LINK}").id
        # a position servo's force is kp (ctrl - q) - kv qdot: a reference q_ref moving at
        # v_ref with acceleration a_ref is tracked with ctrl = q_ref + (kv v_ref + M a_ref) / kp
        self._kp = m.actuator_gainprm[self._arm_act, 0].copy()
        # the arm's qpos and ctrl entries are contiguous: slices are views, not copies
        self._arm_qslice = contiguous(self._arm_qadr)
        self._arm_cslice = contiguous(self._arm_act)
        self._kv_over_kp = -m.actuator_biasprm[self._arm_act, 2] / self._kp
        self._bodies: dict[tuple[str, str], int] = {}
        self._joints: dict[tuple[str, str], tuple[int, int, int]] = {}

    # ----------------------------------------------------------------- state
    def reset(
        self,
        arm_qpos: np.ndarray,
        finger_opening: float,
        object_poses: Mapping[str, tuple[np.ndarray, np.ndarray]],
    ) -> None:
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        d.qpos[self._arm_qadr] = arm_qpos
        d.qpos[self._finger_qadr] = float(np.clip(finger_opening, 0, 1)) * FINGER_OPEN
        for name, (pos, quat) in object_poses.items():
            _, adr, _ = self._joint_adr(name, "root")
            d.qpos[adr : adr + 3] = pos
            d.qpos[adr + 3 : adr + 7] = quat
        self._ramp = self._controller.reset(arm_qpos)
        d.ctrl[self._arm_act] = self._ramp.end
        d.ctrl[self._finger_act] = float(np.clip(finger_opening, 0, 1)) * FINGER_OPEN
        mujoco.mj_forward(m, d)

    def solve_ik(self, pos: np.ndarray, quat: np.ndarray, q_seed: np.ndarray) -> np.ndarray:
        return self._controller.solve_ik(pos, quat, q_seed)

    def command(self, pos: np.ndarray, quat: np.ndarray, finger_opening: float) -> None:
        d = self.data
        self._ramp = self._controller.command(
            pos, quat, d.qpos[self._arm_qadr], d.qvel[self._arm_vadr]
        )
        self.data.ctrl[self._finger_act] = float(np.clip(finger_opening, 0, 1)) * FINGER_OPEN

    def step(self) -> None:
        m, d, ramp = self.model, self.data, self._ramp
        ctrl, act, kv_over_kp = d.ctrl, self._arm_act, self._kv_over_kp
        # the torque that accelerates the arm through the ramp's velocity blend, M(q) a, fed
        # forward as a position offset (the servo's force limits still apply)
        accel = np.zeros(m.nv)
        if ramp.blend > 0:
            accel[self._arm_vadr] = (ramp.cruise - ramp.v0) / ramp.blend
        torque = np.zeros(m.nv)
        mujoco.mj_mulM(m, d, torque, accel)
        blend_offset = torque[self._arm_vadr] / self._kp
        blend_steps = int(round(ramp.blend / m.opt.timestep))
        tracker = self._controller.track(ramp)
        # every substep's servo input at once; the loop only subtracts what is held back
        inputs = tracker.positions + kv_over_kp * tracker.velocities
        inputs[:blend_steps] += blend_offset
        q, arm_ctrl = d.qpos[self._arm_qslice], ctrl[self._arm_cslice]  # views
        for k in range(1, self._nstep + 1):
            arm_ctrl[:] = inputs[k - 1] - tracker.hold_back(k, q)
            mujoco.mj_step(m, d)
        ctrl[act] = tracker.end
        self._ramp = self._controller.hold(tracker.end)
        # bring positions (xpos, xquat) up to date with qpos for the readers below
        mujoco.mj_kinematics(m, d)

    def physics_steps_per_control(self) -> int:
        return self._nstep

    # ----------------------------------------------------------------- reading
    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        d = self.data
        return d.xpos[self._ee_body].copy(), d.xquat[self._ee_body].copy()

    def arm_state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        d = self.data
        return (
            d.qpos[self._arm_qadr].copy(),
            d.qvel[self._arm_vadr].copy(),
            d.qpos[self._finger_qadr].copy(),
        )

    def _body_id(self, obj: str, link: str) -> int:
        key = (obj, link)
        if key not in self._bodies:  # name lookups cost microseconds: once per name
            self._bodies[key] = self.model.body(f"{obj}/{link}").id
        return self._bodies[key]

    def _joint_adr(self, obj: str, joint: str) -> tuple[int, int, int]:
        key = (obj, joint)
        if key not in self._joints:
            jid = self.model.joint(f"{obj}/{joint}").id
            m = self.model
            self._joints[key] = (jid, int(m.jnt_qposadr[jid]), int(m.jnt_dofadr[jid]))
        return self._joints[key]

    def link_pose(self, obj: str, link: str) -> tuple[np.ndarray, np.ndarray]:
        body = self._body_id(obj, link)
        return self.data.xpos[body].copy(), self.data.xquat[body].copy()

    def joint_state(self, obj: str, joint: str) -> tuple[float, float]:
        _, qadr, dadr = self._joint_adr(obj, joint)
        return float(self.data.qpos[qadr]), float(self.data.qvel[dadr])

    def set_joint_range(self, obj: str, joint: str, low: float, high: float) -> None:
        jid, _, _ = self._joint_adr(obj, joint)
        self.model.jnt_range[jid] = (low, high)

    def render(self) -> np.ndarray:
        if self._renderer is None:
            height, width = self.render_size
            self._renderer = mujoco.Renderer(self.model, height=height, width=width)
            # shadow maps cost ~95% of a frame under software EGL (Mesa): 15 fps with, 300+
            # without, at 256 x 256 on a 2-core machine
            self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        self._renderer.update_scene(self.data, camera="fixed")
        return self._renderer.render().copy()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
