"""The Franka Panda both backends load: pybullet_data's URDF with the arm's real inertias.

pybullet_data's ``franka_panda/panda.urdf`` gives every link an inertia tensor of
0.1 kg m^2 on each axis (placeholders: a 15 g finger as heavy to turn as a forearm), so the
wrist, turning five such links with the Panda's 12 N m, accelerates at a tenth of the real
arm's rate and cannot follow a commanded rotation within a control step. :func:`panda_urdf`
writes that URDF with Franka's identified inertial parameters instead (mass, centre of mass
and inertia per link; Gaz, Cognetti, Oliva, Robuffo Giordano and De Luca, "Dynamic
Identification of the Franka Emika Panda Robot With Retrieval of Feasible Parameters Using
Penalty-Based Optimization", RA-L 2019), in the same link frames, and with absolute mesh
paths. Both simulators load the file it returns, so they simulate the same arm.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import xml.etree.ElementTree as ET

# link -> (mass kg, centre of mass [3] m in the link frame,
#          inertia about it (ixx, iyy, izz, ixy, ixz, iyz) kg m^2)
INERTIALS: dict[str, tuple[float, tuple[float, ...], tuple[float, ...]]] = {
    "panda_link0": (0.629769, (-0.041018, -0.00014, 0.049974),
                    (0.00315, 0.00388, 0.004285, 8.2904e-7, 0.00015, 8.2299e-6)),
    "panda_link1": (4.970684, (0.003875, 0.002081, -0.04762),
                    (0.70337, 0.70661, 0.009117, -0.000139, 0.006772, 0.019169)),
    "panda_link2": (0.646926, (-0.003141, -0.02872, 0.003495),
                    (0.007962, 0.02811, 0.025995, -0.003925, 0.010254, 0.000704)),
    "panda_link3": (3.228604, (0.027518, 0.039252, -0.066502),
                    (0.037242, 0.036155, 0.01083, -0.004761, -0.011396, -0.012805)),
    "panda_link4": (3.587895, (-0.05317, 0.104419, 0.027454),
                    (0.025853, 0.019552, 0.028323, 0.007796, -0.001332, 0.008641)),
    "panda_link5": (1.225946, (-0.011953, 0.041065, -0.038437),
                    (0.035549, 0.029474, 0.008627, -0.002117, -0.004037, 0.000229)),
    "panda_link6": (1.666555, (0.060149, -0.014117, -0.010517),
                    (0.001964, 0.004354, 0.005433, 0.000109, -0.001158, 0.000341)),
    "panda_link7": (0.735522, (0.010517, -0.004252, 0.061597),
                    (0.012516, 0.010027, 0.004815, -0.000428, -0.001196, -0.000741)),
    "panda_hand": (0.73, (-0.01, 0.0, 0.03), (0.001, 0.0025, 0.0017, 0.0, 0.0, 0.0)),
    "panda_leftfinger": (0.015, (0.0, 0.0, 0.0), (2.375e-6, 2.375e-6, 7.5e-7, 0.0, 0.0, 0.0)),
    "panda_rightfinger": (0.015, (0.0, 0.0, 0.0), (2.375e-6, 2.375e-6, 7.5e-7, 0.0, 0.0, 0.0)),
}
# massless frames (a flange, the grasp target): a tiny inertia keeps both simulators happy
FRAME_INERTIAL = (0.0, (0.0, 0.0, 0.0), (1e-6, 1e-6, 1e-6, 0.0, 0.0, 0.0))


def source_urdf() -> str:
    """Path of pybullet_data's Panda URDF, the robot description both backends start from."""
    import pybullet_data

    return os.path.join(pybullet_data.getDataPath(), "franka_panda", "panda.urdf")


def write_once(text: str, stem: str, fallback: str) -> str:
    """Path of a temp file holding ``text``, written once per machine (named by its content,
    replaced atomically, so concurrent processes agree); ``fallback`` if none can be written."""
    digest = hashlib.sha1(text.encode()).hexdigest()[:12]
    path = os.path.join(tempfile.gettempdir(), f"{stem}_{digest}.urdf")
    if not os.path.exists(path):
        try:
            fd, tmp = tempfile.mkstemp(suffix=".urdf", dir=tempfile.gettempdir())
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, path)
        except OSError:
            return fallback
    return path


def _fmt(values: tuple[float, ...]) -> str:
    return " ".join(repr(float(v)) for v in values)


@functools.cache
def panda_urdf() -> str:
    """Path of the Panda URDF both backends load: :func:`source_urdf` with :data:`INERTIALS`
    and absolute mesh paths."""
    source = source_urdf()
    root = ET.parse(source).getroot()
    for link in root.findall("link"):
        inertial = link.find("inertial")
        if inertial is None:
            continue
        mass, com, (ixx, iyy, izz, ixy, ixz, iyz) = INERTIALS.get(link.get("name"), FRAME_INERTIAL)
        if mass == 0.0 and float(inertial.find("mass").get("value")) > 0:
            continue  # a link this table does not know keeps the URDF's numbers
        inertial.find("mass").set("value", repr(float(mass)))
        origin = inertial.find("origin")
        if origin is None:
            origin = ET.SubElement(inertial, "origin")
        origin.set("xyz", _fmt(com))
        origin.set("rpy", "0 0 0")
        inertial.find("inertia").attrib.update(
            {"ixx": repr(ixx), "iyy": repr(iyy), "izz": repr(izz),
             "ixy": repr(ixy), "ixz": repr(ixz), "iyz": repr(iyz)}
        )
    text = ET.tostring(root, encoding="unicode")
    text = text.replace("package://", os.path.dirname(source) + "/")
    return write_once(text, "hypercrl_panda", source)
