"""Clicks, split and delete on a 1,000,000-Gaussian splat through the installed add-on in real bpy.

Targets on a 2-core CPU: per click (event to selection) median <= 10 ms, 99th percentile <= 20 ms;
split or delete of 1M Gaussians <= 0.5 s. The baseline, measured in the same run, is one pass
over the coarse unit features (1M x 12 float32 = 48 MB): no click can take less, so the ratio
says how close a click is to memory bandwidth.
Run: python3 build.py bench click
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from common import feature_pass_ms, machine

from backend.ply import write_ply
from backend.synthetic import make_scene, orbit_cameras
from tools.blender_env import start_blender

COUNT, CLICKS = 1_000_000, 200


def object_features(object_ids: np.ndarray, seed: int = 0) -> np.ndarray:
    """(N, 24) features that separate the objects, as a trained field does, so selections have realistic sizes."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(object_ids.max() + 1, 24))
    features = directions[object_ids] + rng.normal(scale=0.15, size=(len(object_ids), 24))
    return (features / np.linalg.norm(features, axis=1, keepdims=True)).astype(np.float16)


def main() -> None:
    print(machine())
    scene = make_scene(COUNT, seed=0)
    folder = Path(tempfile.mkdtemp(prefix="clickgauss-bench-click-"))
    write_ply(folder / "scene.ply", scene.splat)
    bpy, addon = start_blender()
    engine = addon.click_engine
    bpy.ops.clickgauss.import_splat(filepath=str(folder / "scene.ply"))
    obj = bpy.context.view_layer.objects.active
    engine.store_features(obj, object_features(scene.object_ids))
    camera = orbit_cameras(8, width=1008, height=756)[1]
    rng = np.random.default_rng(1)
    pixels = rng.uniform([0, 0], [camera.width, camera.height], size=(CLICKS, 2))

    started = time.perf_counter()
    engine.apply_click(obj, camera, *pixels[0])
    first_ms = (time.perf_counter() - started) * 1e3  # builds the caches: geometry, unit features, projection
    times, selected = [], []
    for (x, y), mode in zip(pixels, ["SET", "ADD", "SUBTRACT", "SET"] * CLICKS):
        started = time.perf_counter()
        info = engine.apply_click(obj, camera, x, y, mode)
        times.append((time.perf_counter() - started) * 1e3)
        selected.append(info["selected"])
    moved = []
    for other in orbit_cameras(8, width=1008, height=756)[2:]:  # the user orbits between clicks
        started = time.perf_counter()
        engine.apply_click(obj, other, other.width / 2, other.height / 2)
        moved.append((time.perf_counter() - started) * 1e3)
    floor = feature_pass_ms(engine.state_of(obj).unit("coarse"))
    median, p99 = np.median(times), np.percentile(times, 99)
    print(f"splat: {COUNT:,} Gaussians, view {camera.width}x{camera.height}, {CLICKS} clicks (set/add/subtract), "
          f"median selection {int(np.median(selected)):,} Gaussians")
    print(f"per click: median {median:.1f} ms (target 10), p99 {p99:.1f} ms (target 20); "
          f"first click on the splat {first_ms:.0f} ms (builds its caches), "
          f"first click after the view moved {np.median(moved):.0f} ms (projects the centres)")
    print(f"baseline: one pass over the 48 MB of coarse unit features {floor:.1f} ms "
          f"({48 / floor:.1f} GB/s); a click is {median / floor:.1f}x that")

    engine.write_selection(obj, scene.object_ids == 0)  # the ground: most of the splat
    half = int((scene.object_ids == 0).sum())
    started = time.perf_counter()
    bpy.ops.clickgauss.split()
    split_s = time.perf_counter() - started
    part = bpy.data.objects[f"{obj.name} part"]
    engine.write_selection(part, np.ones(len(part.data.points), bool) & (np.arange(len(part.data.points)) % 2 == 0))
    bpy.context.view_layer.objects.active = part
    started = time.perf_counter()
    bpy.ops.clickgauss.delete()
    delete_s = time.perf_counter() - started
    print(f"split {half:,} of {COUNT:,} Gaussians into a new object: {split_s:.2f} s (target 0.5); "
          f"delete {half - len(part.data.points):,} of {half:,}: {delete_s:.2f} s")


if __name__ == "__main__":
    main()
