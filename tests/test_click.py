"""The numpy click path (what runs inside Blender) composites a pixel exactly as the renderer does."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.click import Geometry, click_feature, pixel_weights, select, unit_features
from backend.render import apply_weights
from backend.synthetic import make_scene, orbit_cameras
from backend.views import camera_weights


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
    expected = dict(zip(cols[crow[row]:crow[row + 1]].tolist(), values[crow[row]:crow[row + 1]].tolist()))
    ids, got = pixel_weights(Geometry.of(scene.splat), camera, x + 0.5, y + 0.5)
    assert list(ids) == list(expected)  # the same Gaussians, front to back
    np.testing.assert_allclose(got, list(expected.values()), atol=1e-5)


def test_the_clicked_feature_is_the_rendered_feature_and_selects_by_similarity(view):
    scene, camera, weights = view
    features = np.random.default_rng(0).normal(size=(scene.splat.count, 24)).astype(np.float16)
    unit = unit_features(features, "fine")
    row = 60 * camera.width + 80
    rendered = apply_weights(weights, torch.from_numpy(unit), torch.tensor([row]))[0].numpy()
    query = click_feature(unit, *pixel_weights(Geometry.of(scene.splat), camera, 80.5, 60.5))
    np.testing.assert_allclose(query, rendered / np.linalg.norm(rendered), atol=1e-5)
    assert select(unit, unit[7], 0.999)[7] and select(unit, unit[7], 0.999).sum() == 1
    assert click_feature(unit, np.array([], dtype=np.int64), np.array([], dtype=np.float32)) is None
