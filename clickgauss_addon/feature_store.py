"""The features, the training's clusters and the selection as a point cloud's own attributes and properties, so
they follow separate, duplicate, undo and .blend saves. Reads only; writes go through click_cache, which keeps
its caches current with them."""

from __future__ import annotations

import json

import numpy as np

from .backend.for_blender import FEATURE_DIM, LEVEL_DIMS, Level
from .point_attributes import get_attribute
from .splat_object import HIDDEN_ATTRIBUTE

FEATURE_ATTRIBUTES = tuple(f"cg_feature_{i:02d}" for i in range(FEATURE_DIM))
# the training's global clusters per level (unit centres as JSON), for Segment Everything and Segment IDs
CENTERS_KEYS: dict[Level, str] = {"coarse": "cg_centers_coarse", "fine": "cg_centers_fine"}
STEP_KEY = "cg_features_step"  # while training runs: the step of the intermediate field the features are
PRIOR_KEY = "cg_granularity_prior"  # False when the field was trained without it; absent: with it
SELECTION = ".selection"


def has_features(obj) -> bool:
    return obj is not None and obj.type == "POINTCLOUD" and all(n in obj.data.attributes for n in FEATURE_ATTRIBUTES)


def read_features(obj, channels: range = range(FEATURE_DIM), into: np.ndarray | None = None) -> np.ndarray:
    """(N, 24) float32 the features, a transposed view of (24, N): each attribute read whole into its own row.

    Only `channels` are read, into `into` (24, N) where given (its other rows left as they are). Each
    read costs Blender a copy of the attribute once the depsgraph has evaluated it (it then shares the
    array with the evaluated object): reading fewer is the only way to make it cheaper.
    """
    features = np.empty((FEATURE_DIM, len(obj.data.points)), np.float32) if into is None else into
    for i in channels:
        obj.data.attributes[FEATURE_ATTRIBUTES[i]].data.foreach_get("value", features[i])
    return features.T


def read_selection(obj) -> np.ndarray:  # (N,) bool
    return get_attribute(obj.data, SELECTION, bool)


def read_hidden(obj) -> np.ndarray:  # (N,) bool: the hidden Gaussians
    return get_attribute(obj.data, HIDDEN_ATTRIBUTE, bool)


def features_step(obj) -> int | None:
    """The training step of the object's features while a run is still improving them; None when finished."""
    step = obj.data.get(STEP_KEY)
    return None if step is None else int(step)


def field_name(step: int | None) -> str:
    """What the panel and the click header call a field by its step: step 0 is the field lifted from the splat's
    3D groups before any training, which clicks use within seconds of Train."""
    if step is None:
        return "final"
    return "lifted, no training yet" if step == 0 else f"step {step} (training)"


def granularity_prior(obj) -> bool:
    """Whether the object's field was trained with the granularity prior, so its clicks apply it too."""
    return bool(obj.data.get(PRIOR_KEY, True))


def read_centers(obj, level: Level) -> np.ndarray:
    """(K, D) float32 the training's global cluster centres at `level`; (0, D) where it left none."""
    centers = np.array(json.loads(obj.data.get(CENTERS_KEYS[level], "[]")), dtype=np.float32)
    return centers.reshape(-1, LEVEL_DIMS[level])
