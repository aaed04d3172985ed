"""Quaternion helpers in [w, x, y, z] order that work on numpy arrays and torch tensors alike.

Every function is batched over leading dimensions (``[..., 4]`` quaternions, ``[..., 3]``
vectors) and written with plain indexing and arithmetic, so one definition serves the
environments (numpy) and a planner on torch. The few elementwise functions that differ by
library (sqrt, atan2, stack) go through :func:`array_namespace`, which never imports torch
itself: a torch tensor can only reach it if torch is already imported.
"""

from __future__ import annotations

import math
import sys
from types import ModuleType
from typing import Any

import numpy as np


def array_namespace(x: Any) -> ModuleType:
    """``torch`` when ``x`` is a torch tensor, else ``numpy``."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return torch
    return np


def _stack(xp: ModuleType, parts: list[Any]) -> Any:
    return xp.stack(parts, -1) if xp is not np else np.stack(parts, axis=-1)


def _cat(xp: ModuleType, parts: list[Any]) -> Any:
    return xp.concatenate(parts, -1) if xp is not np else np.concatenate(parts, axis=-1)


def _single(*arrays: Any) -> bool:
    """All plain 1-D numpy arrays: the env's per-step case, done on Python floats because
    numpy's per-call overhead dwarfs a 4-element product."""
    return all(isinstance(a, np.ndarray) and a.ndim == 1 for a in arrays)


def quat_mul(q1: Any, q2: Any) -> Any:
    """Hamilton product ``q1 ⊗ q2``, ``[..., 4]`` each (broadcast), [w, x, y, z]."""
    if _single(q1, q2):
        w1, x1, y1, z1 = q1.tolist()
        w2, x2, y2, z2 = q2.tolist()
        return np.array(
            [
                w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
                w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
                w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
            ]
        )
    w1, x1, y1, z1 = q1[..., 0], q1[..., 1], q1[..., 2], q1[..., 3]
    w2, x2, y2, z2 = q2[..., 0], q2[..., 1], q2[..., 2], q2[..., 3]
    return _stack(
        array_namespace(q1),
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ],
    )


def quat_conjugate(q: Any) -> Any:
    """Conjugate (the inverse of a unit quaternion), ``[..., 4]``."""
    if _single(q):
        return q * np.array([1.0, -1.0, -1.0, -1.0])
    return _cat(array_namespace(q), [q[..., :1], -q[..., 1:]])


def quat_normalize(q: Any, eps: float = 1e-12) -> Any:
    """``q / |q|``, ``[..., 4]``."""
    xp = array_namespace(q)
    return q / xp.sqrt((q * q).sum(-1, keepdims=True) + eps)


def quat_to_mat(q: Any) -> Any:
    """Rotation matrix ``[..., 3, 3]`` of a unit quaternion ``[..., 4]``."""
    xp = array_namespace(q)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    rows = [
        _stack(xp, [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)]),
        _stack(xp, [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)]),
        _stack(xp, [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]),
    ]
    return xp.stack(rows, -2) if xp is not np else np.stack(rows, axis=-2)


def quat_rotate(q: Any, v: Any) -> Any:
    """Rotate vectors ``v [..., 3]`` by unit quaternions ``q [..., 4]``."""
    w = q[..., :1]
    u = q[..., 1:]
    xp = array_namespace(q)
    t = 2 * _cross(xp, u, v)
    return v + w * t + _cross(xp, u, t)


def _cross(xp: ModuleType, a: Any, b: Any) -> Any:
    return _stack(
        xp,
        [
            a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1],
            a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
            a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0],
        ],
    )


def quat_to_euler(q: Any) -> Any:
    """Euler angles ``[..., 3]`` (a, b, c) with ``R = Rx(a) Ry(b) Rz(c)``, radians.

    This is the convention of the retired ``gym.envs.robotics.rotations.quat2euler`` that the
    original door reward used; b is in [-pi/2, pi/2].
    """
    xp = array_namespace(q)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    m02 = 2 * (x * z + w * y)
    m12 = 2 * (y * z - w * x)
    m22 = 1 - 2 * (x * x + y * y)
    m01 = 2 * (x * y - w * z)
    m00 = 1 - 2 * (y * y + z * z)
    cos_b = xp.sqrt(m12 * m12 + m22 * m22)
    return _stack(xp, [xp.arctan2(-m12, m22), xp.arctan2(m02, cos_b), xp.arctan2(-m01, m00)])


def axis_angle_to_quat(v: Any, eps: float = 1e-12) -> Any:
    """Unit quaternion ``[..., 4]`` of a rotation vector ``v [..., 3]`` (axis * angle, rad)."""
    if _single(v):
        x, y, z = v.tolist()
        angle = math.sqrt(x * x + y * y + z * z)
        if angle < 1e-8:
            return np.array([1.0, 0.5 * x, 0.5 * y, 0.5 * z])
        k = math.sin(0.5 * angle) / angle
        return np.array([math.cos(0.5 * angle), k * x, k * y, k * z])
    xp = array_namespace(v)
    angle = xp.sqrt((v * v).sum(-1, keepdims=True))
    half = 0.5 * angle
    # sin(half)/angle -> 0.5 as angle -> 0; the eps keeps the division finite at zero
    scale = xp.where(angle < 1e-8, 0.5 + 0 * angle, xp.sin(half) / (angle + eps))
    return _cat(xp, [xp.cos(half), v * scale])


def quat_to_axis_angle(q: Any) -> Any:
    """Rotation vector ``[..., 3]`` (axis * angle, angle in [0, pi]) of a unit quaternion."""
    xp = array_namespace(q)
    # the sign flip picks the shorter of the two equivalent rotations
    sign = (q[..., :1] >= 0) * 2 - 1
    q = q * sign
    sin_half = xp.sqrt((q[..., 1:] * q[..., 1:]).sum(-1, keepdims=True))
    angle = 2 * xp.arctan2(sin_half, q[..., :1])
    scale = xp.where(sin_half < 1e-8, 2.0 + 0 * angle, angle / (sin_half + 1e-12))
    return q[..., 1:] * scale
