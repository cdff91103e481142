"""Steps a user takes in real Blender through the installed add-on: import a splat, click in a known camera,
fill in the training settings, look through a camera in the viewport; and how well a selection matches. bpy and
the add-on come in as arguments (the conftest fixtures): nothing here imports bpy."""

from __future__ import annotations

import numpy as np
from command_line import inner_pixel


def import_splat(bpy, path, **options):
    assert bpy.ops.clickgauss.import_splat(filepath=str(path), **options) == {"FINISHED"}
    return bpy.context.view_layer.objects.active


def click_on(addon, obj, trained_scene, level, name, mode="SET", view=1):
    """Click the pixel deepest inside `name` (an object or a part) in a known camera of the scene."""
    scene, camera = trained_scene["scene"], trained_scene["cameras"][view]
    gt = np.load(trained_scene["folder"] / "gt" / f"view_{view:03d}.npz")
    if level == "coarse":
        index, labels = scene.object_names.index(name), gt["objects"]
    else:
        index, labels = [p.part_name for p in scene.parts].index(name), gt["parts"]
    x, y = inner_pixel(labels, index)
    return addon.click_session.apply_click(obj, camera, x + 0.5, y + 0.5, mode, level)


def selection_quality(addon, obj, truth: np.ndarray):
    selected = addon.feature_store.read_selection(obj)
    return np.mean(truth[selected]), np.mean(selected[truth])  # precision, recall


def training_settings(bpy, trained_scene, iterations):
    settings = bpy.context.scene.clickgauss
    folder = trained_scene["folder"]
    settings.images_dir, settings.cameras_path = str(folder / "images"), str(folder / "sparse" / "0")
    settings.mask_source, settings.mask_dir = "FOLDER", str(folder / "masks")
    settings.iterations, settings.downscale = iterations, 1
    return settings


def opengl_matrices(camera, object_matrix, near=0.1, far=100.0):
    """The view and window (projection) matrices a Blender viewport has when it looks through `camera`."""
    view = np.diag([1.0, -1.0, -1.0, 1.0]) @ camera.world_to_camera @ np.linalg.inv(object_matrix)
    w, h = camera.width, camera.height
    window = np.array(
        [
            [2 * camera.fx / w, 0, 1 - 2 * camera.cx / w, 0],
            [0, 2 * camera.fy / h, 2 * camera.cy / h - 1, 0],
            [0, 0, -(far + near) / (far - near), -2 * far * near / (far - near)],
            [0, 0, -1, 0],
        ]
    )
    return view, window
