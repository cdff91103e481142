"""The demo: a generated splat scene through the real add-on in real Blender, pictures into out/.

Run it through `python3 build.py demo`, which sets up, builds the zip and passes its path.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.ply import write_ply  # noqa: E402
from backend.synthetic import make_scene  # noqa: E402
from tools.blender_env import start_blender  # noqa: E402


def render_picture(bpy, obj, path: Path, size=(960, 540)) -> None:
    """A Cycles picture of `obj` from above and in front, colours as stored (Standard view transform)."""
    from mathutils import Vector

    scene = bpy.context.scene
    corners = [obj.matrix_world @ Vector(c) for c in obj.bound_box]
    center = sum(corners, Vector()) / 8
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("out"), help="folder for the files and pictures (default: out)")
    parser.add_argument("--gaussians", type=int, default=60_000, help="size of the generated scene")
    options = parser.parse_args()
    out = options.out.resolve()
    out.mkdir(parents=True, exist_ok=True)

    scene = make_scene(options.gaussians, seed=0)
    source = out / "demo_scene.ply"
    write_ply(source, scene.splat)
    print(f"generated {scene.splat.count:,} Gaussians ({', '.join(scene.object_names)}) -> {source}")

    bpy, _ = start_blender()
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    started = time.perf_counter()
    bpy.ops.clickgauss.import_splat(filepath=str(source))
    obj = bpy.context.view_layer.objects.active
    print(f"imported into Blender as '{obj.name}' ({len(obj.data.points):,} points) in {time.perf_counter() - started:.2f} s")

    exported = out / "demo_export.ply"
    bpy.ops.clickgauss.export_splat(filepath=str(exported))
    identical = exported.read_bytes() == source.read_bytes()
    print(f"exported -> {exported}: {'byte for byte identical to the input' if identical else 'DIFFERS from the input'}")

    picture = out / "demo_import.png"
    render_picture(bpy, obj, picture)
    print(f"rendered -> {picture}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
