"""The Panda arm's kinematics, for the controller of both backends (:class:`ArmChain`).

Both backends load the same URDF (``envs/panda.py``), so both run their controller
(``envs/controller.py``) on this one chain: the inverse kinematics never depends on the
simulator, and never changes its state. The chain is that URDF compiled by MuJoCo without its
shapes, a model of frames and joints alone: MuJoCo's forward kinematics and Jacobian on it take
a few microseconds, a tenth of the same maths in numpy.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import mujoco
import numpy as np

from envs.backend import ARM_JOINTS, EE_LINK

# keep every link (the end-effector frame is a massless one) and no geometry
_COMPILER = '<mujoco><compiler fusestatic="false" discardvisual="true"/></mujoco>'


class ArmChain:
    """Forward kinematics and geometric Jacobian of the Panda's arm from its URDF, with the
    base at (base_pos [3], base_quat [4] [w, x, y, z]) in the world."""

    def __init__(self, urdf: str, base_pos: np.ndarray, base_quat: np.ndarray) -> None:
        root = ET.parse(urdf).getroot()
        for link in root.findall("link"):
            for tag in ("visual", "collision"):
                for element in link.findall(tag):
                    link.remove(element)
        text = ET.tostring(root, encoding="unicode")
        start = text.index(">", text.index("<robot")) + 1
        arm = mujoco.MjSpec.from_string(text[:start] + _COMPILER + text[start:])
        spec = mujoco.MjSpec()
        frame = spec.worldbody.add_frame(
            pos=[float(v) for v in base_pos], quat=[float(v) for v in base_quat]
        )
        spec.attach(arm, prefix="arm/", frame=frame)
        self.model = spec.compile()
        self.data = mujoco.MjData(self.model)
        m = self.model
        joints = [m.joint(f"arm/{name}").id for name in ARM_JOINTS]
        self._qadr = contiguous(m.jnt_qposadr[joints])
        self._dofs = contiguous(m.jnt_dofadr[joints])
        self._ee = m.body(f"arm/{EE_LINK}").id
        self._jacp = np.zeros((3, m.nv))
        self._jacr = np.zeros((3, m.nv))

    def kinematics(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """End-effector position [3], rotation [3, 3] and Jacobian [6, 7] (linear; angular)
        at arm angles ``q [7]`` (rad), world frame."""
        m, d = self.model, self.data
        d.qpos[self._qadr] = q
        mujoco.mj_kinematics(m, d)
        mujoco.mj_comPos(m, d)
        mujoco.mj_jacBody(m, d, self._jacp, self._jacr, self._ee)
        # filled in place (np.vstack would cost half of this call), column-major as the
        # IK has always had it: BLAS rounds a product differently in the other layout
        jac = np.empty((6, len(ARM_JOINTS)), order="F")
        jac[:3] = self._jacp[:, self._dofs]
        jac[3:] = self._jacr[:, self._dofs]
        return d.xpos[self._ee].copy(), d.xmat[self._ee].reshape(3, 3).copy(), jac


def contiguous(index: np.ndarray) -> slice:
    """``index`` (MuJoCo addresses) as a slice, whose indexing is a view and quicker;
    ValueError unless it is a contiguous ascending run."""
    start = int(index[0])
    if not np.array_equal(index, np.arange(start, start + len(index))):
        raise ValueError(f"indices {index.tolist()} are not contiguous")
    return slice(start, start + len(index))
