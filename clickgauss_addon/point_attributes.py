"""Point attributes of a point cloud as numpy arrays, read and written whole (Blender's foreach_get / foreach_set)."""

from __future__ import annotations

import numpy as np


def set_attribute(data, name: str, kind: str, values: np.ndarray, key: str = "value"):
    """Write a point attribute, made first where it does not exist yet."""
    attribute = data.attributes.get(name) or data.attributes.new(name, kind, "POINT")
    attribute.data.foreach_set(key, np.ascontiguousarray(values).ravel())


def get_attribute(cloud, name: str, dtype) -> np.ndarray:
    """(N,) values of a point attribute; zeros (False) where it does not exist."""
    if name not in cloud.attributes:
        return np.zeros(len(cloud.points), dtype=dtype)
    values = np.empty(len(cloud.points), dtype=dtype)
    cloud.attributes[name].data.foreach_get("value", values)
    return values


def read_positions(cloud) -> np.ndarray:  # (N, 3) float32
    positions = np.empty((len(cloud.points), 3), dtype=np.float32)
    cloud.attributes["position"].data.foreach_get("vector", positions.ravel())
    return positions
