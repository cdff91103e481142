"""Floaters: the Gaussians that belong to no surface, numpy only (it runs inside Blender, where torch never loads).

Each Gaussian gets a score in [0, 1] once (`floater_scores`, seconds at 1M Gaussians); a strength then takes those
scoring at least 1 - strength, so a slider that changes the strength is one comparison (`floaters`).

A surface tiled by Gaussians of one size holds about the same number of them in a cell a quarter of their reach
wide, whatever the size: a sparse background of large Gaussians counts as many as the dense object. So each
Gaussian is counted in the 27 cells around it on the grid as wide as a quarter of its own 3-sigma reach (grids
h, 2h, 4h, ...: no nearest-neighbour search, there is no scipy in Blender's Python), and is isolated where it
has far fewer than the Gaussians around it (or, with too few around it to tell, than the splat's median), or
hopelessly fewer than the median. A faint Gaussian far larger than its neighbours' reach is a floater too (a
large opaque one is a wall), and so is a faint round blob: Gaussians on a surface flatten onto it (on the real
captures the median smallest scale is 3-5 % of the largest). Half faint (opacity 0.27) is faint enough for both:
a floater lying on a surface is not isolated, and its roundness is all that tells it. Faintness alone takes
nothing: real captures are full of faint surface Gaussians.
"""

from __future__ import annotations

import numpy as np

from .grid import finest_cell, neighbourhood_sums

DEFAULT_STRENGTH = 0.5
ISOLATED = (3.0, 30.0)  # fewer neighbours than those around it by this factor: from not at all to wholly isolated
DESERTED = (10.0, 50.0)  # fewer neighbours than the splat's median by this factor, whatever is around it
LARGER = (2.0, 8.0)  # its reach over its neighbours' (geometric) mean: from not at all to wholly oversized
ROUND = (0.2, 0.5)  # smallest scale over largest: from flat (a piece of a surface) to a round blob
FAINT = (0.5, 0.05)  # opacity: from not faint at all to wholly faint, straight between
FAINT_WEIGHT = 0.35  # an opaque Gaussian's score is its isolation less this share
AROUND = 30  # Gaussians in the cells four times wider that tell what count to expect there
SCALES = 8  # grids h .. 128 h


def floater_scores(positions: np.ndarray, scales: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """(N,) float32 in [0, 1]: how much each Gaussian looks like a floater (1 for a non-finite one).

    positions (N, 3), scales (N, 3) standard deviations (not the file's logarithms), alphas (N,) in [0, 1].
    """
    scores = np.ones(len(positions), np.float32)
    finite = np.isfinite(positions).all(axis=1) & np.isfinite(scales).all(axis=1) & np.isfinite(alphas)
    if finite.sum() < 2:
        return np.where(finite, 0, scores).astype(np.float32)
    points = positions[finite].astype(np.float64)
    log_reach = np.log(3 * np.clip(scales[finite].astype(np.float64).max(axis=1), 1e-30, 1e30))  # (M,)
    finest = finest_cell(points)
    steps = np.clip((log_reach - np.log(finest)) / np.log(2) - 2, 0, SCALES - 1)  # grids to a quarter of its reach
    level = np.ceil(steps)  # the grid it is counted on: cells a quarter to half its reach, or the finest
    ones = np.ones(len(points))
    neighbours, their_reach = np.zeros(len(points)), log_reach.copy()  # (M,) others in its 27 cells; their mean
    for scale in np.unique(level):
        judged = level == scale
        sums = neighbourhood_sums(points, finest * 2.0**scale, np.stack([ones, log_reach], axis=1))[judged]
        neighbours[judged] = sums[:, 0] - 1
        theirs = (sums[:, 1] - log_reach[judged]) / np.maximum(sums[:, 0] - 1, 1)
        their_reach[judged] = np.where(sums[:, 0] > 1, theirs, log_reach[judged])
    count = np.log(neighbours + 0.5) + 2 * np.log(2) * (steps - level)  # as if on a grid of exactly a quarter
    median = np.median(count)
    expected = np.full(len(points), median)
    for scale in np.unique(level):
        judged = level == scale
        sums = neighbourhood_sums(points, finest * 2.0 ** (scale + 2), np.stack([ones, count], axis=1))[judged]
        local = (sums[:, 1] - count[judged]) / np.maximum(sums[:, 0] - 1, 1)
        expected[judged] = np.where(sums[:, 0] - 1 >= AROUND, local, median)
    isolated = np.maximum(ramp(expected - count, ISOLATED), ramp(median - count, DESERTED))
    faint = np.clip((alphas[finite].astype(np.float64) - FAINT[0]) / (FAINT[1] - FAINT[0]), 0, 1)
    half_faint = np.clip(2 * faint, 0, 1)
    oversized = ramp(log_reach - their_reach, LARGER) * half_faint
    ordered = np.sort(scales[finite].astype(np.float64), axis=1)  # (M, 3) smallest first
    with np.errstate(divide="ignore"):  # a flat Gaussian's 0: log -inf, no blob at all
        flatness = np.log(ordered[:, 0] / np.maximum(ordered[:, 2], 1e-30))
    blob = ramp(flatness, ROUND) * half_faint
    scores[finite] = np.maximum.reduce([isolated, oversized, blob]) * (1 - FAINT_WEIGHT + FAINT_WEIGHT * faint)
    return scores


def ramp(log_values: np.ndarray, span: tuple[float, float]) -> np.ndarray:
    """0 where the values (given as their logarithms) are span[0], 1 at span[1], straight between on a log scale,
    clipped."""
    low, high = np.log(span[0]), np.log(span[1])
    return np.clip((log_values - low) / (high - low), 0, 1)


def floaters(scores: np.ndarray, strength: float = DEFAULT_STRENGTH) -> np.ndarray:
    """(N,) bool: the Gaussians a strength in [0, 1] takes (0 takes none, 1 every one)."""
    if strength <= 0:
        return np.zeros(len(scores), bool)
    return scores >= 1 - strength
