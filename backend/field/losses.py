"""The training losses (../shared/METHOD.md): contrastive pairs of pixels, GFL, the norms and the spatial term.

Several compute their own gradients (negative pairs and GFL in the forward pass, in row blocks): autograd's trail
of their large intermediate tensors cost a large share of a CPU step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..device import traits
from ..formats.features import COARSE_DIM
from .render import apply_weights, sparse_to


def level_features(features: torch.Tensor, level: str, granularity_prior: bool = True) -> torch.Tensor:
    """(.., 12) coarse or (.., 24) fine features; without the prior the fine level is channels 12-23 alone."""
    if level == "coarse":
        return features[..., :COARSE_DIM]
    return features if granularity_prior else features[..., COARSE_DIM:]


def contrastive_loss(rendered, labels, tau: float, anchors: torch.Tensor | None = None, negative_view=None):
    """Same-mask pixel pairs pulled to similarity 1, different-mask pairs pushed below `tau`: the mean over all pairs.

    Every pair weighs the same, so a minority of views that merge two parts (SAM missing a part) pulls
    them together less than the majority that tells them apart pushes (separate positive and negative
    means would weigh each of the few positive pairs several times each negative one: the parts merge).
    Pixels labelled -1 (no mask covers them) only take part in negative pairs, with every labelled
    pixel: what no mask covers is no part of any mask it shares a view with, though it may be one
    thing or many (so no pairs among them).
    rendered (P, D) level features of the pixels; labels (P,). The positive sum over all
    same-label pairs is exact, from per-label sums (sum of 1 - u_i.u_j over a label's pairs is
    n^2 - |sum u|^2), so it costs O(P D). The negative sum is estimated from the columns `anchors`
    (indices into P; None = all pairs): unbiased at O(P x anchors) instead of O(P^2).
    `negative_view` (P, D), when given, replaces `rendered` in the negative term (the fine level
    passes its coarse part detached).
    """
    unit = F.normalize(rendered, dim=1)
    count = len(labels)
    if count < 2:
        return rendered.sum() * 0.0
    ids, inverse = torch.unique(labels, return_inverse=True)
    sums = unit.new_zeros(len(ids), unit.shape[1]).index_add(0, inverse, unit)
    sizes = torch.bincount(inverse, minlength=len(ids)).to(unit.dtype)
    masked = (ids >= 0).to(unit.dtype)[:, None]  # (K, 1): the unlabelled have no positive pairs
    sums, sizes = sums * masked, sizes * masked[:, 0]
    # with no same-label pair the sum is 0 but rounding would still send a gradient through it
    positive = (sizes**2).sum() - (sums**2).sum() if bool((sizes > 1).any()) else rendered.sum() * 0.0

    negative_unit = unit if negative_view is None else F.normalize(negative_view, dim=1)
    if anchors is None:
        anchors = torch.arange(count, device=labels.device)
    negative = NegativePairs.apply(negative_unit, labels, anchors, tau) * (count / len(anchors))
    return (positive + negative) / (count * (count - 1))


class NegativePairs(torch.autograd.Function):
    """Sum over the pairs (pixel i, anchor a) of different labels of relu(u_i . u_a - tau), on unit features (P, D),
    with its gradient computed in the forward pass, in row blocks.

    Two pixels no mask covers (-1) have equal labels, so "different labels" already leaves out the pairs of two
    unlabelled pixels. The loss is linear in each active similarity, so the gradient is the (P, A) 0/1 matrix
    of the active pairs times the anchors' features, and its transpose times the pixels'. Block by block the
    (B, A) similarities stay in cache: the whole (10k, 512) matrices and autograd's trail of them through
    compare, relu and multiply took a third of a CPU step on the statue.
    """

    BLOCK = 1024  # CPU rows per block: 2 MB of similarities at 512 anchors

    @staticmethod
    def forward(ctx, unit: torch.Tensor, labels: torch.Tensor, anchors: torch.Tensor, tau: float) -> torch.Tensor:
        anchor_unit = unit[anchors]  # (A, D)
        label_ids = labels.to(unit.dtype)  # exact below 2^24 labels; the comparisons stay in float, in place
        anchor_labels = label_ids[anchors][None, :]
        gradient = torch.empty_like(unit)
        anchor_gradient = torch.zeros_like(anchor_unit)
        total = unit.new_zeros(())
        block = max(len(unit), 1) if traits(unit.device).whole_blocks else NegativePairs.BLOCK
        for first in range(0, len(unit), block):
            rows = slice(first, first + block)
            different = (label_ids[rows, None] - anchor_labels).ne_(0.0)  # (B, A) 1.0 where the labels differ
            excess = torch.mm(unit[rows], anchor_unit.T).sub_(tau).relu_().mul_(different)
            total += excess.sum()
            active = excess.gt_(0.0)  # (B, A) 1.0 for the pairs above tau
            torch.mm(active, anchor_unit, out=gradient[rows])
            anchor_gradient.addmm_(active.T, unit[rows])
        gradient.index_add_(0, anchors, anchor_gradient)
        ctx.save_for_backward(gradient)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (gradient,) = ctx.saved_tensors
        return grad * gradient, None, None, None


class GlobalFeatureLoss(torch.autograd.Function):
    """GFL on unit features (S, D), with its gradient computed in the forward pass, in row blocks.

    The loss is linear in each active similarity, so the gradient is a (S, K) @ (K, D) product of
    -1 / +1 / 0 weights with the centres. Doing it block by block keeps the (S, K) similarities in
    cache: on the statue (100k Gaussians x ~650 fine centres per step) autograd's trail of fresh
    (S, K) tensors through max, scatter and relu cost about 100 ms a step on two cores. What is left is
    mostly the two (B, K) products.
    """

    BLOCK = 1024  # CPU rows per block: 2.6 MB of similarities at the statue's K ~ 650; of 512-4096, the fastest there

    @staticmethod
    def forward(ctx, unit: torch.Tensor, centers: torch.Tensor, tau_global: float, tau: float) -> torch.Tensor:
        others = max(centers.shape[0] - 1, 1)
        gradient = torch.empty_like(unit)  # d (sum of pulls) / d unit, and the pushes' / (K - 1), until scaled below
        pulled, pushed, count = unit.new_zeros(()), unit.new_zeros(()), unit.new_zeros(())  # tensors: no GPU sync
        block = max(len(unit), 1) if traits(unit.device).whole_blocks else GlobalFeatureLoss.BLOCK
        for first in range(0, len(unit), block):
            rows = slice(first, first + block)
            similarity = unit[rows] @ centers.T  # (B, K)
            # amax and float masks made in place: max with indices and bool masks are each ~10x slower on a CPU
            best = similarity.amax(dim=1)  # (B,)
            active = (best > tau_global).to(unit.dtype)  # (B,)
            count += active.sum()
            pulled += ((1.0 - best) * active).sum()
            excess = (similarity - tau).relu_()  # (B, K); the closest's own excess is taken off below
            pushed += ((excess.sum(dim=1) - (best - tau).clamp(min=0.0)) * active).sum()
            closest = similarity.eq_(best[:, None])  # (B, K) 1.0 at the closest centre
            weight = excess.gt_(0.0).div_(others).mul_(1.0 - closest).sub_(closest)  # -1 pull, 1/(K-1) pushes
            torch.mm(weight, centers, out=gradient[rows]).mul_(active[:, None])
        count = count.clamp(min=1.0)
        ctx.save_for_backward(gradient.div_(count))
        return (pulled + pushed / others) / count

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (gradient,) = ctx.saved_tensors
        return grad * gradient, None, None, None


def global_feature_loss(features: torch.Tensor, centers: torch.Tensor, tau_global: float, tau: float) -> torch.Tensor:
    """GFL: each Gaussian (S, D) pulled to its most similar centre (K, D) when above `tau_global`, pushed below
    `tau` from the rest: mean over the pulled Gaussians of (1 - best) + sum of the excess over `tau` / (K - 1)."""
    return GlobalFeatureLoss.apply(F.normalize(features, dim=1), centers, tau_global, tau)


def norm_loss(vectors: torch.Tensor) -> torch.Tensor:
    """Keeps vectors on the unit sphere (3D-norm on Gaussians, 2D-norm on rendered pixels)."""
    return ((vectors.norm(dim=1) - 1.0) ** 2).mean()


class SymmetricProduct(torch.autograd.Function):
    """links @ x for a symmetric sparse `links`: the gradient is links @ grad, which spares autograd's
    transpose of the matrix (a sort of all its entries, most of the spatial term's time on a CPU)."""

    @staticmethod
    def forward(ctx, links: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        ctx.links = links
        return apply_weights(links, dense)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, apply_weights(ctx.links, grad)


@dataclass
class NeighbourGraph:
    """A subset's K-nearest-neighbour graph as the spatial term uses it, built once per subset."""

    # (S, S) sparse CSR A + A^T of the graph A that has a 1 for each Gaussian and each neighbour of it (on the CPU
    # where the device has no sparse CSR: MPS)
    links: torch.Tensor
    degrees: torch.Tensor  # (S, 1) row sums of links
    pairs: int  # Gaussian-neighbour pairs: the mean's denominator


def neighbour_graph(neighbours: np.ndarray, device="cpu", keep: np.ndarray | None = None) -> NeighbourGraph:
    """neighbours: (S, K) indices into the subset; keep: (S, K) bool, the pairs to link (None: all). A pair that are
    each other's neighbours gets a 2 in links."""
    from scipy.sparse import coo_matrix

    count = len(neighbours)
    rows = np.repeat(np.arange(count), neighbours.shape[1])
    cols = neighbours.reshape(-1)
    if keep is not None:
        rows, cols = rows[keep.reshape(-1)], cols[keep.reshape(-1)]
    links = coo_matrix(
        (np.ones(2 * len(rows), np.float32), (np.concatenate([rows, cols]), np.concatenate([cols, rows]))),
        shape=(count, count),
    ).tocsr()
    matrix = torch.sparse_csr_tensor(
        torch.from_numpy(links.indptr.astype(np.int64)),
        torch.from_numpy(links.indices.astype(np.int64)),
        torch.from_numpy(links.data),
        size=(count, count),
    )
    degrees = torch.from_numpy(np.asarray(links.sum(axis=1), np.float32))
    return NeighbourGraph(sparse_to(matrix, device), degrees.to(device), len(rows))


def spatial_loss(features: torch.Tensor, graph: NeighbourGraph) -> torch.Tensor:
    """Mean of |f_i - f_j|^2 over every Gaussian i of the subset (S, D) and each neighbour j of it.

    The sum over the graph's pairs is sum_i d_i |f_i|^2 - sum_i f_i . (links f)_i with d the degrees:
    one sparse product instead of an (S, K, D) gather, whose backward scatter is the slow part on a CPU.
    """
    total = (graph.degrees * features**2).sum() - (features * SymmetricProduct.apply(graph.links, features)).sum()
    return total / graph.pairs
