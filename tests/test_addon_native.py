"""Blender's own Gaussian splats (5.3 on): our import is one, Blender's import is ours to work on, and both
draw, edit and export as the file says. Skipped in Blender versions without native splats."""

from __future__ import annotations

import numpy as np
import pytest
from blender_session import click_on, selection_quality, training_settings
from conftest import BACKEND_PYTHON, finished_job_events, shared_file
from splat_checks import assert_same_splat
from splat_files import random_splat

from backend.formats import read_splat, write_splat
from backend.formats.ply import read_ply, write_ply

pytestmark = pytest.mark.blender


@pytest.fixture(autouse=True)
def native(bpy, addon):
    if not addon.compat.HAS_NATIVE_SPLATS:
        pytest.skip(f"Blender {bpy.app.version_string} draws no native Gaussian splats")


def blenders_import(bpy, path):
    """The object Blender's own File > Import > PLY makes of `path`."""
    assert bpy.ops.wm.ply_import(filepath=str(path)) == {"FINISHED"}
    obj = bpy.context.selected_objects[0]
    bpy.context.view_layer.objects.active = obj
    return obj


def ours(bpy, path, **options):
    assert bpy.ops.clickgauss.import_splat(filepath=str(path), **options) == {"FINISHED"}
    return bpy.context.view_layer.objects.active


def native_values(obj) -> dict[str, np.ndarray]:
    """Every attribute Blender draws a native splat from, as (N, width) arrays."""
    attributes = obj.data.attributes
    names = [
        a.name for a in attributes if a.name in ("position", "scale", "rotation") or a.name.startswith("radiance:")
    ]
    values = {}
    for name in names:
        attribute = attributes[name]
        width = {"FLOAT_VECTOR": 3, "FLOAT4": 4, "QUATERNION": 4}[attribute.data_type]
        array = np.empty(len(obj.data.points) * width, np.float32)
        attribute.data.foreach_get("value" if attribute.data_type == "QUATERNION" else "vector", array)
        values[name] = array.reshape(-1, width)
    return values


def sh3_file(tmp_path, count=3000, seed=0):
    splat = random_splat(count, 3, seed)
    splat.columns["confidence"] = np.linspace(0, 1, count, dtype=np.float32)  # a column no splat viewer knows
    write_ply(tmp_path / "sh3.ply", splat)
    return tmp_path / "sh3.ply"


@pytest.mark.parametrize("source", ["sh3", "data/splats/guitar.ply"])
def test_our_import_is_the_native_splat_blenders_own_import_makes(bpy, tmp_path, source):
    path = sh3_file(tmp_path) if source == "sh3" else shared_file(source)
    theirs = native_values(blenders_import(bpy, path))
    obj = ours(bpy, path, axis_forward="Y", axis_up="Z")  # Blender's importer keeps the file's axes
    assert obj.data.type == "GAUSSIAN_SPLAT"
    mine = native_values(obj)
    assert sorted(mine) == sorted(theirs)
    for name in mine:
        exact = name == "position" or name.startswith("radiance:sh_")
        tolerance = 0 if exact else 3e-7
        np.testing.assert_allclose(mine[name], theirs[name], rtol=tolerance, atol=tolerance, err_msg=name)
    np.testing.assert_array_equal(mine["radiance:base"][:, :3], theirs["radiance:base"][:, :3])
    assert "radius" not in obj.data.attributes and not obj.data.materials  # nothing of ours draws a second copy


def test_cycles_draws_our_import_as_it_draws_blenders_own(bpy, tmp_path):
    """The same pixels but where one float32 step of C's expf (Blender's exp) moves a path: far closer than Blender's
    own import rendered with another noise seed."""
    path = sh3_file(tmp_path, count=2000)
    pictures = []
    for make, seed in (
        (lambda: blenders_import(bpy, path), 0),
        (lambda: ours(bpy, path, axis_forward="Y", axis_up="Z"), 0),
        (lambda: blenders_import(bpy, path), 1),
    ):
        for obj in list(bpy.data.objects):
            bpy.data.objects.remove(obj)
        make()
        pictures.append(render(bpy, tmp_path / f"{len(pictures)}.png", seed))
    theirs, mine, reseeded = pictures
    assert theirs.std() > 0.05  # the splat is in the picture
    assert np.mean(np.abs(mine - theirs) > 2 / 255) < 0.01
    assert np.abs(mine - theirs).mean() * 20 < np.abs(reseeded - theirs).mean()


def render(bpy, path, seed=0) -> np.ndarray:  # (H, W, 4) in [0, 1]
    """A small Cycles render on the CPU from a camera in front of the random splat (spread about 3 around 0)."""
    from mathutils import Euler

    scene = bpy.context.scene
    camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    scene.collection.objects.link(camera)
    camera.location, camera.rotation_euler = (0.0, -14.0, 0.0), Euler((np.pi / 2, 0.0, 0.0))
    scene.camera = camera
    scene.render.engine = "CYCLES"
    scene.cycles.device, scene.cycles.seed, scene.cycles.samples = "CPU", seed, 4
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 96, 72, 100
    scene.render.film_transparent, scene.render.filepath = True, str(path)
    bpy.ops.render.render(write_still=True)
    image = bpy.data.images.load(str(path))
    pixels = np.array(image.pixels[:], np.float32).reshape(72, 96, 4)
    bpy.data.images.remove(image)
    bpy.data.objects.remove(camera)
    return pixels


@pytest.mark.parametrize("ending", [".ply", ".compressed.ply", ".spz", ".splat"])
def test_a_splat_blender_imported_exports_what_blender_read(bpy, tmp_path, ending):
    path = sh3_file(tmp_path)
    blenders_import(bpy, path)
    assert bpy.ops.clickgauss.export_splat(filepath=str(tmp_path / f"out{ending}")) == {"FINISHED"}
    source, written = read_ply(path), read_splat(tmp_path / f"out{ending}")
    assert written.count == source.count
    if ending != ".ply":
        return  # the lossy formats: they hold what they can (tested in test_compressed_formats)
    assert list(written.columns) == list(source.columns)
    for column in source.columns:
        if column.startswith(("f_", "confidence")) or column in "xyz":  # what Blender keeps as the file has it
            np.testing.assert_array_equal(written.columns[column], source.columns[column], err_msg=column)
    np.testing.assert_allclose(written.alphas, source.alphas, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.exp(written.scales), np.exp(source.scales), rtol=1e-6)
    unit = source.rotations / np.linalg.norm(source.rotations, axis=1, keepdims=True)
    np.testing.assert_allclose(written.rotations, unit, atol=1e-6)


def test_a_splat_from_blenders_spz_import_exports_what_blender_holds(bpy, tmp_path):
    """Blender's SPZ import turns the file's axes to its own: export writes the splat as Blender holds it."""
    write_splat(tmp_path / "s.spz", random_splat(2000, 3, seed=4))
    assert bpy.ops.wm.spz_import(filepath=str(tmp_path / "s.spz")) == {"FINISHED"}
    obj = bpy.context.selected_objects[0]
    bpy.context.view_layer.objects.active = obj
    held = native_values(obj)
    assert bpy.ops.clickgauss.export_splat(filepath=str(tmp_path / "out.ply")) == {"FINISHED"}
    written = read_ply(tmp_path / "out.ply")
    np.testing.assert_array_equal(written.positions, held["position"])
    np.testing.assert_array_equal(written.sh_dc, held["radiance:base"][:, :3])
    np.testing.assert_array_equal(written.sh_rest[:, 0], held["radiance:sh_0"])
    np.testing.assert_allclose(written.alphas, held["radiance:base"][:, 3], atol=1e-6)


def test_our_native_import_exports_byte_for_byte_after_hide_reveal_and_a_save(bpy, addon, tmp_path):
    path = sh3_file(tmp_path)
    obj = ours(bpy, path)
    alphas = native_values(obj)["radiance:base"][:, 3].copy()
    selection = np.arange(len(obj.data.points)) % 3 == 0
    addon.click_cache.write_selection(obj, selection)
    assert bpy.ops.clickgauss.hide() == {"FINISHED"}
    drawn = native_values(obj)["radiance:base"][:, 3]
    assert (drawn[selection] == 0).all() and np.array_equal(drawn[~selection], alphas[~selection])
    assert bpy.ops.clickgauss.export_splat(filepath=str(tmp_path / "hidden.ply")) == {"FINISHED"}
    assert (tmp_path / "hidden.ply").read_bytes() == path.read_bytes()
    assert bpy.ops.clickgauss.reveal() == {"FINISHED"}
    np.testing.assert_array_equal(native_values(obj)["radiance:base"][:, 3], alphas)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "scene.blend"))
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "scene.blend"))
    bpy.context.view_layer.objects.active = bpy.data.objects["sh3"]
    assert bpy.ops.clickgauss.export_splat(filepath=str(tmp_path / "saved.ply")) == {"FINISHED"}
    assert (tmp_path / "saved.ply").read_bytes() == path.read_bytes()


def test_blenders_own_edits_of_a_native_splat_are_what_export_writes(bpy, tmp_path):
    """The native attributes are the truth: where Blender's tools changed them, the raw columns kept give way."""
    path = sh3_file(tmp_path)
    obj = ours(bpy, path)
    base = obj.data.attributes["radiance:base"]
    values = np.empty(len(obj.data.points) * 4, np.float32)
    base.data.foreach_get("vector", values)
    values.reshape(-1, 4)[:10, 3] = 0.5  # as a Geometry Nodes or attribute edit would
    base.data.foreach_set("vector", values)
    assert bpy.ops.clickgauss.export_splat(filepath=str(tmp_path / "edited.ply")) == {"FINISHED"}
    source, written = read_ply(path), read_ply(tmp_path / "edited.ply")
    np.testing.assert_allclose(written.alphas[:10], 0.5, atol=1e-6)
    np.testing.assert_array_equal(written.columns["opacity"][10:], source.columns["opacity"][10:])


def test_a_splat_blender_imported_trains_clicks_splits_and_applies_its_transform(bpy, addon, trained_scene, tmp_path):
    obj = blenders_import(bpy, trained_scene["folder"] / "splat.ply")
    obj.name = "splat"
    prefs = addon.addon_preferences.preferences()
    prefs.python_path = BACKEND_PYTHON
    job = addon.training.TrainingJob(obj, training_settings(bpy, trained_scene, 300), prefs)
    finished_job_events(job)
    assert job.process.returncode == 0, job.error()
    field = job.features()
    addon.click_cache.store_features(obj, field.features, field.centers)
    job.cleanup()
    scene = trained_scene["scene"]
    click_on(addon, obj, trained_scene, "coarse", "mug")
    mug = scene.object_ids == scene.object_names.index("mug")
    precision, recall = selection_quality(addon, obj, mug)
    assert precision > 0.9 and recall > 0.8

    assert bpy.ops.clickgauss.split() == {"FINISHED"}
    part = bpy.data.objects["splat part"]
    assert part.data.type == obj.data.type == "GAUSSIAN_SPLAT"
    assert len(part.data.points) + len(obj.data.points) == scene.splat.count

    bpy.context.view_layer.objects.active = part
    part.location, part.rotation_euler, part.scale = (0.5, -1.0, 2.0), (0.4, -0.2, 1.0), (1.5, 1.5, 1.5)
    bpy.context.view_layer.update()
    assert bpy.ops.clickgauss.export_splat(filepath=str(tmp_path / "moved.ply")) == {"FINISHED"}
    assert bpy.ops.clickgauss.apply_transform() == {"FINISHED"}
    assert part.data.type == "GAUSSIAN_SPLAT"
    assert bpy.ops.clickgauss.export_splat(filepath=str(tmp_path / "applied.ply")) == {"FINISHED"}
    assert_same_splat(read_ply(tmp_path / "applied.ply"), read_ply(tmp_path / "moved.ply"))
    drawn = native_values(part)
    applied = read_ply(tmp_path / "applied.ply")
    np.testing.assert_allclose(drawn["scale"], np.exp(applied.scales), rtol=1e-5)
    np.testing.assert_allclose(drawn["radiance:base"][:, 3], applied.alphas, atol=1e-6)


def test_blenders_own_apply_transform_on_its_own_import_turns_the_gaussians_too(bpy, tmp_path):
    path = sh3_file(tmp_path, count=500)
    obj = blenders_import(bpy, path)
    obj.location, obj.rotation_euler, obj.scale = (0.5, -1.0, 2.0), (0.4, -0.2, 1.0), (1.0, 2.0, 0.7)
    bpy.context.view_layer.update()
    bpy.ops.clickgauss.export_splat(filepath=str(tmp_path / "moved.ply"))
    assert bpy.ops.object.transform_apply(location=True, rotation=True, scale=True) == {"FINISHED"}
    bpy.context.view_layer.update()
    bpy.ops.clickgauss.export_splat(filepath=str(tmp_path / "applied.ply"))
    assert_same_splat(read_ply(tmp_path / "applied.ply"), read_ply(tmp_path / "moved.ply"))


def test_a_native_splat_missing_what_blender_draws_is_refused_by_name(bpy, tmp_path):
    """A Gaussian-splat cloud made elsewhere (Geometry Nodes, a script) with positions alone: one message."""
    cloud = bpy.data.pointclouds.new("bare")
    cloud.resize(10)
    cloud.type = "GAUSSIAN_SPLAT"
    obj = bpy.data.objects.new("bare", cloud)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    with pytest.raises(RuntimeError) as raised:
        bpy.ops.clickgauss.export_splat(filepath=str(tmp_path / "bare.ply"))
    message = str(raised.value)
    assert "'bare' is missing the splat attribute(s)" in message and "scale_0" in message
    assert "Traceback" not in message and not (tmp_path / "bare.ply").exists()


def test_file_axes_edited_into_nonsense_fall_back_to_the_exports_own(bpy, tmp_path):
    path = sh3_file(tmp_path, count=200)
    obj = ours(bpy, path)
    obj.data["cg_file_axes"] = ["Y", "up"]
    assert bpy.ops.clickgauss.export_splat(filepath=str(tmp_path / "out.ply")) == {"FINISHED"}
    assert (tmp_path / "out.ply").read_bytes() == path.read_bytes()  # the export's defaults: the import's


def test_features_trained_from_the_file_load_onto_blenders_own_import(bpy, addon, trained_scene):
    """Blender's import keeps alphas and linear scales, not the file's logits and logs: the positions tell it is
    the splat the features were trained for."""
    obj = blenders_import(bpy, trained_scene["folder"] / "splat.ply")
    assert bpy.ops.clickgauss.load_features(filepath=str(trained_scene["folder"] / "features.npz")) == {"FINISHED"}
    click_on(addon, obj, trained_scene, "coarse", "mug")
    scene = trained_scene["scene"]
    precision, recall = selection_quality(addon, obj, scene.object_ids == scene.object_names.index("mug"))
    assert precision > 0.9 and recall > 0.9


def test_blenders_own_join_with_a_splat_that_hides_gaussians_keeps_the_others_visible(bpy, addon, tmp_path):
    """The shown-alpha copy counts only for the Gaussians hidden: Blender's Join fills it with 0 for the rest."""
    path = sh3_file(tmp_path, count=400)
    first, second = ours(bpy, path), ours(bpy, path)
    addon.click_cache.write_selection(first, np.arange(400) < 100)
    bpy.context.view_layer.objects.active = first
    assert bpy.ops.clickgauss.hide() == {"FINISHED"}
    for obj in bpy.data.objects:
        obj.select_set(True)
    with bpy.context.temp_override(active_object=first, selected_editable_objects=[first, second]):
        assert bpy.ops.object.join() == {"FINISHED"}
    joined = bpy.context.view_layer.objects.active
    alphas = native_values(joined)["radiance:base"][:, 3]
    assert (alphas[:100] == 0).all() and (alphas[100:] > 0).all()  # the other object's points stay drawn
    assert bpy.ops.clickgauss.reveal() == {"FINISHED"}
    assert (native_values(joined)["radiance:base"][:, 3] > 0).all()


def test_a_split_part_exports_in_the_axes_its_file_was_imported_in(bpy, addon, tmp_path):
    path = sh3_file(tmp_path, count=400)
    obj = ours(bpy, path, axis_forward="-Z", axis_up="Y")  # not the export's defaults
    addon.click_cache.write_selection(obj, np.arange(400) < 50)
    assert bpy.ops.clickgauss.split() == {"FINISHED"}
    bpy.context.view_layer.objects.active = bpy.data.objects["sh3 part"]
    assert bpy.ops.clickgauss.export_splat(filepath=str(tmp_path / "part.ply")) == {"FINISHED"}
    np.testing.assert_allclose(read_ply(tmp_path / "part.ply").positions, read_ply(path).positions[:50], atol=1e-5)
