"""A feature field lifted from the splat's 3D groups, with no training: clickable the moment the groups exist.

The geometric masks are the groups (`geometric_masks.gaussian_groups`) drawn into every view; training then
learns features that tell those masks apart. The groups themselves already are such a field: each object one
direction in the coarse channels, each part one in the fine channels. A click renders the features under its
pixel and selects the Gaussians alike, so on this field it takes the group under the click, as the trained
field will. With no steps asked for it is the run's final field (training on its own masks only redrew it: measured
in docs/geometric_masks.md); steps asked for start from it and replace it with each checkpoint.
"""

from __future__ import annotations

import numpy as np

from ..formats.features import COARSE_DIM, FEATURE_DIM, FeatureField

CANDIDATES = 64  # random directions weighed for each group: the one farthest from those taken is kept


def spread_directions(count: int, dim: int, seed: int = 0) -> np.ndarray:  # (count, dim) float32 unit
    """`count` unit directions as far apart as a greedy pick makes them (the largest similarity between two stays
    well under the click thresholds for the few hundred groups a scene has, where random ones collide)."""
    rng = np.random.default_rng(seed)
    taken = np.zeros((count, dim), np.float64)
    for index in range(count):
        candidates = rng.normal(size=(CANDIDATES, dim))
        candidates /= np.linalg.norm(candidates, axis=1, keepdims=True)
        if index:
            closest = (candidates @ taken[:index].T).max(axis=1)  # (CANDIDATES,) each one's nearest taken
            candidates = candidates[[int(np.argmin(closest))]]
        taken[index] = candidates[0]
    return taken.astype(np.float32)


def lifted_field(
    coarse: np.ndarray, fine: np.ndarray, fingerprint: str, mask_source: str, step: int | None = 0
) -> FeatureField:
    """The field of groups: `coarse`, `fine` (N,) int group ids per Gaussian (-1: in none, zero features there,
    which no click selects). Its step is 0 while training may follow, None when it is the run's final field; its
    coarse centres are the objects' directions, for Segment Everything."""
    features = np.zeros((len(coarse), FEATURE_DIM), np.float32)
    objects = spread_directions(int(coarse.max()) + 1, COARSE_DIM, seed=1)
    parts = spread_directions(int(fine.max()) + 1, FEATURE_DIM - COARSE_DIM, seed=2)
    grouped = coarse >= 0
    features[grouped, :COARSE_DIM] = objects[coarse[grouped]]
    in_part = fine >= 0
    features[in_part, COARSE_DIM:] = parts[fine[in_part]]
    config = {"lifted": True, "use_granularity_prior": True}
    return FeatureField(features.astype(np.float16), fingerprint, config, mask_source, {"coarse": objects}, step)
