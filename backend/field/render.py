"""Gaussian splat rasterization: gsplat 1.5.3 on CUDA, the same maths in pure torch elsewhere.

Feature training freezes the geometry, so a view's rendered image is a fixed linear map of the
per-Gaussian colours: image[p] = sum_i W[p, i] * colors[i], W[p, i] = alpha_i(p) * T_i(p).
`composite_weights` builds W once per view (sparse CSR, rows = pixels y * width + x); rendering
any channels, or any sampled pixels, is then a sparse product (`apply_weights`).

The torch path follows `gsplat.rasterization(..., packed=False, rasterize_mode="classic")` with
default arguments (eps2d 0.3, near 0.01, far 1e10, radius_clip 0):
  - covariance R S S^T R^T from the normalised quaternion; EWA projection with gsplat's clamp of
    x/z, y/z to 1.3x the field of view in the Jacobian; 0.3 px^2 added to the 2D covariance;
  - culled: depth outside [0.01, 1e10], det <= 0, opacity < 1/255, box outside the image;
  - alpha = min(0.999, opacity * exp(-sigma)), sigma = 0.5 d^T conic d, d = mean2d - (x+.5, y+.5);
    fragments with alpha < 1/255 are skipped; front to back by depth (ties by index); a pixel
    stops before the fragment that would take its transmittance to <= 1e-4.
gsplat clamps alpha at 0.999 (the original 3DGS code at 0.99); ALPHA_MAX follows gsplat.

gsplat visits every pixel of every 16x16 tile touched by a Gaussian's opacity-aware box
(extend = min(3.33, sqrt(2 ln(255 opacity)))), and outside that box alpha < 1/255, so its image
equals "every fragment with alpha >= 1/255". The torch path enumerates exactly those pixels,
row by row from the ellipse sigma <= ln(255 opacity) (plus a small margin, then the exact alpha
test): about 10x fewer evaluations than testing every pixel of every touched tile.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F

from ..device import traits
from ..formats.transform import rotation_entries
from .gsplat_constants import ALPHA_MAX, ALPHA_MIN, EPS2D, FAR_PLANE, FOV_CLAMP, MAX_EXTEND, NEAR_PLANE, T_MIN

# Fragments after this many (each alpha >= 1/255) are always past the T_MIN stop.
MAX_FRAGMENTS = math.ceil(math.log(T_MIN) / math.log1p(-ALPHA_MIN)) + 2


def _rotmats(quats: torch.Tensor) -> torch.Tensor:  # (N,4) wxyz -> (N,3,3)
    return torch.stack(rotation_entries(*F.normalize(quats, dim=-1).unbind(-1)), dim=-1).reshape(
        quats.shape[:-1] + (3, 3)
    )


def _project(means, quats, scales, viewmat, K, width, height, opacities=None):
    """Projection as gsplat's fully fused kernel; radii per axis (N,2), 0 where culled."""
    means, quats, scales = means.float(), quats.float(), scales.float()
    viewmat = viewmat.to(means).reshape(4, 4)
    K = K.to(means).reshape(3, 3)
    M = _rotmats(quats) * scales[:, None, :]
    R, t = viewmat[:3, :3], viewmat[:3, 3]
    covar_c = R @ (M @ M.transpose(1, 2)) @ R.T  # (N,3,3)
    mean_c = means @ R.T + t
    x, y, z = mean_c.unbind(-1)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    # The Jacobian is taken at a point clamped to 1.3x the field of view (gsplat, 3DGS), so that
    # Gaussians far outside the frustum do not blow up into huge screen ellipses.
    tan_x, tan_y = 0.5 * width / fx, 0.5 * height / fy
    safe_z = torch.where(z.abs() > 1e-12, z, torch.full_like(z, 1e-12))
    rz = 1.0 / safe_z
    tx = safe_z * torch.clamp(x * rz, -(cx / fx + FOV_CLAMP * tan_x), (width - cx) / fx + FOV_CLAMP * tan_x)
    ty = safe_z * torch.clamp(y * rz, -(cy / fy + FOV_CLAMP * tan_y), (height - cy) / fy + FOV_CLAMP * tan_y)
    zeros = torch.zeros_like(z)
    J = torch.stack([fx * rz, zeros, -fx * tx * rz * rz, zeros, fy * rz, -fy * ty * rz * rz], dim=-1).reshape(-1, 2, 3)
    cov2d = J @ covar_c @ J.transpose(1, 2)
    a = cov2d[:, 0, 0] + EPS2D
    b = 0.5 * (cov2d[:, 0, 1] + cov2d[:, 1, 0])
    c = cov2d[:, 1, 1] + EPS2D
    det = a * c - b * b
    safe_det = torch.where(det > 0, det, torch.ones_like(det))
    conics = torch.stack([c / safe_det, -b / safe_det, a / safe_det], dim=-1)
    means2d = torch.stack([fx * x * rz + cx, fy * y * rz + cy], dim=-1)

    extend = torch.full_like(z, MAX_EXTEND)
    valid = (z >= NEAR_PLANE) & (z <= FAR_PLANE) & (det > 0)
    if opacities is not None:
        op = opacities.float().reshape(-1)
        valid &= op >= ALPHA_MIN
        extend = torch.minimum(extend, torch.sqrt(2.0 * torch.log(op.clamp(min=ALPHA_MIN) / ALPHA_MIN)))
    rx = torch.ceil(extend * torch.sqrt(a.clamp(min=0)))
    ry = torch.ceil(extend * torch.sqrt(c.clamp(min=0)))
    valid &= torch.isfinite(means2d).all(-1) & torch.isfinite(conics).all(-1)
    valid &= torch.isfinite(rx) & torch.isfinite(ry) & ((rx > 0) | (ry > 0))
    mx, my = means2d.unbind(-1)
    valid &= (mx + rx > 0) & (mx - rx < width) & (my + ry > 0) & (my - ry < height)
    radii = torch.stack([rx, ry], dim=-1).nan_to_num(0.0)
    radii = torch.where(valid[:, None], radii, torch.zeros_like(radii)).to(torch.int32)
    return means2d, conics, z, radii


def project(means, quats, scales, viewmat, K, width: int, height: int, opacities=None):
    """Screen-space Gaussians, exactly as gsplat's `fully_fused_projection` computes them.

    means (N,3), quats (N,4) wxyz (normalised here), scales (N,3) linear, viewmat (4,4) OpenCV
    world-to-camera, K (3,3). Returns means2d (N,2) px, conics (N,3) = upper triangle of the
    inverse 2D covariance (0.3 blur included), depths (N,) camera z, radii (N,) int32: the larger
    half-size of the screen box in px, 0 = culled. gsplat 1.5 reports (N,2) per-axis radii; this
    gives their maximum. With `opacities` (N,) the box is opacity-aware as in `rasterization`.
    """
    means2d, conics, depths, radii = _project(means, quats, scales, viewmat, K, width, height, opacities)
    return means2d, conics, depths, radii.amax(dim=-1)


def _expand(counts: torch.Tensor):
    """For groups of sizes `counts`: group index and rank inside the group of every element."""
    total = int(counts.sum())
    group = torch.repeat_interleave(torch.arange(len(counts), device=counts.device), counts, output_size=total)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(total, device=counts.device) - starts[group]
    return group, rank


@torch.no_grad()
def composite_weights(
    means,
    quats,
    scales,
    opacities,
    viewmat,
    K,
    width: int,
    height: int,
    tile_size: int = 16,
    max_fragments: int = 4_000_000,
) -> torch.Tensor:
    """W (H*W, N) with image = W @ colors: row p = y * width + x, W[p, i] = alpha_i(p) T_i(p).

    Returned as a torch.sparse_csr_tensor with int32 indices and float32 values (about 8 bytes
    per fragment; `@` runs on CPU and CUDA, `apply_weights` also on MPS). Within each row the
    entries are in front-to-back order. Rows are processed in bands of whole tile rows
    (`tile_size` image rows each) holding at most about `max_fragments` candidate fragments
    (a single heavy row is the exception), so peak memory stays a few hundred MB above the
    output whatever the image size.
    """
    device = means.device
    N = means.shape[0]
    opacities = opacities.reshape(-1).float()
    means2d, conics, depths, radii = _project(means, quats, scales, viewmat, K, width, height, opacities)
    ids = torch.nonzero((radii > 0).any(-1)).squeeze(1)
    ids = ids[torch.sort(depths[ids], stable=True).indices]  # front to back, ties by index
    mx, my = means2d[ids].unbind(-1)
    A, B, C = conics[ids].unbind(-1)
    op = opacities[ids]
    ry = radii[ids, 1].float()
    y_lo = torch.ceil(my - ry - 0.5).clamp(0, height).long()
    y_hi = (torch.floor(my + ry - 0.5) + 1).clamp(0, height).long()
    # Row-wise x-intervals of the ellipse sigma <= ln(255 op), where alpha >= 1/255, widened by a
    # margin; the exact float32 alpha test below decides. float64 where the device has it (MPS
    # has not: there a wider margin covers float32 rounding).
    exact = traits(device).float64
    fdt = torch.float64 if exact else torch.float32
    margin_px = 0.01 if exact else 0.05
    tau = torch.log(op.to(fdt) / ALPHA_MIN) * (1.0 if exact else 1.001) + 1e-3
    A64, B64, C64 = A.to(fdt), B.to(fdt), C.to(fdt)
    det_conic = A64 * C64 - B64 * B64

    rows_out, cols_out, vals_out = [], [], []
    for band_start, band_end in _bands(mx, radii[ids, 0].float(), y_lo, y_hi, width, height, tile_size, max_fragments):
        sel = torch.nonzero((y_lo < band_end) & (y_hi > band_start)).squeeze(1)  # depth order kept
        r0 = y_lo[sel].clamp(min=band_start)
        r1 = y_hi[sel].clamp(max=band_end)
        k, rank = _expand(r1 - r0)
        g = sel[k]  # one entry per (Gaussian, row)
        row = r0[k] + rank
        v = row.to(fdt) + 0.5 - my[g].to(fdt)
        disc = 2.0 * A64[g] * tau[g] - v * v * det_conic[g]
        root = torch.sqrt(disc.clamp(min=0))
        centre = mx[g].to(fdt) - B64[g] * v / A64[g] - 0.5  # pixel index x where u = 0
        half = root / A64[g]
        x0 = torch.ceil(centre - half - margin_px).clamp(0, width).long()
        x1 = (torch.floor(centre + half + margin_px) + 1).clamp(0, width).long()
        n = torch.where(disc >= 0, (x1 - x0).clamp(min=0), torch.zeros_like(x1))
        # Split the band by rows when it is too heavy (memory bound); each part keeps depth order.
        row_counts = torch.zeros(band_end - band_start + 1, dtype=torch.long, device=device)
        row_counts.index_add_(0, row - band_start + 1, n)
        cum_rows = torch.cumsum(row_counts, 0).tolist()
        part_start = band_start
        while part_start < band_end:
            part_end = part_start + 1
            while (
                part_end < band_end
                and cum_rows[part_end + 1 - band_start] - cum_rows[part_start - band_start] <= max_fragments
            ):
                part_end += 1
            whole = part_start == band_start and part_end == band_end
            m = None if whole else torch.nonzero((row >= part_start) & (row < part_end)).squeeze(1)
            g_part, row_part, x0_part, n_part = (t if m is None else t[m] for t in (g, row, x0, n))
            part = _composite_rows(g_part, row_part, x0_part, n_part, mx, my, A, B, C, op, width, part_start, part_end)
            if part is not None:
                pix, gi, w = part
                rows_out.append(pix)
                cols_out.append(ids[gi].to(torch.int32))
                vals_out.append(w)
            part_start = part_end

    if rows_out:
        rows = torch.cat(rows_out)
        cols = torch.cat(cols_out)
        vals = torch.cat(vals_out)
    else:
        rows = torch.zeros(0, dtype=torch.long, device=device)
        cols = torch.zeros(0, dtype=torch.int32, device=device)
        vals = torch.zeros(0, dtype=torch.float32, device=device)
    crow = torch.zeros(height * width + 1, dtype=torch.long, device=device)
    crow[1:] = torch.cumsum(torch.bincount(rows, minlength=height * width), 0)
    if int(crow[-1]) >= 2**31:
        cols = cols.long()
    else:
        crow = crow.to(torch.int32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
        try:
            return torch.sparse_csr_tensor(crow, cols, vals, size=(height * width, N))
        except (RuntimeError, NotImplementedError):  # a device without sparse CSR (MPS)
            return torch.sparse_csr_tensor(crow.cpu(), cols.cpu(), vals.cpu(), size=(height * width, N))


def sparse_to(matrix: torch.Tensor, device) -> torch.Tensor:
    """A sparse CSR matrix on `device`, or on the CPU where it has no sparse CSR (MPS): `apply_weights` takes both."""
    try:
        return matrix.to(device)
    except (RuntimeError, NotImplementedError):
        return matrix.cpu()


def _bands(mx, rx, y_lo, y_hi, width, height, tile_size, budget):
    """Bands of whole tile rows, each holding about `budget` candidate pixels or less.

    Few large bands keep the number of torch calls (and of thread wake-ups) low; the budget
    bounds their memory. The estimate counts each Gaussian's whole box, an upper bound.
    """
    box_w = (
        ((torch.floor(mx + rx - 0.5) + 1).clamp(0, width) - torch.ceil(mx - rx - 0.5).clamp(0, width))
        .clamp(min=0)
        .long()
    )
    per_row = torch.zeros(height + 1, dtype=torch.long, device=mx.device)
    per_row.index_add_(0, y_lo, box_w)
    per_row.index_add_(0, y_hi, -box_w)
    per_row = torch.cumsum(per_row, 0)[:height]
    n_tiles = (height + tile_size - 1) // tile_size
    per_tile_row = torch.zeros(n_tiles, dtype=torch.long, device=mx.device)
    per_tile_row.index_add_(0, torch.arange(height, device=mx.device) // tile_size, per_row)
    bands, start, load = [], 0, 0
    for t, cost in enumerate(per_tile_row.tolist()):
        if t > start and load + cost > budget:
            bands.append((start * tile_size, t * tile_size))
            start, load = t, 0
        load += cost
    bands.append((start * tile_size, height))
    return bands


def _composite_rows(g, row, x0, n, mx, my, A, B, C, op, width, row_start, row_end):
    """Front-to-back compositing of the candidate fragments of image rows [row_start, row_end).

    g, row, x0, n: one entry per (Gaussian, row) in depth order; n candidate pixels from x0.
    Returns (global pixel ids, Gaussian positions, weights), sorted by pixel then depth.
    """
    if len(n) == 0 or int(n.sum()) == 0:
        return None
    k, rank = _expand(n)
    gi = g[k]
    y = row[k]
    x = x0[k] + rank
    del k, rank
    # gsplat's per-pixel maths, in float32.
    dx = mx[gi] - (x.float() + 0.5)
    dy = my[gi] - (y.float() + 0.5)
    sigma = 0.5 * (A[gi] * dx * dx + C[gi] * dy * dy) + B[gi] * dx * dy
    alpha = torch.clamp_max(op[gi] * torch.exp(-sigma), ALPHA_MAX)
    keep = torch.nonzero((sigma >= 0) & (alpha >= ALPHA_MIN)).squeeze(1)
    if len(keep) == 0:
        return None
    pix = (y[keep] - row_start) * width + x[keep]
    gi, alpha = gi[keep], alpha[keep]
    del dx, dy, sigma, keep, x, y
    order = torch.sort(pix, stable=True).indices  # pixel-major; depth order kept inside
    pix, gi, alpha = pix[order], gi[order], alpha[order]
    n_pix = (row_end - row_start) * width
    counts = torch.bincount(pix, minlength=n_pix)
    pos = torch.arange(len(pix), device=pix.device) - (torch.cumsum(counts, 0) - counts)[pix]
    if int(counts.max()) > MAX_FRAGMENTS:  # the rest are past the stop whatever their alpha
        short = torch.nonzero(pos < MAX_FRAGMENTS).squeeze(1)
        pix, gi, alpha, pos = pix[short], gi[short], alpha[short], pos[short]
    # Transmittance as gsplat's loop: T <- T * (1 - alpha) in float32, in order (cumprod).
    # Only the pixels that have fragments get a row of the dense (pixels, depth slots) table.
    used, local = torch.unique_consecutive(pix, return_inverse=True)
    depth_slots = int(pos.max()) + 1
    one_minus = torch.ones(len(used), depth_slots, dtype=torch.float32, device=pix.device)
    one_minus[local, pos] = 1.0 - alpha
    t_after = torch.cumprod(one_minus, dim=1)
    del one_minus
    t_next = t_after[local, pos]
    t_before = torch.where(pos > 0, t_after[local, (pos - 1).clamp(min=0)], torch.ones_like(t_next))
    del t_after
    live = torch.nonzero(t_next > T_MIN).squeeze(1)  # a prefix of every pixel, T only falls
    return pix[live] + row_start * width, gi[live], (alpha * t_before)[live]


def apply_weights(weights: torch.Tensor, colors: torch.Tensor, pixels: torch.Tensor | None = None):
    """Rendered channels (P,C) = W[pixels] @ colors; differentiable w.r.t. colors.

    weights: the CSR matrix from `composite_weights`; colors (N,C); pixels (P,) row ids
    y * width + x, or None for every row. Training samples a few thousand pixels a step: only
    those rows are touched. Devices without sparse CSR kernels (MPS) take a gather path.
    """
    sparse_ok = traits(colors.device).sparse and weights.device == colors.device
    if pixels is None:
        if sparse_ok:
            return weights @ colors.to(weights.values().dtype)
        rows = torch.arange(weights.shape[0], device=weights.device)
        return torch.cat([_gather_rows(weights, colors, chunk) for chunk in rows.split(1 << 16)])
    if not sparse_ok:
        return _gather_rows(weights, colors, pixels)
    crow, counts, idx, _ = _row_entries(weights, pixels)
    # The chosen rows as a small CSR matrix: 2-3x faster than gather + index_add on CPU.
    sub_crow = torch.zeros(len(counts) + 1, dtype=torch.long, device=crow.device)
    sub_crow[1:] = torch.cumsum(counts, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sub = torch.sparse_csr_tensor(
            sub_crow, weights.col_indices()[idx].long(), weights.values()[idx], size=(len(counts), weights.shape[1])
        )
    return sub @ colors.to(sub.dtype)


def row_fragments(weights: torch.Tensor, pixels: torch.Tensor):
    """The entries of rows `pixels` of W as (row (F,) index into pixels, gaussian (F,), weight (F,)).

    Training gathers the features of these Gaussians together with every other row a step
    touches, so that the backward pass scatters into the (N, C) gradient once per step.
    """
    _, _, idx, k = _row_entries(weights, pixels)
    return k, weights.col_indices()[idx].long(), weights.values()[idx]


def _row_entries(weights, pixels):
    """Positions in the CSR arrays of the entries of rows `pixels`, and each one's output row."""
    crow = weights.crow_indices()
    pixels = pixels.to(crow.device).long()
    start = crow[pixels].long()
    counts = crow[pixels + 1].long() - start
    k, rank = _expand(counts)
    return crow, counts, start[k] + rank, k


def _gather_rows(weights, colors, pixels):
    """W[pixels] @ colors with dense ops only (any device)."""
    _, counts, idx, k = _row_entries(weights, pixels)
    dev = colors.device
    contrib = weights.values()[idx].to(dev)[:, None] * colors[weights.col_indices()[idx].long().to(dev)]
    out = torch.zeros(len(counts), colors.shape[1], dtype=contrib.dtype, device=dev)
    return out.index_add(0, k.to(dev), contrib)


def rasterize(means, quats, scales, opacities, colors, viewmat, K, width: int, height: int, background=None):
    """Torch rasterizer (CPU, MPS, CUDA): image (H,W,C), alpha (H,W,1); gradients reach colors."""
    weights = composite_weights(means, quats, scales, opacities, viewmat, K, width, height)
    ones = torch.ones(colors.shape[0], 1, dtype=colors.dtype, device=colors.device)
    out = apply_weights(weights, torch.cat([colors, ones], dim=1).float())
    out = out.reshape(height, width, -1)
    image, alpha = out[..., :-1], out[..., -1:]
    if background is not None:
        image = image + (1.0 - alpha) * background.to(image).reshape(1, 1, -1)
    return image, alpha


def rasterize_gsplat(means, quats, scales, opacities, colors, viewmat, K, width: int, height: int, background=None):
    """The same render by `gsplat.rasterization` (CUDA only): image (H,W,C), alpha (H,W,1)."""
    import gsplat  # installed on CUDA machines only

    device = means.device
    kwargs = {}
    if background is not None:
        kwargs["backgrounds"] = background.to(device=device, dtype=torch.float32).reshape(1, -1)
    image, alpha, _ = gsplat.rasterization(
        means.float(),
        quats.float(),
        scales.float(),
        opacities.reshape(-1).float(),
        colors.float(),
        viewmat.to(device=device, dtype=torch.float32).reshape(1, 4, 4),
        K.to(device=device, dtype=torch.float32).reshape(1, 3, 3),
        width,
        height,
        near_plane=NEAR_PLANE,
        far_plane=FAR_PLANE,
        eps2d=EPS2D,
        packed=False,
        rasterize_mode="classic",
        **kwargs,
    )
    return image[0], alpha[0]


def gsplat_available() -> bool:
    if not torch.cuda.is_available():
        return False
    try:
        import gsplat  # noqa: F401
    except Exception:
        return False
    return True


def render(
    means, quats, scales, opacities, colors, viewmat, K, width: int, height: int, background=None, backend: str = "auto"
):
    """`rasterize_gsplat` for CUDA tensors when gsplat imports ("auto"), else `rasterize`.

    backend: "auto", "gsplat" or "torch".
    """
    if backend not in ("auto", "gsplat", "torch"):
        raise ValueError(f"unknown render backend {backend!r}: use 'auto', 'gsplat' or 'torch'")
    use_gsplat = backend == "gsplat" or (backend == "auto" and traits(means.device).gsplat and gsplat_available())
    fn = rasterize_gsplat if use_gsplat else rasterize
    return fn(means, quats, scales, opacities, colors, viewmat, K, width, height, background)
