"""The highlight overlay in real Blender: the draw handler's drawing, rendered off-screen through a known camera."""

from __future__ import annotations

import numpy as np
import pytest
from blender_session import click_on, opengl_matrices
from scipy.ndimage import binary_dilation

pytestmark = pytest.mark.blender


@pytest.fixture(scope="module")
def gpu_module(blender):
    """The gpu module, usable: background Blender starts its GPU context (EGL) on its first render."""
    import gpu

    if hasattr(gpu, "init"):  # Blender 5.2+: background mode starts the GPU module on request
        gpu.init()
    try:
        gpu.types.GPUOffScreen(4, 4)
        return gpu
    except SystemError:
        pass
    scene = blender.data.scenes.new("start the GPU")
    scene.render.engine, scene.render.resolution_x, scene.render.resolution_y = "BLENDER_WORKBENCH", 4, 4
    scene.camera = blender.data.objects.new("camera", blender.data.cameras.new("camera"))
    scene.collection.objects.link(scene.camera)
    blender.ops.render.render(scene=scene.name)
    camera = scene.camera
    blender.data.scenes.remove(scene)
    blender.data.cameras.remove(camera.data)
    try:
        gpu.types.GPUOffScreen(4, 4)
    except SystemError as error:
        pytest.skip(f"no GPU context in background Blender: {error}")
    return gpu


def draw_highlight(gpu, overlay, obj, camera) -> np.ndarray:
    """(H, W) bool: the pixels in the highlight colour when the overlay draws `obj` as seen by `camera`."""
    from mathutils import Matrix

    view, window = opengl_matrices(camera, np.array(obj.matrix_world))
    offscreen = gpu.types.GPUOffScreen(camera.width, camera.height)
    with offscreen.bind():
        framebuffer = gpu.state.active_framebuffer_get()
        framebuffer.clear(color=(0.0, 0.0, 0.0, 0.0))
        with gpu.matrix.push_pop():
            gpu.matrix.load_matrix(Matrix(view.tolist()))
            gpu.matrix.load_projection_matrix(Matrix(window.tolist()))
            overlay.draw_selection(obj)
        pixels = np.array(framebuffer.read_color(0, 0, camera.width, camera.height, 4, 0, "FLOAT").to_list())
    offscreen.free()
    return np.all(np.abs(pixels - overlay.HIGHLIGHT_COLOR) < 1.5 / 255, axis=2)[::-1]  # rows from the top


def test_the_highlight_draws_the_selected_gaussians_where_they_are_seen(
    splat_with_features, addon, trained_scene, gpu_module
):
    obj, scene, overlay = splat_with_features, trained_scene["scene"], addon.overlay
    camera = trained_scene["cameras"][1]
    assert not draw_highlight(gpu_module, overlay, obj, camera).any()  # nothing selected
    click_on(addon, obj, trained_scene, "coarse", "mug")
    highlight = draw_highlight(gpu_module, overlay, obj, camera)
    gt = np.load(trained_scene["folder"] / "gt" / "view_001.npz")["objects"] == scene.object_names.index("mug")
    near_mug = binary_dilation(gt, iterations=2)  # a point is 3 pixels wide
    assert highlight.sum() > 0.3 * gt.sum() and highlight[near_mug].sum() > 0.97 * highlight.sum()


def test_the_highlight_batch_is_rebuilt_only_when_the_selection_changes(
    splat_with_features, addon, trained_scene, gpu_module
):
    obj, overlay = splat_with_features, addon.overlay
    shader = addon.compat.point_shader()
    click_on(addon, obj, trained_scene, "coarse", "mug")
    batch = overlay.highlight_batch(obj, shader)
    assert batch is not None and overlay.highlight_batch(obj, shader) is batch
    click_on(addon, obj, trained_scene, "coarse", "table", mode="ADD")
    assert overlay.highlight_batch(obj, shader) is not batch
    addon.click_cache.write_selection(obj, np.zeros(len(obj.data.points), bool))
    assert overlay.highlight_batch(obj, shader) is None
