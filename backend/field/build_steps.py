"""Build steps, numpy only: a long build (the click index's grid and groups) cut into steps of tens of ms, so
the add-on can run it on Blender's thread a few steps per timer tick; `finished` runs such steps all at once."""

from __future__ import annotations

from collections.abc import Generator
from typing import TypeVar

import numpy as np

BLOCK = 1 << 18  # Gaussians per build step of a sort or gather (ClickIndex.build): tens of ms
T = TypeVar("T")


def stable_order_steps(keys: np.ndarray, key_count: int) -> Generator[None, None, np.ndarray]:
    """(N,) int32 np.argsort(keys, kind="stable") of keys in [0, key_count), by a counting sort a block a step."""
    counts = np.bincount(keys, minlength=key_count)
    next_slot = np.cumsum(counts) - counts  # (K,) where each key's next Gaussian goes
    order = np.empty(len(keys), np.int32)
    for begin in range(0, len(keys), BLOCK):
        yield
        block = keys[begin : begin + BLOCK]
        local = np.argsort(block, kind="stable")
        sorted_block = block[local]
        block_counts = np.bincount(block, minlength=key_count)
        run_start = np.cumsum(block_counts) - block_counts  # (K,) where each key's run begins in the sorted block
        order[next_slot[sorted_block] + np.arange(len(block)) - run_start[sorted_block]] = begin + local
        next_slot += block_counts
    return order


def gather_steps(source: np.ndarray, ids: np.ndarray) -> Generator[None, None, np.ndarray]:
    """np.take(source, ids, axis=0), a block of rows a step."""
    out = np.empty((len(ids), *source.shape[1:]), source.dtype)
    for begin in range(0, len(ids), BLOCK):
        yield
        np.take(source, ids[begin : begin + BLOCK], axis=0, out=out[begin : begin + BLOCK])
    return out


def finished(steps: Generator[None, None, T]) -> T:
    """What build steps make (CentreGrid.steps, FeatureGroups.steps), run all at once."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value
