"""A body's limbs are parts of their own, found in its filled volume: a guitar-like board's neck, not its faces."""

from __future__ import annotations

import numpy as np


def grouped(parts, count: int = 8000):
    from backend.benchmark.synthetic import make_scene
    from backend.field.geometric_masks import gaussian_groups
    from backend.scene.view_planning import plan_splat_views

    scene = make_scene(count, seed=0, parts=parts)
    return scene, gaussian_groups(scene.splat, plan_splat_views(scene.splat, count=8, long_side=96).cameras)


def share_of_best(truth: np.ndarray, predicted: np.ndarray) -> tuple[int, float]:
    """The group holding most of `truth` (bool), and its IoU with it."""
    values, counts = np.unique(predicted[truth], return_counts=True)
    group = int(values[counts.argmax()])
    return group, float((truth & (predicted == group)).sum() / (truth | (predicted == group)).sum())


def test_a_flat_body_keeps_its_faces_together_and_its_neck_is_a_part():
    """One colour throughout: the cheapest cut along its surface is between a flat body's front and back (they meet
    only at the rim); the neck is where its volume narrows."""
    from backend.benchmark.synthetic import Part

    guitar = [
        Part("guitar", "body", "box", (0.0, -0.45, 0.0), (0.35, 0.45, 0.06), (0.6, 0.35, 0.15)),
        Part("guitar", "neck", "box", (0.0, -1.4, 0.0), (0.05, 0.5, 0.03), (0.6, 0.35, 0.15)),
    ]
    scene, groups = grouped(guitar)
    whole = np.unique(groups.coarse[groups.coarse >= 0])
    assert len(whole) == 1
    body, body_iou = share_of_best(scene.part_ids == 0, groups.fine)
    neck, neck_iou = share_of_best(scene.part_ids == 1, groups.fine)
    assert body != neck and body_iou > 0.9 and neck_iou > 0.7, (body_iou, neck_iou)


def test_a_ring_and_a_plate_are_not_cut():
    """A ring narrows nowhere, and a plate is no limb: each stays one part."""
    from backend.benchmark.synthetic import Part

    for shape in (
        [Part("ring", "ring", "torus", (0.0, -0.3, 0.0), (0.5, 0.15, 0), (0.8, 0.6, 0.3))],
        [Part("plate", "plate", "box", (0.0, -0.3, 0.0), (0.6, 0.03, 0.6), (0.3, 0.5, 0.8))],
    ):
        scene, groups = grouped(shape, 6000)
        _, iou = share_of_best(np.ones(scene.splat.count, bool), groups.fine)
        assert iou > 0.9, (shape[0].shape, iou)
