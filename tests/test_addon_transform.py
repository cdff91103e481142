"""Apply Transform, Blender's own Ctrl+A, and Join on splats in real Blender: the file written is the scene as it
looks."""

from __future__ import annotations

import numpy as np
import pytest
from blender_session import import_splat
from splat_checks import assert_same_splat

from backend.benchmark.synthetic import make_scene
from backend.formats.ply import read_ply, write_ply

pytestmark = pytest.mark.blender


def posed_splat(bpy, tmp_path, name="mug", degree=3, seed=5, scale=(1.5, 1.5, 1.5)):
    write_ply(tmp_path / f"{name}.ply", make_scene(500, sh_degree=degree, seed=seed).splat)
    obj = import_splat(bpy, tmp_path / f"{name}.ply")
    obj.location, obj.rotation_euler, obj.scale = (0.5, -1.0, 2.0), (0.4, -0.2, 1.0), scale
    bpy.context.view_layer.update()
    return obj


def export(bpy, path, **options):
    assert bpy.ops.clickgauss.export_splat(filepath=str(path), **options) == {"FINISHED"}
    return read_ply(path)


@pytest.mark.parametrize("scale", [(1.5, 1.5, 1.5), (2.0, 0.5, 1.0)])
def test_apply_transform_then_export_equals_export_with_the_transform(bpy, tmp_path, scale):
    obj = posed_splat(bpy, tmp_path, scale=scale)
    with_transform = export(bpy, tmp_path / "moved.ply")
    assert bpy.ops.clickgauss.apply_transform() == {"FINISHED"}
    np.testing.assert_allclose(np.array(obj.matrix_world), np.eye(4), atol=1e-7)
    assert_same_splat(export(bpy, tmp_path / "applied.ply"), with_transform)


@pytest.mark.parametrize(
    "options, scale",
    [
        (dict(location=True, rotation=True, scale=True), (1.0, 2.0, 0.7)),
        (dict(location=False, rotation=True, scale=False), (1.5, 1.5, 1.5)),
    ],
)
def test_blenders_own_apply_transform_on_a_splat_leaves_it_correct(bpy, tmp_path, options, scale):
    """Ctrl+A moves the points; the guard turns and scales the rest. (Applying only the rotation of a
    non-uniformly scaled object turns the SH by a different nearest rotation: see backend.formats.transform.)"""
    posed_splat(bpy, tmp_path, scale=scale)
    with_transform = export(bpy, tmp_path / "moved.ply")
    assert bpy.ops.object.transform_apply(**options) == {"FINISHED"}
    bpy.context.view_layer.update()
    assert_same_splat(export(bpy, tmp_path / "applied.ply"), with_transform)


def test_join_keeps_each_part_where_it_stands_and_pads_the_spherical_harmonics(bpy, addon, tmp_path):
    table = posed_splat(bpy, tmp_path, "table", degree=1, seed=1)
    mug = posed_splat(bpy, tmp_path, "mug", degree=3, seed=2, scale=(0.5, 0.5, 0.5))
    mug.location = (3.0, 0.0, 0.0)
    for obj in (table, mug):
        obj.select_set(True)
    bpy.context.view_layer.objects.active = table
    separately = export(bpy, tmp_path / "both.ply", use_selection=True)
    addon.click_cache.store_features(mug, np.ones((500, 24), np.float32))
    assert bpy.ops.clickgauss.join() == {"FINISHED"}
    assert [o.name for o in bpy.data.objects] == ["table"]
    joined = bpy.data.objects["table"]
    assert len(joined.data.points) == 1000 and not addon.feature_store.has_features(joined)  # the table had none
    together = export(bpy, tmp_path / "joined.ply")
    assert together.sh_degree == 3
    order = [0, 1] if np.allclose(separately.columns["x"][:500], together.columns["x"][:500], atol=1e-4) else [1, 0]
    halves = [slice(0, 500), slice(500, 1000)]
    for column in ("x", "y", "z", "scale_0", "opacity", "f_dc_0"):
        np.testing.assert_allclose(
            np.concatenate([separately.columns[column][halves[i]] for i in order]),
            together.columns[column],
            rtol=1e-4,
            atol=1e-4,
        )
    table_rest = together.sh_rest[:500]
    assert not table_rest[:, 3:].any() and table_rest[:, :3].any()  # degree 1 padded with zeros to 3


def test_join_needs_two_splats(bpy, tmp_path):
    posed_splat(bpy, tmp_path)
    with pytest.raises(RuntimeError, match="poll"):
        bpy.ops.clickgauss.join()


def test_join_keeps_features_when_every_part_has_them(bpy, addon, tmp_path):
    parts = [posed_splat(bpy, tmp_path, name, degree=0, seed=seed) for name, seed in (("a", 1), ("b", 2))]
    for value, obj in enumerate(parts):
        addon.click_cache.store_features(obj, np.full((500, 24), value, np.float32))
        obj.select_set(True)
    bpy.context.view_layer.objects.active = parts[0]
    assert bpy.ops.clickgauss.join() == {"FINISHED"}
    joined = bpy.context.view_layer.objects.active
    features = addon.feature_store.read_features(joined)
    assert features.shape == (1000, 24) and sorted(np.unique(features)) == [0.0, 1.0]
    assert (features[:, 0] == 0).sum() == 500


def test_ctrl_j_reaches_join_splats_before_blenders_own_join(bpy):
    """Blender's Join would move only the parts' points; the add-on's key map item, which Blender puts before its
    own, sends Ctrl+J in Object Mode to Join Splats (whose poll passes the key on when the selection is no splats)."""
    keymap = bpy.context.window_manager.keyconfigs.addon.keymaps["Object Mode"]
    bound = [item.idname for item in keymap.keymap_items if (item.type, item.value, item.ctrl) == ("J", "PRESS", True)]
    assert bound == ["clickgauss.join"]
