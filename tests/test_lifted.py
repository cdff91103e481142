"""The field lifted from the splat's 3D groups: clickable before any training, whole objects and parts."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from conftest import ROOT

from backend.benchmark.synthetic import make_scene, orbit_cameras, random_layout, write_scene
from backend.cli.protocol import read_progress
from backend.field.click import DEFAULT_THRESHOLDS
from backend.field.evaluate import evaluate, load_ground_truth, summary
from backend.field.geometric_masks import gaussian_groups, sampled_groups
from backend.field.lifted import lifted_field, spread_directions
from backend.formats.features import geometry_fingerprint, load_features
from backend.progress import Checkpoint


def test_group_directions_stay_apart_under_the_click_thresholds():
    for count in (2, 40, 300):
        directions = spread_directions(count, 12)
        similarity = directions @ directions.T
        np.fill_diagonal(similarity, -1)
        assert np.allclose(np.linalg.norm(directions, axis=1), 1, atol=1e-6)
        assert similarity.max() < DEFAULT_THRESHOLDS["coarse"] - 0.05  # two objects' never pass for one


def test_a_click_on_the_lifted_field_takes_each_object_and_part_whole(tmp_path):
    scene = make_scene(12000, seed=0, parts=random_layout(6, seed=0))  # as test_geometric_masks' scene
    cameras = orbit_cameras(6, width=160, height=120, radius=4.2)
    write_scene(tmp_path, scene, cameras)
    truth = load_ground_truth(tmp_path / "gt", cameras)
    thresholds = {level: [value] for level, value in DEFAULT_THRESHOLDS.items()}
    # the groups of all the Gaussians (objects and parts: 99.8 / 96.9 measured), and the first, quick field's
    # objects of a sample (98.8; no parts: a part click takes its object)
    for groups, least in (
        (gaussian_groups(scene.splat, cameras), {"coarse": 95, "fine": 90}),
        (sampled_groups(scene.splat, cameras, sample=3000), {"coarse": 95}),
    ):
        field = lifted_field(groups.coarse, groups.fine, geometry_fingerprint(scene.splat), "geometric")
        assert field.step == 0 and field.config["lifted"]
        scores = summary(evaluate(scene.splat, cameras, truth, field.features.astype(np.float32), thresholds))
        assert all(scores["miou"][level] > bound for level, bound in least.items()), scores["miou"]


def test_training_with_geometric_masks_writes_the_lifted_field_before_any_step(tmp_path):
    write_scene(tmp_path, make_scene(3000, seed=1), orbit_cameras(4, width=96, height=72))
    command = [sys.executable, "-m", "backend", "train", "--splat", tmp_path / "splat.ply"]
    command += ["--cameras", tmp_path / "sparse" / "0", "--images", tmp_path / "images", "--out", tmp_path / "f.npz"]
    command += ["--iterations", "20", "--pixels", "200", "--checkpoint-every", "10", "--progress", "json"]
    child = subprocess.Popen([str(c) for c in command], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    events, lifted = [], []
    for line in child.stdout:
        event = read_progress(line)
        assert event is not None, line
        events.append(f"checkpoint {event.iteration}" if isinstance(event, Checkpoint) else event.phase)
        if isinstance(event, Checkpoint) and event.iteration == 0 and not lifted:
            lifted.append(load_features(event.path))  # read as the add-on reads it, while the run goes on
    assert child.wait(timeout=300) == 0
    assert events.index("checkpoint 0") < events.index("precompute") < events.index("checkpoint 10")
    assert lifted and lifted[0].step == 0 and lifted[0].centers["coarse"].shape[1] == 12
    assert not (tmp_path / "f.checkpoint.npz").exists() and (tmp_path / "f.npz").exists()


def scores_of(features_path, scene, cameras, truth) -> dict:
    thresholds = {level: [value] for level, value in DEFAULT_THRESHOLDS.items()}
    field = load_features(features_path)
    return summary(evaluate(scene.splat, cameras, truth, field.features.astype(np.float32), thresholds))["miou"]


def test_with_geometric_masks_and_no_steps_asked_the_lifted_field_is_final_and_no_view_is_rendered(tmp_path):
    """From the .ply alone, Train with the defaults: the views are planned, never rendered, and no step is taken."""
    scene = make_scene(12000, seed=0, parts=random_layout(6, seed=0))
    cameras = orbit_cameras(6, width=160, height=120, radius=4.2)
    write_scene(tmp_path, scene, cameras)
    out = tmp_path / "f.npz"
    command = [sys.executable, "-m", "backend", "train", "--splat", tmp_path / "splat.ply", "--out", out]
    done = subprocess.run([str(c) for c in [*command, "--progress", "json"]], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    phases = [read_progress(line).phase for line in done.stdout.splitlines()]
    assert "planned" in phases and not {"rendering", "precompute", "iterations"} & set(phases), phases
    assert not (tmp_path / "f.npz.views").exists() and load_features(out).step is None
    scores = scores_of(out, scene, cameras, load_ground_truth(tmp_path / "gt", cameras))
    assert scores["coarse"] > 95 and scores["fine"] > 85, scores


def test_steps_asked_for_with_geometric_masks_start_from_the_lifted_field(tmp_path):
    """A few steps refine the groups' field rather than start over: its clicks already take whole objects."""
    scene = make_scene(12000, seed=0, parts=random_layout(6, seed=0))
    cameras = orbit_cameras(6, width=160, height=120, radius=4.2)
    write_scene(tmp_path, scene, cameras)
    command = [sys.executable, "-m", "backend", "train", "--splat", tmp_path / "splat.ply"]
    command += ["--cameras", tmp_path / "sparse" / "0", "--out", tmp_path / "f.npz", "--masks", "geometric"]
    command += ["--iterations", "10", "--pixels", "500", "--progress", "none"]
    done = subprocess.run([str(c) for c in command], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    scores = scores_of(tmp_path / "f.npz", scene, cameras, load_ground_truth(tmp_path / "gt", cameras))
    assert scores["coarse"] > 95 and scores["fine"] > 85, scores  # 10 steps from random directions: far below
