"""Training a splat that came without photos, in real Blender: planned views as camera objects, then rendered."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import BACKEND_PYTHON, finished_job_events

from backend.benchmark.synthetic import make_scene
from backend.formats.ply import write_ply
from backend.scene.view_planning import plan_splat_views

pytestmark = pytest.mark.blender


def test_with_no_photos_the_planned_cameras_are_shown_edited_and_rendered_for_training(bpy, addon, tmp_path):
    scene = make_scene(3000, seed=5)
    write_ply(tmp_path / "splat.ply", scene.splat)  # a .ply alone: no photos or cameras beside it
    assert bpy.ops.clickgauss.import_splat(filepath=str(tmp_path / "splat.ply")) == {"FINISHED"}
    obj = bpy.context.view_layer.objects.active
    settings = bpy.context.scene.clickgauss
    settings.images_dir = settings.cameras_path = ""
    settings.view_count, settings.view_size, settings.use_viewport = 8, 96, False
    views = addon.training.rendered_views(bpy.context)  # Train with no cameras in the scene plans them first
    collection = bpy.data.collections[addon.view_cameras.COLLECTION]
    assert len(views) == 8 and len(collection.objects) == 8

    assert bpy.ops.clickgauss.plan_views() == {"FINISHED"}  # planning again replaces them
    cameras = sorted(collection.objects, key=lambda o: o.name)
    assert len(cameras) == 8 and all(o.type == "CAMERA" for o in cameras)
    # The camera objects see what the backend planned (same poses and field of view in the file's frame) ...
    planned = plan_splat_views(scene.splat, 8, 96, up=addon.view_cameras.file_up(obj)).cameras
    for camera, seen in zip(planned, addon.view_cameras.training_views(bpy.context, obj, 96, False)):
        np.testing.assert_allclose(seen.world_to_camera, camera.world_to_camera, atol=1e-4)
        assert seen.fx / seen.width == pytest.approx(camera.fx / camera.width)
    # ... and stand upright in Blender: the image's up (camera +Y) points up (+Z) in the world
    assert all(np.array(o.matrix_world)[2, 1] > 0 for o in cameras)

    bpy.data.objects.remove(cameras[0])  # the person deletes one view and adds a camera of their own
    mine = bpy.data.objects.new("My View", bpy.data.cameras.new("My View"))
    bpy.context.scene.collection.objects.link(mine)
    mine.matrix_world = cameras[1].matrix_world.copy()
    views = addon.training.rendered_views(bpy.context)
    assert len(views) == 8 and sum("My_View" in view.name for view in views) == 1

    prefs = addon.addon_preferences.preferences()
    prefs.python_path = BACKEND_PYTHON
    settings.mask_source, settings.iterations = "FELZENSZWALB", 20
    job = addon.training.TrainingJob(obj, settings, prefs, views)
    events = finished_job_events(job)
    assert job.process.returncode == 0, job.error()
    assert sum(isinstance(e, addon.backend.for_blender.progress.Rendering) for e in events) == 8
    field = job.features()
    addon.click_cache.store_features(obj, field.features, field.centers)
    job.cleanup()
    assert addon.feature_store.has_features(obj)


def test_a_splat_too_flat_to_plan_views_for_is_reported_and_nothing_is_added(bpy, addon, tmp_path):
    scene = make_scene(500, seed=1)
    scene.splat.columns["y"][:] = 0.0  # every Gaussian on one plane
    write_ply(tmp_path / "flat.ply", scene.splat)
    assert bpy.ops.clickgauss.import_splat(filepath=str(tmp_path / "flat.ply")) == {"FINISHED"}
    before = len(bpy.data.objects)
    with pytest.raises(RuntimeError, match="lie in one plane"):
        bpy.ops.clickgauss.plan_views()
    assert len(bpy.data.objects) == before
