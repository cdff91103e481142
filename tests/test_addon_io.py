"""The installed add-on in real Blender: File > Import / Export > Gaussian Splat, as a user runs them."""

from __future__ import annotations

import numpy as np
import pytest
from blender_session import import_splat
from conftest import shared_file
from splat_checks import assert_same_values
from splat_files import write_with_plyfile

from backend.benchmark.synthetic import make_scene
from backend.formats.ply import read_ply, write_ply

pytestmark = pytest.mark.blender


def test_the_zip_installs_as_an_extension_with_menu_entries(bpy):
    import addon_utils

    assert "bl_ext.user_default.clickgauss" in {
        m.__name__ for m in addon_utils.modules() if addon_utils.check(m.__name__)[1]
    }
    assert hasattr(bpy.types, "CLICKGAUSS_PT_main")
    import_menu = [f.__name__ for f in bpy.types.TOPBAR_MT_file_import._dyn_ui_initialize()]
    assert "menu_import" in import_menu


@pytest.mark.parametrize("degree", [0, 3])
def test_import_makes_one_point_cloud_with_raw_attributes_and_export_is_byte_identical(bpy, addon, tmp_path, degree):
    source = tmp_path / "scene.ply"
    splat = make_scene(3000, sh_degree=degree, seed=2).splat
    write_ply(source, splat)
    obj = import_splat(bpy, source)
    assert obj.type == "POINTCLOUD" and obj.name == "scene"
    assert [o.name for o in bpy.data.objects] == ["scene"]
    cloud = obj.data
    assert len(cloud.points) == 3000
    opacity = np.empty(3000, np.float32)
    cloud.attributes["opacity"].data.foreach_get("value", opacity)
    np.testing.assert_array_equal(opacity, splat.columns["opacity"])
    if addon.compat.HAS_NATIVE_SPLATS:  # drawn by Blender as Gaussians
        assert cloud.type == "GAUSSIAN_SPLAT" and "radius" not in cloud.attributes
    else:  # drawn as discs of the splat's colours
        assert "cg_color" in cloud.attributes and "radius" in cloud.attributes
    assert bpy.ops.clickgauss.export_splat(filepath=str(tmp_path / "out.ply")) == {"FINISHED"}
    assert (tmp_path / "out.ply").read_bytes() == source.read_bytes()


def test_a_column_subset_reads_only_those_columns_with_the_same_values(bpy, tmp_path):
    import sys

    splat_object = sys.modules["bl_ext.user_default.clickgauss"].splat_object
    write_ply(tmp_path / "s.ply", make_scene(500, sh_degree=3).splat)
    obj = import_splat(bpy, tmp_path / "s.ply")
    everything = splat_object.object_to_splat(obj)
    geometry = splat_object.object_to_splat(obj, splat_object.GEOMETRY_COLUMNS)
    assert sorted(geometry.columns) == sorted(splat_object.GEOMETRY_COLUMNS)
    assert len(everything.columns) == 59  # x y z, 48 SH, opacity, 3 scales, 4 rotations
    for column, values in geometry.columns.items():
        np.testing.assert_array_equal(values, everything.columns[column])


def test_captures_are_turned_upright(bpy, tmp_path):
    write_ply(tmp_path / "s.ply", make_scene(500).splat)
    obj = import_splat(bpy, tmp_path / "s.ply")
    up_in_file = np.array([0.0, -1.0, 0.0])  # OpenCV frame: y points down
    np.testing.assert_allclose(np.array(obj.matrix_world.to_3x3()) @ up_in_file, [0, 0, 1], atol=1e-6)
    obj = import_splat(bpy, tmp_path / "s.ply", axis_up="Z", axis_forward="Y")
    np.testing.assert_allclose(np.array(obj.matrix_world), np.eye(4), atol=1e-6)


def test_other_layouts_export_value_identical(bpy, tmp_path):
    columns = dict(reversed(list(make_scene(800, sh_degree=1).splat.columns.items())))
    columns["segment"] = np.arange(800, dtype=np.int32)
    columns["tag"] = np.full(800, 4_000_000_000, dtype=np.uint32)
    columns["radius"] = np.ones(800, dtype=np.float32)  # a file column under a name Blender's display uses
    write_with_plyfile(tmp_path / "in.ply", columns, text=True)
    import_splat(bpy, tmp_path / "in.ply")
    bpy.ops.clickgauss.export_splat(filepath=str(tmp_path / "out.ply"))
    assert_same_values(read_ply(tmp_path / "out.ply"), columns)


def test_a_bad_file_reports_why_and_leaves_the_scene_untouched(bpy, tmp_path):
    bad = tmp_path / "broken.ply"
    good = tmp_path / "good.ply"
    write_ply(good, make_scene(300).splat)
    bad.write_bytes(good.read_bytes()[:-100])
    counts = (len(bpy.data.objects), len(bpy.data.pointclouds), len(bpy.data.meshes), len(bpy.data.materials))
    with pytest.raises(RuntimeError, match=r"broken\.ply: truncated"):
        bpy.ops.clickgauss.import_splat(filepath=str(bad))
    assert counts == (len(bpy.data.objects), len(bpy.data.pointclouds), len(bpy.data.meshes), len(bpy.data.materials))


def test_a_failing_attribute_step_leaves_the_scene_as_it_was_with_one_message(bpy, tmp_path, monkeypatch):
    """The clean-up after a failure midway through making the object removes what it made, and only that."""
    import sys

    write_ply(tmp_path / "kept.ply", make_scene(300, seed=1).splat)
    write_ply(tmp_path / "new.ply", make_scene(300, seed=2).splat)
    kept = import_splat(bpy, tmp_path / "kept.ply")
    blocks = ("objects", "pointclouds", "meshes", "materials", "node_groups")
    before = {kind: sorted(block.name for block in getattr(bpy.data, kind)) for kind in blocks}

    def failing_step(cloud, column, values):
        if column == "rot_3":  # the last column: everything else is made by then
            raise RuntimeError("the attribute step failed")
        return store_column(cloud, column, values)

    splat_object = sys.modules["bl_ext.user_default.clickgauss"].splat_object
    store_column = splat_object.store_column
    monkeypatch.setattr(splat_object, "store_column", failing_step)
    with pytest.raises(RuntimeError) as raised:
        bpy.ops.clickgauss.import_splat(filepath=str(tmp_path / "new.ply"))
    message = str(raised.value).strip()
    assert "new.ply" in message and "the attribute step failed" in message
    assert "Traceback" not in message and "\n" not in message
    assert {kind: sorted(block.name for block in getattr(bpy.data, kind)) for kind in blocks} == before
    bpy.context.view_layer.objects.active = kept
    assert bpy.ops.clickgauss.export_splat(filepath=str(tmp_path / "out.ply")) == {"FINISHED"}
    assert (tmp_path / "out.ply").read_bytes() == (tmp_path / "kept.ply").read_bytes()


def test_export_without_a_splat_says_what_to_do(bpy, tmp_path):
    with pytest.raises(RuntimeError, match="Select a splat object to export"):
        bpy.ops.clickgauss.export_splat(filepath=str(tmp_path / "out.ply"))
    assert not (tmp_path / "out.ply").exists()


def test_selected_objects_export_into_one_file(bpy, tmp_path):
    for name, seed in (("a", 1), ("b", 2)):
        write_ply(tmp_path / f"{name}.ply", make_scene(400, seed=seed).splat)
        import_splat(bpy, tmp_path / f"{name}.ply")
    for obj in bpy.data.objects:
        obj.select_set(True)
    bpy.ops.clickgauss.export_splat(filepath=str(tmp_path / "both.ply"), use_selection=True)
    assert read_ply(tmp_path / "both.ply").count == 800


def test_a_saved_blend_file_keeps_the_splat(bpy, tmp_path):
    source = tmp_path / "s.ply"
    write_ply(source, make_scene(600, sh_degree=2).splat)
    import_splat(bpy, source)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "scene.blend"))
    bpy.ops.wm.read_homefile(use_empty=True)
    assert "s" not in bpy.data.objects
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "scene.blend"))
    bpy.context.view_layer.objects.active = bpy.data.objects["s"]
    bpy.ops.clickgauss.export_splat(filepath=str(tmp_path / "out.ply"))
    assert (tmp_path / "out.ply").read_bytes() == source.read_bytes()


@pytest.mark.parametrize("name", ["splats/donut.ply", "splats/guitar.ply", "splats/biker.ply"])
def test_real_splats_import_and_export_byte_for_byte(bpy, tmp_path, name):
    source = shared_file(f"data/{name}")
    obj = import_splat(bpy, source)
    assert len(obj.data.points) == read_ply(source).count
    bpy.ops.clickgauss.export_splat(filepath=str(tmp_path / "out.ply"))
    assert (tmp_path / "out.ply").read_bytes() == source.read_bytes()


@pytest.mark.parametrize("name, reference", [("guitar.compressed.ply", "guitar.ply"), ("biker.spz", "biker.ply")])
def test_compressed_formats_import_as_the_same_scene_and_export_as_standard_ply(bpy, tmp_path, name, reference):
    obj = import_splat(bpy, shared_file(f"data/splats/{name}"))
    bpy.ops.clickgauss.export_splat(filepath=str(tmp_path / "out.ply"))
    exported, expected = read_ply(tmp_path / "out.ply"), read_ply(shared_file(f"data/splats/{reference}"))
    assert obj.name == name.rsplit(".", 1)[0] and exported.count == expected.count
    np.testing.assert_allclose(exported.positions, expected.positions, atol=2e-4)


def file_matrix(bpy, obj) -> np.ndarray:
    """The object's matrix in the file's axes: what export applies (import turned OpenCV's -Y up to Blender's Z)."""
    from bpy_extras.io_utils import axis_conversion

    return np.array(axis_conversion(from_forward="Z", from_up="-Y").to_4x4().inverted() @ obj.matrix_world)


def test_export_applies_each_objects_move_turn_and_scale(bpy, tmp_path):
    """Two selected objects, each moved, turned and scaled its own way, export as they stand into one file."""
    from backend.formats.transform import transform_splat

    splats = {name: make_scene(400, sh_degree=3, seed=seed).splat for name, seed in (("a", 1), ("b", 2))}
    for name, splat in splats.items():
        write_ply(tmp_path / f"{name}.ply", splat)
        import_splat(bpy, tmp_path / f"{name}.ply")
    a, b = bpy.data.objects["a"], bpy.data.objects["b"]
    a.location, a.rotation_euler, a.scale = (1.0, -2.0, 0.5), (0.3, 0.0, 1.2), (2.0, 2.0, 2.0)
    b.location, b.scale = (0.0, 3.0, 0.0), (1.0, 0.5, 3.0)
    for obj in (a, b):
        obj.select_set(True)
    bpy.ops.clickgauss.export_splat(filepath=str(tmp_path / "both.ply"), use_selection=True)
    exported = read_ply(tmp_path / "both.ply")
    assert exported.count == 800
    order = [o.name for o in bpy.context.selected_objects]
    expected = [transform_splat(splats[name], file_matrix(bpy, bpy.data.objects[name])) for name in order]
    for column, values in exported.columns.items():
        np.testing.assert_allclose(values, np.concatenate([e.columns[column] for e in expected]), rtol=1e-4, atol=1e-4)
    rows_of_a = slice(0, 400) if order[0] == "a" else slice(400, 800)  # and independently: a's centres where a stands
    in_blender = splats["a"].positions @ np.array(a.matrix_world)[:3, :3].T + np.array(a.location)
    np.testing.assert_allclose(
        exported.positions[rows_of_a] @ [[1, 0, 0], [0, 0, -1], [0, 1, 0]],  # file -> Blender axes
        in_blender,
        atol=1e-4,
    )


def test_export_of_an_object_scaled_to_zero_names_it(bpy, tmp_path):
    write_ply(tmp_path / "flat.ply", make_scene(300).splat)
    import_splat(bpy, tmp_path / "flat.ply").scale = (1.0, 0.0, 1.0)
    with pytest.raises(RuntimeError, match="'flat': its transform scales an axis to zero"):
        bpy.ops.clickgauss.export_splat(filepath=str(tmp_path / "out.ply"))
    assert not (tmp_path / "out.ply").exists()


@pytest.mark.parametrize("ending", [".spz", ".compressed.ply", ".splat"])
def test_the_name_picks_the_export_format_and_the_file_imports_back(bpy, tmp_path, ending):
    from backend.formats import read_splat

    write_ply(tmp_path / "s.ply", make_scene(600, sh_degree=1, seed=4).splat)
    source = import_splat(bpy, tmp_path / "s.ply")
    assert bpy.ops.clickgauss.export_splat(filepath=str(tmp_path / f"out{ending}")) == {"FINISHED"}
    written = read_splat(tmp_path / f"out{ending}")
    assert written.count == 600 and written.sh_degree == (0 if ending == ".splat" else 1)
    again = import_splat(bpy, tmp_path / f"out{ending}")
    assert len(again.data.points) == 600 and np.allclose(np.array(again.matrix_world), np.array(source.matrix_world))
