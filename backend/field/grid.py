"""Neighbourhoods on a grid of Gaussian centres, numpy only: counts and sums over the 27 cells around each one.

No nearest-neighbour search: Blender's Python has no scipy, and a grid answers "how many are near, and what are
they like" for a million centres in a fraction of a second.
"""

from __future__ import annotations

import numpy as np

TYPICAL_NEIGHBOURS = 30  # others in the 27 finest cells around the median Gaussian
_BITS = 21  # cell coordinates packed in one int64


def finest_cell(points: np.ndarray) -> float:
    """The cell size at which the median Gaussian has about TYPICAL_NEIGHBOURS others in its 27 cells.

    Surfaces hold the neighbours, so the count grows with the cell's area: a few corrections from a first
    guess by volume (over the middle 98 % of the centres, so that far floaters do not widen it) settle it.
    """
    low, high = np.quantile(points, [0.01, 0.99], axis=0)
    size = max(float(np.prod(np.maximum(high - low, 1e-9))) ** (1 / 3) / len(points) ** (1 / 3), 1e-9)
    sample = points if len(points) <= 200_000 else points[:: len(points) // 200_000]
    ones = np.ones((len(sample), 1))
    for _ in range(4):
        median = float(np.median(neighbourhood_sums(sample, size, ones)[:, 0] - 1)) * len(points) / len(sample)
        size *= float(np.clip(np.sqrt(TYPICAL_NEIGHBOURS / max(median, 0.5)), 0.25, 4.0))
    return size


def neighbourhood_sums(points: np.ndarray, cell: float, values: np.ndarray) -> np.ndarray:
    """(N, K): for each point, the sum of `values` (N, K) over the points in the 27 cells of size `cell` around
    its own (itself included)."""
    corner = points.min(axis=0)
    limit = (1 << _BITS) - 2
    keys = np.minimum(np.floor((points - corner) / cell), limit).astype(np.int64) + 1  # room for the -1 offset
    packed = (keys[:, 0] << (2 * _BITS)) | (keys[:, 1] << _BITS) | keys[:, 2]
    cells, cell_of = np.unique(packed, return_inverse=True)
    cell_of = cell_of.ravel()
    per_cell = np.stack([np.bincount(cell_of, weights=column, minlength=len(cells)) for column in values.T], axis=1)
    around = np.zeros_like(per_cell)
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            for dz in (-1, 0, 1):
                wanted = cells + ((dx << (2 * _BITS)) + (dy << _BITS) + dz)
                found = np.minimum(np.searchsorted(cells, wanted), len(cells) - 1)
                hit = cells[found] == wanted
                around[hit] += per_cell[found[hit]]
    return around[cell_of]
