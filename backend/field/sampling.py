"""What a training step draws: its pixels (their odds, the fragments that render them) and its Gaussian subset.

The draws are made on the CPU from the seeded generator, so a run draws the same on every device.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..device import traits
from .losses import neighbour_graph


class FragmentProduct(torch.autograd.Function):
    """matrix @ drawn with the gradient `transposed` @ grad, for a matrix whose transpose is at hand: autograd would
    transpose the sparse matrix itself (a sort of its entries) on every backward pass."""

    @staticmethod
    def forward(ctx, drawn: torch.Tensor, matrix: torch.Tensor, transposed: torch.Tensor) -> torch.Tensor:
        ctx.transposed = transposed
        return matrix @ drawn

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return ctx.transposed @ grad, None, None


@dataclass
class StepFragments:
    """The fragments of a step's sampled pixels: the Gaussians they draw, once each, and the weights to render them.

    A pixel's rendered features are the weighted sum of its Gaussians' (`row_fragments`). Gathering every
    fragment's features and scattering the gradient back into the (N, 24) gradient, ~400k rows on the statue,
    was most of a CPU step; instead each Gaussian drawn is read once (U rows) and the pixels are rendered by a
    sparse (P, U) product, whose gradient is the product with its transpose, made from the same sorted entries.
    """

    gaussians: torch.Tensor  # (U,) sorted distinct Gaussians the pixels draw
    matrix: torch.Tensor | None  # (P, U) sparse CSR weights; None where the device has no sparse CSR
    transposed: torch.Tensor | None  # (U, P) sparse CSR: the matrix's transpose; None without sparse CSR
    rows: torch.Tensor  # (F,) each fragment's pixel
    slots: torch.Tensor  # (F,) each fragment's index into `gaussians`
    weights: torch.Tensor  # (F,) each fragment's weight
    pixels: int  # P

    @classmethod
    def of(cls, rows: torch.Tensor, gaussians: torch.Tensor, weights: torch.Tensor, pixels: int) -> StepFragments:
        """From `row_fragments`: rows (F,) nondecreasing indices of the pixels, gaussians (F,), weights (F,)."""
        by_gaussian, order = torch.sort(gaussians, stable=True)
        distinct, counts = torch.unique_consecutive(by_gaussian, return_counts=True)
        slots = torch.empty_like(gaussians)
        slots[order] = torch.repeat_interleave(torch.arange(len(distinct), device=gaussians.device), counts)
        if not traits(gaussians.device).sparse:  # dense ops only (render.apply_weights alike)
            return cls(distinct, None, None, rows, slots, weights, pixels)
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore")
            matrix = torch.sparse_csr_tensor(
                pointers(torch.bincount(rows, minlength=pixels)), slots, weights, size=(pixels, len(distinct))
            )
            transposed = torch.sparse_csr_tensor(
                pointers(counts), rows[order], weights[order], size=(len(distinct), pixels)
            )
        return cls(distinct, matrix, transposed, rows, slots, weights, pixels)

    def render(self, drawn: torch.Tensor) -> torch.Tensor:
        """(P, D) rendered features of the pixels from `drawn` (U, D), the features of `gaussians`."""
        if self.matrix is not None:
            return FragmentProduct.apply(drawn, self.matrix, self.transposed)
        return drawn.new_zeros(self.pixels, drawn.shape[1]).index_add(
            0, self.rows, self.weights[:, None] * drawn.index_select(0, self.slots)
        )


def pointers(counts: torch.Tensor) -> torch.Tensor:
    """(R + 1,) CSR row pointers of rows holding `counts` (R,) entries."""
    return F.pad(torch.cumsum(counts, 0), (1, 0))


@dataclass
class SubsetGroups:
    """The Gaussians split at random into groups of about `gaussian_subset`, one group a step.

    METHOD.md's spatial term takes a random subset of about 100k Gaussians per step and each
    one's K nearest neighbours by a KD-tree on that subset. The groups and their neighbours are
    drawn once, so no step builds a tree, and a step's neighbours are inside its subset: it
    gathers the subset's features once (half the rows of taking neighbours from all Gaussians).
    """

    members: list  # per group: (S,) int64 sorted Gaussian indices
    graphs: list  # per group: the `NeighbourGraph` of each member's K nearest members
    supervised: list  # per group: (S,) bool, the members that GFL pulls (not `unsupervised`); None: all of them

    @classmethod
    def draw(
        cls, positions: np.ndarray, size: int, k: int, seed: int, device="cpu", unsupervised: np.ndarray | None = None
    ) -> SubsetGroups:
        """`unsupervised` (N,) bool: Gaussians that no mask covers (`unlabelled_gaussians`); they are linked to
        their neighbours among themselves only, so that no mask's features flow into them."""
        from scipy.spatial import cKDTree

        order = np.random.default_rng(seed).permutation(len(positions))
        apart = np.zeros(len(positions), bool) if unsupervised is None else unsupervised
        members, graphs, supervised = [], [], []
        for group in np.array_split(order, max(1, round(len(positions) / size))):
            group = np.sort(group)
            _, index = cKDTree(positions[group]).query(positions[group], k=min(k + 1, len(group)), workers=-1)
            neighbours = index.reshape(len(group), -1)[:, 1:]  # self dropped
            keep = apart[group][neighbours] == apart[group][:, None]
            members.append(torch.from_numpy(group.astype(np.int64)).to(device))
            graphs.append(neighbour_graph(neighbours, device, None if keep.all() else keep))
            supervised.append(torch.from_numpy(~apart[group]).to(device) if apart[group].any() else None)
        return cls(members, graphs, supervised)


def mask_shares(coarse: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
    """(L,) pixel weights that give every fine mask (the coarse one where a pixel has no fine) the same total.

    Drawn uniformly, a step's pixels follow area: a handle or a table's legs get few of them, so the
    views whose masks split the part from its body make few pairs that push them apart, and a
    minority of views that merge the two (SAM missed the part) merges their features. Drawn per
    mask, the part gets as many pixels as its body where it has its own mask. Drawn per mask alone,
    the ground gets so few that an object's boundary pixels, which blend in the ground behind them,
    carry the object's feature onto the ground at its foot: `TrainConfig.mask_balance` mixes the
    two (docs/accuracy.md measures all three).
    """
    if len(fine) == 0:
        return torch.zeros(0, dtype=torch.float64)
    mask = torch.where(fine >= 0, fine, fine.max() + 1 + coarse)  # coarse ids shifted past the fine ones
    _, inverse, sizes = torch.unique(mask, return_inverse=True, return_counts=True)
    return 1.0 / (len(sizes) * sizes[inverse].double())
