"""Rotation maths (quaternions in [w, x, y, z] order, rotation matrices, rotation vectors,
URDF roll/pitch/yaw) that works on numpy arrays and torch tensors alike.

Every function is batched over leading dimensions (``[..., 4]`` quaternions, ``[..., 3]``
vectors, ``[..., 3, 3]`` matrices) and written with plain indexing and arithmetic, so one
definition serves the environments (numpy) and a planner on torch. The few elementwise
functions that differ by library (sqrt, atan2, stack) go through :func:`array_namespace`,
which never imports torch itself: a torch tensor can only reach it if torch is already
imported. The functions the simulators call per step have a fast path for one plain numpy
vector (or matrix), done on Python floats. PyBullet orders quaternions [x, y, z, w]:
:func:`wxyz_to_xyzw` and :func:`xyzw_to_wxyz` convert at that boundary.
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


def _matrix(xp: ModuleType, rows: list[list[Any]]) -> Any:
    """``[..., 3, 3]`` from three rows of three ``[...]`` entries."""
    stacked = [_stack(xp, row) for row in rows]
    return xp.stack(stacked, -2) if xp is not np else np.stack(stacked, axis=-2)


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
    single = _single(q)
    w, x, y, z = q.tolist() if single else (q[..., 0], q[..., 1], q[..., 2], q[..., 3])
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    return np.array(rows) if single else _matrix(array_namespace(q), rows)


def mat_to_axis_angle(mat: Any) -> Any:
    """Rotation vector ``[..., 3]`` (axis * angle, angle in [0, pi]) of a rotation matrix
    ``[..., 3, 3]``; well-behaved near 0 and near pi.

    In between, the axis is the skew part of the matrix over ``2 sin(angle)``; near 0 the
    skew part alone is the answer; near pi (where sin(angle) ~ 0) the axis is read from the
    symmetric part, ``(R + R^T) / 4 + I / 2 = ((1 + cos) I + (1 - cos) a a^T) / 2 ~ a a^T``
    (its row with the largest diagonal entry), and its sign from the skew part. The angle
    comes from the trace, so near pi it is good to ~1e-8 rad (the square root of float64's
    resolution).
    """
    if isinstance(mat, np.ndarray) and mat.ndim == 2:  # one matrix: the IK's per-step case
        # on Python floats, in numpy's order of operations (the same bits, a third the time)
        (m00, m01, m02), (m10, m11, m12), (m20, m21, m22) = mat.tolist()
        cos = min(1.0, max(-1.0, 0.5 * (m00 + m11 + m22 - 1.0)))
        angle = math.acos(cos)
        x, y, z = m21 - m12, m02 - m20, m10 - m01
        if angle < 1e-6:
            return np.array([0.5 * x, 0.5 * y, 0.5 * z])
        if angle > math.pi - 1e-4:
            sym = 0.25 * (mat + mat.T) + 0.5 * np.eye(3)
            axis = sym[int(np.argmax(np.diag(sym)))]
            axis = axis / np.linalg.norm(axis)
            if axis @ np.array([x, y, z]) < 0:
                axis = -axis
            return angle * axis
        k = angle / (2.0 * math.sin(angle))
        return np.array([k * x, k * y, k * z])
    xp = array_namespace(mat)
    m = mat
    vee = _stack(
        xp,
        [m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]],
    )
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    angle = xp.arccos(xp.clip(0.5 * (trace - 1.0), -1.0, 1.0))[..., None]
    small = angle < 1e-6
    near_pi = angle > math.pi - 1e-4
    # angle / (2 sin(angle)) -> 0.5 as angle -> 0; the branches not taken get a finite value
    denom = xp.where(small | near_pi, 1.0 + 0 * angle, 2.0 * xp.sin(angle))
    scale = xp.where(small, 0.5 + 0 * angle, angle / denom)
    # near pi: the row of the symmetric part with the largest diagonal entry (first on ties)
    sym = [
        [0.25 * (m[..., i, j] + m[..., j, i]) + 0.5 * float(i == j) for j in range(3)]
        for i in range(3)
    ]
    d0, d1, d2 = (sym[i][i][..., None] for i in range(3))
    rows = [_stack(xp, row) for row in sym]
    axis = xp.where((d0 >= d1) & (d0 >= d2), rows[0], xp.where(d1 >= d2, rows[1], rows[2]))
    axis = axis / xp.sqrt((axis * axis).sum(-1, keepdims=True))
    axis = xp.where((axis * vee).sum(-1, keepdims=True) < 0, -axis, axis)
    return xp.where(near_pi, angle * axis, scale * vee)


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


def _one_quat(q: Any) -> tuple[float, float, float, float] | None:
    """The four floats of one quaternion given as a tuple, a list or a 1-D numpy array (the
    per-step case at PyBullet's boundary, which hands out tuples), else None."""
    if isinstance(q, tuple | list):
        return tuple(q)
    return tuple(q.tolist()) if _single(q) else None


def _reorder(q: Any, order: list[int]) -> Any:
    """``q[..., order]``; one quaternion may be a tuple or list (the answer: a numpy array)."""
    one = _one_quat(q)
    if one is not None:
        return np.array([one[i] for i in order], dtype=float)
    return q[..., order]


def wxyz_to_xyzw(q: Any) -> Any:
    """Quaternions ``[..., 4]`` in [w, x, y, z] order reordered to [x, y, z, w] (PyBullet's);
    one quaternion may also be a tuple or list (the answer is a numpy array)."""
    return _reorder(q, [1, 2, 3, 0])


def xyzw_to_wxyz(q: Any) -> Any:
    """Quaternions ``[..., 4]`` in [x, y, z, w] order (PyBullet's) reordered to [w, x, y, z];
    one quaternion may also be a tuple or list (the answer is a numpy array)."""
    return _reorder(q, [3, 0, 1, 2])
