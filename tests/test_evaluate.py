"""The accuracy benchmark: the generator's ground truth matches its pictures, and eval scores as a user expects."""

from __future__ import annotations

import json

import numpy as np
import pytest

from backend.benchmark.synthetic import make_scene, orbit_cameras, random_layout, write_scene
from backend.cli.main import main
from backend.field.click import DEFAULT_THRESHOLDS
from backend.field.click_pixels import Geometry, pixel_weights
from backend.field.evaluate import evaluate, load_ground_truth, make_queries, summary
from backend.field.views import camera_weights
from backend.formats.features import FeatureField, geometry_fingerprint, save_features


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    scene = make_scene(3000, seed=3)
    cameras = orbit_cameras(4, width=120, height=90)
    write_scene(folder, scene, cameras)
    return folder, scene, cameras, [camera_weights(scene.splat, camera) for camera in cameras]


def perfect_features(scene) -> np.ndarray:
    """(N, 24): the coarse half one-hot in the object, the fine half one-hot in the part."""
    features = np.zeros((scene.splat.count, 24), np.float32)
    features[np.arange(scene.splat.count), scene.object_ids] = 1
    features[np.arange(scene.splat.count), 12 + scene.part_ids] = 1
    return features


def test_ground_truth_labels_are_what_the_pictures_show(bench):
    folder, scene, cameras, _ = bench
    truth = load_ground_truth(folder / "gt", cameras)
    from PIL import Image

    image = np.asarray(Image.open(folder / "images" / cameras[1].name)).astype(float) / 255
    parts = truth.maps["fine"][1]
    colors = np.array([part.color for part in scene.parts])
    for index in np.unique(parts[parts >= 0]):  # each part's pixels show that part's colour, not another's
        seen = np.median(image[parts == index], axis=0)
        assert np.argmin(np.abs(colors - seen).sum(1)) == index, scene.parts[index]
    assert image[parts == -1].mean() < image[parts >= 0].mean() / 2  # the background is empty (black)
    objects = truth.maps["coarse"][1]
    part_objects = np.array([scene.object_names.index(p.object_name) for p in scene.parts])
    assert (objects[parts >= 0] == part_objects[parts[parts >= 0]]).all()  # a part lies in its object
    geometry = Geometry.of(scene.splat)
    for y, x in np.argwhere(objects >= 0)[::97]:  # the labelled object holds most of the pixel's weight
        ids, weights = pixel_weights(geometry, cameras[1], x + 0.5, y + 0.5)
        assert weights[scene.object_ids[ids] == objects[y, x]].sum() > 0.5
    assert truth.names["coarse"][1] == "mug" and truth.names["fine"][2] == "mug/handle"
    assert truth.ignore == {"ground", "ground/ground"}


def test_a_perfect_field_scores_100_and_a_random_one_scores_low(bench):
    folder, scene, cameras, weights = bench
    truth = load_ground_truth(folder / "gt", cameras)
    thresholds = {"coarse": [0.75], "fine": [0.875]}
    perfect = summary(evaluate(scene.splat, cameras, truth, perfect_features(scene), thresholds, weights=weights))
    assert perfect["miou"] == {"coarse": 100.0, "fine": 100.0, "all": 100.0}
    assert set(perfect["labels"]["coarse"]) == {"mug", "table", "figure"}  # the ground is not scored
    assert len(perfect["labels"]["fine"]) == 6 and perfect["click_ms"]["clicks"] == 27
    noise = np.random.default_rng(0).normal(size=(scene.splat.count, 24))
    random = summary(evaluate(scene.splat, cameras, truth, noise, thresholds, weights=weights))
    assert random["miou"]["all"] < 15


def test_negative_clicks_land_on_a_touching_label_and_remove_only_what_they_select(bench):
    folder, scene, cameras, weights = bench
    truth = load_ground_truth(folder / "gt", cameras)
    queries = make_queries(truth, 3, 0, negative_clicks=1)
    assert [q.points.tolist() for q in queries] == [q.points.tolist() for q in make_queries(truth, 3, 0)]
    for query in queries:
        ((x, y),) = query.negatives
        assert truth.maps[query.level][query.view][y, x] not in (query.label, -1)
    thresholds = {"coarse": [0.75], "fine": [0.875]}
    scores = summary(
        evaluate(scene.splat, cameras, truth, perfect_features(scene), thresholds, weights=weights, negative_clicks=1)
    )
    assert scores["miou"]["all"] == 100.0 and scores["click_ms"]["clicks"] == 27 + 9


def test_random_single_clicks_land_inside_their_label_and_score_each_click_alone(bench):
    folder, scene, cameras, weights = bench
    truth = load_ground_truth(folder / "gt", cameras)
    for query in make_queries(truth, 3, 0, random_clicks=5):
        assert len(query.singles) == 5
        for view, x, y in query.singles:
            assert truth.maps[query.level][view][y, x] == query.label
    thresholds = {"coarse": [0.75], "fine": [0.875]}
    perfect = summary(
        evaluate(scene.splat, cameras, truth, perfect_features(scene), thresholds, weights=weights, random_clicks=5)
    )
    assert perfect["single_clicks"] == {level: {"mean": 100.0, "p10": 100.0} for level in ("coarse", "fine")}
    # Half the object features swapped to another object's: clicks there select the wrong object.
    features = perfect_features(scene)
    mug = np.flatnonzero(scene.object_ids == 1)
    features[mug[: len(mug) // 2], :12] = features[np.flatnonzero(scene.object_ids == 2)[0], :12]
    mixed = summary(evaluate(scene.splat, cameras, truth, features, thresholds, weights=weights, random_clicks=8))
    assert mixed["single_clicks"]["coarse"]["p10"] < mixed["single_clicks"]["coarse"]["mean"] < 100


def test_a_threshold_sweep_scores_every_threshold_in_one_pass(bench):
    folder, scene, cameras, weights = bench
    truth = load_ground_truth(folder / "gt", cameras)
    sweep = {"coarse": [-1.0, 0.75], "fine": [0.4, 0.875]}  # too low selects everything, or both parts
    results = evaluate(scene.splat, cameras, truth, perfect_features(scene), sweep, weights=weights)
    low, right = summary(results, 0)["miou"], summary(results, 1)["miou"]
    assert right["all"] == 100.0 and low["coarse"] < 30 and low["fine"] < 80


def test_eval_command_prints_the_table_and_writes_json(bench, tmp_path, capsys):
    folder, scene, cameras, _ = bench
    field = FeatureField(perfect_features(scene).astype(np.float16), geometry_fingerprint(scene.splat))
    save_features(tmp_path / "f.npz", field)
    scene_args = ["--splat", str(folder / "splat.ply"), "--cameras", str(folder / "sparse" / "0")]
    code = main(
        [
            "eval",
            *scene_args,
            "--features",
            str(tmp_path / "f.npz"),
            "--gt",
            str(folder / "gt"),
            "--clicks",
            "1",
            "--json",
            str(tmp_path / "r.json"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and f"coarse (threshold {DEFAULT_THRESHOLDS['coarse']:g}): mIoU 100.0" in out
    assert "all: mIoU 100.0; 9 clicks" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["miou"]["all"] == 100.0 and len(report["queries"]) == 9
    assert set(report["queries"][0]["views"]) < {c.name for c in cameras}  # the reference view is not scored
    code = main(["eval", *scene_args, "--features", str(tmp_path / "f.npz"), "--gt", str(tmp_path)])
    assert code == 2 and "no view_000.npz for image view_000.png" in capsys.readouterr().err


def test_random_layouts_are_seeded_scenes_of_separate_objects():
    first, again, other = random_layout(6, seed=1), random_layout(6, seed=1), random_layout(6, seed=2)
    assert first == again and first != other
    objects = {p.object_name for p in first}
    assert len(objects) == 7 and first[0].object_name == "ground"
    scene = make_scene(2000, seed=1, parts=first)
    assert set(np.unique(scene.object_ids)) == set(range(7))
