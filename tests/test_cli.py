"""`python -m backend` as a user runs it: train, segment, render, and every mistake as one clear message."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from command_line import assert_user_error, backend, inner_pixel
from conftest import ROOT

from backend.cli.protocol import read_progress
from backend.formats import read_splat
from backend.formats.compressed_ply import is_compressed_ply
from backend.formats.ply import parse_header, read_ply, write_ply
from backend.formats.splat import Splat
from backend.progress import Checkpoint, Done, Iterations, Masks


def scene_args(folder):
    return ["--splat", folder / "splat.ply", "--cameras", folder / "sparse" / "0"]


def test_train_writes_features_and_reports_json_progress(trained_scene, tmp_path):
    folder = trained_scene["folder"]
    out = tmp_path / "features.npz"
    result = backend(
        "train",
        *scene_args(folder),
        "--images",
        folder / "images",
        "--mask-dir",
        folder / "masks",
        "--out",
        out,
        "--iterations",
        30,
        "--pixels",
        500,
        "--no-gfl",
        "--progress",
        "json",
        "--checkpoint-every",
        10,
    )
    assert result.returncode == 0, result.stderr
    events = [read_progress(line) for line in result.stdout.splitlines()]
    assert None not in events  # every line is an event
    checkpoints = [(e.iteration, e.path) for e in events if isinstance(e, Checkpoint)]
    assert checkpoints == [
        (10, str(tmp_path / "features.checkpoint.npz")),
        (20, str(tmp_path / "features.checkpoint.npz")),
    ]
    assert isinstance(events[0], Masks) and events[0].source.startswith("precomputed masks from")
    assert isinstance(events[-1], Done) and set(events[-1].seconds) >= {"masks", "precompute", "iterations"}
    assert any(isinstance(e, Iterations) and e.iteration == 30 for e in events)
    assert out.exists() and [p.name for p in tmp_path.iterdir()] == ["features.npz"]


def test_geometric_masks_are_drawn_once_per_splat_and_cameras(trained_scene, tmp_path):
    """A second Train of the same splat from the same cameras reuses the masks: the same features, one cache file
    for the 3D groups and one for the masks drawn from them (another camera is another key: test_masks)."""
    folder = trained_scene["folder"]
    cache = tmp_path / "masks"
    train = ["train", "--masks", "geometric", "--mask-cache", cache, "--iterations", 5, "--pixels", 300, "--no-gfl"]
    first, second = tmp_path / "first.npz", tmp_path / "second.npz"
    for out in (first, second):
        result = backend(*train, *scene_args(folder), "--out", out)
        assert result.returncode == 0, result.stderr
    assert first.read_bytes() == second.read_bytes()
    assert sorted(p.name.split("_")[0] for p in cache.iterdir()) == ["geometric", "groups"]


@pytest.mark.parametrize("level, target", [("coarse", "mug"), ("fine", "head")])
def test_a_click_selects_the_object_or_part_under_it(trained_scene, tmp_path, level, target):
    folder, scene, camera = trained_scene["folder"], trained_scene["scene"], trained_scene["cameras"][1]
    gt = np.load(folder / "gt" / "view_001.npz")
    if level == "coarse":
        index, labels, truth = scene.object_names.index(target), gt["objects"], scene.object_ids
    else:
        index = [p.part_name for p in scene.parts].index(target)
        labels, truth = gt["parts"], scene.part_ids
    x, y = inner_pixel(labels, index)
    result = backend(
        "segment",
        *scene_args(folder),
        "--features",
        folder / "features.npz",
        "--view",
        camera.name,
        "--click",
        x,
        y,
        "--level",
        level,
        "--out",
        tmp_path / "sel.ply",
        "--rest",
        tmp_path / "rest.ply",
        "--mask-dir",
        tmp_path / "masks",
    )
    assert result.returncode == 0, result.stderr
    selected, rest = read_ply(tmp_path / "sel.ply"), read_ply(tmp_path / "rest.ply")
    assert selected.count + rest.count == scene.splat.count
    rows = lambda positions: np.ascontiguousarray(positions).view(np.dtype((np.void, 12))).ravel()  # noqa: E731
    chosen = np.isin(rows(scene.splat.positions), rows(selected.positions))
    precision = np.mean(truth[chosen] == index)
    recall = np.mean(chosen[truth == index])
    assert precision > 0.9 and recall > 0.9, (precision, recall)
    assert len(list((tmp_path / "masks").glob("*.png"))) == len(trained_scene["cameras"])


def test_segment_writes_the_format_each_output_names(trained_scene, tmp_path):
    """--out and --rest take every format an export writes, chosen by the name; a lossy one's losses are said."""
    folder, scene, camera = trained_scene["folder"], trained_scene["scene"], trained_scene["cameras"][1]
    mug = scene.object_names.index("mug")
    x, y = inner_pixel(np.load(folder / "gt" / "view_001.npz")["objects"], mug)
    plain = scene.splat  # with SH degree 1 and normals added: the trained geometry, more for a format to lose
    sh_rest = np.random.default_rng(0).normal(0.0, 0.1, (plain.count, 3, 3))
    splat = Splat.from_arrays(
        plain.positions,
        plain.sh_dc,
        plain.opacities,
        plain.scales,
        plain.rotations,
        sh_rest,
        np.zeros_like(plain.positions),
    )
    write_ply(tmp_path / "rich.ply", splat)

    def segment(out, rest):
        command = ["segment", "--splat", tmp_path / "rich.ply", "--cameras", folder / "sparse" / "0"]
        command += ["--features", folder / "features.npz", "--view", camera.name, "--click", x, y]
        result = backend(*command, "--out", tmp_path / out, "--rest", tmp_path / rest)
        assert result.returncode == 0, result.stderr
        return read_splat(tmp_path / out), read_splat(tmp_path / rest), result.stderr

    selected, rest, said = segment("sel.splat", "rest.spz")
    rows = lambda positions: np.ascontiguousarray(positions).view(np.dtype((np.void, 12))).ravel()  # noqa: E731
    chosen = np.isin(rows(splat.positions), rows(selected.positions))  # .splat keeps float32 positions
    assert chosen.sum() == selected.count and np.mean(scene.object_ids[chosen] == mug) > 0.9
    assert rest.count == splat.count - selected.count and rest.sh_degree == 1
    np.testing.assert_allclose(rest.positions, splat.positions[~chosen], atol=1 / 4096)  # SPZ's step
    assert f"{tmp_path / 'sel.splat'}: its format holds no SH degree 1 (view-dependent colour) nor column(s) nx" in said
    assert f"{tmp_path / 'rest.spz'}: its format holds no column(s) nx, ny, nz" in said

    compressed, lossless, said = segment("sel.compressed.ply", "rest.ply")
    assert compressed.count == selected.count and f"{tmp_path / 'rest.ply'}: its format" not in said
    header = (tmp_path / "sel.compressed.ply").read_bytes()[:4096]
    assert is_compressed_ply(parse_header(tmp_path / "sel.compressed.ply", header))
    assert all(np.array_equal(lossless.columns[n], v[~chosen]) for n, v in splat.columns.items())


def test_a_selection_of_nothing_is_an_error_and_writes_nothing(trained_scene, tmp_path):
    folder, camera = trained_scene["folder"], trained_scene["cameras"][1]
    x, y = inner_pixel(
        np.load(folder / "gt" / "view_001.npz")["objects"], trained_scene["scene"].object_names.index("mug")
    )
    result = backend(
        "segment",
        *scene_args(folder),
        "--features",
        folder / "features.npz",
        "--view",
        camera.name,
        "--click",
        x,
        y,
        "--exclude",
        x,
        y,
        "--out",
        tmp_path / "sel.ply",
    )  # the exclusion takes it all back
    assert_user_error(result, "select no Gaussian", "--threshold")
    assert list(tmp_path.iterdir()) == []


def test_render_writes_rgb_and_feature_pictures(trained_scene, tmp_path):
    folder = trained_scene["folder"]
    result = backend(
        "render", *scene_args(folder), "--features", folder / "features.npz", "--view", "view_002", "--out", tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "view_002_coarse.png",
        "view_002_fine.png",
        "view_002_rgb.png",
    ]


def test_mistakes_get_one_clear_message(trained_scene, tmp_path):
    folder = trained_scene["folder"]
    train = ["train", *scene_args(folder), "--out", tmp_path / "f.npz", "--iterations", 1]
    good_masks, good_images = ["--mask-dir", folder / "masks"], ["--images", folder / "images"]
    assert_user_error(backend(*train, *good_masks, "--images", tmp_path / "nowhere"), "nowhere")
    images = tmp_path / "images"
    shutil.copytree(folder / "images", images)
    (images / "view_003.png").unlink()
    assert_user_error(backend(*train, *good_masks, "--images", images), "view_003.png")
    masks = tmp_path / "masks"
    shutil.copytree(folder / "masks", masks)
    (masks / "view_000.npz").write_bytes(b"garbage")
    assert_user_error(backend(*train, *good_images, "--mask-dir", masks), "view_000.npz")
    assert_user_error(backend(*train, *good_images, "--masks", "sam"), "--sam-checkpoint")
    assert_user_error(backend(*train, *good_images, *good_masks, "--mask-balance", 2), "--mask-balance 2")
    assert not (tmp_path / "f.npz").exists()

    other = tmp_path / "other.ply"
    shutil.copy(folder / "splat.ply", other)
    splat = read_ply(other)
    splat.columns["x"][0] += 1.0
    from backend.formats.ply import write_ply

    write_ply(other, splat)
    segment = [
        "segment",
        "--cameras",
        folder / "sparse" / "0",
        "--features",
        folder / "features.npz",
        "--click",
        10,
        10,
        "--out",
        tmp_path / "s.ply",
    ]
    assert_user_error(backend(*segment, "--splat", other, "--view", "view_000"), "belong to another splat")
    assert_user_error(backend(*segment, "--splat", folder / "splat.ply", "--view", "nope"), "--view nope")
    named = [*segment[:-1], tmp_path / "s.txt", "--splat", folder / "splat.ply", "--view", "view_000"]
    assert_user_error(backend(*named), f"--out {tmp_path / 's.txt'}: ", ".ply, .spz, .splat")
    assert not (tmp_path / "s.txt").exists()


def test_sigterm_stops_training_and_writes_nothing(trained_scene, tmp_path):
    folder = trained_scene["folder"]
    command = [
        sys.executable,
        "-m",
        "backend",
        "train",
        *map(str, scene_args(folder)),
        "--images",
        str(folder / "images"),
        "--mask-dir",
        str(folder / "masks"),
        "--out",
        str(tmp_path / "f.npz"),
        "--iterations",
        "100000",
        "--progress",
        "json",
    ]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stdout:
        if isinstance(read_progress(line), Iterations):
            break
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 128 + signal.SIGTERM
    assert "cancelled: nothing was written" in process.stderr.read()
    assert list(tmp_path.iterdir()) == []


def every_flag():
    """(command, option, argparse action) for every option of every command."""
    import argparse

    from backend.cli.main import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for command, parser in commands.choices.items():
        for action in parser._actions:
            if action.option_strings:
                yield command, action.option_strings[-1], action


def test_every_numeric_flag_takes_its_range_from_the_one_table():
    """A new flag inherits the guards: a number is a range of backend/ranges.py, a whole number bounded above."""
    from backend.ranges import SETTINGS, Range

    numeric = [(c, o, a) for c, o, a in every_flag() if a.type in (int, float) or isinstance(a.type, Range)]
    assert len(numeric) > 20
    for command, option, action in numeric:
        assert any(action.type is allowed for allowed in SETTINGS.values()), f"{command} {option}: not in the table"
        assert action.type.kind is float or action.type.high is not None, f"{command} {option}: no upper bound"


@pytest.mark.parametrize(
    "flag, value", [("--views", "1000000000"), ("--view-size", "1000000000"), ("--view-size", "8")]
)
def test_views_out_of_range_are_refused_before_any_work(tmp_path, flag, value):
    from backend.benchmark.synthetic import make_scene

    write_ply(tmp_path / "s.ply", make_scene(50, seed=1).splat)
    started = time.perf_counter()
    result = backend("train", "--splat", tmp_path / "s.ply", "--out", tmp_path / "f.npz", flag, value)
    assert_user_error(result, f"{flag} {value}: must be a whole number from")
    assert time.perf_counter() - started < 30 and not (tmp_path / "f.npz").exists()
