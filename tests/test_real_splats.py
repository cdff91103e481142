"""Real splats nobody here made (../shared/data/splats), from their file alone (a .ply, and the same captures as .spz
and .compressed.ply, whose quantised values must not change what is cut): planned views stand upright, and the
geometric masks take each object whole and apart from what it touches, against the written labels of
backend/benchmark/real_splats.py. Skipped where ../shared is absent (a user's clone)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ROOT

from backend.benchmark.real_splats import labels_of
from backend.formats import read_splat

SPLATS = ROOT.parent / "shared" / "data" / "splats"
pytestmark = pytest.mark.skipif(not SPLATS.is_dir(), reason="needs ../shared/data/splats")


@pytest.fixture(scope="module", params=["guitar.ply", "biker.ply", "donut.ply", "biker.spz", "guitar.compressed.ply"])
def grouped(request):
    from backend.field.geometric_masks import gaussian_groups
    from backend.scene.view_planning import plan_splat_views

    path = SPLATS / request.param
    splat = read_splat(path)
    plan = plan_splat_views(splat, count=24, long_side=128)
    return path.name.split(".")[0], splat, labels_of(path, splat), plan, gaussian_groups(splat, plan.cameras)


def best(truth: np.ndarray, label: int, predicted: np.ndarray, solid: np.ndarray) -> tuple[int, float, float]:
    """The group holding most of the label's solid Gaussians, its IoU with them, and the share of them it holds."""
    region = (truth == label) & solid
    values, counts = np.unique(predicted[region], return_counts=True)
    group = int(values[counts.argmax()])
    chosen = (predicted == group) & solid
    return (
        group,
        float((region & chosen).sum() / (region | chosen).sum()),
        float((region & chosen).sum() / region.sum()),
    )


def test_planned_views_of_a_capture_with_no_floor_stand_upright(grouped):
    name, splat, labels, plan, _ = grouped
    assert not plan.extent.floor
    top, bottom = {"guitar": (0, 1), "biker": (2, 3), "donut": (1, 0)}[name]  # guitar/stand, head/leg,
    truth = labels.coarse if name == "guitar" else labels.fine  # icing/dough
    above, below = (splat.positions[truth == label].mean(axis=0) for label in (top, bottom))
    for camera in plan.cameras:
        (above_pixel, below_pixel), _ = camera.project(np.stack([above, below]))
        assert above_pixel[1] < below_pixel[1], (name, camera.name)


def test_each_object_is_whole_and_apart_from_what_it_touches(grouped):
    name, splat, labels, _, groups = grouped
    solid = splat.alphas >= 0.3
    if name == "guitar":  # leaning on its stand: the guitar whole, the stand not with it
        guitar, iou, held = best(labels.coarse, 0, groups.coarse, solid)
        assert held > 0.95 and iou > 0.93, (held, iou)  # its darker rim, cut off by a gap in pieces, included
        stand = (labels.coarse == 1) & solid
        assert (groups.coarse[stand] == guitar).mean() < 0.5
    else:  # a person holding a helmet, a donut (with the patches of dough cut off its bottom rim): one object each
        _, iou, _ = best(labels.coarse, 0, groups.coarse, solid)
        assert iou > 0.97, iou


def test_parts_of_one_object_are_parts_of_their_own(grouped):
    name, splat, labels, _, groups = grouped
    solid = splat.alphas >= 0.3
    if name == "guitar":  # the neck (with its headstock) is not the body
        body, iou, _ = best(labels.fine, 0, groups.fine, solid)
        neck, _, held = best(labels.fine, 2, groups.fine, solid)
        assert body != neck and held > 0.7 and iou > 0.6, (iou, held)
    if name == "biker":  # the head, and the torso apart from the legs (from the .spz too: a neck as thin, if wider)
        _, iou, _ = best(labels.fine, 2, groups.fine, solid)
        _, torso, _ = best(labels.fine, 0, groups.fine, solid)
        assert iou > 0.6 and torso > 0.8, (iou, torso)
    if name == "donut":  # the icing, with the sprinkles on it, is not the dough
        icing, iou, _ = best(labels.fine, 1, groups.fine, solid)
        dough, dough_iou, _ = best(labels.fine, 0, groups.fine, solid)
        assert icing != dough and iou > 0.75 and dough_iou > 0.6, (iou, dough_iou)


@pytest.mark.xfail(strict=True, reason="the biker's legs stand close and are joined at the hips: one part of both legs")
def test_each_leg_of_a_person_is_a_part_of_its_own():
    from backend.field.geometric_masks import gaussian_groups
    from backend.scene.view_planning import plan_splat_views

    path = SPLATS / "biker.ply"
    splat = read_splat(path)
    groups = gaussian_groups(splat, plan_splat_views(splat, count=24, long_side=128).cameras)
    labels, solid = labels_of(path, splat), splat.alphas >= 0.3
    for part in (3, 4):
        _, iou, _ = best(labels.fine, part, groups.fine, solid)
        assert iou > 0.6, (labels.names["fine"][part], iou)
