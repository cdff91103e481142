"""Click selection, split, delete and training in real Blender, through the installed add-on's own code path."""

from __future__ import annotations

import shutil
import threading
import time

import numpy as np
import pytest
from blender_session import click_on, opengl_matrices, selection_quality, training_settings
from conftest import BACKEND_PYTHON, finished_job_events

from backend.formats.ply import read_ply

pytestmark = pytest.mark.blender


def drawn_sizes(addon, obj) -> np.ndarray:  # (N,)
    """How visible each Gaussian is drawn: its alpha where Blender draws splats itself, its disc's radius before."""
    if getattr(obj.data, "type", "POINTS") == "GAUSSIAN_SPLAT":
        values = np.empty((len(obj.data.points), 4), np.float32)
        obj.data.attributes["radiance:base"].data.foreach_get("vector", values.ravel())
        return values[:, 3]
    return addon.point_attributes.get_attribute(obj.data, "radius", np.float32)


def test_a_click_selects_the_object_and_the_part_under_it(splat_with_features, addon, trained_scene, bpy):
    obj, scene = splat_with_features, trained_scene["scene"]
    info = click_on(addon, obj, trained_scene, "coarse", "mug")  # right after Load Features: caches still building
    precision, recall = selection_quality(addon, obj, scene.object_ids == scene.object_names.index("mug"))
    assert precision > 0.9 and recall > 0.9 and info["selected"] == addon.feature_store.read_selection(obj).sum()
    first = addon.feature_store.read_selection(obj).copy()
    index = addon.click_cache.state_of(obj).index
    assert bpy.app.timers.is_registered(addon.click_cache.build_indexes)  # background Blender runs no timer: here
    while addon.click_cache.build_indexes() < 0.25:  # a slice a tick, as the timer builds the caches
        pass
    assert index.built and threading.active_count() == 1  # built on Blender's thread: threads beside it crash it
    click_on(addon, obj, trained_scene, "coarse", "mug")  # the same click once they are built
    np.testing.assert_array_equal(addon.feature_store.read_selection(obj), first)
    click_on(addon, obj, trained_scene, "fine", "head")
    precision, recall = selection_quality(
        addon, obj, scene.part_ids == [p.part_name for p in scene.parts].index("head")
    )
    assert precision > 0.9 and recall > 0.9


def test_shift_click_adds_and_ctrl_click_subtracts(splat_with_features, addon, trained_scene):
    obj, scene = splat_with_features, trained_scene["scene"]
    mug, table = (scene.object_ids == scene.object_names.index(n) for n in ("mug", "table"))
    click_on(addon, obj, trained_scene, "coarse", "mug")
    click_on(addon, obj, trained_scene, "coarse", "table", mode="ADD")
    precision, recall = selection_quality(addon, obj, mug | table)
    assert precision > 0.9 and recall > 0.9
    click_on(addon, obj, trained_scene, "coarse", "mug", mode="SUBTRACT")
    precision, recall = selection_quality(addon, obj, table)
    assert precision > 0.9 and recall > 0.9


def test_a_cache_build_that_fails_leaves_the_timer_and_the_clicks_working(splat_with_features, addon, trained_scene):
    """Memory runs out mid-build: the timer stays for the other objects, and clicks take the plain path."""
    obj, scene = splat_with_features, trained_scene["scene"]
    index = addon.click_cache.state_of(obj).index

    def out_of_memory():
        yield
        raise MemoryError

    index._steps = out_of_memory()
    while addon.click_cache.build_indexes() < 0.25:  # the other objects' caches build on
        pass
    assert not index.built
    click_on(addon, obj, trained_scene, "coarse", "mug")
    assert selection_quality(addon, obj, scene.object_ids == scene.object_names.index("mug"))[0] > 0.9


def test_a_click_that_selects_nothing_says_why(splat_with_features, addon, trained_scene):
    obj, camera = splat_with_features, trained_scene["cameras"][1]
    info = click_on(addon, obj, trained_scene, "coarse", "mug")
    assert info["selected"] > 0 and addon.click_session.empty_reason(info) is None
    info = click_on(addon, obj, trained_scene, "coarse", "mug", mode="SUBTRACT")  # takes it all back
    assert info["selected"] == 0 and "Nothing selected" in addon.click_session.empty_reason(info)
    info = addon.click_session.apply_click(obj, camera, 0.5, 0.5)  # the sky in the top left corner
    assert info["selected"] == 0 and "Nothing under the pointer" in addon.click_session.empty_reason(info)


def test_the_threshold_slider_replays_the_clicks_and_esc_restores(splat_with_features, addon, trained_scene):
    obj = splat_with_features
    click_on(addon, obj, trained_scene, "coarse", "mug")
    strict = addon.click_session.reapply(obj, "coarse", 0.999)["selected"]
    loose = addon.click_session.reapply(obj, "coarse", -1.0)["selected"]
    assert strict < addon.click_session.reapply(obj, "coarse", 0.75)["selected"] < loose == len(obj.data.points)
    addon.click_session.end_session(obj, keep=False)
    assert addon.feature_store.read_selection(obj).sum() == 0


def test_split_carries_every_attribute_and_the_counts_add_up(splat_with_features, addon, trained_scene, bpy, tmp_path):
    obj, scene = splat_with_features, trained_scene["scene"]
    click_on(addon, obj, trained_scene, "coarse", "mug")
    chosen = addon.feature_store.read_selection(obj).sum()
    before = len(obj.data.points)
    assert bpy.ops.clickgauss.split() == {"FINISHED"}
    part = bpy.data.objects["splat part"]
    assert len(part.data.points) == chosen and len(obj.data.points) == before - chosen
    names = lambda o: {a.name for a in o.data.attributes if not a.name.startswith(".")}  # noqa: E731
    assert names(part) == names(obj) and addon.feature_store.has_features(part)
    for target, name in ((obj, "rest"), (part, "mug")):
        bpy.context.view_layer.objects.active = target
        bpy.ops.clickgauss.export_splat(filepath=str(tmp_path / f"{name}.ply"))
    rest, mug = read_ply(tmp_path / "rest.ply"), read_ply(tmp_path / "mug.ply")
    assert rest.count + mug.count == scene.splat.count and list(mug.columns) == list(scene.splat.columns)
    assert np.mean(np.isin(mug.positions[:, 0], scene.splat.positions[scene.object_ids == 1, 0])) > 0.9


def test_a_split_part_keeps_its_material_after_the_source_is_deleted_and_the_file_reopened(
    splat_with_features, addon, trained_scene, bpy, tmp_path
):
    """Drawn as it was: with its material where the splat is drawn as discs, as a native splat where Blender has
    them."""
    obj = splat_with_features
    native = addon.compat.HAS_NATIVE_SPLATS
    material = None if native else obj.data.materials[0]
    click_on(addon, obj, trained_scene, "coarse", "mug")
    assert bpy.ops.clickgauss.split() == {"FINISHED"}
    assert native or material.users == 2  # both clouds count: a material with no users is not saved
    material_name = None if native else material.name
    bpy.data.objects.remove(obj)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "scene.blend"))
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "scene.blend"))
    part = bpy.data.objects["splat part"]
    if native:
        assert part.data.type == "GAUSSIAN_SPLAT" and not part.data.materials
    else:
        assert part.data.materials[0].name == material_name


def test_delete_removes_the_selection(splat_with_features, addon, trained_scene, bpy):
    obj = splat_with_features
    click_on(addon, obj, trained_scene, "coarse", "table")
    chosen = addon.feature_store.read_selection(obj).sum()
    before = len(obj.data.points)
    assert bpy.ops.clickgauss.delete() == {"FINISHED"}
    assert len(obj.data.points) == before - chosen and addon.feature_store.read_selection(obj).sum() == 0
    with pytest.raises(RuntimeError, match="nothing is selected"):
        bpy.ops.clickgauss.delete()


def test_segment_everything_makes_one_object_per_cluster(splat_with_features, bpy):
    obj = splat_with_features
    count = len(obj.data.points)
    assert bpy.ops.clickgauss.segment_everything() == {"FINISHED"}
    clouds = [o for o in bpy.data.objects if o.type == "POINTCLOUD"]
    assert len(clouds) >= 4 and sum(len(o.data.points) for o in clouds) == count


def test_features_survive_a_blend_save_and_reload(splat_with_features, addon, trained_scene, bpy, tmp_path):
    obj = splat_with_features
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "scene.blend"))
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "scene.blend"))
    obj = bpy.data.objects["splat"]
    assert addon.feature_store.has_features(obj)
    addon.click_cache.state_of(obj)  # entering click mode: the coarse channels alone are read
    click_on(addon, obj, trained_scene, "coarse", "mug")
    scene = trained_scene["scene"]
    assert selection_quality(addon, obj, scene.object_ids == scene.object_names.index("mug"))[0] > 0.9
    mug = addon.feature_store.read_selection(obj).copy()
    click_on(addon, obj, trained_scene, "fine", "head")  # reads the fine channels first
    head = addon.feature_store.read_selection(obj).copy()
    index = addon.click_cache.state_of(obj).index
    index.wait()
    assert index.built  # the fine level too, once its channels were read
    click_on(addon, obj, trained_scene, "coarse", "mug")  # the same clicks with every cache built
    np.testing.assert_array_equal(addon.feature_store.read_selection(obj), mug)
    click_on(addon, obj, trained_scene, "fine", "head")
    np.testing.assert_array_equal(addon.feature_store.read_selection(obj), head)


def test_features_of_another_splat_are_refused(bpy, addon, trained_scene, tmp_path):
    from backend.benchmark.synthetic import make_scene
    from backend.formats.ply import write_ply

    write_ply(tmp_path / "other.ply", make_scene(6000, seed=9).splat)
    bpy.ops.clickgauss.import_splat(filepath=str(tmp_path / "other.ply"))
    with pytest.raises(RuntimeError, match="belong to another splat"):
        bpy.ops.clickgauss.load_features(filepath=str(trained_scene["folder"] / "features.npz"))
    assert not addon.feature_store.has_features(bpy.context.view_layer.objects.active)


def test_the_viewport_camera_is_the_opencv_camera_of_its_matrices(addon, trained_scene):
    from mathutils import Matrix

    camera = trained_scene["cameras"][2]
    object_matrix = np.array(Matrix.Rotation(-1.5708, 4, "X")) @ np.diag([2.0, 2.0, 2.0, 1.0])
    view, window = opengl_matrices(camera, object_matrix)
    w, h = camera.width, camera.height
    got = addon.viewport.view_camera(w, h, view.tolist(), window.tolist(), object_matrix.tolist())
    np.testing.assert_allclose(got.world_to_camera, camera.world_to_camera, atol=1e-9)
    np.testing.assert_allclose(got.K, camera.K, atol=1e-9)
    # a point seen through Blender's matrices lands on the pixel the OpenCV camera gives it
    point = trained_scene["scene"].splat.positions[100].astype(np.float64)
    clip = window @ view @ object_matrix @ np.append(point, 1.0)
    region_x, region_y = (clip[:2] / clip[3] + 1) / 2 * [w, h]
    pixel, _ = camera.project(point[None])
    np.testing.assert_allclose(addon.viewport.region_pixel(h, region_x - 0.5, region_y - 0.5), pixel[0], atol=1e-6)


def test_hidden_gaussians_are_clicked_through_never_selected_and_exported_unchanged(
    splat_with_features, addon, trained_scene, bpy, tmp_path
):
    obj, scene = splat_with_features, trained_scene["scene"]
    mug = scene.object_ids == scene.object_names.index("mug")
    names = lambda: sorted(a.name for a in obj.data.attributes if not a.name.startswith("."))  # noqa: E731
    attributes, radius = names(), drawn_sizes(addon, obj)
    bpy.ops.object.mode_set(mode="EDIT")  # as in click mode
    click_on(addon, obj, trained_scene, "coarse", "mug")
    chosen = addon.feature_store.read_selection(obj)
    assert bpy.ops.clickgauss.hide() == {"FINISHED"}
    assert not addon.feature_store.read_selection(obj).any()
    assert (drawn_sizes(addon, obj)[chosen] == 0).all() and (drawn_sizes(addon, obj)[~chosen] > 0).all()
    click_on(addon, obj, trained_scene, "coarse", "mug")  # sees what the mug hid, and selects that
    selected = addon.feature_store.read_selection(obj)
    assert selected.any() and not (selected & chosen).any() and np.mean(mug[selected]) < 0.1
    bpy.ops.clickgauss.export_splat(filepath=str(tmp_path / "hidden.ply"))
    assert (tmp_path / "hidden.ply").read_bytes() == (trained_scene["folder"] / "splat.ply").read_bytes()

    addon.click_cache.write_selection(obj, np.zeros(len(obj.data.points), bool))
    assert bpy.ops.clickgauss.reveal() == {"FINISHED"}
    assert (addon.feature_store.read_selection(obj) == chosen).all()  # revealed and selected, as Blender's Reveal does
    np.testing.assert_array_equal(drawn_sizes(addon, obj), radius)
    assert names() == attributes and len(obj.data.points) == scene.splat.count
    click_on(addon, obj, trained_scene, "coarse", "mug")
    assert selection_quality(addon, obj, mug)[0] > 0.9
    bpy.ops.clickgauss.export_splat(filepath=str(tmp_path / "revealed.ply"))
    assert (tmp_path / "revealed.ply").read_bytes() == (trained_scene["folder"] / "splat.ply").read_bytes()

    assert bpy.ops.clickgauss.hide(unselected=True) == {"FINISHED"}  # everything but the mug
    click_on(addon, obj, trained_scene, "coarse", "table", mode="ADD")
    assert (addon.feature_store.read_selection(obj) == chosen).all()
    addon.click_session.reapply(
        obj, "coarse", -1.0
    )  # the slider replays the session: still nothing hidden gets selected
    assert (addon.feature_store.read_selection(obj) == chosen).all()


def test_esc_after_hide_puts_back_the_selection_without_what_was_hidden(splat_with_features, addon, trained_scene, bpy):
    obj = splat_with_features
    addon.click_cache.write_selection(obj, np.ones(len(obj.data.points), bool))  # everything selected before the clicks
    bpy.ops.object.mode_set(mode="EDIT")
    click_on(addon, obj, trained_scene, "coarse", "mug")
    mug = addon.feature_store.read_selection(obj)
    assert bpy.ops.clickgauss.hide() == {"FINISHED"}
    addon.click_session.end_session(obj, keep=False)  # Esc
    assert (addon.feature_store.read_selection(obj) == ~mug).all()


def test_a_click_after_points_moved_projects_them_where_they_are_now(splat_with_features, addon, trained_scene, bpy):
    obj, scene = splat_with_features, trained_scene["scene"]
    camera = trained_scene["cameras"][1]
    mug = scene.object_ids == scene.object_names.index("mug")
    click_on(addon, obj, trained_scene, "coarse", "mug")  # builds the click caches
    bpy.context.view_layer.update()  # the viewport evaluates after every click
    bpy.ops.object.mode_set(mode="EDIT")
    positions = addon.point_attributes.read_positions(obj.data)
    pixels, depths = camera.project(positions[mug])
    rise = np.ptp(pixels[:, 1]) * 1.5 * np.median(depths) / camera.fy  # lift the mug above where it stood
    positions[mug] -= (camera.world_to_camera[1, :3] * rise).astype(np.float32)  # camera y points down
    obj.data.attributes["position"].data.foreach_set("vector", positions.ravel())
    obj.data.update_tag()  # as moving points in edit mode does
    bpy.context.view_layer.update()
    x, y = np.median(camera.project(positions[mug])[0], axis=0)
    addon.click_session.apply_click(obj, camera, x, y)
    precision, recall = selection_quality(addon, obj, mug)
    assert precision > 0.9 and recall > 0.9
    np.testing.assert_array_equal(addon.click_cache.state_of(obj).geometry.positions, positions)
    click_on(addon, obj, trained_scene, "coarse", "mug")  # where the mug stood: now what stood behind it
    assert selection_quality(addon, obj, mug)[0] < 0.1


def test_training_runs_the_backend_process_and_stores_features(bpy, addon, trained_scene):
    bpy.ops.clickgauss.import_splat(filepath=str(trained_scene["folder"] / "splat.ply"))
    obj = bpy.context.view_layer.objects.active
    prefs = addon.addon_preferences.preferences()
    prefs.python_path = BACKEND_PYTHON
    job = addon.training.TrainingJob(obj, training_settings(bpy, trained_scene, 40), prefs)
    events = finished_job_events(job)
    assert job.process.returncode == 0, job.error()
    progress = addon.backend.for_blender.progress  # the add-on's own copy of the backend's classes
    assert isinstance(events[0], progress.Masks) and any(
        isinstance(e, progress.Iterations) and e.iteration == 40 for e in events
    )
    field = job.features()
    addon.click_cache.store_features(obj, field.features, field.centers)
    job.cleanup()
    assert addon.feature_store.has_features(obj)


def test_cancel_leaves_the_object_as_it_was(bpy, addon, trained_scene):
    bpy.ops.clickgauss.import_splat(filepath=str(trained_scene["folder"] / "splat.ply"))
    obj = bpy.context.view_layer.objects.active
    attributes = sorted(a.name for a in obj.data.attributes)
    prefs = addon.addon_preferences.preferences()
    prefs.python_path = BACKEND_PYTHON
    job = addon.training.TrainingJob(obj, training_settings(bpy, trained_scene, 100000), prefs)
    deadline = time.time() + 120
    reached = False
    while not reached and time.time() < deadline:
        reached = any(isinstance(e, addon.backend.for_blender.progress.Iterations) for e in job.events())
        time.sleep(0.1)
    job.cancel()
    assert reached, "the training never reached its iterations: the cancel tested nothing"
    assert job.process.returncode == 143 and not (job.folder / "features.npz").exists()
    job.cleanup()
    assert sorted(a.name for a in obj.data.attributes) == attributes and not addon.feature_store.has_features(obj)


def test_a_missing_or_broken_python_gives_a_clear_message(bpy, addon, trained_scene, tmp_path):
    bpy.ops.clickgauss.import_splat(filepath=str(trained_scene["folder"] / "splat.ply"))
    obj = bpy.context.view_layer.objects.active
    prefs = addon.addon_preferences.preferences()
    settings = training_settings(bpy, trained_scene, 10)
    prefs.python_path = str(tmp_path / "no-python")
    with pytest.raises(addon.backend.errors.UserError, match="no-python does not exist"):
        addon.training.TrainingJob(obj, settings, prefs)
    prefs.python_path = ""
    with pytest.raises(addon.backend.errors.UserError, match="set the backend's Python"):
        addon.training.TrainingJob(obj, settings, prefs)
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named torch' >&2\nexit 1\n")
    broken.chmod(0o755)
    with pytest.raises(addon.backend.errors.UserError, match="failed: ModuleNotFoundError: No module named torch"):
        addon.preferences.check_python(str(broken))
    report = addon.preferences.check_python(BACKEND_PYTHON)
    assert report["torch"] and report["device"] in {"cpu", "cuda", "mps"}  # whatever this machine has
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_features_can_travel_inside_the_exported_ply(splat_with_features, addon, bpy, tmp_path):
    obj = splat_with_features
    features = addon.feature_store.read_features(obj)
    bpy.ops.clickgauss.export_splat(filepath=str(tmp_path / "with.ply"), include_features=True)
    bpy.ops.clickgauss.export_splat(filepath=str(tmp_path / "without.ply"))
    assert len(read_ply(tmp_path / "with.ply").columns) == len(read_ply(tmp_path / "without.ply").columns) + 24
    bpy.ops.clickgauss.import_splat(filepath=str(tmp_path / "with.ply"))
    again = bpy.context.view_layer.objects.active
    assert again != obj and addon.feature_store.has_features(again)
    np.testing.assert_array_equal(addon.feature_store.read_features(again), features)


def test_moving_the_panel_slider_updates_the_selection_live(splat_with_features, addon, trained_scene, bpy):
    obj = splat_with_features
    click_on(addon, obj, trained_scene, "coarse", "mug")
    settings = bpy.context.scene.clickgauss
    settings.threshold_coarse = -1.0  # everything is at least this similar
    assert addon.feature_store.read_selection(obj).all()
    settings.threshold_coarse = 0.725
    assert not addon.feature_store.read_selection(obj).all()


def first_checkpoint(addon, obj, settings):
    """A training job of the add-on's, followed as the Train operator's timer does until its first checkpoint is
    on `obj` (or it ends, or 10 minutes pass)."""
    prefs = addon.addon_preferences.preferences()
    prefs.python_path = BACKEND_PYTHON
    before = addon.feature_store.features_step(obj)
    job = addon.training.TrainingJob(obj, settings, prefs)
    deadline = time.time() + 600
    while addon.feature_store.features_step(obj) == before and job.running and time.time() < deadline:
        job.follow(settings)
        time.sleep(0.05)
    return job


def test_clicks_use_each_checkpoint_while_training_runs_and_cancel_puts_the_features_back(
    splat_with_features, bpy, addon, trained_scene
):
    obj, scene = splat_with_features, trained_scene["scene"]
    loaded = addon.feature_store.read_features(obj).copy()
    settings = training_settings(bpy, trained_scene, 100000)
    settings.checkpoint_every = 40
    job = first_checkpoint(addon, obj, settings)
    try:
        assert addon.feature_store.features_step(obj) == settings.checkpoint_step == 40, job.error()
        assert not np.array_equal(
            addon.feature_store.read_features(obj), loaded
        )  # the checkpoint's, not the loaded ones
        info = click_on(addon, obj, trained_scene, "coarse", "mug")  # the step-40 field is young: it selects, roughly
        mug = scene.object_ids == scene.object_names.index("mug")
        assert (
            info["selected"] > 0 and selection_quality(addon, obj, mug)[0] > 0.5
        )  # mostly mug (21 of them: 0.18 recall)
        coarse = addon.click_cache.state_of(obj).index.level(
            "coarse"
        )  # what the clicks compare with: the checkpoint's field
        np.testing.assert_allclose(
            coarse.features(np.arange(len(mug))),
            addon.backend.field.click_features.unit_features(addon.feature_store.read_features(obj), "coarse"),
            atol=1e-6,
        )
    finally:
        job.cancel()
        restored = job.restore()
        job.cleanup()
    settings.checkpoint_every = 0
    assert restored and addon.feature_store.features_step(obj) is None
    np.testing.assert_array_equal(addon.feature_store.read_features(obj), loaded)


def test_click_mode_maps_each_key_and_click_to_its_action(addon):
    action = addon.click_operators.event_action

    def press(kind, shift=False, ctrl=False, alt=False, inside=True, value="PRESS"):
        return action(kind, value, shift, ctrl, alt, inside)

    assert press("LEFTMOUSE") == ("CLICK", "SET")
    assert press("LEFTMOUSE", shift=True) == ("CLICK", "ADD") and press("LEFTMOUSE", ctrl=True) == ("CLICK", "SUBTRACT")
    assert press("LEFTMOUSE", inside=False) == ("PASS", None)  # the sidebar, the header: Blender's
    assert press("LEFTMOUSE", value="RELEASE") == ("IGNORE", None)
    assert press("RET") == press("NUMPAD_ENTER") == ("KEEP", None)
    assert press("ESC") == press("RIGHTMOUSE") == ("LEAVE", None)
    assert press("L") == press("WHEELUPMOUSE", alt=True) == ("SWITCH_LEVEL", None)
    assert press("WHEELUPMOUSE") == ("PASS", None)  # zoom stays Blender's
    assert press("EQUAL") == press("NUMPAD_PLUS") == ("THRESHOLD", 0.01)
    assert press("MINUS") == press("NUMPAD_MINUS") == ("THRESHOLD", -0.01)
    assert press("MIDDLEMOUSE") == press("MOUSEMOVE") == ("PASS", None)  # orbit, pan, hover
    assert press("A") == ("IGNORE", None)  # Blender's select-all would undo the click selection


def test_with_geometric_masks_clicks_work_on_the_lifted_field_before_any_training_step(bpy, addon, trained_scene):
    """Train's first field is the splat's 3D groups: the mug is clickable before a step is taken."""
    bpy.ops.clickgauss.import_splat(filepath=str(trained_scene["folder"] / "splat.ply"))
    obj, scene = bpy.context.view_layer.objects.active, trained_scene["scene"]
    settings = training_settings(bpy, trained_scene, 100000)
    settings.mask_source, settings.checkpoint_every = "GEOMETRIC", 50
    job = first_checkpoint(addon, obj, settings)
    try:
        assert addon.feature_store.features_step(obj) == settings.checkpoint_step == 0, job.error()
        assert addon.feature_store.field_name(settings.checkpoint_step) == "lifted, no training yet"
        click_on(addon, obj, trained_scene, "coarse", "mug")
        precision, recall = selection_quality(addon, obj, scene.object_ids == scene.object_names.index("mug"))
        assert precision > 0.9 and recall > 0.9
    finally:
        job.cancel()
        job.restore()
        job.cleanup()
    settings.checkpoint_every, settings.mask_source = 0, "FOLDER"
    assert not addon.feature_store.has_features(obj)  # a cancel puts the object back as it was


def test_with_geometric_masks_and_automatic_steps_train_ends_with_the_lifted_field(bpy, addon, trained_scene):
    """Iterations 0 (automatic) with the geometric masks: no step is taken, the 3D groups' field is the final one."""
    bpy.ops.clickgauss.import_splat(filepath=str(trained_scene["folder"] / "splat.ply"))
    obj, scene = bpy.context.view_layer.objects.active, trained_scene["scene"]
    settings = training_settings(bpy, trained_scene, 0)
    settings.mask_source = "GEOMETRIC"
    prefs = addon.addon_preferences.preferences()
    prefs.python_path = BACKEND_PYTHON
    job = addon.training.TrainingJob(obj, settings, prefs)
    try:
        events = finished_job_events(job)
        assert job.process.returncode == 0, job.error()
        progress = addon.backend.for_blender.progress
        assert not any(isinstance(e, (progress.Precompute, progress.Iterations)) for e in events)
        field = job.features()
        assert field.step is None and field.config["lifted"]
        addon.click_cache.store_features(obj, field.features, field.centers)
    finally:
        job.cleanup()
    settings.mask_source = "FOLDER"
    assert addon.feature_store.field_name(addon.feature_store.features_step(obj)) == "final"
    click_on(addon, obj, trained_scene, "coarse", "mug")
    precision, recall = selection_quality(addon, obj, scene.object_ids == scene.object_names.index("mug"))
    assert precision > 0.9 and recall > 0.9
