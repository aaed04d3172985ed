"""The Panda URDF as the PyBullet backend loads it (:func:`robot_urdf`): the Panda of
``envs/panda.py`` with its visual meshes swapped for the collision meshes."""

from __future__ import annotations

import functools

from envs.panda import panda_urdf, write_once


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
    # the visual meshes are drawn from the collision meshes
    text = text.replace("/meshes/visual/", "/meshes/collision/")
    return write_once(text, "hypercrl_panda_collision_visuals", source)
