"""Point attributes of a point cloud as numpy arrays, read and written whole (Blender's foreach_get / foreach_set)."""

from __future__ import annotations

import numpy as np

ATTRIBUTE_ARRAYS = {  # point attribute type: (numpy type, values per point, the property foreach_get reads)
    "FLOAT": (np.float32, 1, "value"),
    "INT": (np.int32, 1, "value"),
    "BOOLEAN": (bool, 1, "value"),
    "FLOAT2": (np.float32, 2, "vector"),
    "FLOAT_VECTOR": (np.float32, 3, "vector"),
    "FLOAT_COLOR": (np.float32, 4, "color"),
    "BYTE_COLOR": (np.float32, 4, "color"),
    "QUATERNION": (np.float32, 4, "value"),
    "FLOAT4": (np.float32, 4, "vector"),
}


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


def read_array(cloud, name: str) -> np.ndarray:  # (N, values per point) of the attribute's numpy type
    """A point attribute of any type in ATTRIBUTE_ARRAYS, read whole."""
    attribute = cloud.attributes[name]
    dtype, width, key = ATTRIBUTE_ARRAYS[attribute.data_type]
    values = np.empty((len(cloud.points), width), dtype=dtype)
    attribute.data.foreach_get(key, values.ravel())
    return values


def write_array(cloud, name: str, kind: str, values: np.ndarray) -> None:
    """set_attribute for an attribute of type `kind`, with the property its values go to."""
    set_attribute(cloud, name, kind, values, ATTRIBUTE_ARRAYS[kind][2])


def read_positions(cloud) -> np.ndarray:  # (N, 3) float32
    return read_array(cloud, "position")
