"""Comparing splats: the same values column by column, the same Gaussians whatever axes their covariance was
given, rotations within the smallest-three quantisation."""

from __future__ import annotations

import numpy as np

from backend.formats.splat import Splat
from backend.formats.transform import quaternions_to_matrices

# Smallest-three rotations, 9 bits + sign (SPZ) or 10-bit unorm over [-sqrt(1/2), sqrt(1/2)]
# (compressed PLY): each stored component is within e = sqrt(1/2) / 511 / 2 = 0.00069; the derived
# largest one (>= 1/2) moves by at most (sqrt(3)/2) * sqrt(3) * e / (1/2) = 3e, so |dq| <= sqrt(12) e
# and the angle 2 |dq| <= 0.275 degrees.
SMALLEST_THREE_DEG = 0.3


def rotation_angles_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle between the rotations of two (N, 4) quaternion arrays, ignoring sign and length."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    dot = np.clip(np.abs(np.sum(a * b, axis=1)), 0.0, 1.0)
    return np.degrees(2.0 * np.arccos(dot))


def assert_same_values(splat: Splat, columns: dict):
    assert list(splat.columns) == list(columns)
    for name, values in columns.items():
        np.testing.assert_array_equal(splat.columns[name], values, err_msg=name)
        assert splat.columns[name].dtype == values.dtype, name


def covariances(splat: Splat) -> np.ndarray:  # (N, 3, 3)
    factor = (
        quaternions_to_matrices(splat.rotations.astype(np.float64)) * np.exp(splat.scales.astype(np.float64))[:, None]
    )
    return factor @ factor.transpose(0, 2, 1)


def assert_same_splat(got, expected):
    """The same Gaussians: every column alike but the orientation and scales, whose covariance is alike
    (a non-uniform scale leaves the choice of axes to the eigendecomposition)."""
    assert list(got.columns) == list(expected.columns)
    for column, values in expected.columns.items():
        if not column.startswith(("rot_", "scale_")):
            np.testing.assert_allclose(got.columns[column], values, rtol=1e-4, atol=2e-5, err_msg=column)
    np.testing.assert_allclose(covariances(got), covariances(expected), rtol=1e-3, atol=1e-9)
