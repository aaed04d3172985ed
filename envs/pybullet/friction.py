"""MuJoCo's contact friction expressed in Bullet's: the per-link lateral friction coefficients
that make Bullet's contacts with the moving objects match MuJoCo's (:func:`bullet_frictions`).

MuJoCo takes the larger of the two geoms' coefficients (or the coefficient of a geom with
higher priority: the finger pads), Bullet multiplies them. The contacts the tasks depend on all
involve a moving object, so the moving objects' links get a neutral 1.0 and every other link
carries the coefficient MuJoCo would use against them.
"""

from __future__ import annotations

from envs.backend import SceneSpec

MUJOCO_FRICTION = 1.0  # MuJoCo's default sliding friction: what an unspecified geom has there
FINGER_SPIN_FRICTION = 0.01  # m, MuJoCo's torsional friction of the finger pads (condim 4)


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
