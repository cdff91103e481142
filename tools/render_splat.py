"""Render a splat file as the add-on imports it, headless with Cycles on the CPU: to see what a user sees.

In Blender 5.3 and later the import is a native Gaussian splat, drawn as Gaussians; before, as discs.

    python tools/render_splat.py SPLAT OUT.png [--size W H] [--forward Y --up Z]

Run it with the Python of the Blender to look at (.venv: 5.0; .venvs/blender-5.3 after `build.py matrix 5.3`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.blender_env import start_blender  # noqa: E402
from tools.demo import render_picture  # noqa: E402

AXES = ["X", "Y", "Z", "-X", "-Y", "-Z"]


def framed(obj) -> list[tuple[float, float, float]]:
    """World points around the Gaussians' median, 90 % of them within: floaters far out do not shrink the scene in
    the picture."""
    positions = np.empty((len(obj.data.points), 3), np.float32)
    obj.data.attributes["position"].data.foreach_get("vector", positions.ravel())
    center = np.median(positions, axis=0)
    reach = float(np.percentile(np.linalg.norm(positions - center, axis=1), 90))
    matrix = np.array(obj.matrix_world)
    return [
        tuple(matrix[:3, :3] @ (center + side * reach) + matrix[:3, 3]) for side in np.vstack([np.eye(3), -np.eye(3)])
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("splat", type=Path, help="a splat file the add-on imports (.ply, .spz, .splat, .sog)")
    parser.add_argument("out", type=Path, help="the picture to write (.png)")
    parser.add_argument("--size", type=int, nargs=2, default=(640, 480), metavar=("W", "H"))
    parser.add_argument("--forward", choices=AXES, default="Z", help="the file's forward axis (default: Z, OpenCV)")
    parser.add_argument("--up", choices=AXES, default="-Y", help="the file's up axis (default: -Y, OpenCV)")
    options = parser.parse_args()
    if not options.splat.is_file():
        parser.error(f"{options.splat} is not a file")
    bpy, _ = start_blender()
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    try:
        bpy.ops.clickgauss.import_splat(
            filepath=str(options.splat.resolve()), axis_forward=options.forward, axis_up=options.up
        )
    except RuntimeError as error:
        print(f"error: {error}".strip(), file=sys.stderr)
        return 2
    obj = bpy.context.view_layer.objects.active
    render_picture(bpy, [obj], options.out.resolve(), options.size, framed(obj))
    drawn = "Gaussians" if getattr(obj.data, "type", "POINTS") == "GAUSSIAN_SPLAT" else "discs"
    print(f"{options.out}: {len(obj.data.points):,} Gaussians drawn as {drawn} by Blender {bpy.app.version_string}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
