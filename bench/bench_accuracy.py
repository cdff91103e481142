"""Accuracy of Click-Gaussian on generated scenes with SAM-like masks: the ablation table and the threshold sweep.

Run: python3 build.py bench accuracy   (or .venv/bin/python bench/bench_accuracy.py [--scenes N ...])

Scenes of the same kind on different seeds: on the tuning scenes the full method is trained and the
similarity threshold of each level swept; on the test scenes every variant is trained and scored at
the thresholds the tuning sweep picked (the product's defaults in backend/field/click.py), so no number in
the table was tuned on the scenes or clicks it reports. mIoU is averaged per scene, then over scenes
(METHOD.md). More tables train the full method on the test scenes with each step's pixels drawn
otherwise (all uniformly, all evenly per mask), with exact masks and with fewer missed part masks
(what the masks' flaws cost), and score it with one negative click per label as well. A last table takes
other mask sources: the geometric masks (backend/field/geometric_masks.py, what Auto uses without SAM: their field
lifted from the 3D groups, no step taken, as `train` makes it at automatic steps) and, trained on, SAM-like masks
that leave the ground unlabelled (with and without unlabelled pixels as negatives), each label also scored by
RANDOM_CLICKS single clicks at random pixels (mean, 10th percentile) and by the share of floor in its selection.
The `real` table (not run unless asked) makes each real splat's field from its .ply alone, as a user would
(`python -m backend train --splat S --out F`: planned views, geometric masks, the defaults),
and scores the protocol's clicks and RANDOM_CLICKS single clicks per label against the written ground truth of
backend/benchmark/real_splats.py, in the planned views. `--tables` picks tables; `--skip-tuning` uses the product's
thresholds. Writes out/accuracy/accuracy.json.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from common import ROOT, machine, write_generated_scene

VARIANTS = {  # the ablations of METHOD.md: TrainConfig switches
    "full": {},
    "without GFL": {"use_gfl": False},
    "without granularity prior": {"use_granularity_prior": False},
    "without 3D-norm": {"use_norm3d": False},
    "without 2D-norm": {"use_norm2d": False},
    "without spatial": {"use_spatial": False},
}
PIXEL_DRAWS = {  # METHOD.md does not say how a step's pixels are drawn: the two ends of our default's mix
    "pixels drawn uniformly (mask_balance 0)": {"mask_balance": 0.0},
    "pixels drawn evenly per mask only (mask_balance 1)": {"mask_balance": 1.0},
}
SWEEP = [round(0.5 + 0.025 * i, 3) for i in range(20)]  # 0.5 .. 0.975
MISSED_PART_MASKS = [0.1, 0.0]  # merge_parts below REALISTIC's 0.25: how much the fine level owes to missed part masks
RANDOM_CLICKS = 8  # single clicks per label at random pixels in random views, in the mask-source table
SOURCES = ("geometric", "unlabelled", "unlabelled-not-negatives")  # --sources: the rows of the sources table
TABLES = ("ablation", "pixels", "flaws", "outside", "views", "sources", "real")
REAL_SPLATS = ROOT.parent / "shared" / "data" / "splats"
REAL_VIEW_SIZE = 256  # px: the planned views the real splats are clicked and scored in (the same poses as training's)
PLATEAU = (
    2.0  # mIoU points, about the noise of 3 clicks per label: pick the middle of the thresholds this close to the best
)


def real_rows(features_folder: Path, thresholds: dict) -> dict:
    """The real table: per real splat, train (unless its features exist), click and score against its ground truth."""
    import subprocess
    import sys

    from backend.benchmark.real_splats import ground_truth, labels_of, real_splats
    from backend.field.evaluate import evaluate, summary
    from backend.formats import read_splat
    from backend.formats.features import load_features
    from backend.scene.view_planning import plan_splat_views

    rows = {}
    for path in real_splats(REAL_SPLATS):
        features = features_folder / f"{path.stem}.npz"
        seconds = None
        if not features.exists():
            started = time.perf_counter()
            command = [sys.executable, "-m", "backend", "train", "--splat", str(path), "--out", str(features)]
            subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
            seconds = time.perf_counter() - started
        splat = read_splat(path)
        cameras = plan_splat_views(splat, long_side=REAL_VIEW_SIZE).cameras
        truth = ground_truth(splat, cameras, labels_of(path, splat))
        field_ = load_features(features, splat)
        results = evaluate(
            splat, cameras, truth, field_.features.astype(np.float32), thresholds, random_clicks=RANDOM_CLICKS
        )
        report = summary(results)
        rows[path.name] = {**report, "train_s": seconds}
        single = report["single_clicks"]
        scores = [f"{name} {score:.0f}" for per_level in report["labels"].values() for name, score in per_level.items()]
        labels = "; ".join(scores)
        print(
            f"| {path.name} | {report['miou'].get('coarse', float('nan')):.1f} | "
            f"{report['miou'].get('fine', float('nan')):.1f} | "
            + " | ".join(
                f"{single[level]['mean']:.1f} / {single[level]['p10']:.1f}" if level in single else "-"
                for level in ("coarse", "fine")
            )
            + f" | {labels} | "
            + (f"{seconds:.0f} s" if seconds is not None else "(given)")
            + " |",
            flush=True,
        )
    return rows


def make_benchmark(folder, seed: int, args, flaws, rendered_views: bool = False):
    """Generate, write (the real-data layout) and load back a scene: splat, cameras, label maps, ground truth, weights,
    and the cameras and label maps to train on: the photos' own, or with `rendered_views` views planned from the
    splat alone (backend/scene/view_planning.py: as many, as large), each with the same kind of simulated masks."""
    from backend.benchmark.synthetic import make_scene, orbit_cameras, random_layout
    from backend.field.evaluate import load_ground_truth
    from backend.field.views import camera_weights, splat_tensors

    scene = make_scene(args.gaussians, seed=seed, parts=random_layout(args.objects, seed))
    cameras = orbit_cameras(args.views, args.width, args.height, radius=4.2)
    labels = write_generated_scene(folder, scene, cameras, flaws, seed)
    tensors = splat_tensors(scene.splat)
    weights = [camera_weights(scene.splat, camera, tensors=tensors) for camera in cameras]
    train_cameras, train_labels = cameras, labels
    if rendered_views:
        train_cameras, train_labels = planned_views(scene, args, flaws, seed)
    return scene, cameras, labels, load_ground_truth(folder / "gt", cameras), weights, train_cameras, train_labels


def planned_views(scene, args, flaws, seed: int):
    """Views planned from the splat alone and their two-level labels from simulated masks of their ground truth."""
    import numpy as np

    from backend.benchmark.mask_simulator import PERFECT, simulate_masks
    from backend.benchmark.synthetic import render_views
    from backend.scene.masks import two_level_labels
    from backend.scene.view_planning import plan_splat_views

    cameras = plan_splat_views(scene.splat, args.views, args.width).cameras
    part_objects = np.array([scene.object_names.index(p.object_name) for p in scene.parts])
    labels = [
        two_level_labels(
            simulate_masks(objects, parts, part_objects, flaws or PERFECT, np.random.default_rng([seed, index]))
        )
        for index, (_, objects, parts) in enumerate(render_views(scene, cameras))
    ]
    return cameras, labels


def train_and_score(
    bench, config, thresholds, clicks_seed: int, negative_clicks: int = 0, random_clicks: int = 0, lifted: bool = False
):
    """Scores of the field trained on the bench's masks, or with `lifted` of the geometric masks' field as Auto makes
    it at automatic steps: lifted from the 3D groups (the photos' cameras), no step taken; and its seconds."""
    from backend.field.evaluate import evaluate
    from backend.field.geometric_masks import gaussian_groups
    from backend.field.lifted import lifted_field
    from backend.field.train import train_features

    scene, cameras, _, truth, weights, train_cameras, train_labels = bench
    started = time.perf_counter()
    if lifted:
        groups = gaussian_groups(scene.splat, cameras)
        field = lifted_field(groups.coarse, groups.fine, "", "geometric masks", None)
    else:
        field = train_features(scene.splat, train_cameras, train_labels, config, "simulated SAM-like masks").field
    seconds = time.perf_counter() - started
    results = evaluate(
        scene.splat,
        cameras,
        truth,
        field.features.astype(np.float32),
        thresholds,
        3,
        clicks_seed,
        weights,
        config.use_granularity_prior,
        negative_clicks,
        random_clicks,
    )
    return results, seconds


def scene_miou(results_per_scene, threshold_index: int = 0) -> dict:
    """mIoU per level and overall, per scene first and then averaged over the scenes (METHOD.md)."""
    from backend.field.evaluate import summary

    scores = [summary(results, threshold_index)["miou"] for results in results_per_scene]
    return {key: sum(score[key] for score in scores) / len(scores) for key in scores[0]}


def chosen(curve: list[float]) -> float:
    best = max(curve)
    near = [t for t, score in zip(SWEEP, curve) if score >= best - PLATEAU]
    return near[len(near) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=3, help="tuning scenes and test scenes, each")
    parser.add_argument("--gaussians", type=int, default=12_000)
    parser.add_argument("--objects", type=int, default=6)
    parser.add_argument("--views", type=int, default=12)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--pixels", type=int, default=2048)
    parser.add_argument("--gfl-share", type=float, default=1.0, help="share of each step's subset GFL acts on")
    parser.add_argument("--out", default=str(ROOT / "out" / "accuracy"))
    parser.add_argument(
        "--tables", nargs="+", choices=TABLES, default=list(TABLES[:-1]), help="which tables to measure (real: asked)"
    )
    parser.add_argument(
        "--real-features", type=Path, help="a folder of <name>.npz features of the real splats: trained when missing"
    )
    parser.add_argument(
        "--sources", nargs="+", choices=SOURCES, default=list(SOURCES), help="rows of the sources table to measure"
    )
    parser.add_argument("--test-seeds", type=int, nargs="+", help="the test scenes' seeds (default: 0 .. scenes - 1)")
    parser.add_argument("--skip-tuning", action="store_true", help="score at the product's thresholds, no sweep")
    args = parser.parse_args()

    from backend.benchmark.mask_simulator import GROUND_UNLABELLED, REALISTIC
    from backend.field.click import DEFAULT_THRESHOLDS
    from backend.field.evaluate import summary
    from backend.field.train import TrainConfig

    print(machine())
    out = Path(args.out)
    iterations = args.iterations
    config = TrainConfig(
        iterations=iterations,
        pixels=args.pixels,
        gfl_share=args.gfl_share,
        gfl_start=2 * iterations // 3,
        gfl_refresh=max(1, iterations // 6),
    )  # the paper's 2000 / 500 of 3000, scaled
    tune_seeds, test_seeds = [101 + i for i in range(args.scenes)], args.test_seeds or list(range(args.scenes))
    print(
        f"scenes: {args.gaussians:,} Gaussians, {args.objects} objects on a ground plane, {args.views} views "
        f"{args.width}x{args.height}, masks {REALISTIC}; tuning seeds {tune_seeds}, test seeds {test_seeds}; "
        f"training: {iterations} iterations, {args.pixels} pixels, GFL on {args.gfl_share:g} of each subset from "
        f"{config.gfl_start}, refreshed every "
        f"{config.gfl_refresh}; 3 clicks per object and part"
    )
    started = time.perf_counter()
    report = {"settings": vars(args), "flaws": vars(REALISTIC), "config": vars(config)}

    def run(
        seeds,
        flaws,
        switches,
        thresholds,
        tag,
        negative_clicks=0,
        random_clicks=0,
        geometric=False,
        rendered_views=False,
    ):
        """Train and score one variant on every scene: (per-scene results, mean training seconds)."""
        per_scene, seconds = [], []
        for seed in seeds:
            bench = make_benchmark(out / f"{tag}{seed}", seed, args, flaws, rendered_views)
            results, took = train_and_score(
                bench, replace(config, **switches), thresholds, seed, negative_clicks, random_clicks, geometric
            )
            per_scene.append(results)
            seconds.append(took)
        return per_scene, sum(seconds) / len(seconds)

    if args.skip_tuning:
        picked = dict(DEFAULT_THRESHOLDS)
    else:
        tuned, seconds = run(tune_seeds, REALISTIC, {}, {"coarse": SWEEP, "fine": SWEEP}, "tune")
        curves = {level: [scene_miou(tuned, i)[level] for i in range(len(SWEEP))] for level in ("coarse", "fine")}
        picked = {level: chosen(curve) for level, curve in curves.items()}
        report["sweep"] = {"thresholds": SWEEP, "tuning": curves, "picked": picked}
        print(f"\nthreshold sweep on the tuning scenes, full method, {seconds:.0f} s of training per scene:")
        print("| threshold | " + " | ".join(f"{t:g}" for t in SWEEP) + " |")
        for level, curve in curves.items():
            print(f"| {level} mIoU | " + " | ".join(f"{score:.1f}" for score in curve) + " |")
        print(f"picked (middle of the thresholds within {PLATEAU} mIoU of the best): {picked}")
        if picked != DEFAULT_THRESHOLDS:
            print(f"NOTE: the product's defaults (backend/field/click.py) are {DEFAULT_THRESHOLDS}, not these")

    thresholds = {level: [value] + SWEEP for level, value in picked.items()}  # the picked one, then the sweep
    rows = {}

    def table_row(name, per_scene, seconds):
        scores = scene_miou(per_scene)
        times = [ms for results in per_scene for result in results for ms in result.click_ms]
        rows[name] = {
            "miou": scores,
            "train_s": seconds,
            "click_ms_median": sorted(times)[len(times) // 2],
            "per_scene": [summary(results)["labels"] for results in per_scene],
            "sweep": {
                level: [scene_miou(per_scene, 1 + i)[level] for i in range(len(SWEEP))] for level in ("coarse", "fine")
            },
        }
        print(
            f"| {name} | {scores['coarse']:.1f} | {scores['fine']:.1f} | {scores['all']:.1f} | "
            f"{rows[name]['click_ms_median']:.1f} ms | {seconds:.0f} s |",
            flush=True,
        )

    heading = (
        "| variant | coarse mIoU | fine mIoU | all mIoU | median click | training per scene |\n"
        "|---|---|---|---|---|---|"
    )
    if "ablation" in args.tables:
        print(f"\nablation on the test scenes at the picked thresholds {picked}:\n{heading}")
        for name, switches in VARIANTS.items():
            table_row(name, *run(test_seeds, REALISTIC, switches, thresholds, "test"))
    if "pixels" in args.tables:
        print(
            f"\nthe full method on the same test scenes with each step's pixels drawn otherwise (default: mask_balance "
            f"{config.mask_balance:g}):\n{heading}"
        )
        for name, switches in PIXEL_DRAWS.items():
            table_row(name, *run(test_seeds, REALISTIC, switches, thresholds, "test"))
    if "flaws" in args.tables:
        print(f"\nthe full method on the same test scenes with fewer mask flaws:\n{heading}")
        for merge in MISSED_PART_MASKS:
            flaws = replace(REALISTIC, merge_parts=merge)
            table_row(
                f"realistic, merge_parts {merge:g}", *run(test_seeds, flaws, {}, thresholds, f"test_merge{merge:g}_")
            )
        table_row("exact", *run(test_seeds, None, {}, thresholds, "test_exact"))
    if "outside" in args.tables:
        print(
            "\nthe full method on the test scenes with one more click per object and part, outside it: on the label it "
            f"touches most in the reference view, removing what it selects "
            f"(METHOD.md: 'and optionally outside'):\n{heading}"
        )
        table_row("3 inside + 1 outside", *run(test_seeds, REALISTIC, {}, thresholds, "test", negative_clicks=1))
    if "views" in args.tables:
        print(
            "\nthe full method on the same test scenes trained from views rendered from the splat alone instead of the "
            "photos (planned by backend/scene/view_planning.py, as many and as large, the same kind of "
            "simulated masks), "
            f"clicked and scored in the photos:\n{heading}"
        )
        if "full" not in rows:
            table_row("full", *run(test_seeds, REALISTIC, {}, thresholds, "test"))
        table_row(
            "rendered from the splat", *run(test_seeds, REALISTIC, {}, thresholds, "test_views", rendered_views=True)
        )
    if "sources" in args.tables:
        print(
            f"\nthe full method on the test scenes with other mask sources; besides the protocol's 3 clicks, "
            f"{RANDOM_CLICKS} "
            "single clicks per label at random pixels in random views (mean / 10th percentile of their IoU), and the "
            "share of floor pixels in each object's selection (mean / largest):"
        )
        print(
            "| masks | coarse mIoU | fine mIoU | coarse single clicks | fine single clicks | floor in selections | "
            "training per scene |\n|---|---|---|---|---|---|---|"
        )
        sources = {
            "geometric (Auto without SAM)": (REALISTIC, {}, True),
            "SAM-like, ground unlabelled": (GROUND_UNLABELLED, {}, False),
            "SAM-like, ground unlabelled, unlabelled pixels not negatives": (
                GROUND_UNLABELLED,
                {"use_unlabelled_negatives": False},
                False,
            ),
        }
        for (name, (flaws, switches, geometric)), key in zip(sources.items(), SOURCES):
            if key not in args.sources:
                continue
            tag = "test_unlabelled" if flaws is GROUND_UNLABELLED else "test"
            per_scene, seconds = run(
                test_seeds, flaws, switches, thresholds, tag, random_clicks=RANDOM_CLICKS, geometric=geometric
            )
            scores = scene_miou(per_scene)
            summaries = [summary(results) for results in per_scene]
            single = {
                level: {
                    key: sum(s["single_clicks"][level][key] for s in summaries) / len(summaries)
                    for key in ("mean", "p10")
                }
                for level in ("coarse", "fine")
            }
            floor = {
                "mean": sum(s["floor_share"]["coarse"]["mean"] for s in summaries) / len(summaries),
                "max": max(s["floor_share"]["coarse"]["max"] for s in summaries),
            }
            rows[name] = {
                "miou": scores,
                "single_clicks": single,
                "floor_share": floor,
                "train_s": seconds,
                "per_scene": [s["labels"] for s in summaries],
            }
            print(
                f"| {name} | {scores['coarse']:.1f} | {scores['fine']:.1f} | {single['coarse']['mean']:.1f} / "
                f"{single['coarse']['p10']:.1f} | {single['fine']['mean']:.1f} / {single['fine']['p10']:.1f} | "
                f"{floor['mean']:.1f} % / {floor['max']:.1f} % | {seconds:.0f} s |",
                flush=True,
            )
    if "real" in args.tables:
        print(
            f"\nthe real splats of {REAL_SPLATS}, each trained from its .ply alone with the defaults, clicked in its "
            f"planned views ({REAL_VIEW_SIZE} px) at the picked thresholds {picked}: the protocol's 3 clicks, and "
            f"{RANDOM_CLICKS} single clicks per label (mean / 10th percentile), against the written labels of "
            "backend/benchmark/real_splats.py:\n"
            "| splat | coarse mIoU | fine mIoU | coarse single clicks | fine single clicks | per label | training |\n"
            "|---|---|---|---|---|---|---|"
        )
        folder = args.real_features or out / "real"
        folder.mkdir(parents=True, exist_ok=True)
        report["real"] = real_rows(folder, {level: [value] for level, value in picked.items()})
    report["ablation"] = rows
    if "full" in rows:
        print("\nfor reference, the full method's sweep on the test scenes (not used to choose anything):")
        for level in ("coarse", "fine"):
            print(f"| {level} mIoU | " + " | ".join(f"{score:.1f}" for score in rows["full"]["sweep"][level]) + " |")
    out.mkdir(parents=True, exist_ok=True)
    (out / "accuracy.json").write_text(json.dumps(report, indent=1, default=str))
    print(f"\nwrote {out / 'accuracy.json'}; {time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
