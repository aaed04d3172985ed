"""envs.rotations: rotation vectors of matrices, [x, y, z, w] order."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from envs.rotations import (
    axis_angle_to_quat,
    mat_to_axis_angle,
    quat_mul,
    quat_to_mat,
    wxyz_to_xyzw,
    xyzw_to_wxyz,
)


def _random_axes(rng: np.random.Generator, n: int) -> np.ndarray:
    axes = rng.normal(size=(n, 3))
    return axes / np.linalg.norm(axes, axis=1, keepdims=True)


# both sides of the thresholds (1e-6 from 0, 1e-4 from pi) where the method changes
ANGLES = [0.0, 1e-9, 1e-7, 2e-6, 1e-5, 0.3, 1.0, 2.5, math.pi - 1e-3]
ANGLES += [math.pi - 2e-4, math.pi - 5e-5, math.pi - 1e-5, math.pi - 1e-7, math.pi]


@pytest.mark.parametrize("angle", ANGLES)
def test_mat_to_axis_angle_round_trips(angle: float) -> None:
    axes = _random_axes(np.random.default_rng(1), 16)
    vecs = angle * axes
    mats = np.array([quat_to_mat(axis_angle_to_quat(v)) for v in vecs])
    out = np.array([mat_to_axis_angle(m) for m in mats])  # one matrix: the IK's fast path
    # the angle comes from the trace: near pi it is good to ~sqrt(float64 resolution)
    atol = 1e-9 if angle < 3.0 else 1e-6
    if angle > math.pi - 1e-6:
        # at pi, v and -v are the same rotation: compare the angle, and the rotations
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), angle, atol=atol)
        back = np.array([quat_to_mat(axis_angle_to_quat(v)) for v in out])
        np.testing.assert_allclose(back, mats, atol=atol)
    else:
        np.testing.assert_allclose(out, vecs, atol=atol)
    # batched numpy and torch agree with the one-matrix path
    np.testing.assert_allclose(mat_to_axis_angle(mats), out, atol=1e-12)
    batched = mat_to_axis_angle(torch.from_numpy(mats))
    assert isinstance(batched, torch.Tensor)
    np.testing.assert_allclose(batched.numpy(), out, atol=1e-12)


def test_mat_to_axis_angle_of_products_is_the_relative_rotation() -> None:
    rng = np.random.default_rng(2)
    for _ in range(20):
        a = axis_angle_to_quat(rng.uniform(-1.5, 1.5, 3))
        d = rng.uniform(-0.8, 0.8, 3)
        b = quat_mul(axis_angle_to_quat(d), a)
        # quat_to_mat(b) quat_to_mat(a)^T is the rotation taking a to b
        rel = quat_to_mat(b) @ quat_to_mat(a).T
        np.testing.assert_allclose(mat_to_axis_angle(rel), d, atol=1e-9)


def test_xyzw_conversions() -> None:
    q = np.array([0.9, 0.1, -0.2, 0.3])
    np.testing.assert_array_equal(wxyz_to_xyzw(q), [0.1, -0.2, 0.3, 0.9])
    np.testing.assert_array_equal(xyzw_to_wxyz(wxyz_to_xyzw(q)), q)
    # PyBullet hands out tuples; one quaternion may be a tuple or a list
    np.testing.assert_array_equal(xyzw_to_wxyz((0.1, -0.2, 0.3, 0.9)), q)
    np.testing.assert_array_equal(wxyz_to_xyzw([0.9, 0.1, -0.2, 0.3]), [0.1, -0.2, 0.3, 0.9])
    batch = np.random.default_rng(3).normal(size=(5, 2, 4))
    np.testing.assert_array_equal(xyzw_to_wxyz(wxyz_to_xyzw(batch)), batch)
    np.testing.assert_array_equal(wxyz_to_xyzw(batch)[..., 3], batch[..., 0])
    tq = torch.from_numpy(batch)
    assert torch.equal(xyzw_to_wxyz(wxyz_to_xyzw(tq)), tq)


def test_quat_to_mat_one_vector_matches_batched() -> None:
    qs = np.random.default_rng(4).normal(size=(10, 4))
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)
    batched = quat_to_mat(qs)
    for q, mat in zip(qs, batched, strict=True):
        np.testing.assert_array_equal(quat_to_mat(q), mat)
        np.testing.assert_allclose(mat @ mat.T, np.eye(3), atol=1e-12)
