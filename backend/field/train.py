"""Learning the Click-Gaussian feature field (../shared/METHOD.md is the specification).

The splat's geometry is frozen, so every view's rendered features are a fixed linear map of the
per-Gaussian features: image = W_v @ F. W_v is computed once per view (`render.composite_weights`),
after which a training step renders its ~10k sampled pixels by gathering those rows of W_v:
no rasterization inside the loop, which is what makes training feasible on a CPU.
"""

from __future__ import annotations

import ctypes
import dataclasses
import sys
import time
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..device import traits
from ..device_defaults import DEVICE_DEFAULTS
from ..errors import UserError
from ..formats.features import (
    COARSE_DIM,
    FEATURE_DIM,
    FeatureField,
    geometry_fingerprint,
)
from ..formats.splat import Splat
from ..ranges import SETTINGS
from .render import apply_weights, row_fragments, sparse_to
from .views import camera_weights, splat_tensors

LEVELS = ("coarse", "fine")


class Cancelled(UserError):
    """Training was stopped by the user; nothing was written."""


@dataclass
class TrainConfig:
    iterations: int = 3000
    learning_rate: float = 0.01
    pixels: int = 10_000  # sampled per step from one random view
    mask_balance: float = (
        0.5  # share of those pixels drawn evenly over the view's masks, the rest uniformly (mask_shares)
    )
    negative_anchors: int = 512  # columns of the negative-pair similarity matrix per step; >= pixels: all pairs
    tau_coarse: float = 0.5  # negative margins per level
    tau_fine: float = 0.75
    tau_global: float = 0.9  # GFL pulls a Gaussian to its closest centre only above this similarity
    gfl_start: int = -1  # -1: two thirds of the iterations (the paper's 2000 of 3000), so shorter runs get GFL too
    gfl_refresh: int = 500  # iterations between re-clusterings
    cluster_epsilon_coarse: float = 1e-2
    cluster_epsilon_fine: float = 1e-3
    lambda_gfl: float = 10.0
    lambda_norm3d: float = 0.2
    lambda_norm2d: float = 0.2
    lambda_spatial: float = 0.5
    spatial_neighbours: int = 5
    gaussian_subset: int = 100_000  # Gaussians per step for the 3D terms (GFL, 3D-norm, spatial; neighbours within it)
    gfl_share: float = 1.0  # of those, the share GFL acts on (every 1/share-th from a random start): its cost
    use_gfl: bool = True
    use_norm3d: bool = True
    use_norm2d: bool = True
    use_spatial: bool = True
    use_granularity_prior: bool = True
    use_unlabelled_negatives: bool = True  # pixels no mask covers are pushed away from the view's masks (never pulled)
    seed: int = 0

    @classmethod
    def for_device(cls, kind: str, **given) -> TrainConfig:
        """The settings of a run on a device of `kind` ("cuda", "mps", "cpu"): those not `given` that trade quality
        for time take the device's defaults (backend/device_defaults.py); the plain defaults are a GPU's pixels and
        subsets with the CPU's negative anchors, for tests and scripts that set what they need."""
        fields = {field.name for field in dataclasses.fields(cls)}
        per_device = {name: value for name, value in vars(DEVICE_DEFAULTS[kind]).items() if name in fields}
        return cls(**{**per_device, **{name: value for name, value in given.items() if value is not None}})

    def __post_init__(self):  # the one check of every setting, from the command line, the add-on or a script
        for name, allowed in SETTING_RANGES.items():
            allowed.check(setting_option(name), getattr(self, name))

    @property
    def gfl_first_iteration(self) -> int:
        return self.gfl_start if self.gfl_start >= 0 else 2 * self.iterations // 3

    def tau(self, level: str) -> float:
        return self.tau_coarse if level == "coarse" else self.tau_fine


# every numeric TrainConfig setting's range, from the one table: the command line's types and TrainConfig's check
SETTING_RANGES = {f.name: SETTINGS[f.name] for f in dataclasses.fields(TrainConfig) if f.name in SETTINGS}


def setting_option(name: str) -> str:
    """The command-line option of a TrainConfig setting: learning_rate -> --learning-rate."""
    return "--" + name.replace("_", "-")


@dataclass
class View:
    weights: torch.Tensor  # (H*W, N) sparse CSR: rendered = weights @ features
    coarse: torch.Tensor  # (H*W,) int64 mask label per pixel, -1 = no mask; on the training device
    fine: torch.Tensor  # (H*W,) int64, on the training device
    labelled: torch.Tensor  # (L,) CPU pixel ids with a label at either level: drawn from on the CPU (seeded)
    odds: torch.Tensor | None  # (L,) CPU float64 weights of drawing each labelled pixel (mask_balance); None: uniform
    unlabelled: torch.Tensor  # (U,) CPU pixel ids with no label where the splat draws (alpha > 0.5)


@dataclass
class TrainResult:
    field: FeatureField
    seconds: dict = dataclasses.field(default_factory=dict)  # per phase


def reuse_freed_memory() -> None:
    """Lets glibc keep large freed blocks for the next step instead of returning them to the kernel.

    Every CPU step allocates and frees the same large tensors (the (N, 24) gradient is 77 MB on the
    statue). glibc serves blocks above its mmap threshold (32 MB at most) with fresh pages, which
    the kernel faults in and zero-fills on first touch, every step: 38 % of a statue step
    (235 -> 145 ms, `bench/bench_train.py --iterations 300`). Process-wide, which suits the process that trains.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl): leave the allocator alone
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # mallopt parameters from glibc's malloc.h
    libc.mallopt(m_mmap_threshold, 1 << 30)
    libc.mallopt(m_trim_threshold, (1 << 31) - 1)


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


def mask_features(views: list[View], features: torch.Tensor, level: str, prior: bool) -> np.ndarray:
    """(M, D) unit mean rendered feature inside every mask of every view, at `level`."""
    out = []
    with torch.no_grad():
        level_f = level_features(features, level, prior)
        for view in views:
            labels = getattr(view, level)
            keep = labels >= 0
            if not keep.any():
                continue
            rendered = F.normalize(apply_weights(view.weights, level_f), dim=1)[keep]
            ids, inverse = torch.unique(labels[keep], return_inverse=True)
            sums = rendered.new_zeros(len(ids), rendered.shape[1]).index_add_(0, inverse, rendered)
            drawn = sums.norm(dim=1) > 1e-6  # a mask over pixels the splat leaves empty has no feature to cluster
            out.append(F.normalize(sums[drawn], dim=1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, level_f.shape[1]), np.float32)


def cluster_centers(mask_vectors: np.ndarray, epsilon: float, view_count: int) -> np.ndarray:
    """(K, D) unit centres of the HDBSCAN clusters of the masks' features: the global feature candidates."""
    import hdbscan

    min_cluster_size = max(2, view_count // 5)  # an object is seen in many views: its masks form a big cluster
    if len(mask_vectors) < min_cluster_size + 1:
        return np.zeros((0, mask_vectors.shape[1]), np.float32)
    # Prim's exact spanning tree: on the statue's 13-15k mask vectors 2-3x faster than the default Boruvka, whose
    # approximate tree gives the same clusters but for a few boundary masks (adjusted Rand index 0.98)
    labels = hdbscan.HDBSCAN(
        min_cluster_size=min_cluster_size, cluster_selection_epsilon=epsilon, algorithm="prims_kdtree"
    ).fit_predict(mask_vectors.astype(np.float64))
    centers = [mask_vectors[labels == c].mean(axis=0) for c in range(labels.max() + 1)]
    if not centers:
        return np.zeros((0, mask_vectors.shape[1]), np.float32)
    centers = np.stack(centers)
    return (centers / np.linalg.norm(centers, axis=1, keepdims=True)).astype(np.float32)


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


def train_features(
    splat: Splat,
    cameras,  # list[Camera], at the resolution of the label maps
    labels,  # list of (coarse (H, W), fine (H, W)) int32 label maps, one per camera
    config: TrainConfig = TrainConfig(),
    mask_source: str = "",
    device: str = "cpu",
    progress=lambda event: None,  # called with a dict per update
    should_stop=lambda: False,  # polled every step; True cancels without a result
    checkpoint_every: int = 0,  # steps between intermediate fields; 0: none
    checkpoint=lambda field: None,  # called with the FeatureField after every `checkpoint_every` steps (field.step)
    precomputed: ViewWeights | None = None,  # the views' weights (`view_weights` of these cameras), if computed already
) -> TrainResult:
    """Features (N, 24) of the frozen splat learned from `labels`, put back in the splat's order.

    Every tensor of the run lives on `device` (weights, labels, features, losses, cluster centres); the
    seeded draws (pixels, subsets, anchors, the initial features) are made on the CPU and moved, so a
    run gives the same features on any device up to float rounding.
    """
    seconds = {}
    started = time.perf_counter()
    on = torch.device(device)
    if traits(on).host_memory:
        reuse_freed_memory()
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    prior = config.use_granularity_prior

    progress({"phase": "precompute", "views": len(cameras)})
    fingerprint = geometry_fingerprint(splat)
    precomputed = precomputed or view_weights(splat, cameras, device)
    if len(precomputed.views) != len(cameras):
        raise ValueError(f"weights of {len(precomputed.views)} views for {len(cameras)} cameras")
    order = precomputed.order
    splat = splat.subset(order)  # renumbered for memory locality; the result is put back in file order
    views = precompute_views(precomputed.views, labels, device, config.mask_balance)
    unsupervised = unlabelled_gaussians(views) if config.use_unlabelled_negatives else None
    groups = SubsetGroups.draw(
        splat.positions, config.gaussian_subset, config.spatial_neighbours, config.seed, device, unsupervised
    )
    seconds["precompute"] = time.perf_counter() - started

    count = splat.count
    initial = F.normalize(torch.randn(count, FEATURE_DIM, generator=generator), dim=1)  # drawn on the CPU: seeded alike
    features = torch.nn.Parameter(initial.to(device))
    gradient = torch.zeros_like(features)  # (N, 24), filled in place each step: no fresh 77 MB block a step
    features.grad = gradient
    optimizer = torch.optim.Adam([features], lr=config.learning_rate, fused=True if traits(on).fused_adam else None)
    centers: dict[str, torch.Tensor] = {}

    def as_field(unit_features: torch.Tensor, step: int | None) -> FeatureField:
        """The (N, 24) unit features in file order with the centres found so far; step None: the finished field."""
        in_file_order = np.empty((count, FEATURE_DIM), dtype=np.float16)
        in_file_order[order] = unit_features.cpu().numpy()
        centers_now = {level: c.cpu().numpy() for level, c in centers.items()}
        return FeatureField(in_file_order, fingerprint, asdict(config), mask_source, centers_now, step)

    seconds["clustering"] = 0.0
    loop_started = time.perf_counter()
    losses: dict[str, torch.Tensor] = {}
    for step in range(config.iterations):
        if should_stop():
            raise Cancelled("training was cancelled; nothing was written")
        first = config.gfl_first_iteration
        if config.use_gfl and step >= first and (step - first) % config.gfl_refresh == 0:
            clustering_started = time.perf_counter()
            progress({"phase": "clustering", "iteration": step})
            for level in LEVELS:
                epsilon = config.cluster_epsilon_coarse if level == "coarse" else config.cluster_epsilon_fine
                found = cluster_centers(mask_features(views, features.detach(), level, prior), epsilon, len(views))
                centers[level] = torch.from_numpy(found).to(device)
            seconds["clustering"] += time.perf_counter() - clustering_started

        view = views[int(torch.randint(len(views), (1,), generator=generator))]
        # The unlabelled pixels' share of the step is their share of the drawn pixels (as if drawn uniformly).
        unlabelled = len(view.unlabelled) if config.use_unlabelled_negatives else 0
        negatives = round(config.pixels * unlabelled / max(unlabelled + len(view.labelled), 1))
        positives = config.pixels - negatives  # drawn among the labelled pixels
        if view.odds is not None and len(view.labelled) > positives:
            take = torch.multinomial(view.odds, positives, generator=generator)
        else:
            take = torch.randperm(len(view.labelled), generator=generator)[:positives]
        pixels = view.labelled[take]
        first_negative = len(pixels)
        if negatives:
            pixels = torch.cat([pixels, view.unlabelled[torch.randint(unlabelled, (negatives,), generator=generator)]])
        pixels = pixels.to(device)
        # on the device of the weights: the CPU on MPS, which has no sparse CSR (composite_weights)
        rows, gaussians, weights = (part.to(device) for part in row_fragments(view.weights, pixels))
        fragments = StepFragments.of(rows, gaussians, weights, len(pixels))
        group = int(torch.randint(len(groups.members), (1,), generator=generator))
        subset = groups.members[group]
        # The rows this step reads, as leaves: their gradients land in `gradient` without a scatter over (N, 24).
        drawn = features.detach().index_select(0, fragments.gaussians).requires_grad_()  # (U, 24)
        subset_f = features.detach().index_select(0, subset).requires_grad_()  # (S, 24)
        rendered = fragments.render(drawn)  # (P, 24)
        losses = {}
        total = torch.zeros((), device=on)
        for level in LEVELS:
            level_labels = getattr(view, level)[pixels]
            keep = level_labels >= 0
            if negatives:  # the unlabelled pixels (-1) stay, as negatives only
                keep[first_negative:] = True
            level_rendered = level_features(rendered[keep], level, prior)
            negative_view = None
            if level == "fine" and prior:  # parts of different objects must not push their objects apart
                negative_view = torch.cat([level_rendered[:, :COARSE_DIM].detach(), level_rendered[:, COARSE_DIM:]], 1)
            anchors = None
            if config.negative_anchors < len(level_rendered):
                anchors = torch.randperm(len(level_rendered), generator=generator)[: config.negative_anchors].to(device)
            losses[f"contrastive_{level}"] = contrastive_loss(
                level_rendered, level_labels[keep], config.tau(level), anchors, negative_view
            )
            total = total + losses[f"contrastive_{level}"]

        clustered = [level for level in LEVELS if len(centers.get(level, ())) > 0] if config.use_gfl else []
        if clustered:  # HDBSCAN may find no cluster at a level, or at none
            supervised = groups.supervised[group]
            pulled = subset_f if supervised is None else subset_f[supervised]  # no centre pulls what no mask covers
            if config.gfl_share < 1.0:  # the subset is a random draw: a strided slice of it is one too
                stride = round(1.0 / config.gfl_share)
                pulled = pulled[int(torch.randint(stride, (1,), generator=generator)) :: stride]
            gfl = torch.stack(
                [
                    global_feature_loss(
                        level_features(pulled, level, prior), centers[level], config.tau_global, config.tau(level)
                    )
                    for level in clustered
                ]
            ).sum()
            losses["gfl"] = gfl
            total = total + config.lambda_gfl * gfl
        if config.use_norm3d:
            losses["norm3d"] = norm_loss(subset_f)
            total = total + config.lambda_norm3d * losses["norm3d"]
        if config.use_norm2d:
            losses["norm2d"] = norm_loss(rendered)
            total = total + config.lambda_norm2d * losses["norm2d"]
        if config.use_spatial:
            losses["spatial"] = spatial_loss(subset_f, groups.graphs[group])
            total = total + config.lambda_spatial * losses["spatial"]

        total.backward()
        gradient.zero_()  # dense Adam over every Gaussian, as the method has it; the untouched get a zero gradient
        if drawn.grad is not None:
            gradient.index_copy_(0, fragments.gaussians, drawn.grad)
        if subset_f.grad is not None:  # the subset may share Gaussians with the fragments: added, not copied
            gradient.index_add_(0, subset, subset_f.grad)
        optimizer.step()
        if step % 25 == 0 or step == config.iterations - 1:
            elapsed = time.perf_counter() - loop_started
            progress(
                {
                    "phase": "iterations",
                    "iteration": step + 1,
                    "of": config.iterations,
                    "loss": float(total.detach()),
                    "losses": {name: float(value.detach()) for name, value in losses.items()},
                    "elapsed_s": round(elapsed, 2),
                    "remaining_s": round(elapsed / (step + 1) * (config.iterations - step - 1), 1),
                }
            )
        if checkpoint_every > 0 and (step + 1) % checkpoint_every == 0 and step + 1 < config.iterations:
            checkpoint(as_field(F.normalize(features.detach(), dim=1), step + 1))
    seconds["iterations"] = time.perf_counter() - loop_started - seconds["clustering"]
    final = F.normalize(features.detach(), dim=1)  # unit features: the click compares directions
    if config.use_gfl:
        clustering_started = time.perf_counter()
        for level in LEVELS:
            epsilon = config.cluster_epsilon_coarse if level == "coarse" else config.cluster_epsilon_fine
            found = cluster_centers(mask_features(views, final, level, prior), epsilon, len(views))
            centers[level] = torch.from_numpy(found)
        seconds["clustering"] += time.perf_counter() - clustering_started
    return TrainResult(as_field(final, None), seconds)
