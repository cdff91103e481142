"""A splat seen from a camera: the renderer's inputs from the backend's Splat and Camera types."""

from __future__ import annotations

import numpy as np
import torch

from .render import composite_weights
from .splat import Splat


def splat_tensors(splat: Splat, device="cpu") -> dict:
    """means (N,3), quats (N,4) w x y z, scales (N,3) linear, opacities (N,) in [0, 1], as the renderer takes them."""
    arrays = {
        "means": splat.positions,
        "quats": splat.rotations,
        "scales": np.exp(splat.scales),
        "opacities": splat.alphas.astype(np.float32),
    }
    return {name: torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32)).to(device) for name, values in arrays.items()}


def camera_weights(splat: Splat, camera, device="cpu", tensors: dict | None = None) -> torch.Tensor:
    """The (H*W, N) compositing weights of `splat` in `camera`; pass `tensors` to convert the splat once for many views."""
    tensors = tensors or splat_tensors(splat, device)
    viewmat = torch.from_numpy(camera.world_to_camera.astype(np.float32)).to(device)
    K = torch.from_numpy(camera.K.astype(np.float32)).to(device)
    return composite_weights(**tensors, viewmat=viewmat, K=K, width=camera.width, height=camera.height)
