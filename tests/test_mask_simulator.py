"""The SAM-like mask simulator: perfect by default, and each knob damages the masks the way it says."""

from __future__ import annotations

import numpy as np
import pytest

from backend.benchmark.mask_simulator import MaskFlaws, simulate_masks
from backend.benchmark.synthetic import make_scene, orbit_cameras, render_views
from backend.errors import UserError
from backend.scene.masks import two_level_labels


@pytest.fixture(scope="module")
def view():
    scene = make_scene(3000, seed=3)
    _, objects, parts = render_views(scene, orbit_cameras(4, width=120, height=90)[1:2])[0]
    part_objects = np.array([scene.object_names.index(p.object_name) for p in scene.parts])
    return objects, parts, part_objects


def simulate(view, seed=0, **flaws):
    objects, parts, part_objects = view
    return simulate_masks(objects, parts, part_objects, MaskFlaws(**flaws), np.random.default_rng(seed))


def regions(labels):
    return [labels == label for label in np.unique(labels[labels >= 0])]


def best_iou(mask, truths):
    return max((mask & truth).sum() / (mask | truth).sum() for truth in truths)


def test_without_flaws_the_two_levels_are_the_objects_and_parts(view):
    objects, parts, _ = view
    coarse, fine = two_level_labels(simulate(view))
    assert ((coarse >= 0) == (objects >= 0)).all() and ((fine >= 0) == (objects >= 0)).all()
    for labels, truth in ((coarse, objects), (fine, parts)):
        pairs = np.unique(np.stack([labels[truth >= 0], truth[truth >= 0]]), axis=1)
        assert len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]  # one label per region


def test_merging_objects_makes_masks_that_cover_touching_objects(view):
    objects, parts, _ = view
    merged = [m for m in simulate(view, merge_objects=1.0) if best_iou(m, regions(objects) + regions(parts)) < 1]
    assert merged
    for mask in merged:  # each is exactly a union of two or more whole objects
        inside = np.unique(objects[mask])
        assert len(inside) >= 2 and (mask == np.isin(objects, inside)).all()
    _, fine = two_level_labels(simulate(view, merge_parts=1.0))
    for object_mask in regions(objects):  # every object's parts (all touch) now share one fine label
        assert len(np.unique(fine[object_mask & (parts >= 0)])) == 1


def test_split_drop_and_spurious_masks(view):
    objects, parts, _ = view
    truth = regions(objects) + regions(parts)
    perfect = simulate(view)
    split = simulate(view, split=1.0)
    assert len(split) > 1.5 * len(perfect)
    assert all(best_iou(m, truth) < 1 for m in split)  # every mask is a piece of one
    assert all(any((m & ~t).sum() == 0 for t in truth) for m in split)  # ... that lies inside a true region
    assert len(simulate(view, drop=1.0)) == 0
    kept = [len(simulate(view, seed, drop=0.5)) / len(perfect) for seed in range(20)]
    assert 0.35 < np.mean(kept) < 0.65
    blobs = simulate(view, spurious=3.0)[len(perfect) :]
    assert len(blobs) > 0 and all(best_iou(m, truth) < 0.9 for m in blobs)
    assert all(not (m & (objects < 0)).any() for m in blobs)  # only where the scene is drawn


def test_roughened_masks_change_only_near_boundaries(view):
    from scipy.ndimage import distance_transform_edt

    perfect, rough = simulate(view), simulate(view, roughen=1.5)
    changed = 0
    for exact, noisy in zip(perfect, rough):
        distance = np.maximum(distance_transform_edt(exact), distance_transform_edt(~exact))
        assert not (exact != noisy)[distance > 8].any()  # 5 standard deviations: never
        changed += (exact != noisy).sum()
        assert (exact & noisy).sum() / (exact | noisy).sum() > 0.5
    assert changed > 0.05 * sum(m.sum() for m in perfect) / len(perfect)


def test_views_are_seeded_and_independent_and_bad_knobs_are_refused(view):
    flaws = dict(merge_objects=0.3, split=0.3, drop=0.2, roughen=1.0, spurious=1.0)
    assert (simulate(view, 7, **flaws) == simulate(view, 7, **flaws)).all()
    assert not np.array_equal(simulate(view, 7, **flaws), simulate(view, 8, **flaws))
    with pytest.raises(UserError, match="mask flaw drop = 1.5 is a probability"):
        MaskFlaws(drop=1.5)
    with pytest.raises(UserError, match="roughen = -1 must not be negative"):
        MaskFlaws(roughen=-1)


def test_unlabelled_ground_leaves_the_ground_to_no_mask_and_the_objects_as_they_were(view):
    objects, parts, _ = view
    coarse, fine = two_level_labels(simulate(view, unlabelled_ground=True))
    assert (coarse[objects == 0] == -1).all() and (fine[objects == 0] == -1).all()
    exact_coarse, exact_fine = two_level_labels(simulate(view))
    assert (coarse[objects > 0] >= 0).all() and (fine[objects > 0] >= 0).all()
    assert len(np.unique(coarse[objects > 0])) == len(np.unique(exact_coarse[objects > 0]))
