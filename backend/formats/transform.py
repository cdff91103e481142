"""Moving, turning and scaling a splat by a 4x4 matrix, spherical harmonics included (numpy only).

An affine map x -> A x + t takes a Gaussian to a Gaussian: its centre to A mu + t, its covariance
to A Sigma A^T. `transform_splat` writes that covariance back as a rotation quaternion and log
scales (its eigenvectors and the logs of the square roots of its eigenvalues: exact for any A,
uniform or non-uniform scale, shear). Opacity is the peak alpha, unchanged.

View-dependent colour turns with the Gaussian: a colour seen along d before the map is seen along
Q d after, where Q is the rotation part of A. For a similarity (rotation, uniform scale,
translation) Q is exact; for any other A there is no single rotation, and Q is the orthogonal
factor of A's polar decomposition (the rotation nearest to A; it includes the mirror when A
mirrors). Each SH band l is closed under rotations, so the band's (2l+1)x(2l+1) matrix is found by
evaluating the basis at generic directions d and at Q^T d and solving (`sh_rotation`).
"""

from __future__ import annotations

import numpy as np

from ..errors import UserError
from .ply import contiguous_columns
from .sh import sh_basis
from .splat import (
    NORMAL_COLUMNS,
    POSITION_COLUMNS,
    ROTATION_COLUMNS,
    SCALE_COLUMNS,
    Splat,
    rest_columns,
)

IDENTITY_TOLERANCE = 1e-6  # a matrix this close to identity (entry-wise) is identity: the export stays byte-identical
SIMILARITY_TOLERANCE = 1e-5  # relative: A^T A = s^2 I within this is a rotation and a uniform scale


def is_identity(matrix) -> bool:
    return bool(np.allclose(np.asarray(matrix, dtype=np.float64), np.eye(4), rtol=0.0, atol=IDENTITY_TOLERANCE))


def _fibonacci_directions(count: int) -> np.ndarray:  # (count, 3) unit vectors spread over the sphere
    i = np.arange(count) + 0.5
    z = 1.0 - 2.0 * i / count
    r = np.sqrt(1.0 - z * z)
    phi = i * np.pi * (3.0 - np.sqrt(5.0))
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def sh_rotation(rotation: np.ndarray, degree: int) -> list[np.ndarray]:
    """For an orthogonal 3x3 `rotation` Q: per band l = 1..degree the (2l+1, 2l+1) matrix M_l with
    new_band = M_l @ old_band, so that the rotated coefficients seen along Q d give the old colour along d."""
    directions = _fibonacci_directions(64)  # (64, 3): generic, far more than the 7 a band needs
    before = np.stack(sh_basis(directions, degree), axis=1)  # (64, K) basis at d
    after = np.stack(sh_basis(directions @ np.asarray(rotation, dtype=np.float64), degree), axis=1)  # at Q^T d
    matrices = []
    for band in range(1, degree + 1):
        lo, hi = band * band, (band + 1) * (band + 1)
        # new coefficients c' satisfy basis(d) c' = basis(Q^T d) c for every d
        solution, *_ = np.linalg.lstsq(before[:, lo:hi], after[:, lo:hi], rcond=None)
        matrices.append(solution)
    return matrices


def rotate_sh_columns(columns: dict[str, np.ndarray], rotation: np.ndarray, degree: int) -> dict[str, np.ndarray]:
    """The f_rest columns (channel-major: all red coefficients, then green, then blue) turned by `rotation`."""
    names = rest_columns(degree)
    per_channel = len(names) // 3
    block = np.zeros((per_channel, per_channel))  # every band's matrix on the diagonal
    for band, matrix in enumerate(sh_rotation(rotation, degree), start=1):
        block[band * band - 1 : (band + 1) ** 2 - 1, band * band - 1 : (band + 1) ** 2 - 1] = matrix
    turned: dict[str, np.ndarray] = {}
    for channel in range(3):
        channel_names = names[channel * per_channel : (channel + 1) * per_channel]
        old = np.stack([columns[name] for name in channel_names])  # (K-1, N): each row one column, contiguous
        new = block.astype(old.dtype) @ old
        turned.update((name, new[i].astype(columns[name].dtype, copy=False)) for i, name in enumerate(channel_names))
    return turned


def rotation_entries(w, x, y, z) -> list:
    """The 9 entries, row by row, of the rotation of unit quaternions w x y z: arithmetic only, so numpy arrays and
    torch tensors (the renderer) share this one formula."""
    return [
        1 - 2 * (y * y + z * z),
        2 * (x * y - w * z),
        2 * (x * z + w * y),
        2 * (x * y + w * z),
        1 - 2 * (x * x + z * z),
        2 * (y * z - w * x),
        2 * (x * z - w * y),
        2 * (y * z + w * x),
        1 - 2 * (x * x + y * y),
    ]


def quaternions_to_matrices(quaternions: np.ndarray) -> np.ndarray:  # (N, 4) w x y z, any length -> (N, 3, 3)
    q = quaternions / np.maximum(np.linalg.norm(quaternions, axis=1, keepdims=True), 1e-30)
    return np.stack(rotation_entries(*q.T), axis=1).reshape(-1, 3, 3)


def matrices_to_quaternions(matrices: np.ndarray) -> np.ndarray:  # (N, 3, 3) proper rotations -> (N, 4) w x y z, w >= 0
    m = matrices
    trace = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    # Shepperd: take the largest of 4w^2, 4x^2, 4y^2, 4z^2 to divide by, so no branch loses precision.
    squares = np.stack(
        [
            1 + trace,
            1 + m[:, 0, 0] - m[:, 1, 1] - m[:, 2, 2],
            1 - m[:, 0, 0] + m[:, 1, 1] - m[:, 2, 2],
            1 - m[:, 0, 0] - m[:, 1, 1] + m[:, 2, 2],
        ],
        axis=1,
    )
    best = np.argmax(squares, axis=1)
    root = np.sqrt(np.maximum(squares[np.arange(len(m)), best], 1e-30))  # 2 |component|
    sums = {  # 4 * products of components, each formula exact for its branch
        "wx": m[:, 2, 1] - m[:, 1, 2],
        "wy": m[:, 0, 2] - m[:, 2, 0],
        "wz": m[:, 1, 0] - m[:, 0, 1],
        "xy": m[:, 0, 1] + m[:, 1, 0],
        "xz": m[:, 0, 2] + m[:, 2, 0],
        "yz": m[:, 1, 2] + m[:, 2, 1],
    }
    q = np.empty((len(m), 4))
    rows = [
        (root, sums["wx"] / root, sums["wy"] / root, sums["wz"] / root),
        (sums["wx"] / root, root, sums["xy"] / root, sums["xz"] / root),
        (sums["wy"] / root, sums["xy"] / root, root, sums["yz"] / root),
        (sums["wz"] / root, sums["xz"] / root, sums["yz"] / root, root),
    ]
    for branch, values in enumerate(rows):
        here = best == branch
        q[here] = 0.5 * np.stack(values, axis=1)[here]
    return q * np.where(q[:, :1] < 0, -1.0, 1.0)


def left_product_matrix(q: np.ndarray) -> np.ndarray:
    """(4, 4) L with L @ p = q * p (Hamilton product, w x y z): turning by q is a linear map of p."""
    w, x, y, z = q
    return np.array([[w, -x, -y, -z], [x, w, -z, y], [y, z, w, -x], [z, -y, x, w]])


def polar_rotation(linear: np.ndarray) -> np.ndarray:
    """The orthogonal factor Q of linear = Q P (P symmetric positive): the rotation nearest to `linear`."""
    u, _, vt = np.linalg.svd(linear)
    return u @ vt


def similarity_scale(linear: np.ndarray) -> float | None:
    """s where linear = s * (a proper rotation), else None."""
    gram = linear.T @ linear
    s2 = np.trace(gram) / 3.0
    if np.linalg.det(linear) <= 0 or not np.allclose(gram, s2 * np.eye(3), rtol=0.0, atol=SIMILARITY_TOLERANCE * s2):
        return None
    return float(np.sqrt(s2))


def transformed_shapes(rotations: np.ndarray, log_scales: np.ndarray, linear: np.ndarray):
    """(4, N) w x y z and (3, N) log scales of the Gaussians (4, N), (3, N) after the linear map (3, 3)."""
    scale = similarity_scale(linear)
    if scale is not None:  # turn and grow: no decomposition needed; each quaternion keeps its length
        turn = matrices_to_quaternions((linear / scale)[None])[0]
        return left_product_matrix(turn).astype(rotations.dtype) @ rotations, log_scales + rotations.dtype.type(
            np.log(scale)
        )
    # A R S (A R S)^T = A Sigma A^T; its eigenvectors are the new axes, sqrt(eigenvalues) the new scales.
    rotations, log_scales = rotations.astype(np.float64), log_scales.astype(np.float64)
    factor = linear @ quaternions_to_matrices(rotations.T) * np.exp(log_scales.T)[:, None, :]  # (N, 3, 3) = A R S
    covariance = factor @ factor.transpose(0, 2, 1)
    variances, axes = np.linalg.eigh(covariance)
    axes[:, :, 2] *= np.sign(np.linalg.det(axes))[:, None]  # a proper rotation: det +1
    tiny = np.finfo(np.float32).tiny
    return matrices_to_quaternions(axes).T, 0.5 * np.log(np.maximum(variances, tiny)).T


def transform_splat(splat: Splat, matrix) -> Splat:
    """The splat moved, turned and scaled by the 4x4 `matrix` (acting on column vectors).

    Centres by the matrix; orientation and scales from A Sigma A^T; SH degrees 1-3 turned by the
    rotation part; normals (when present) by the inverse transpose of A, keeping their length;
    opacity, base colour and any other column unchanged. Each column keeps its type; the column
    order and comments are kept. An identity matrix gives the splat back as it is.
    """
    matrix = np.asarray(matrix, dtype=np.float64).reshape(4, 4)
    if is_identity(matrix):
        return splat
    linear, offset = matrix[:3, :3], matrix[:3, 3]
    if abs(np.linalg.det(linear)) < 1e-12:
        raise UserError("its transform scales an axis to zero, which flattens the Gaussians; give every axis a scale")
    splat = contiguous_columns(splat)
    columns = dict(splat.columns)

    def rows(names, dtype=np.float64) -> np.ndarray:  # (len(names), N)
        return np.stack([splat.columns[name].astype(dtype, copy=False) for name in names])

    def put(names, values):  # values (len(names), N)
        for name, row in zip(names, values):
            columns[name] = row.astype(splat.columns[name].dtype)

    put(POSITION_COLUMNS, linear @ rows(POSITION_COLUMNS) + offset[:, None])
    # float32 is enough for orientation and log-scale (a few ulps); the decomposition path widens them itself
    rotations, log_scales = transformed_shapes(
        rows(ROTATION_COLUMNS, np.float32), rows(SCALE_COLUMNS, np.float32), linear
    )
    put(ROTATION_COLUMNS, rotations)
    put(SCALE_COLUMNS, log_scales)
    if splat.sh_degree:
        columns.update(rotate_sh_columns(splat.columns, polar_rotation(linear), splat.sh_degree))
    if all(name in columns for name in NORMAL_COLUMNS):
        normals = rows(NORMAL_COLUMNS)
        turned = np.linalg.inv(linear).T @ normals
        length = np.linalg.norm(normals, axis=0)
        put(NORMAL_COLUMNS, turned * (length / np.maximum(np.linalg.norm(turned, axis=0), 1e-30)))
    return Splat(columns, list(splat.comments))
