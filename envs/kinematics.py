"""The Panda arm's kinematic chain read from its URDF and evaluated in numpy (:class:`ArmChain`).

Both backends load the same URDF, so both run their controller (``envs/controller.py``) on this
one chain: the inverse kinematics never depends on the simulator, and never changes its state.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np

from envs.backend import ARM_JOINTS, EE_LINK
from envs.rotations import quat_to_mat, rpy_to_mat


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
        base_quat = np.asarray(base_quat, float)
        base[:3, :3] = quat_to_mat(base_quat / np.linalg.norm(base_quat))
        base[:3, 3] = base_pos
        segments, axes, names = [base], [], []
        for joint in reversed(walk):
            origin = joint.find("origin")
            frame = np.eye(4)
            frame[:3, :3] = rpy_to_mat(_urdf_vector(origin, "rpy", "0 0 0"))
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
