"""MuJoCo's contact friction expressed in Bullet's: the per-link lateral friction coefficients
that make Bullet's contacts with the moving objects match MuJoCo's (:func:`bullet_frictions`).

MuJoCo takes the larger of the two geoms' coefficients (or the coefficient of a geom with
higher priority: the finger pads), Bullet multiplies them. The contacts the tasks depend on all
involve a moving object, so the moving objects' links get a neutral 1.0 and every other link
carries the coefficient MuJoCo would use against them.

The fingers' spinning (torsional) friction is :func:`finger_spin_friction`: MuJoCo's pad value,
but no more than the fingers' sliding friction allows (see there).
"""

from __future__ import annotations

from envs.backend import SceneSpec

MUJOCO_FRICTION = 1.0  # MuJoCo's default sliding friction: what an unspecified geom has there
# m, MuJoCo's torsional friction of the finger pads (condim 4): that of a pad ~1 cm across
# whose sliding friction is MUJOCO_FRICTION
FINGER_SPIN_FRICTION = 0.01


def finger_spin_friction(scene: SceneSpec) -> float:
    """Bullet spinning friction (m) of the finger links: :data:`FINGER_SPIN_FRICTION` scaled
    down with the fingers' sliding friction where that is below :data:`MUJOCO_FRICTION`.

    A contact resists twisting about its normal by the sliding friction of its patch, so the
    torsional coefficient is at most the sliding one times the patch radius: 0.01 m for pads
    at friction 1 or more (the door's 1.5), 0.001 m for the push's 0.1.
    Bullet needs the cap: its solver parks a torque in this constraint that the position-held
    finger then exerts on what it touches. With 0.01 m, a finger pushing the push block held
    0.03 N m of roll on it (0.0055 m x the 5.9 N push), which moved the block's weight 4 mm
    towards the finger's line of push, cancelled the yaw torque of its uneven halves and kept
    tasks 3 and 4 from turning at all (yaw 0; the quasi-static reference,
    ``envs.quasistatic``, gives +-3.4 degrees). MuJoCo's pushes hardly depend on it
    (0.001 m moves their turns by a few degrees).
    Bullet combines spinning friction as ``spin_a * lateral_b + spin_b * lateral_a``; the other
    links have no spinning friction, so a contact gets this value times the other link's
    lateral coefficient (1.0 on free objects).
    """
    return FINGER_SPIN_FRICTION * min(1.0, scene.robot.finger_friction / MUJOCO_FRICTION)


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
