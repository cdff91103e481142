"""A splat seen from a camera: the renderer's inputs from the backend's Splat and Camera types."""

from __future__ import annotations

import numpy as np
import torch

from ..formats.splat import Splat
from .render import apply_weights, composite_weights


def splat_tensors(splat: Splat, device="cpu") -> dict:
    """means (N,3), quats (N,4) w x y z, scales (N,3) linear, opacities (N,) in [0, 1], as the renderer takes them."""
    arrays = {
        "means": splat.positions,
        "quats": splat.rotations,
        "scales": np.exp(splat.scales),
        "opacities": splat.alphas.astype(np.float32),
    }
    return {
        name: torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32)).to(device)
        for name, values in arrays.items()
    }


def camera_weights(splat: Splat, camera, device="cpu", tensors: dict | None = None) -> torch.Tensor:
    """The (H*W, N) compositing weights of `splat` in `camera`; `tensors` converts the splat once for many views."""
    tensors = tensors or splat_tensors(splat, device)
    viewmat = torch.from_numpy(camera.world_to_camera.astype(np.float32)).to(device)
    K = torch.from_numpy(camera.K.astype(np.float32)).to(device)
    return composite_weights(**tensors, viewmat=viewmat, K=K, width=camera.width, height=camera.height)


def majority_labels(weights: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(H*W,) int64: per pixel the label holding more than half of its compositing weight, -1 where none does.

    weights: a view's (H*W, N) CSR compositing weights; labels: (N,) int64 per Gaussian, -1 = none.
    The rule of the ground truth and of a selection's rendered mask: at most one label can pass it.
    """
    crow, columns, values = weights.crow_indices().long(), weights.col_indices().long(), weights.values()
    pixels = torch.repeat_interleave(torch.arange(weights.shape[0]), crow.diff())  # (F,) each fragment's row
    label = labels[columns]
    kept = label >= 0
    span = int(labels.max()) + 1 if len(labels) else 1
    keys, inverse = torch.unique(pixels[kept] * span + label[kept], return_inverse=True)  # (K,) pixel-label pairs
    totals = torch.zeros(len(keys), dtype=values.dtype).index_add_(0, inverse, values[kept])
    winners = keys[totals > 0.5]
    out = torch.full((weights.shape[0],), -1, dtype=torch.int64)
    out[winners // span] = winners % span
    return out


def drawn_masks(weights: torch.Tensor, shares: torch.Tensor) -> torch.Tensor:
    """(P, C) bool: the pixels more than half of whose colour comes from the Gaussians that column c of `shares`
    (N, C) marks: how a selection's mask is drawn in a view (segment's --mask-dir, eval's IoU)."""
    return apply_weights(weights, shares) > 0.5
