"""Accuracy of Click-Gaussian on generated scenes with SAM-like masks: the ablation table and the threshold sweep.

Run: python3 build.py bench accuracy   (or .venv/bin/python bench/bench_accuracy.py [--iterations N ...])

Two scenes of the same kind, different seeds: on the tuning scene the full method is trained and
the similarity threshold of each level swept; on the test scene every variant is trained and
scored at the thresholds the tuning sweep picked (the product's defaults in backend/click.py), so
no number in the table was tuned on the scene or clicks it reports. A last row trains the full
method on exact masks, to show what the masks' flaws cost. Writes out/accuracy/accuracy.json.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

from common import ROOT, machine

VARIANTS = {  # the ablations of METHOD.md: TrainConfig switches
    "full": {},
    "without GFL": {"use_gfl": False},
    "without granularity prior": {"use_granularity_prior": False},
    "without 3D-norm": {"use_norm3d": False},
    "without 2D-norm": {"use_norm2d": False},
    "without spatial": {"use_spatial": False},
}
SWEEP = [round(0.5 + 0.025 * i, 3) for i in range(20)]  # 0.5 .. 0.975
PLATEAU = 2.0  # mIoU points, about the noise of 3 clicks per label: pick the middle of the thresholds this close to the best


def make_benchmark(folder, seed: int, args, flaws):
    """Generate, write (the real-data layout) and load back a scene: splat, cameras, label maps, ground truth, weights."""
    from backend.cameras import load_images
    from backend.evaluate import load_ground_truth
    from backend.masks import view_labels
    from backend.synthetic import make_scene, orbit_cameras, random_layout, write_scene
    from backend.views import camera_weights, splat_tensors

    scene = make_scene(args.gaussians, seed=seed, parts=random_layout(args.objects, seed))
    cameras = orbit_cameras(args.views, args.width, args.height, radius=4.2)
    write_scene(folder, scene, cameras, flaws, seed)
    _, images = load_images(folder / "images", cameras)
    labels = [view_labels(image, c.name, "folder", mask_dir=folder / "masks") for c, image in zip(cameras, images)]
    tensors = splat_tensors(scene.splat)
    weights = [camera_weights(scene.splat, camera, tensors=tensors) for camera in cameras]
    return scene, cameras, labels, load_ground_truth(folder / "gt", cameras), weights


def train_and_score(bench, config, thresholds, clicks_seed: int):
    from backend.evaluate import evaluate
    from backend.train import train_features

    scene, cameras, labels, truth, weights = bench
    started = time.perf_counter()
    field = train_features(scene.splat, cameras, labels, config, "simulated SAM-like masks").field
    seconds = time.perf_counter() - started
    results = evaluate(scene.splat, cameras, truth, field.features, thresholds, 3, clicks_seed, weights,
                       config.use_granularity_prior)
    return results, seconds


def sweep_curve(results, level: str, first: int = 0) -> list[float]:
    """mIoU of one level at every threshold of SWEEP, which starts at index `first` of the results' thresholds."""
    from backend.evaluate import summary

    return [summary(results, first + i)["miou"][level] for i in range(len(SWEEP))]


def chosen(curve: list[float]) -> float:
    best = max(curve)
    near = [t for t, score in zip(SWEEP, curve) if score >= best - PLATEAU]
    return near[len(near) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gaussians", type=int, default=12_000)
    parser.add_argument("--objects", type=int, default=6)
    parser.add_argument("--views", type=int, default=12)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--height", type=int, default=96)
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--pixels", type=int, default=2048)
    parser.add_argument("--out", default=str(ROOT / "out" / "accuracy"))
    args = parser.parse_args()

    from pathlib import Path

    from backend.click import DEFAULT_THRESHOLDS
    from backend.evaluate import summary
    from backend.mask_simulator import REALISTIC
    from backend.train import TrainConfig

    print(machine())
    out = Path(args.out)
    iterations = args.iterations
    config = TrainConfig(iterations=iterations, pixels=args.pixels, gfl_start=2 * iterations // 3,
                         gfl_refresh=max(1, iterations // 6))  # the paper's 2000 / 500 of 3000, scaled
    print(f"scenes: {args.gaussians:,} Gaussians, {args.objects} objects on a ground plane, {args.views} views "
          f"{args.width}x{args.height}, masks {REALISTIC}; training: {iterations} iterations, {args.pixels} pixels, "
          f"GFL from {config.gfl_start}, refreshed every {config.gfl_refresh}; 3 clicks per object and part")
    started = time.perf_counter()
    report = {"settings": vars(args), "flaws": vars(REALISTIC), "config": vars(config)}

    tune = make_benchmark(out / "tune", 101, args, REALISTIC)
    results, seconds = train_and_score(tune, config, {"coarse": SWEEP, "fine": SWEEP}, clicks_seed=101)
    curves = {level: sweep_curve(results, level) for level in ("coarse", "fine")}
    picked = {level: chosen(curve) for level, curve in curves.items()}
    report["sweep"] = {"thresholds": SWEEP, "tuning": curves, "picked": picked}
    print(f"\nthreshold sweep on the tuning scene (seed 101), full method, trained in {seconds:.0f} s:")
    print("| threshold | " + " | ".join(f"{t:g}" for t in SWEEP) + " |")
    for level, curve in curves.items():
        print(f"| {level} mIoU | " + " | ".join(f"{score:.1f}" for score in curve) + " |")
    print(f"picked (middle of the thresholds within {PLATEAU} mIoU of the best): {picked}")
    if picked != DEFAULT_THRESHOLDS:
        print(f"NOTE: the product's defaults (backend/click.py) are {DEFAULT_THRESHOLDS}, not these")

    test = make_benchmark(out / "test", 0, args, REALISTIC)
    exact = make_benchmark(out / "test_exact", 0, args, None)  # the same scene with exact masks
    runs = [(name, test, switches) for name, switches in VARIANTS.items()] + [("full, exact masks", exact, {})]
    thresholds = {level: [value] for level, value in picked.items()}
    rows = {}
    print(f"\nablation on the test scene (seed 0) at the picked thresholds {picked}:")
    print("| variant | coarse mIoU | fine mIoU | all mIoU | median click | training |")
    print("|---|---|---|---|---|---|")
    for name, bench, switches in runs:
        sweep = {"coarse": thresholds["coarse"] + SWEEP, "fine": thresholds["fine"] + SWEEP}
        results, seconds = train_and_score(bench, replace(config, **switches), sweep, clicks_seed=0)
        scores = summary(results, 0)
        rows[name] = {**scores, "train_s": seconds,
                      "sweep": {level: sweep_curve(results, level, 1) for level in ("coarse", "fine")}}
        miou = scores["miou"]
        print(f"| {name} | {miou['coarse']:.1f} | {miou['fine']:.1f} | {miou['all']:.1f} | "
              f"{scores['click_ms']['median']:.1f} ms | {seconds:.0f} s |", flush=True)
    report["ablation"] = rows
    full = rows["full"]["sweep"]
    print("\nfor reference, the full method's sweep on the test scene (not used to choose anything):")
    for level in ("coarse", "fine"):
        print(f"| {level} mIoU | " + " | ".join(f"{score:.1f}" for score in full[level]) + " |")
    out.mkdir(parents=True, exist_ok=True)
    (out / "accuracy.json").write_text(json.dumps(report, indent=1, default=str))
    print(f"\nwrote {out / 'accuracy.json'}; {time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
