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
from ..progress import Clustering, Iterations, Precompute, Progress
from ..ranges import SETTINGS
from .clustering import global_centers
from .losses import contrastive_loss, global_feature_loss, level_features, norm_loss, spatial_loss
from .render import row_fragments
from .sampling import StepFragments, SubsetGroups
from .view_weights import ViewWeights, precompute_views, unlabelled_gaussians, view_weights

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


def train_features(
    splat: Splat,
    cameras,  # list[Camera], at the resolution of the label maps
    labels,  # list of (coarse (H, W), fine (H, W)) int32 label maps, one per camera
    config: TrainConfig = TrainConfig(),
    mask_source: str = "",
    device: str = "cpu",
    progress: Progress = lambda event: None,  # called with an event (backend/progress.py) per update
    should_stop=lambda: False,  # polled every step; True cancels without a result
    checkpoint_every: int = 0,  # steps between intermediate fields; 0: none
    checkpoint=lambda field: None,  # called with the FeatureField after every `checkpoint_every` steps (field.step)
    precomputed: ViewWeights | None = None,  # the views' weights (`view_weights` of these cameras), if computed already
    initial: np.ndarray | None = None,  # (N, 24) features to start from in file order (a lifted field); zero rows drawn
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

    progress(Precompute(views=len(cameras)))
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
    start = F.normalize(torch.randn(count, FEATURE_DIM, generator=generator), dim=1)  # drawn on the CPU: seeded alike
    if initial is not None:  # warm: the given rows where they have a direction, random ones where they have none
        given = torch.from_numpy(np.asarray(initial, np.float32)[order])
        norms = given.norm(dim=1, keepdim=True)
        start = torch.where(norms > 0, given / norms.clamp_min(1e-12), start)
    features = torch.nn.Parameter(start.to(device))
    gradient = torch.zeros_like(features)  # (N, 24), filled in place each step: no fresh 77 MB block a step
    features.grad = gradient
    optimizer = torch.optim.Adam([features], lr=config.learning_rate, fused=True if traits(on).fused_adam else None)
    centers: dict[str, torch.Tensor] = {}
    epsilons = {"coarse": config.cluster_epsilon_coarse, "fine": config.cluster_epsilon_fine}  # by level

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
            progress(Clustering(iteration=step))
            centers.update(global_centers(views, features.detach(), prior, epsilons, device))
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
                Iterations(
                    iteration=step + 1,
                    of=config.iterations,
                    loss=float(total.detach()),
                    losses={name: float(value.detach()) for name, value in losses.items()},
                    elapsed_s=round(elapsed, 2),
                    remaining_s=round(elapsed / (step + 1) * (config.iterations - step - 1), 1),
                )
            )
        if checkpoint_every > 0 and (step + 1) % checkpoint_every == 0 and step + 1 < config.iterations:
            checkpoint(as_field(F.normalize(features.detach(), dim=1), step + 1))
    seconds["iterations"] = time.perf_counter() - loop_started - seconds["clustering"]
    final = F.normalize(features.detach(), dim=1)  # unit features: the click compares directions
    if config.use_gfl:
        clustering_started = time.perf_counter()
        centers.update(global_centers(views, final, prior, epsilons))
        seconds["clustering"] += time.perf_counter() - clustering_started
    return TrainResult(as_field(final, None), seconds)
