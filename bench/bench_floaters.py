"""Select Floaters and Select by Attribute through the installed add-on in real bpy, at 1 million Gaussians (1 %
floaters injected).

Target on a 2-core CPU: a slider update (Strength; an opacity or a colour range) <= 50 ms. Baseline, measured in
the same run: the selection write alone (what any change of the selection costs). Also the cold Select Floaters
(the scores computed), the rates on the generated scene, and on the statue the share its default strength takes
and the scoring time.
Run: python3 build.py bench floaters
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from common import machine, statue_or_skip

from backend.benchmark.synthetic import make_scene, with_floaters
from backend.field.floaters import floater_scores, floaters
from backend.formats.ply import write_ply
from tools.blender_env import start_blender


def ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def slider_ms(settings, name: str, values) -> list[float]:
    """Milliseconds of each update as a slider moves through `values` (the selection follows it live)."""
    times = []
    for value in values:
        started = time.perf_counter()
        setattr(settings, name, float(value))
        times.append(ms_since(started))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000, help="Gaussians of the generated scene")
    count = parser.parse_args().size
    print(machine())
    splat, truth = with_floaters(make_scene(int(count * 0.99), seed=0).splat, 0.01, 0)
    folder = Path(tempfile.mkdtemp(prefix="clickgauss-bench-floaters-"))
    write_ply(folder / "scene.ply", splat)
    bpy, addon = start_blender()
    bpy.ops.clickgauss.import_splat(filepath=str(folder / "scene.ply"))
    obj = bpy.context.view_layer.objects.active
    settings = bpy.context.scene.clickgauss
    started = time.perf_counter()
    bpy.ops.clickgauss.select_floaters()
    cold_ms = ms_since(started)
    selected = addon.feature_store.read_selection(obj)
    slider = slider_ms(settings, "floater_strength", np.linspace(0.3, 0.7, 21))
    settings.select_attribute, settings.opacity_low = "OPACITY", 0.0
    bpy.ops.clickgauss.select_by_attribute()
    opacity = slider_ms(settings, "opacity_high", np.linspace(0.05, 0.5, 21))
    settings.select_attribute = "COLOR"
    bpy.ops.clickgauss.select_by_attribute()
    color = slider_ms(settings, "color_distance", np.linspace(0.05, 0.3, 21))
    writes = []
    for _ in range(21):
        started = time.perf_counter()
        addon.click_cache.write_selection(obj, selected)
        writes.append(ms_since(started))
    print(
        f"\n{splat.count:,} Gaussians, {int(truth.sum()):,} floaters injected: the default strength finds "
        f"{selected[truth].mean():.1%} of them and takes {selected[~truth].mean():.2%} of the rest\n"
        f"| step | first | median | max |\n|---|---|---|---|\n"
        f"| Select Floaters (scores computed) | {cold_ms:.0f} ms | | |\n"
        + "".join(
            f"| {name} slider update | {times[0]:.1f} ms | {np.median(times):.1f} ms | {max(times):.1f} ms |\n"
            for name, times in (("Strength", slider), ("opacity range", opacity), ("colour distance", color))
        )
        + f"| baseline: the selection write alone | {writes[0]:.1f} ms | {np.median(writes):.1f} ms | "
        f"{max(writes):.1f} ms |"
    )
    statue, _ = statue_or_skip()
    started = time.perf_counter()
    scores = floater_scores(statue.positions, np.exp(statue.scales), statue.alphas)
    seconds = time.perf_counter() - started
    shares = ", ".join(f"{strength:g}: {floaters(scores, strength).mean():.1%}" for strength in (0.3, 0.5, 0.7))
    print(f"\nthe statue ({statue.count:,} Gaussians): scored in {seconds:.1f} s; taken by strength {shares}")


if __name__ == "__main__":
    main()
