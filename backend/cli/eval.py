"""`python -m backend eval`: a feature field's mIoU against ground-truth label maps (backend/field/evaluate.py)."""

from __future__ import annotations

import json
import sys

from ..errors import UserError
from ..formats.features import Level
from ..ranges import SETTINGS
from .arguments import path_argument
from .scene import add_scene_arguments, load_scene


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "eval",
        help="mIoU of a feature field against ground-truth label maps",
        description="Click every ground-truth object and part in a reference view, "
        "render the selection in the other views, report IoU (METHOD.md).",
    )
    add_scene_arguments(parser, images_required=False)
    path_argument(parser, "--features", "input", required=True, help="features from 'train'")
    path_argument(
        parser,
        "--gt",
        "input",
        required=True,
        help="folder of <image stem>.npz with 'objects' and/or 'parts' (H, W) label maps "
        "(-1 = none), optional labels.json with names and those to ignore",
    )
    parser.add_argument("--clicks", type=SETTINGS["clicks"], default=3, help="clicks per object or part (default 3)")
    parser.add_argument(
        "--negative-clicks",
        type=SETTINGS["negative_clicks"],
        default=0,
        help="clicks per object or part on the label it touches most in the reference view, which "
        "remove what they select (METHOD.md: points inside 'and optionally outside'; default 0)",
    )
    parser.add_argument(
        "--random-clicks",
        type=SETTINGS["random_clicks"],
        default=0,
        help="also score this many single clicks per object or part, at random pixels inside it in "
        "random views: the mean and 10th percentile of their IoU (default 0)",
    )
    parser.add_argument("--seed", type=SETTINGS["seed"], default=0, help="seed of the click positions (default 0)")
    parser.add_argument(
        "--threshold-coarse",
        type=SETTINGS["threshold"],
        help="similarity threshold for objects (default: the product's)",
    )
    parser.add_argument(
        "--threshold-fine", type=SETTINGS["threshold"], help="similarity threshold for parts (default: the product's)"
    )
    path_argument(parser, "--json", "output", help="also write every number, per view, to this JSON file")


def run(options) -> int:
    from ..field.click import DEFAULT_THRESHOLDS
    from ..field.evaluate import (
        MIN_REFERENCE_PIXELS,
        evaluate,
        format_table,
        load_ground_truth,
        summary,
    )
    from ..files import write_atomic
    from ..formats.features import load_features

    splat, cameras, _ = load_scene(options, need_images=False)
    field = load_features(options.features, splat)
    truth = load_ground_truth(options.gt, cameras)
    given: dict[Level, float | None] = {"coarse": options.threshold_coarse, "fine": options.threshold_fine}
    thresholds = {level: [DEFAULT_THRESHOLDS[level] if value is None else value] for level, value in given.items()}
    prior = field.granularity_prior
    results = evaluate(
        splat,
        cameras,
        truth,
        field.features,
        thresholds,
        options.clicks,
        options.seed,
        granularity_prior=prior,
        negative_clicks=options.negative_clicks,
        random_clicks=options.random_clicks,
    )
    if not results:
        raise UserError(
            f"{options.gt}: no object or part covers {MIN_REFERENCE_PIXELS} pixels in any view; nothing to score"
        )
    report = summary(results)
    print(format_table(report, thresholds))
    if options.json:
        report["thresholds"] = {level: values[0] for level, values in thresholds.items()}
        report["queries"] = [
            {
                "level": r.query.level,
                "name": r.query.name,
                "reference": cameras[r.query.view].name,
                "clicks": r.query.points.tolist(),
                "negative_clicks": r.query.negatives.tolist(),
                "click_ms": r.click_ms,
                "views": dict(zip(r.views, (100 * r.ious[:, 0]).round(2).tolist())),
            }
            for r in results
        ]
        write_atomic(options.json, [json.dumps(report, indent=1).encode("utf-8")], final=True)
        print(f"wrote {options.json}", file=sys.stderr)
    return 0
