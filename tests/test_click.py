"""The numpy click path (what runs inside Blender) composites a pixel exactly as the renderer does."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from backend.benchmark.synthetic import make_scene, orbit_cameras
from backend.field.click import Click
from backend.field.click_features import (
    PlainFeatures,
    RawFeatures,
    click_feature,
    level_columns,
    select,
    similarities,
    unit_features,
    unit_rows,
)
from backend.field.click_index import ClickIndex, compose
from backend.field.click_pixels import Geometry, pixel_weights
from backend.field.render import apply_weights
from backend.field.views import camera_weights


@pytest.fixture(scope="module")
def view():
    scene = make_scene(8000, seed=5)
    camera = orbit_cameras(4, width=160, height=120)[1]
    return scene, camera, camera_weights(scene.splat, camera)


@pytest.mark.parametrize("x, y", [(80, 60), (10, 10), (100, 90), (40, 70), (150, 20), (0, 119)])
def test_a_pixel_composites_as_in_the_renderer(view, x, y):
    scene, camera, weights = view
    row = y * camera.width + x
    crow, cols, values = weights.crow_indices(), weights.col_indices(), weights.values()
    expected = dict(zip(cols[crow[row] : crow[row + 1]].tolist(), values[crow[row] : crow[row + 1]].tolist()))
    ids, got = pixel_weights(Geometry.of(scene.splat), camera, x + 0.5, y + 0.5)
    assert list(ids) == list(expected)  # the same Gaussians, front to back
    np.testing.assert_allclose(got, list(expected.values()), atol=1e-5)


def test_the_clicked_feature_is_the_rendered_feature_and_selects_by_similarity(view):
    scene, camera, weights = view
    features = np.random.default_rng(0).normal(size=(scene.splat.count, 24)).astype(np.float16)
    unit = unit_features(features, "fine")
    row = 60 * camera.width + 80
    rendered = apply_weights(weights, torch.from_numpy(unit_rows(unit)), torch.tensor([row]))[0].numpy()
    query = click_feature(unit, *pixel_weights(Geometry.of(scene.splat), camera, 80.5, 60.5))
    np.testing.assert_allclose(query, rendered / np.linalg.norm(rendered), atol=1e-5)
    assert select(unit, unit_rows(unit[7]), 0.999)[7] and select(unit, unit_rows(unit[7]), 0.999).sum() == 1
    assert click_feature(unit, np.array([], dtype=np.int64), np.array([], dtype=np.float32)) is None


def object_features(object_ids: np.ndarray, seed: int = 0) -> np.ndarray:
    """(N, 24) noisy features, one direction per object, as a trained field has: selections of realistic size."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(object_ids.max() + 1, 24))[object_ids] + rng.normal(
        scale=0.2, size=(len(object_ids), 24)
    )
    return features.astype(np.float16)


def test_the_indexed_click_selects_exactly_what_one_pass_over_every_gaussian_selects():
    """The grid of centres and the feature groups only skip work: clicks in any view, any level and threshold,
    with hidden Gaussians, select the same Gaussians as the plain path that projects and compares them all."""
    scene = make_scene(40_000, seed=3)
    features = object_features(scene.object_ids)
    features[::997] = 0  # a feature with no direction: similarity 0 with any click
    hidden = np.random.default_rng(1).random(scene.splat.count) < 0.05
    unit = {level: unit_features(features, level) for level in ("coarse", "fine")}
    fast = ClickIndex(Geometry.of(scene.splat), unit.get, hidden)
    plain = ClickIndex(Geometry.of(scene.splat), unit.get, hidden, indexed=False)
    rng = np.random.default_rng(2)
    selected = 0
    for camera in orbit_cameras(6, width=320, height=240):
        for x, y in rng.uniform([0, 0], [camera.width, camera.height], size=(4, 2)):
            assert_same_weights(fast, plain, camera, x, y)
            for level, thresholds in (("coarse", [0.3, 0.75, 0.9]), ("fine", [0.5, 0.95])):
                start = rng.random(scene.splat.count) < 0.3
                clicks = [
                    Click(camera, x, y, "SET"),
                    Click(camera, x + 5, y, "ADD"),
                    Click(camera, x, y + 5, "SUBTRACT"),
                ]
                for threshold in thresholds:
                    got, got_missed = compose(fast, clicks, level, threshold, start)
                    expected, expected_missed = compose(plain, clicks, level, threshold, start)
                    np.testing.assert_array_equal(got, expected)
                    assert len(got_missed) == len(expected_missed)
                    selected += int(expected.sum())
                sweep, _ = compose(
                    fast, clicks, level, np.array(thresholds, np.float32), np.stack([start] * len(thresholds))
                )
                assert [int(row.sum()) for row in sweep] == [
                    int(compose(plain, clicks, level, t, start)[0].sum()) for t in thresholds
                ]
    assert selected > 0


def assert_same_weights(fast: ClickIndex, plain: ClickIndex, camera, x: float, y: float) -> None:
    got = pixel_weights(fast.geometry, camera, x, y, fast.grid, fast.hidden)
    expected = pixel_weights(plain.geometry, camera, x, y, None, plain.hidden)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    assert len(fast.grid.near_ray(camera, x, y)) < 0.2 * len(fast.geometry.positions)  # the grid leaves most out


def test_clicks_while_the_index_builds_in_the_background_select_as_after():
    """The add-on's index builds its grid and groups a slice at a time: a click right after the features arrive,
    one after they are replaced mid-build, and one once all is built select what one plain pass selects."""
    scene = make_scene(20_000, seed=4)
    camera = orbit_cameras(4, width=320, height=240)[1]
    old, new = object_features(scene.object_ids, seed=1), object_features(scene.object_ids, seed=2)
    plain = {
        name: ClickIndex(Geometry.of(scene.splat), lambda level, f=f: unit_features(f, level), indexed=False)
        for name, f in (("old", old), ("new", new))
    }
    stored = old.astype(np.float32).T.copy().T  # channel-major, as the add-on reads Blender's attributes
    index = ClickIndex(
        Geometry.of(scene.splat),
        lambda level: unit_features(stored, level),
        background=True,
        level_features=lambda level: level_columns(stored, level),
    )
    clicks = [Click(camera, 160, 120, "SET"), Click(camera, 100, 150, "ADD")]
    start = np.zeros(scene.splat.count, bool)

    def same_as(features: str, level) -> None:
        got, expected = (
            compose(index, clicks, level, 0.75, start)[0],
            compose(plain[features], clicks, level, 0.75, start)[0],
        )
        assert expected.any()
        np.testing.assert_array_equal(got, expected)

    same_as("old", "coarse")  # at once: nothing built yet
    index.build(0.0)
    index.replace_features(lambda level: unit_features(new, level))  # a training checkpoint arrives mid-build
    same_as("new", "fine")
    index.wait()
    assert index.built and index.level_unit is None and index.level_features is None  # what it came from goes
    same_as("new", "coarse")
    same_as("new", "fine")


def test_checkpoints_faster_than_the_builds_start_no_thread_and_the_last_features_win(monkeypatch):
    """A training streams checkpoints faster than the index builds them, a slice at a time as Blender's timer
    does: no thread is started (threads beside Blender's crashed it), and the last features are what is built."""
    scene = make_scene(20_000, seed=4)
    camera = orbit_cameras(4, width=320, height=240)[1]
    checkpoints = [object_features(scene.object_ids, seed=seed) for seed in range(6)]
    started: list[threading.Thread] = []  # every thread started while the index builds, however short-lived
    original = threading.Thread.start
    monkeypatch.setattr(threading.Thread, "start", lambda thread: (started.append(thread), original(thread))[1])
    index = ClickIndex(Geometry.of(scene.splat), lambda level: unit_features(checkpoints[0], level), background=True)
    for features in checkpoints[1:]:
        assert index.build(0.0)  # a step or two, then the next checkpoint arrives
        index.replace_features(lambda level, f=features: unit_features(f, level))
    while index.build(0.001):
        pass
    assert index.built and not started
    plain = ClickIndex(Geometry.of(scene.splat), lambda level: unit_features(checkpoints[-1], level), indexed=False)
    clicks, start = [Click(camera, 160, 120, "SET")], np.zeros(scene.splat.count, bool)
    for level in ("coarse", "fine"):
        expected = compose(plain, clicks, level, 0.75, start)[0]
        assert expected.any()
        np.testing.assert_array_equal(compose(index, clicks, level, 0.75, start)[0], expected)


def test_features_as_stored_select_exactly_what_their_unit_features_select():
    """Until the unit features exist, a click compares with the features as Blender holds them: Gaussians at the
    threshold (within the fixed point's rounding) are decided as the unit features decide them, so the
    selection does not change when the unit features arrive."""
    rng = np.random.default_rng(6)
    channels = rng.normal(size=(24, 30_000)).astype(np.float32)  # (24, N) as read from Blender
    channels[:, ::101] = 0  # no direction: similarity 0
    for level, prior in (("coarse", True), ("fine", True), ("fine", False)):
        unit = unit_features(channels.T, level, prior)
        np.testing.assert_array_equal(unit, unit_features(channels.T.copy(), level, prior))  # any layout
        raw, plain = RawFeatures(level_columns(channels.T, level, prior)), PlainFeatures(unit)
        ids = np.array([5, 17, 2000, 29_999])
        np.testing.assert_array_equal(raw.features(ids), unit[ids])
        query = click_feature(unit, ids, np.full(4, 0.25, np.float32))
        exact = np.sort(similarities(unit, query))[::-1][[10, 500, 3000]]  # thresholds that Gaussians lie on
        thresholds = np.concatenate([exact, exact - 1e-5, exact + 1e-5, [0.0, 0.75]])
        np.testing.assert_array_equal(raw.select(query, thresholds), plain.select(query, thresholds))
        for threshold in thresholds:
            np.testing.assert_array_equal(raw.select(query, threshold), plain.select(query, threshold))
