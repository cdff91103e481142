"""A click and what it does to a selection, numpy only: it runs inside Blender, where torch never loads.

A click is a camera's image point and a mode; the Gaussians it hits replace, join or leave the selection
(`combine`). The default thresholds live here; the index clicks go through, and `compose`, in click_index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..formats.features import Level

# Picked by the threshold sweep of bench/bench_accuracy.py on its tuning scenes (docs/accuracy.md): the middle
# of the thresholds within 2 mIoU points of the best (coarse 0.525-0.975, fine 0.925-0.975 there).
DEFAULT_THRESHOLDS: dict[Level, float] = {"coarse": 0.75, "fine": 0.95}
Mode = Literal["SET", "ADD", "SUBTRACT"]  # a click replaces the selection, adds to it or takes from it


@dataclass
class Click:
    camera: object  # cameras.Camera
    x: float  # image point, pixel centres at +0.5
    y: float
    mode: Mode = "ADD"


def combine(selection: np.ndarray, hit: np.ndarray, mode: Mode) -> np.ndarray:
    """(N,) or (T, N) bool: `hit` replacing the selection (SET), added to it (ADD) or taken from it (SUBTRACT)."""
    if mode == "SET":
        return hit.copy()
    return selection | hit if mode == "ADD" else selection & ~hit
