"""A brute-force reference: gsplat's tile rasterizer, one Gaussian at a time."""

import torch


def reference_render(means, quats, scales, opacities, colors, viewmat, K, width, height, tile=16):
    """gsplat's _torch_impl projection + the CUDA kernel's per-pixel loop, dense and slow."""
    q = torch.nn.functional.normalize(quats, dim=-1)
    w, x, y, z = q.unbind(-1)
    rot = torch.stack(
        [
            1 - 2 * (y**2 + z**2),
            2 * (x * y - w * z),
            2 * (x * z + w * y),
            2 * (x * y + w * z),
            1 - 2 * (x**2 + z**2),
            2 * (y * z - w * x),
            2 * (x * z - w * y),
            2 * (y * z + w * x),
            1 - 2 * (x**2 + y**2),
        ],
        -1,
    ).reshape(-1, 3, 3)
    M = rot * scales[:, None, :]
    covars = torch.bmm(M, M.transpose(1, 2))
    Rv, tv = viewmat[:3, :3], viewmat[:3, 3]
    mc = torch.einsum("ij,nj->ni", Rv, means) + tv
    cc = torch.einsum("ij,njk,lk->nil", Rv, covars, Rv)
    tx, ty, tz = mc.unbind(-1)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    tanx, tany = 0.5 * width / fx, 0.5 * height / fy
    tx = tz * torch.clamp(tx / tz, -(cx / fx + 0.3 * tanx), (width - cx) / fx + 0.3 * tanx)
    ty = tz * torch.clamp(ty / tz, -(cy / fy + 0.3 * tany), (height - cy) / fy + 0.3 * tany)
    zero = torch.zeros_like(tz)
    J = torch.stack([fx / tz, zero, -fx * tx / tz**2, zero, fy / tz, -fy * ty / tz**2], -1).reshape(-1, 2, 3)
    cov2d = torch.einsum("nij,njk,nlk->nil", J, cc, J) + 0.3 * torch.eye(2)
    m2 = torch.einsum("ij,nj->ni", K[:2], mc) / tz[:, None]
    det = cov2d[:, 0, 0] * cov2d[:, 1, 1] - cov2d[:, 0, 1] ** 2
    conic = torch.stack([cov2d[:, 1, 1] / det, -cov2d[:, 0, 1] / det, cov2d[:, 0, 0] / det], -1)
    extend = torch.sqrt(2 * torch.log(opacities.clamp(min=1 / 255) * 255)).clamp(max=3.33)
    rx = torch.ceil(extend * cov2d[:, 0, 0].sqrt())
    ry = torch.ceil(extend * cov2d[:, 1, 1].sqrt())
    valid = (mc[:, 2] >= 0.01) & (det > 0) & (opacities >= 1 / 255)
    valid &= (m2[:, 0] + rx > 0) & (m2[:, 0] - rx < width) & (m2[:, 1] + ry > 0) & (m2[:, 1] - ry < height)

    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    px, py = xs.reshape(-1), ys.reshape(-1)
    T = torch.ones(len(px))
    done = torch.zeros(len(px), dtype=torch.bool)
    weights = torch.zeros(len(px), len(means))
    for g in torch.sort(mc[:, 2], stable=True).indices.tolist():
        if not valid[g]:
            continue
        in_tile = (
            (px // tile >= torch.floor((m2[g, 0] - rx[g]) / tile))
            & (px // tile < torch.ceil((m2[g, 0] + rx[g]) / tile))
            & (py // tile >= torch.floor((m2[g, 1] - ry[g]) / tile))
            & (py // tile < torch.ceil((m2[g, 1] + ry[g]) / tile))
        )
        dx, dy = m2[g, 0] - (px + 0.5), m2[g, 1] - (py + 0.5)
        sigma = 0.5 * (conic[g, 0] * dx * dx + conic[g, 2] * dy * dy) + conic[g, 1] * dx * dy
        alpha = torch.clamp_max(opacities[g] * torch.exp(-sigma), 0.999)
        use = in_tile & ~done & (sigma >= 0) & (alpha >= 1 / 255)
        next_T = T * (1 - alpha)
        stop = use & (next_T <= 1e-4)
        done |= stop
        use &= ~stop
        weights[use, g] = (alpha * T)[use]
        T = torch.where(use, next_T, T)
    image = (weights @ colors).reshape(height, width, -1)
    return weights, image, weights.sum(1).reshape(height, width, 1)
