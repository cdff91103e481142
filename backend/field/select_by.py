"""Selections by what the Gaussians are rather than by a click, numpy only (they run inside Blender): a range of
opacity, size or colour, and a selection grown to the touching Gaussians that agree with it, or shrunk by its
boundary. "Touching" is the 27 cells around a Gaussian on the grid where a surface Gaussian has about 30
neighbours (`grid.finest_cell`)."""

from __future__ import annotations

from typing import Literal

import numpy as np

from .grid import finest_cell, neighbourhood_sums

Attribute = Literal["OPACITY", "SIZE", "COLOR"]
ATTRIBUTES: dict[Attribute, str] = {
    "OPACITY": "opacity, from 0 (transparent) to 1",
    "SIZE": "the largest of the three standard deviations, in the splat's units",
    "COLOR": "the distance of the base colour (RGB in 0-1) from a colour",
}


def attribute_values(
    attribute: Attribute,
    scales: np.ndarray,  # (N, 3) standard deviations
    alphas: np.ndarray,  # (N,) in [0, 1]
    colors: np.ndarray | None = None,  # (N, 3) base colours in [0, 1], for COLOR
    reference: np.ndarray | None = None,  # (3,) the colour COLOR measures from
) -> np.ndarray:
    """(N,) float32 each Gaussian's value of `attribute` (see ATTRIBUTES)."""
    if attribute == "OPACITY":
        return alphas.astype(np.float32)
    if attribute == "SIZE":
        return scales.max(axis=1).astype(np.float32)
    if colors is None or reference is None:
        raise ValueError("COLOR needs the colours and a reference colour")
    return np.linalg.norm(colors - np.asarray(reference, np.float32), axis=1).astype(np.float32)


def in_range(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """(N,) bool the values within [low, high], both ends included."""
    return (values >= low) & (values <= high)


def touching(positions: np.ndarray, members: np.ndarray, cell: float | None = None) -> np.ndarray:
    """(N,) how many of `members` ((N,) bool) lie in the 27 cells around each Gaussian (itself included)."""
    cell = finest_cell(positions) if cell is None else cell
    return neighbourhood_sums(positions, cell, members.astype(np.float64)[:, None])[:, 0]


def grow(positions: np.ndarray, selection: np.ndarray, agree: np.ndarray | None = None, cell=None) -> np.ndarray:
    """(N,) bool the selection and the Gaussians touching it where `agree` ((N,) bool; None: all agree)."""
    grown = selection | (touching(positions, selection, cell) > 0)
    return grown if agree is None else selection | (grown & agree)


def shrink(positions: np.ndarray, selection: np.ndarray, cell=None) -> np.ndarray:
    """(N,) bool the selection less its boundary: the selected Gaussians that touch an unselected one."""
    return selection & (touching(positions, ~selection, cell) == 0)
