"""A 3D viewport region as the backend's OpenCV camera, and a mouse position as an image point."""

from __future__ import annotations

import numpy as np

from .backend.for_blender import OPENGL_TO_OPENCV, Camera, UserError


def view_camera(width: int, height: int, view_matrix, window_matrix, object_matrix) -> Camera:
    """The OpenCV camera of a 3D viewport region, in the object's own (file) coordinates.

    view_matrix, window_matrix: the region's RegionView3D matrices; object_matrix: matrix_world.
    """
    projection = np.array(window_matrix, dtype=np.float64)
    if abs(projection[3, 3]) > 1e-9:
        raise UserError("clicking needs a perspective view: press Numpad 5 to leave the orthographic view")
    world_to_camera = (
        OPENGL_TO_OPENCV @ np.array(view_matrix, dtype=np.float64) @ np.array(object_matrix, dtype=np.float64)
    )
    fx, fy = width / 2 * projection[0, 0], height / 2 * projection[1, 1]
    cx, cy = width / 2 * (1 - projection[0, 2]), height / 2 * (1 + projection[1, 2])
    return Camera("viewport", width, height, fx, fy, cx, cy, world_to_camera)


def region_pixel(height: int, mouse_x: int, mouse_y: int) -> tuple[float, float]:
    """A mouse position in a region (origin bottom left) as an OpenCV image point (origin top left, centres at +0.5)."""
    return mouse_x + 0.5, height - mouse_y - 0.5
