"""`python -m backend eval` on a generated 1,000,000-Gaussian scene: the time per click of the evaluation.

Target on a 2-core CPU: median time per click <= 10 ms. The scene is generated and written in the
real-data layout, features are trained by the ordinary `train` command (a short run: this bench
times clicks, docs/accuracy.md measures accuracy) and scored by the ordinary `eval` command, so
every step is the product's own entry point. The baseline, measured in the same run, is one pass
over the coarse unit features (1M x 12 float32 = 48 MB), which every click must make.
Run: python3 build.py bench eval   (or .venv/bin/python bench/bench_eval.py --gaussians 200000)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import ROOT, feature_pass_ms, machine


def backend(*arguments) -> float:
    """Run `python -m backend ARGUMENTS`; seconds it took."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "backend", *map(str, arguments)], cwd=ROOT, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gaussians", type=int, default=1_000_000)
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=300)
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory(prefix="clickgauss-bench-eval-") as folder:
        run(Path(folder), args)


def run(folder: Path, args) -> None:
    from backend.benchmark.synthetic import make_scene, orbit_cameras, random_layout, write_scene

    started = time.perf_counter()
    scene = make_scene(args.gaussians, seed=0, parts=random_layout(6, 0))
    write_scene(folder, scene, orbit_cameras(args.views, 320, 240, radius=4.2))
    print(
        f"scene: {args.gaussians:,} Gaussians, 6 objects, {args.views} views 320x240, exact masks; "
        f"generated and written in {time.perf_counter() - started:.0f} s"
    )
    scene_args = ["--splat", folder / "splat.ply", "--cameras", folder / "sparse" / "0"]
    seconds = backend(
        "train",
        *scene_args,
        "--images",
        folder / "images",
        "--mask-dir",
        folder / "masks",
        "--iterations",
        args.iterations,
        "--progress",
        "none",
        "--out",
        folder / "features.npz",
    )
    print(f"train: {args.iterations} iterations in {seconds:.0f} s")
    seconds = backend(
        "eval",
        *scene_args,
        "--features",
        folder / "features.npz",
        "--gt",
        folder / "gt",
        "--json",
        folder / "eval.json",
    )
    clicks = json.loads((folder / "eval.json").read_text())["click_ms"]

    baseline = feature_pass_ms(np.random.default_rng(0).normal(size=(args.gaussians, 12)).astype(np.float32))
    print(
        f"\neval: {seconds:.0f} s; {clicks['clicks']} clicks: median {clicks['median']:.2f} ms, "
        f"max {clicks['max']:.2f} ms per click (target: median <= 10 ms); building the click index "
        f"{clicks['index_ms']:.0f} ms once"
    )
    print(
        f"baseline, one pass over the coarse unit features: {baseline:.2f} ms; "
        f"median click / baseline = {clicks['median'] / baseline:.1f}"
    )


if __name__ == "__main__":
    main()
