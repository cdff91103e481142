"""The features, the training's clusters and the selection as a point cloud's own attributes and properties, so
they follow separate, duplicate, undo and .blend saves. Reads only; writes go through click_cache, which keeps
its caches current with them."""

from __future__ import annotations

import numpy as np

from .backend.formats.features import FEATURE_DIM
from .point_attributes import get_attribute
from .splat_object import HIDDEN_ATTRIBUTE

FEATURE_ATTRIBUTES = tuple(f"cg_feature_{i:02d}" for i in range(FEATURE_DIM))
CENTERS_KEY = "cg_centers_coarse"  # the training's global coarse clusters, for Segment Everything
STEP_KEY = "cg_features_step"  # while training runs: the step of the intermediate field the features are
PRIOR_KEY = "cg_granularity_prior"  # False when the field was trained without it; absent: with it
SELECTION = ".selection"


def has_features(obj) -> bool:
    return obj is not None and obj.type == "POINTCLOUD" and all(n in obj.data.attributes for n in FEATURE_ATTRIBUTES)


def read_features(obj, channels: int = FEATURE_DIM) -> np.ndarray:  # (N, channels) float32: the first `channels`
    count = len(obj.data.points)
    features = np.empty((channels, count), dtype=np.float32)
    for i, name in enumerate(FEATURE_ATTRIBUTES[:channels]):
        obj.data.attributes[name].data.foreach_get("value", features[i])
    return features.T


def read_selection(obj) -> np.ndarray:  # (N,) bool
    return get_attribute(obj.data, SELECTION, bool)


def read_hidden(obj) -> np.ndarray:  # (N,) bool: the hidden Gaussians
    return get_attribute(obj.data, HIDDEN_ATTRIBUTE, bool)


def features_step(obj) -> int | None:
    """The training step of the object's features while a run is still improving them; None when finished."""
    step = obj.data.get(STEP_KEY)
    return None if step is None else int(step)


def granularity_prior(obj) -> bool:
    """Whether the object's field was trained with the granularity prior, so its clicks apply it too."""
    return bool(obj.data.get(PRIOR_KEY, True))
