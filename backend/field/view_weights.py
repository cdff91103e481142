"""The views' compositing weights W_v, made once per view: training renders its pixels from them, and masks
drawn from the splat (geometric_masks, rendered_views) reuse them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..formats.splat import Splat
from .render import apply_weights
from .sampling import mask_shares
from .views import camera_weights, splat_tensors


@dataclass
class View:
    weights: torch.Tensor  # (H*W, N) sparse CSR: rendered = weights @ features
    coarse: torch.Tensor  # (H*W,) int64 mask label per pixel, -1 = no mask; on the training device
    fine: torch.Tensor  # (H*W,) int64, on the training device
    labelled: torch.Tensor  # (L,) CPU pixel ids with a label at either level: drawn from on the CPU (seeded)
    odds: torch.Tensor | None  # (L,) CPU float64 weights of drawing each labelled pixel (mask_balance); None: uniform
    unlabelled: torch.Tensor  # (U,) CPU pixel ids with no label where the splat draws (alpha > 0.5)


def morton_order(positions: np.ndarray) -> np.ndarray:
    """(N,) Gaussians sorted along a Morton (Z-order) curve.

    Training renumbers the Gaussians in this order so that neighbours in space have neighbouring
    indices: a step's gathers and the backward scatter then stream through memory (3x faster on CPU).
    """
    low, high = np.percentile(positions, [1, 99], axis=0)  # a few far-away Gaussians must not squash the rest
    cells = (np.clip((positions - low) / np.maximum(high - low, 1e-12), 0, 1) * 1023).astype(np.uint64)
    code = np.zeros(len(positions), dtype=np.uint64)
    for bit in range(10):
        for axis in range(3):
            code |= ((cells[:, axis] >> np.uint64(bit)) & np.uint64(1)) << np.uint64(3 * bit + axis)
    return np.argsort(code, kind="stable")


@dataclass
class ViewWeights:
    """Every view's compositing weights W_v, computed once: training uses them, and so do masks drawn from the splat.

    Training renumbers the Gaussians in Morton order (`morton_order`), and the weights' columns follow it.
    """

    order: np.ndarray  # (N,) int64: column j of every view's weights is the splat's Gaussian order[j]
    views: list  # per camera, its (H*W, N) sparse CSR weights on the training device


def view_weights(splat: Splat, cameras, device="cpu", should_stop=lambda: False, each=None) -> ViewWeights:
    """The `ViewWeights` of `cameras` (at the resolution of their label maps); `should_stop()` is polled per view:
    True returns those of the views done so far (the caller cancels). `each(index, ordered, weights_v)`, if given,
    is called as each view's weights are made (`ordered`: the splat in the weights' column order), so that work
    on one view (rendering it) needs no second pass."""
    order = morton_order(splat.positions)
    ordered = splat.subset(order)
    tensors = splat_tensors(ordered, device)
    weights = []
    for index, camera in enumerate(cameras):
        if should_stop():
            break
        weights.append(camera_weights(ordered, camera, device, tensors))
        if each is not None:
            each(index, ordered, weights[-1])
    return ViewWeights(order, weights)


def precompute_views(weights: list, labels, device, mask_balance: float = 0.0) -> list[View]:
    """Every view's weights W_v (`ViewWeights.views`) with its coarse/fine label maps flattened to match its rows
    and its pixels' odds.

    The label maps go to `device`, with the weights; the pixels to draw from and their odds stay on the CPU,
    where the seeded generator draws each step's pixels (the same draws on every device).
    """
    views = []
    for weights_v, (coarse, fine) in zip(weights, labels):
        coarse = torch.from_numpy(coarse.reshape(-1).astype(np.int64))
        fine = torch.from_numpy(fine.reshape(-1).astype(np.int64))
        labelled = torch.nonzero((coarse >= 0) | (fine >= 0)).squeeze(1)
        odds = None
        if mask_balance > 0 and len(labelled):
            odds = mask_shares(coarse[labelled], fine[labelled]) * mask_balance + (1.0 - mask_balance) / len(labelled)
        ones = torch.ones(weights_v.shape[1], 1, device=weights_v.device)
        alpha = apply_weights(weights_v, ones).reshape(-1).cpu()
        unlabelled = torch.nonzero((coarse < 0) & (fine < 0) & (alpha > 0.5)).squeeze(1)
        views.append(View(weights_v, coarse.to(device), fine.to(device), labelled, odds, unlabelled))
    return views


def unlabelled_gaussians(views: list[View]) -> np.ndarray:
    """(N,) bool: the Gaussians that draw more of their colour, over all views, into pixels no mask covers than
    into masks (the floor SAM left uncovered). Nothing but their neighbours tells them what they are: the
    spatial term would pull them to the objects beside them and GFL lock them there, so that a click on an
    object selects a ring of floor (issue 14). Training keeps them apart from both; the unlabelled pixels
    push them from every mask."""
    count = views[0].weights.shape[1]
    labelled, unlabelled = np.zeros(count), np.zeros(count)
    for view in views:
        fragments = np.diff(view.weights.crow_indices().cpu().numpy())  # (H*W,) per pixel
        columns = view.weights.col_indices().cpu().numpy()
        values = view.weights.values().cpu().numpy().astype(np.float64)
        inside = np.repeat(((view.coarse >= 0) | (view.fine >= 0)).cpu().numpy(), fragments)  # (F,)
        labelled += np.bincount(columns, weights=values * inside, minlength=count)
        unlabelled += np.bincount(columns, weights=values * ~inside, minlength=count)
    return unlabelled > labelled
