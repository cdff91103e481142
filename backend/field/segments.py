"""Segments: each Gaussian labelled with its nearest global cluster of the training, numpy only (it runs inside
Blender). Segment Everything, the Segment IDs columns of an export and `segment --everything` share the labels."""

from __future__ import annotations

import numpy as np

from ..formats.features import Level

UNASSIGNED = -1  # close to no cluster
SEGMENT_COLUMNS: dict[Level, str] = {"coarse": "segment_coarse", "fine": "segment_fine"}  # the export's int columns


def segment_labels(similarity: np.ndarray, threshold: float) -> np.ndarray:
    """(N,) int32 the most similar cluster of each Gaussian from (N, K) cosine similarities, UNASSIGNED where none
    is above `threshold` (or there are no clusters)."""
    if similarity.shape[1] == 0:
        return np.full(len(similarity), UNASSIGNED, np.int32)
    best = similarity.argmax(axis=1)
    return np.where(similarity[np.arange(len(similarity)), best] > threshold, best, UNASSIGNED).astype(np.int32)


def segment_file_names(labels: np.ndarray, ending: str) -> dict[int, str]:
    """label -> the file name each segment present in `labels` is written to (the unassigned ones: 'unassigned')."""
    width = max(2, len(str(int(labels.max(initial=0)))))
    return {
        int(label): ("unassigned" if label == UNASSIGNED else f"segment_{int(label):0{width}d}") + ending
        for label in np.unique(labels)
    }
