"""A quasi-static Coulomb model of the push task's centre push: how far physics alone turns
the block, the reference that both simulators' turns are compared to (``python -m
envs.checks turns``).

The model (Mason's quasi-static pushing, no inertia):
- The table carries each half's weight at its four corners. A push at height ``h`` with
  table friction ``mu_t`` shifts the load forward by ``mu_t * h`` (the moment of the push
  about the block's bottom), so the front corners carry ``1/2 + mu_t h / (2 a)`` of it.
- The finger touches the back face at one point, ``finger_offset`` to the side of the
  block's centre line, with friction ``mu_f``: the Panda finger is 2 cm wide and flat, so a
  block turning away from it is pushed by its edge, 1 cm off the centre, on the heavy side.
- The finger moves straight along +x. At every step the block's twist is the one whose
  support friction balances a force at the contact: the contact sticks when that force lies
  in the finger's friction cone, and slides along the face otherwise.

The turn does not depend on the size of the table friction except through the load shift,
nor on the finger's friction once the contact sticks.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from envs.push import BLOCK_HALF as HALF  # m, half the block's side


def _support(left: float, right: float, load_shift: float) -> tuple[np.ndarray, np.ndarray]:
    """Corner points ``[8, 2]`` (block frame, x forward) and their share of the weight."""
    front = 0.5 + load_shift / (2 * HALF)
    pts, load = [], []
    for density, ys in ((left, (0.0, HALF)), (right, (-HALF, 0.0))):
        for x, share in ((-HALF, 1.0 - front), (HALF, front)):
            for y in ys:
                pts.append((x, y))
                load.append(density * share)
    w = np.asarray(load, float)
    return np.asarray(pts, float), w / w.sum()


def _friction(
    pts: np.ndarray, load: np.ndarray, twist: np.ndarray, contact: np.ndarray
) -> tuple[np.ndarray, float]:
    """Support friction on the block for a block-frame twist (vx, vy, w): its force [2] and
    its moment about ``contact``."""
    vx, vy, w = twist
    u = np.stack([vx - w * pts[:, 1], vy + w * pts[:, 0]], 1)
    f = -load[:, None] * u / np.linalg.norm(u, axis=1).clip(1e-12)[:, None]
    r = pts - contact
    return f.sum(0), float((r[:, 0] * f[:, 1] - r[:, 1] * f[:, 0]).sum())


def _root(fn: Callable[[float], float], lo: float, hi: float, iters: int = 50) -> float:
    """A sign change of ``fn`` in [lo, hi] by bisection."""
    f_lo = fn(lo)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        f_mid = fn(mid)
        if (f_mid > 0) == (f_lo > 0):
            lo, f_lo = mid, f_mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _twist(
    pts: np.ndarray, load: np.ndarray, contact: np.ndarray, v_finger: np.ndarray, mu_f: float
) -> np.ndarray:
    """The block's twist (block frame) under a finger at ``contact`` moving at ``v_finger``."""

    def sticking(w: float) -> np.ndarray:  # the contact point moves with the finger
        return np.array([v_finger[0] + w * contact[1], v_finger[1] - w * contact[0], w])

    twist = sticking(_root(lambda w: _friction(pts, load, sticking(w), contact)[1], -100, 100))
    push = -_friction(pts, load, twist, contact)[0]  # what the finger must apply
    if abs(push[1]) <= mu_f * push[0]:
        return twist
    side = math.copysign(1.0, push[1])  # slides: the force on the edge of the cone

    def sliding(w: float) -> np.ndarray:
        vx = v_finger[0] + w * contact[1]

        def off_edge(vy: float) -> float:
            f = -_friction(pts, load, np.array([vx, vy, w]), contact)[0]
            return f[1] - side * mu_f * f[0]

        return np.array([vx, _root(off_edge, -20, 20, 40), w])

    return sliding(_root(lambda w: _friction(pts, load, sliding(w), contact)[1], -60, 60, 40))


def centre_push_turn(
    left: float,
    right: float,
    *,
    push_height: float = 0.08,
    table_friction: float = 0.7,
    finger_friction: float = 0.1,
    finger_offset: float = 0.01,
    distance: float = 0.2,
    step: float = 0.004,
) -> float:
    """Yaw (degrees) of the block with half densities ``left`` (+y) and ``right`` (-y) after
    the finger pushed it ``distance`` m along +x through its starting centre.

    ``push_height``: where the finger touches (the block's top edge in both simulators);
    ``finger_offset``: the contact's distance from the centre line, towards the heavier half.
    """
    pts, load = _support(left, right, table_friction * push_height)
    side = -1.0 if right > left else 1.0
    finger = np.array([-HALF, side * finger_offset if left != right else 0.0])
    x = y = yaw = 0.0
    for _ in range(int(2 * distance / step)):
        if x >= distance:
            break
        c, s = math.cos(yaw), math.sin(yaw)
        rot = np.array([[c, -s], [s, c]])
        contact = rot.T @ (finger - np.array([x, y]))
        contact[0] = -HALF  # on the back face
        vx, vy, w = _twist(pts, load, contact, rot.T @ np.array([1.0, 0.0]), finger_friction)
        dx, dy = rot @ np.array([vx, vy])
        x, y, yaw = x + dx * step, y + dy * step, yaw + w * step
        finger[0] += step
    return math.degrees(yaw)
