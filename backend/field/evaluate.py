"""Accuracy of a feature field by the SPIn-NeRF-style protocol of METHOD.md, and `python -m backend eval`.

For every object (coarse level) and part (fine level) of the ground truth: seeded clicks inside
its region in a reference view (the view where it looks largest; that view is not scored), the
Gaussians they select, the selection's rendered mask in every other view (a pixel is selected
where more than half of its compositing weight comes from selected Gaussians), and the IoU with
the ground truth there. Scored are the views where the label is visible (as in SPIn-NeRF, whose
objects are in every view). mIoU: per label over its views, per level over its labels, overall over all labels.
The clicks run the product's own numpy path (click_index.compose), each timed; as in the add-on, the click
index (the centres' grid, each level's feature groups) is built once per splat and level, timed apart.

A person does not click a label's median pixel: with `random_clicks` R, each label is also clicked
R times alone, at random pixels well inside it in random views where it is clickable, each click's
selection scored like the protocol's (mean IoU over the other views); the summary gives, per level,
the mean over those clicks and their 10th percentile (how bad an unlucky click is).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..files import read_npz
from ..formats.features import Level

LEVEL_LABELS: dict[Level, str] = {"coarse": "objects", "fine": "parts"}  # what a level's ground-truth map is called
MIN_REFERENCE_PIXELS = 25  # a label smaller than this in every view cannot be clicked reliably: not scored
CLICK_MARGIN = 2  # px: clicks land at least this far inside the region's boundary (where the region allows)
NEIGHBOUR_RING = 3  # px around a region in which the label it touches most is found, for its negative clicks


@dataclass
class GroundTruth:
    maps: dict  # level -> list of (H, W) int32 label maps, one per camera, -1 = no label
    names: dict  # level -> {label: name}
    ignore: set  # names not scored (a scene's floor)


@dataclass
class Query:
    level: Level
    label: int
    name: str
    view: int  # the reference view's index
    points: np.ndarray  # (K, 2) pixel x, y
    negatives: np.ndarray  # (J, 2) pixel x, y of clicks that remove what they select (J may be 0)
    singles: np.ndarray  # (R, 3) view index, pixel x, y of clicks scored one by one (R may be 0)


@dataclass
class QueryResult:
    query: Query
    views: list  # names of the scored views
    ious: np.ndarray  # (V, T) IoU per scored view and threshold
    click_ms: list  # per click
    index_ms: float  # building what its level's clicks reuse (click_index.ClickIndex), once per level: 0 where reused
    single_ious: np.ndarray  # (R, T) each single click's mean IoU over the views it is scored in
    ignored_share: np.ndarray  # (T,) share of the selection's pixels in the scored views on unscored labels (the floor)


def load_ground_truth(folder, cameras) -> GroundTruth:
    """gt/<image stem>.npz per camera (`objects`, `parts` label maps), and the names in gt/labels.json if present."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"ground truth folder {folder}: no such folder")
    collected: dict[Level, list[np.ndarray]] = {level: [] for level in LEVEL_LABELS}
    for camera in cameras:
        path = folder / f"{Path(camera.name).stem}.npz"
        if not path.is_file():
            raise UserError(f"ground truth folder {folder}: no {path.name} for image {camera.name}")
        stored = read_npz(path, lambda name, shape: math.prod(shape) <= camera.height * camera.width)
        arrays = {level: stored[key] for level, key in LEVEL_LABELS.items() if key in stored}
        if not arrays:
            raise UserError(f"{path}: holds neither 'objects' nor 'parts' label maps")
        for level, labels in arrays.items():
            if labels.shape != (camera.height, camera.width):
                raise UserError(
                    f"{path}: the {LEVEL_LABELS[level]} map is {labels.shape[1]}x{labels.shape[0]} but "
                    f"image {camera.name} is {camera.width}x{camera.height} (mind --downscale)"
                )
            collected[level].append(labels.astype(np.int32))
    maps = {level: views for level, views in collected.items() if len(views) == len(cameras)}
    names_file = folder / "labels.json"
    listed = json.loads(names_file.read_text()) if names_file.is_file() else {}
    names = {
        level: {int(label): str(label) for label in np.unique(np.concatenate([m.ravel() for m in views])) if label >= 0}
        for level, views in maps.items()
    }
    for level, named in names.items():
        given = listed.get(LEVEL_LABELS[level], [])
        for label in named:
            named[label] = given[label] if label < len(given) else str(label)
    return GroundTruth(maps, names, set(listed.get("ignore", [])))


def click_points(region: np.ndarray, count: int, rng) -> np.ndarray:
    """(count, 2) seeded pixels x, y well inside `region` (H, W) bool, as far as it allows."""
    from scipy.ndimage import binary_erosion

    inner = binary_erosion(region, iterations=CLICK_MARGIN)
    ys, xs = np.nonzero(inner if inner.any() else region)
    pick = rng.choice(len(xs), size=min(count, len(xs)), replace=False)
    return np.stack([xs[pick], ys[pick]], 1)


def make_queries(
    truth: GroundTruth, clicks: int, seed: int, negative_clicks: int = 0, random_clicks: int = 0
) -> list[Query]:
    """Per scored label: its reference view, `clicks` seeded pixels well inside it there, and `negative_clicks`
    inside the label it touches most there (a neighbouring part, object or the floor), as a person clicks
    what leaked into a selection (METHOD.md's protocol: points inside "and optionally outside");
    `random_clicks` single clicks well inside it in random views where it covers MIN_REFERENCE_PIXELS."""
    from scipy.ndimage import binary_dilation

    rng = np.random.default_rng(seed)
    negative_rng = np.random.default_rng([seed, 1])  # its own stream: the positive clicks stay as without negatives
    single_rng = np.random.default_rng([seed, 2])
    queries = []
    for level, views in truth.maps.items():
        for label, name in truth.names[level].items():
            if name in truth.ignore:
                continue
            areas = [int((labels == label).sum()) for labels in views]
            view = int(np.argmax(areas))
            if areas[view] < MIN_REFERENCE_PIXELS:
                continue
            labels = views[view]
            region = labels == label
            points = click_points(region, clicks, rng)
            negatives = np.zeros((0, 2), np.int64)
            if negative_clicks:
                touching = labels[binary_dilation(region, iterations=NEIGHBOUR_RING) & ~region & (labels >= 0)]
                if touching.size:
                    negatives = click_points(labels == np.bincount(touching).argmax(), negative_clicks, negative_rng)
            singles = np.zeros((0, 3), np.int64)
            if random_clicks:
                clickable = np.flatnonzero(np.array(areas) >= MIN_REFERENCE_PIXELS)
                drawn = single_rng.choice(clickable, size=random_clicks)
                singles = np.array([[v, *click_points(views[v] == label, 1, single_rng)[0]] for v in drawn], np.int64)
            queries.append(Query(level, int(label), name, view, points, negatives, singles))
    return queries


def evaluate(
    splat,
    cameras,
    truth: GroundTruth,
    features: np.ndarray,
    thresholds: dict,
    clicks: int = 3,
    seed: int = 0,
    weights: list | None = None,
    granularity_prior: bool = True,
    negative_clicks: int = 0,
    random_clicks: int = 0,
) -> list[QueryResult]:
    """Every query's IoU in every other view, at each of the thresholds per level (a list each: a sweep costs one pass).

    features (N, 24); thresholds {"coarse": [..], "fine": [..]}; `weights`: the views' compositing
    weights (views.camera_weights) when the caller already has them. A field trained without the
    granularity prior is clicked as trained: its fine level is channels 12-23 alone.
    """
    import torch

    from .click import Click
    from .click_features import unit_features
    from .click_index import ClickIndex, compose
    from .click_pixels import Geometry
    from .views import camera_weights, drawn_masks, splat_tensors

    if clicks < 1:
        raise UserError(f"clicks = {clicks}: at least one click per object is needed")
    if random_clicks < 0:
        raise UserError(f"random clicks = {random_clicks}: the count cannot be negative")
    if negative_clicks < 0:
        raise UserError(f"negative clicks = {negative_clicks}: the count cannot be negative")
    if weights is None:
        tensors = splat_tensors(splat)
        weights = [camera_weights(splat, camera, tensors=tensors) for camera in cameras]
    started = time.perf_counter()
    click_index = ClickIndex(Geometry.of(splat), lambda level: unit_features(features, level, granularity_prior))
    grid_ms = (time.perf_counter() - started) * 1e3
    results = []

    def click(level: Level, view: int, x, y, levels, mode="ADD", start=None) -> np.ndarray:
        """(T, N) the selection after one click at pixel (x, y) of a view, from `start` (none: empty)."""
        start = np.zeros((len(levels), splat.count), bool) if start is None else start
        return compose(click_index, [Click(cameras[view], x + 0.5, y + 0.5, mode)], level, levels, start)[0]

    def scored(selected: np.ndarray, query: Query, view: int) -> tuple[list, list, np.ndarray]:
        """The names of the views other than `view` where the label shows, the selection's (T,) IoU in each,
        and the (T,) share of its pixels there that lie on unscored labels."""
        share = torch.from_numpy(selected.T.astype(np.float32))  # (N, T)
        names, ious, on_ignored, drawn = [], [], 0, 0
        for index, (view_weights, labels) in enumerate(zip(weights, truth.maps[query.level])):
            if index == view:
                continue
            actual = (labels.reshape(-1) == query.label)[:, None]  # (H*W, 1)
            if not actual.any():
                continue
            predicted = drawn_masks(view_weights, share).numpy()  # (H*W, T)
            names.append(cameras[index].name)
            ious.append((predicted & actual).sum(0) / (predicted | actual).sum(0))
            on_ignored = on_ignored + (predicted & np.isin(labels.reshape(-1), ignored[query.level])[:, None]).sum(0)
            drawn = drawn + predicted.sum(0)
        return names, ious, on_ignored / np.maximum(drawn, 1)

    ignored = {
        level: [label for label, name in truth.names[level].items() if name in truth.ignore] for level in truth.maps
    }

    for query in make_queries(truth, clicks, seed, negative_clicks, random_clicks):
        levels = np.asarray(thresholds[query.level], np.float32)  # (T,)
        index_ms, grid_ms = grid_ms, 0.0
        if query.level not in click_index.groups:
            started = time.perf_counter()
            click_index.level(query.level)
            index_ms += (time.perf_counter() - started) * 1e3
        selected = np.zeros((len(levels), splat.count), bool)  # (T, N)
        click_ms = []
        for (x, y), mode in [(point, "ADD") for point in query.points] + [
            (point, "SUBTRACT") for point in query.negatives
        ]:
            started = time.perf_counter()
            selected = click(query.level, query.view, x, y, levels, mode, selected)
            click_ms.append((time.perf_counter() - started) * 1e3)
        names, ious, ignored_share = scored(selected, query, query.view)
        singles = []
        for view, x, y in query.singles:
            _, single, _ = scored(click(query.level, int(view), x, y, levels), query, int(view))
            singles.append(np.mean(single, axis=0) if single else np.full(len(levels), np.nan))
        if ious:
            single_ious = np.stack(singles) if singles else np.zeros((0, len(levels)))
            results.append(QueryResult(query, names, np.stack(ious), click_ms, index_ms, single_ious, ignored_share))
    return results


def summary(results: list[QueryResult], threshold_index: int = 0) -> dict:
    """mIoU in percent per label, per level and overall, at one threshold of the sweep; click times."""
    per_label: dict[Level, dict[str, float]] = {level: {} for level in LEVEL_LABELS}
    for result in results:
        per_label[result.query.level][result.query.name] = 100 * float(result.ious[:, threshold_index].mean())
    levels = {level: float(np.mean(list(scores.values()))) for level, scores in per_label.items() if scores}
    everything = [score for scores in per_label.values() for score in scores.values()]
    singles: dict[Level, list[tuple[float, float]]] = {
        level: [] for level in LEVEL_LABELS
    }  # per label: (mean, 10th percentile) over its single clicks
    for result in results:
        ious = result.single_ious[:, threshold_index]
        ious = ious[np.isfinite(ious)]
        if len(ious):
            singles[result.query.level].append((100 * float(ious.mean()), 100 * float(np.percentile(ious, 10))))
    times = [ms for result in results for ms in result.click_ms]
    index_ms = sum(result.index_ms for result in results)
    return {
        "miou": {**levels, "all": float(np.mean(everything)) if everything else float("nan")},
        "floor_share": {
            level: {"mean": 100 * float(np.mean(shares)), "max": 100 * float(np.max(shares))}
            for level in LEVEL_LABELS
            if (shares := [r.ignored_share[threshold_index] for r in results if r.query.level == level])
        },
        "single_clicks": {
            level: {"mean": float(np.mean([m for m, _ in scores])), "p10": float(np.mean([p for _, p in scores]))}
            for level, scores in singles.items()
            if scores
        },
        "labels": per_label,
        "click_ms": {
            "median": float(np.median(times)) if times else float("nan"),
            "max": float(np.max(times)) if times else float("nan"),
            "clicks": len(times),
            "index_ms": index_ms,
        },
    }


def format_table(report: dict, thresholds: dict) -> str:
    lines = []
    for level, scores in report["labels"].items():
        if scores:
            lines.append(f"{level} (threshold {thresholds[level][0]:g}): mIoU {report['miou'][level]:.1f}")
            lines += [f"  {name:<24} {score:6.1f}" for name, score in scores.items()]
            single = report["single_clicks"].get(level)
            if single:
                lines.append(f"  single random clicks: mean {single['mean']:.1f}, 10th percentile {single['p10']:.1f}")
    clicks = report["click_ms"]
    lines.append(
        f"all: mIoU {report['miou']['all']:.1f}; {clicks['clicks']} clicks, "
        f"median {clicks['median']:.1f} ms, max {clicks['max']:.1f} ms per click "
        f"(plus {clicks['index_ms']:.0f} ms, once, to build the click index)"
    )
    return "\n".join(lines)
