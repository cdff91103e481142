"""Selections by rule and segments in the add-on, in real Blender: Select Floaters and its live Strength, Select by
Attribute, Grow and Shrink, Export's Segment IDs and Export Segments (native splats in Blender 5.3 too)."""

from __future__ import annotations

import numpy as np
import pytest
from blender_session import import_splat
from conftest import same_gaussians

from backend.benchmark.synthetic import make_scene, with_floaters
from backend.formats import read_splat
from backend.formats.ply import read_ply, write_ply

pytestmark = pytest.mark.blender


def alphas_from_file(splat) -> np.ndarray:
    return 1 / (1 + np.exp(-splat.columns["opacity"].astype(np.float64)))


def test_select_floaters_in_blender_follows_the_strength_slider_and_delete_cleans_the_capture(bpy, addon, tmp_path):
    splat, truth = with_floaters(make_scene(6_000, seed=7).splat, 0.03, 7)
    write_ply(tmp_path / "scene.ply", splat)
    obj = import_splat(bpy, tmp_path / "scene.ply")
    settings = bpy.context.scene.clickgauss
    assert bpy.ops.clickgauss.select_floaters() == {"FINISHED"}
    selected = addon.feature_store.read_selection(obj)
    assert selected[truth].mean() >= 0.8 and selected[~truth].mean() <= 0.01
    settings.floater_strength = 0.0  # the slider: live
    assert not addon.feature_store.read_selection(obj).any()
    settings.floater_strength = 0.5
    assert np.array_equal(addon.feature_store.read_selection(obj), selected)
    mine = np.arange(splat.count) < 100  # a selection of the user's, then the floaters added, taken, set
    addon.click_cache.write_selection(obj, mine)
    settings.select_mode = "ADD"
    assert bpy.ops.clickgauss.select_floaters() == {"FINISHED"}
    assert np.array_equal(addon.feature_store.read_selection(obj), mine | selected)
    settings.select_mode = "SUBTRACT"  # live, from the selection it began with
    assert np.array_equal(addon.feature_store.read_selection(obj), mine & ~selected)
    settings.select_mode = "SET"
    assert np.array_equal(addon.feature_store.read_selection(obj), selected)
    assert bpy.ops.clickgauss.delete() == {"FINISHED"}
    assert len(obj.data.points) == splat.count - selected.sum()
    settings.floater_strength = 0.9  # the selection is no longer Select Floaters': the slider leaves it alone
    assert not addon.feature_store.read_selection(obj).any()


def test_select_by_attribute_takes_exactly_the_range_and_adds_subtracts_and_follows_its_sliders(bpy, addon, tmp_path):
    splat, _ = with_floaters(make_scene(4_000, seed=8).splat, 0.02, 8)
    write_ply(tmp_path / "scene.ply", splat)
    obj = import_splat(bpy, tmp_path / "scene.ply")
    settings, read = bpy.context.scene.clickgauss, addon.feature_store.read_selection
    alphas, sizes = alphas_from_file(splat), np.exp(splat.scales.astype(np.float64)).max(axis=1)
    settings.select_attribute, settings.opacity_low, settings.opacity_high = "OPACITY", 0.2, 0.6
    assert bpy.ops.clickgauss.select_by_attribute() == {"FINISHED"}
    in_opacity = (alphas >= 0.2 + 1e-6) & (alphas <= 0.6 - 1e-6)
    near_edge = (np.abs(alphas - 0.2) < 1e-6) | (np.abs(alphas - 0.6) < 1e-6)
    assert np.array_equal(read(obj)[~near_edge], in_opacity[~near_edge]) and in_opacity.any()
    settings.opacity_high = 0.3  # the slider: live, from the selection Select by Attribute started with
    assert np.array_equal(read(obj)[~near_edge], ((alphas >= 0.2) & (alphas <= 0.3))[~near_edge])
    bpy.context.view_layer.update()  # the viewport evaluates after every selection
    # Blender's own tools make every Gaussian opaque, the points unmoved: the alpha Blender draws (5.3) or the logit
    native = addon.splat_object.is_native(obj.data)
    name = addon.native_splat.BASE if native else "opacity"
    opacity = addon.point_attributes.read_array(obj.data, name)
    opaque = opacity.copy()
    opaque[:, -1] = 1.0 if native else 10.0
    for values in (opaque, opacity):  # edited, then as it was
        addon.point_attributes.write_array(obj.data, name, obj.data.attributes[name].data_type, values)
        obj.data.update_tag()
        bpy.context.view_layer.update()
        if values is opaque:
            assert bpy.ops.clickgauss.select_by_attribute() == {"FINISHED"}  # sees the edit: none is that faint now
            assert not read(obj).any()
    settings.select_attribute, settings.size_low, settings.size_high = "SIZE", 0.0, float(np.median(sizes))
    settings.select_mode = "ADD"  # a new range: a new Select by Attribute, added to what is selected
    before = read(obj)
    assert bpy.ops.clickgauss.select_by_attribute() == {"FINISHED"}
    small = sizes <= np.median(sizes) * (1 - 1e-6)
    assert np.array_equal(read(obj) & ~small, before & ~small) and read(obj)[small].all()
    settings.select_mode = "SUBTRACT"  # follows live: now taken from the selection it started with
    assert not (read(obj) & small).any() and np.array_equal(read(obj) & ~small, before & ~small)
    settings.select_mode, settings.color_distance = "SET", 0.05
    addon.click_cache.write_selection(obj, np.arange(splat.count) == 0)
    assert bpy.ops.clickgauss.color_from_selection() == {"FINISHED"}  # the colour of a clicked Gaussian
    assert settings.select_attribute == "COLOR" and np.allclose(settings.select_color, splat.colors[0], atol=1e-6)
    assert bpy.ops.clickgauss.select_by_attribute() == {"FINISHED"}
    distance = np.linalg.norm(splat.colors - splat.colors[0], axis=1)
    clear = np.abs(distance - 0.05) > 1e-4
    assert np.array_equal(read(obj)[clear], (distance <= 0.05)[clear]) and read(obj)[0]


def test_grow_and_shrink_in_blender_stay_on_the_object_with_features_and_refuse_an_empty_selection(
    bpy, addon, splat_with_features, trained_scene
):
    obj, scene = splat_with_features, trained_scene["scene"]
    read = addon.feature_store.read_selection
    with pytest.raises(RuntimeError, match="nothing is selected in 'splat': select something to grow"):
        bpy.ops.clickgauss.grow_selection(step="GROW")
    target = int(np.bincount(scene.object_ids)[1:].argmax()) + 1  # the largest object but the ground
    members = scene.object_ids == target
    half = members & (scene.splat.positions[:, 1] > np.median(scene.splat.positions[members, 1]))  # its foot half
    addon.click_cache.write_selection(obj, half)
    assert bpy.ops.clickgauss.grow_selection(step="GROW") == {"FINISHED"}
    grown = read(obj)
    assert grown.sum() > half.sum() and (grown & members).sum() / grown.sum() >= 0.95  # not the ground it stands on
    assert bpy.ops.clickgauss.grow_selection(step="SHRINK") == {"FINISHED"}
    assert read(obj).sum() < grown.sum() and not (read(obj) & ~grown).any()


def test_segment_ids_are_the_clusters_and_survive_a_round_trip(bpy, addon, splat_with_features, tmp_path):
    obj = splat_with_features
    settings = bpy.context.scene.clickgauss
    assert bpy.ops.clickgauss.export_splat(filepath=str(tmp_path / "ids.ply"), segment_ids=True) == {"FINISHED"}
    written = read_ply(tmp_path / "ids.ply")
    for level, threshold in (("coarse", settings.threshold_coarse), ("fine", settings.threshold_fine)):
        labels = addon.edit_operators.cluster_labels(obj, threshold, level)
        assert np.array_equal(written.columns[f"segment_{level}"], labels) and len(np.unique(labels)) > 2
        assert written.columns[f"segment_{level}"].dtype == np.int32
    again = import_splat(bpy, tmp_path / "ids.ply")
    bpy.context.view_layer.objects.active = again
    assert bpy.ops.clickgauss.export_splat(filepath=str(tmp_path / "again.ply")) == {"FINISHED"}
    assert (tmp_path / "again.ply").read_bytes() == (tmp_path / "ids.ply").read_bytes()


def test_export_segments_writes_a_folder_whose_files_together_are_the_export(bpy, splat_with_features, tmp_path):
    obj = splat_with_features
    obj.location = (1.0, 2.0, 3.0)  # placed as it stands
    bpy.context.view_layer.update()
    assert bpy.ops.clickgauss.export_splat(filepath=str(tmp_path / "whole.ply")) == {"FINISHED"}
    (tmp_path / "segments").mkdir()
    done = bpy.ops.clickgauss.export_segments(directory=str(tmp_path / "segments"), file_format=".ply")
    assert done == {"FINISHED"}
    files = sorted((tmp_path / "segments").iterdir())
    assert len(files) > 2 and any(path.name == "segment_00.ply" for path in files)
    assert same_gaussians([read_splat(path) for path in files], read_ply(tmp_path / "whole.ply"))
    with pytest.raises(RuntimeError, match="not a folder"):
        bpy.ops.clickgauss.export_segments(directory=str(tmp_path / "missing"))
