"""The selected Gaussians of the splat in edit mode (click mode too), drawn over the viewport in a highlight colour.

Each selected Gaussian's centre is drawn on top of the splat in every shading mode, without a
depth test: a centre lies inside its own disc, so a depth test would hide every one. The batch is built
once per change of the selection or the points, as click_cache's generation counter tells, never from
per-frame reads.
"""

from __future__ import annotations

import bpy
import gpu
from gpu_extras.batch import batch_for_shader

from . import click_cache, feature_store
from .compat import point_shader, shows_point_selection
from .point_attributes import read_positions
from .splat_object import is_splat

HIGHLIGHT_COLOR = (1.0, 0.55, 0.0, 1.0)  # Blender's selection orange
POINT_SIZE = 3.0

_cached: tuple = ()  # (point cloud session_uid, generation, batch or None): one splat is edited at a time
_handle = None


def highlight_batch(obj, shader):
    """A point batch of `obj`'s selected Gaussians in object space, or None when none is selected."""
    global _cached
    key = (obj.data.session_uid, click_cache.generation(obj))
    if _cached[:2] != key:
        positions = click_cache.cached_positions(obj)  # after a click the engine has them: no 12 MB read per 1M
        if positions is None:
            positions = read_positions(obj.data)
        positions = positions[feature_store.read_selection(obj)]
        _cached = (*key, batch_for_shader(shader, "POINTS", {"pos": positions}) if len(positions) else None)
    return _cached[2]


def draw_selection(obj) -> None:
    """Draw `obj`'s selected Gaussians into the bound framebuffer, through its current view and projection."""
    shader = point_shader()
    batch = highlight_batch(obj, shader)
    if batch is None:
        return
    depth_test = gpu.state.depth_test_get()
    gpu.state.depth_test_set("NONE")
    gpu.state.point_size_set(POINT_SIZE)
    with gpu.matrix.push_pop():
        gpu.matrix.multiply_matrix(obj.matrix_world)
        shader.uniform_float("color", HIGHLIGHT_COLOR)
        batch.draw(shader)
    gpu.state.point_size_set(1.0)
    gpu.state.depth_test_set(depth_test)


def draw_handler() -> None:
    obj = bpy.context.active_object
    if is_splat(obj) and shows_point_selection(obj):
        draw_selection(obj)


def register() -> None:
    global _handle
    _handle = bpy.types.SpaceView3D.draw_handler_add(draw_handler, (), "WINDOW", "POST_VIEW")


def unregister() -> None:
    global _handle, _cached
    bpy.types.SpaceView3D.draw_handler_remove(_handle, "WINDOW")
    _handle, _cached = None, ()
