"""The demo: the whole product on a generated scene, in real Blender with the installed add-on.

Generate a scene, train its features in a child process (the panel's Train path), import it,
click the mug at a pixel of one of its cameras (the click mode's code path), split it into its
own object, export both splats, and render before/after pictures into out/. Prints the
selection's IoU against the ground truth. Run it through `python3 build.py demo`.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# The Python with torch that trains: this one, unless Blender's Python is another (build.py demo on Blender 5.3)
BACKEND_PYTHON = os.environ.get("CLICKGAUSS_BACKEND_PYTHON") or sys.executable

from backend.benchmark.synthetic import make_scene, orbit_cameras, write_scene  # noqa: E402
from backend.formats.ply import read_ply  # noqa: E402
from tools.blender_env import start_blender  # noqa: E402


def render_picture(bpy, objects, path: Path, size, corners=None) -> None:
    """A Cycles picture framing `objects` (or the world points `corners`) from above and in front, colours as
    stored (Standard view transform)."""
    from mathutils import Vector

    scene = bpy.context.scene
    corners = [Vector(c) for c in corners] if corners is not None else None
    corners = corners or [obj.matrix_world @ Vector(c) for obj in objects for c in obj.bound_box]
    center = sum(corners, Vector()) / len(corners)
    radius = max((c - center).length for c in corners)
    camera = bpy.data.objects.new("Demo Camera", bpy.data.cameras.new("Demo Camera"))
    scene.collection.objects.link(camera)
    camera.location = center + Vector((0.0, -1.6, 1.0)).normalized() * radius * 2.0
    camera.rotation_euler = (center - camera.location).to_track_quat("-Z", "Y").to_euler()
    scene.camera = camera
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 16
    scene.render.resolution_x, scene.render.resolution_y = size
    scene.view_settings.view_transform = "Standard"
    scene.world = scene.world or bpy.data.worlds.new("World")
    scene.world.color = (0.05, 0.05, 0.06)
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    bpy.data.objects.remove(camera)


def deepest_pixel(labels: np.ndarray, value: int) -> tuple[float, float]:
    """The image point deepest inside the region `labels == value` (pixel centre)."""
    from scipy.ndimage import distance_transform_edt

    y, x = np.unravel_index(np.argmax(distance_transform_edt(labels == value)), labels.shape)
    return x + 0.5, y + 0.5


def train_in_child_process(addon, bpy, obj, folder: Path, iterations: int):
    """The panel's Train button, minus the timer: the backend process with JSON progress."""
    settings = bpy.context.scene.clickgauss
    settings.images_dir, settings.cameras_path = str(folder / "images"), str(folder / "sparse" / "0")
    settings.mask_source, settings.mask_dir = "FOLDER", str(folder / "masks")
    settings.iterations, settings.downscale = iterations, 1
    prefs = addon.addon_preferences.preferences()
    prefs.python_path = BACKEND_PYTHON
    job = addon.training.TrainingJob(obj, settings, prefs)
    while job.running:
        for event in job.events():
            addon.training.describe(settings, event)
            print(f"\r  training: {settings.status:60}", end="", flush=True)
        time.sleep(0.2)
    print()
    if job.process.returncode != 0:
        sys.exit(f"training failed: {job.error()}")
    field = job.features()
    addon.click_cache.store_features(obj, field.features, field.centers)
    job.cleanup()


def write_demo_scene(folder: Path, gaussians: int) -> None:
    """The generated scene, its photos (rendered with torch), cameras and masks in `folder`: here, or in the
    backend's Python where this one has no torch (a Blender whose Python is not the backend's)."""
    if importlib.util.find_spec("torch") is not None:
        write_scene(folder, make_scene(gaussians, seed=0), orbit_cameras(10, width=240, height=180))
        return
    code = (
        "import sys, pathlib; sys.path.insert(0, sys.argv[1]); import tools.demo as demo; "
        "demo.write_demo_scene(pathlib.Path(sys.argv[2]), int(sys.argv[3]))"
    )
    subprocess.run([BACKEND_PYTHON, "-c", code, str(ROOT), str(folder), str(gaussians)], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path("out"), help="folder for the files and pictures (default: out)"
    )
    parser.add_argument("--gaussians", type=int, default=30_000, help="size of the generated scene")
    parser.add_argument("--iterations", type=int, default=900, help="training steps (GFL from two thirds on)")
    parser.add_argument("--picture-size", type=int, nargs=2, default=(960, 540), metavar=("W", "H"))
    options = parser.parse_args()
    out = options.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    scene = make_scene(options.gaussians, seed=0)
    cameras = orbit_cameras(10, width=240, height=180)
    folder = out / "demo_scene"
    shutil.rmtree(folder, ignore_errors=True)  # a previous run's photos would not match these cameras
    write_demo_scene(folder, options.gaussians)
    print(
        f"generated {scene.splat.count:,} Gaussians ({', '.join(scene.object_names[1:])} on the ground), "
        f"{len(cameras)} photos, cameras and masks -> {folder}"
    )

    bpy, addon = start_blender()
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    bpy.ops.clickgauss.import_splat(filepath=str(folder / "splat.ply"))
    obj = bpy.context.view_layer.objects.active
    render_picture(bpy, [obj], out / "demo_before.png", options.picture_size)
    training_started = time.perf_counter()
    train_in_child_process(addon, bpy, obj, folder, options.iterations)
    print(f"trained {options.iterations} steps in {time.perf_counter() - training_started:.0f} s")

    mug = scene.object_names.index("mug")
    view = 3
    x, y = deepest_pixel(np.load(folder / "gt" / f"{Path(cameras[view].name).stem}.npz")["objects"], mug)
    info = addon.click_session.apply_click(obj, cameras[view], x, y, "SET", "coarse")
    chosen = addon.feature_store.read_selection(obj)
    truth = scene.object_ids == mug
    iou = (chosen & truth).sum() / (chosen | truth).sum()
    print(
        f"clicked ({x:.0f}, {y:.0f}) in {cameras[view].name}: selected {info['selected']:,} Gaussians in "
        f"{info['ms']:.1f} ms; IoU with the mug's {truth.sum():,} Gaussians: {iou:.3f}"
    )

    bpy.ops.clickgauss.split()
    part = bpy.data.objects[f"{obj.name} part"]
    part.name = "mug"
    for target, name in ((part, "demo_mug.ply"), (obj, "demo_rest.ply")):
        bpy.context.view_layer.objects.active = target
        bpy.ops.clickgauss.export_splat(filepath=str(out / name))
    counts = [read_ply(out / name).count for name in ("demo_mug.ply", "demo_rest.ply")]
    print(
        f"split and exported: {out / 'demo_mug.ply'} ({counts[0]:,}) + {out / 'demo_rest.ply'} ({counts[1]:,}) "
        f"= {sum(counts):,} Gaussians"
    )
    part.location.z += 0.6  # lift the mug: it is its own object now
    render_picture(bpy, [obj, part], out / "demo_after.png", options.picture_size)
    print(
        f"pictures: {out / 'demo_before.png'}, {out / 'demo_after.png'}; "
        f"demo took {time.perf_counter() - started:.0f} s"
    )
    return 0 if iou > 0.8 and sum(counts) == scene.splat.count else 1


if __name__ == "__main__":
    sys.exit(main())
