"""Spherical harmonics as the 3DGS code evaluates them (real basis, degrees 0-3).

A Gaussian's colour seen along the unit direction d (from the camera centre to the Gaussian) is
max(0, 0.5 + sum_k basis_k(d) * coefficient_k): coefficient 0 is f_dc, the rest are f_rest
(`Splat.sh_rest`, (N, K-1, 3)). Written with array operators only, so the same functions take
numpy arrays and torch tensors (any device): the rasterizer renders views with them, and the
format code checks rotated coefficients against them.
"""

from __future__ import annotations

from ..errors import UserError

SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)


def coefficient_count(degree: int) -> int:
    return (degree + 1) ** 2


def sh_basis(directions, degree: int) -> list:
    """The (degree+1)^2 basis values, each shaped like directions[..., 0], at unit directions (..., 3)."""
    x, y, z = directions[..., 0], directions[..., 1], directions[..., 2]
    basis = [SH_C0 + 0 * x]
    if degree >= 1:
        basis += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        basis += [
            SH_C2[0] * x * y,
            SH_C2[1] * y * z,
            SH_C2[2] * (2 * zz - xx - yy),
            SH_C2[3] * x * z,
            SH_C2[4] * (xx - yy),
        ]
    if degree >= 3:
        basis += [
            SH_C3[0] * y * (3 * xx - yy),
            SH_C3[1] * x * y * z,
            SH_C3[2] * y * (4 * zz - xx - yy),
            SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy),
            SH_C3[4] * x * (4 * zz - xx - yy),
            SH_C3[5] * z * (xx - yy),
            SH_C3[6] * x * (xx - 3 * yy),
        ]
    if degree > 3:
        raise UserError(f"SH degree {degree}: view-dependent colour above degree 3 cannot be turned or drawn yet")
    return basis


def sh_colors(sh_dc, sh_rest, directions):
    """(N, 3) colours, unclipped above, of Gaussians with sh_dc (N, 3) and sh_rest (N, K-1, 3)
    seen along unit directions (N, 3); sh_rest may be None or hold 0 coefficients (degree 0)."""
    rest_count = 0 if sh_rest is None else min(sh_rest.shape[1], 15)  # band 4 (degree 4 PLY) is not drawn
    degree = {0: 0, 3: 1, 8: 2, 15: 3}[rest_count]
    basis = sh_basis(directions, degree)
    color = 0.5 + basis[0][:, None] * sh_dc
    for k in range(1, len(basis)):
        color = color + basis[k][:, None] * sh_rest[:, k - 1]
    return color * (color > 0)
