"""Import and export of a generated 1,000,000-Gaussian SH-3 splat through the installed add-on in real bpy.

Targets on a 2-core machine: import <= 1.5 s, export <= 1.5 s. The format core alone is timed in the
same run as the baseline, so the Blender share of each figure is visible.
Run: python3 build.py bench io
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.ply import read_ply, write_ply  # noqa: E402
from backend.synthetic import make_scene  # noqa: E402
from tools.blender_env import start_blender  # noqa: E402

COUNT, DEGREE, REPEATS = 1_000_000, 3, 3


def best_of(action) -> float:
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="clickgauss-bench-io-"))
    source, exported = folder / "scene.ply", folder / "exported.ply"
    write_ply(source, make_scene(COUNT, sh_degree=DEGREE).splat)
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"file: {COUNT:,} Gaussians, SH degree {DEGREE}, {source.stat().st_size / 1e6:.0f} MB")

    read_s = best_of(lambda: read_ply(source))
    splat = read_ply(source)
    write_s = best_of(lambda: write_ply(exported, splat))

    bpy, _ = start_blender()

    def import_once():
        for obj in list(bpy.data.objects):
            bpy.data.objects.remove(obj)
        bpy.ops.clickgauss.import_splat(filepath=str(source))

    import_s = best_of(import_once)
    export_s = best_of(lambda: bpy.ops.clickgauss.export_splat(filepath=str(exported)))
    identical = exported.read_bytes() == source.read_bytes()
    print(f"format core: read {read_s:.2f} s, write {write_s:.2f} s (baseline)")
    print(f"add-on: import {import_s:.2f} s (target 1.5), export {export_s:.2f} s (target 1.5), best of {REPEATS}")
    print(f"ratios to the baseline: import {import_s / read_s:.1f}x read, export {export_s / write_s:.1f}x write")
    print(f"export byte for byte identical to the input: {identical}")


if __name__ == "__main__":
    main()
