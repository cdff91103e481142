"""What the add-on refuses or survives in real Blender: the scene as it was, nothing lost, one report."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from conftest import BACKEND_PYTHON, ROOT
from splat_files import pack_spz, random_splat

from backend.benchmark.synthetic import make_scene
from backend.formats.ply import read_ply, write_ply
from backend.formats.splat import Splat

pytestmark = pytest.mark.blender


def scene_counts(bpy) -> tuple:
    return len(bpy.data.objects), len(bpy.data.pointclouds), len(bpy.data.meshes), len(bpy.data.materials)


def test_import_while_a_splat_is_in_edit_mode_adds_the_new_one(bpy, tmp_path):
    write_ply(tmp_path / "a.ply", make_scene(300, seed=1).splat)
    assert bpy.ops.clickgauss.import_splat(filepath=str(tmp_path / "a.ply")) == {"FINISHED"}
    bpy.ops.object.mode_set(mode="EDIT")
    assert bpy.context.mode in ("EDIT_POINTCLOUD", "EDIT_POINT_CLOUD")  # 5.x, 4.x
    assert bpy.ops.clickgauss.import_splat(filepath=str(tmp_path / "a.ply")) == {"FINISHED"}
    assert bpy.context.mode == "OBJECT" and len(bpy.data.objects) == 2


# Names a PLY header allows that Blender refuses (too long, its mesh built-ins), renames, or that
# the add-on's own attributes and layout record use.
ODD_COLUMNS = [
    "sharp_face",
    "material_index",
    "sharp_edge",
    "a" * 70,
    "a" * 69 + "b",
    "with,comma",
    "col:on",
    "position",
    "radius",
    "ply_radius",
    ".select_vert",
    "cg_color",
    "scale",  # Blender 5.3's native splat attributes
    "rotation",
    "radiance:base",
    "radiance:sh_0",
    "cg_shown_alpha",
]


def test_every_column_name_a_ply_allows_survives_import_split_and_export(bpy, addon, tmp_path):
    base = make_scene(400, seed=4).splat
    rng = np.random.default_rng(0)
    columns = dict(base.columns)
    for name in ODD_COLUMNS:
        columns[name] = rng.normal(size=base.count).astype(np.float32)
    source = tmp_path / "odd.ply"
    write_ply(source, Splat(columns, []))
    assert bpy.ops.clickgauss.import_splat(filepath=str(source)) == {"FINISHED"}
    obj = bpy.context.view_layer.objects.active
    assert bpy.ops.clickgauss.export_splat(filepath=str(tmp_path / "same.ply")) == {"FINISHED"}
    assert (tmp_path / "same.ply").read_bytes() == source.read_bytes()
    selected = np.arange(base.count) % 3 == 0
    addon.click_cache.write_selection(obj, selected)
    assert bpy.ops.clickgauss.split() == {"FINISHED"}
    part = bpy.data.objects["odd part"]
    for target, name in ((obj, "rest"), (part, "part")):
        bpy.context.view_layer.objects.active = target
        assert bpy.ops.clickgauss.export_splat(filepath=str(tmp_path / f"{name}.ply")) == {"FINISHED"}
    rest, piece = read_ply(tmp_path / "rest.ply"), read_ply(tmp_path / "part.ply")
    assert list(piece.columns) == list(rest.columns) == list(columns)
    for name in ODD_COLUMNS:
        np.testing.assert_array_equal(np.sort(piece.columns[name]), np.sort(columns[name][selected]))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_hostile_files_leave_the_scene_as_it_was_in_bounded_memory(bpy, tmp_path):
    inner = gzip.decompress(pack_spz(random_splat(50, 0), 3, "gzip"))
    (tmp_path / "bomb.spz").write_bytes(gzip.compress(inner + bytes(100 << 20), 9))  # 0.1 MB -> 100 MB
    os.mkfifo(tmp_path / "pipe.ply")
    before = scene_counts(bpy)
    for name, message in (("bomb.spz", "more than the"), ("pipe.ply", "not a regular file")):
        tracemalloc.start()
        with pytest.raises(RuntimeError, match=message):
            bpy.ops.clickgauss.import_splat(filepath=str(tmp_path / name))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 64 << 20, (name, peak / 1e6)
        assert scene_counts(bpy) == before


ORPHAN = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {root!r})
    from tools.blender_env import start_blender
    bpy, addon = start_blender()
    folder = {folder!r}
    bpy.ops.clickgauss.import_splat(filepath=folder + "/splat.ply")
    settings = bpy.context.scene.clickgauss
    settings.images_dir, settings.cameras_path = folder + "/images", folder + "/sparse/0"
    settings.mask_source, settings.mask_dir, settings.iterations = "FOLDER", folder + "/masks", 100000
    prefs = addon.addon_preferences.preferences()
    prefs.python_path = {backend_python!r}
    job = addon.training.TrainingJob(bpy.context.view_layer.objects.active, settings, prefs)
    print(job.process.pid, job.folder, flush=True)
    os.kill(os.getpid(), 9)  # Blender crashes (or is killed) while its training runs
""")


def alive(pid: int) -> bool:
    """Whether process `pid` still runs (a zombie waiting for a parent that reaps nothing does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_the_training_child_ends_with_blender_and_takes_its_folder(tmp_path, addon_zip):
    scene = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
        "from backend.benchmark.synthetic import make_scene, orbit_cameras, write_scene; "
        "write_scene(Path(sys.argv[2]), make_scene(800, seed=2), orbit_cameras(3, width=48, height=36))"
    )
    subprocess.run([BACKEND_PYTHON, "-c", scene, str(ROOT), str(tmp_path)], check=True)  # torch: the backend's Python
    script = ORPHAN.format(root=str(ROOT), folder=str(tmp_path), backend_python=BACKEND_PYTHON)
    blender = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, CLICKGAUSS_ZIP=str(addon_zip)),
    )
    pid, folder = blender.stdout.split()[-2:]
    deadline = time.monotonic() + 60
    while (alive(int(pid)) or Path(folder).exists()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(int(pid)), "the training process outlived Blender"
    assert not Path(folder).exists(), "its temporary folder was left behind"


@pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="symbolic links need privileges on Windows")
def test_export_onto_a_symbolic_link_writes_through_it(bpy, tmp_path):
    write_ply(tmp_path / "s.ply", make_scene(300, seed=1).splat)
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "target.ply").write_bytes(b"old")
    (tmp_path / "link.ply").symlink_to(tmp_path / "real" / "target.ply")
    assert bpy.ops.clickgauss.import_splat(filepath=str(tmp_path / "s.ply")) == {"FINISHED"}
    assert bpy.ops.clickgauss.export_splat(filepath=str(tmp_path / "link.ply")) == {"FINISHED"}
    assert (tmp_path / "link.ply").is_symlink()
    assert (tmp_path / "real" / "target.ply").read_bytes() == (tmp_path / "s.ply").read_bytes()
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["target.ply"]  # no temporary file left


def test_importing_several_files_imports_the_good_ones_and_names_the_bad(bpy, tmp_path):
    for name in ("a", "c"):
        write_ply(tmp_path / f"{name}.ply", make_scene(300, seed=1).splat)
    (tmp_path / "b.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nend_header\n")
    files = [{"name": name} for name in ("a.ply", "b.ply", "c.ply")]
    with pytest.raises(RuntimeError) as raised:  # Blender raises the error report, after the operator ran
        bpy.ops.clickgauss.import_splat(directory=str(tmp_path), files=files)
    assert "b.ply" in str(raised.value) and "a.ply" not in str(raised.value)
    assert sorted(obj.name for obj in bpy.data.objects) == ["a", "c"]
