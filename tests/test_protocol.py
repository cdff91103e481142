"""The two protocols between `python -m backend` and the add-on, read back as the add-on reads them."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT

from backend.cli.protocol import EXIT_USER_ERROR, progress_line, read_progress, user_error
from backend.progress import (
    EVENTS,
    PHASES,
    Checkpoint,
    Clustering,
    Done,
    Iterations,
    Masks,
    Planned,
    Planning,
    Precompute,
    Rendering,
)

ONE_OF_EACH = [  # in the order a run sends them
    Planning(views=24),
    Planned(views=22, layout="object", dropped=2),
    Rendering(view=3, of=22),
    Masks(source="geometric masks (3D groups)", views=22),
    Precompute(views=22),
    Clustering(iteration=250),
    Iterations(3, 10, 1.25, {"contrastive_coarse": 0.5, "gfl": 0.75}, elapsed_s=0.5, remaining_s=1.0),
    Checkpoint(iteration=250, path="/tmp/features.checkpoint.npz"),
    Done(out="/tmp/features.npz", seconds={"masks": 1.5, "iterations": 2.0}),
]


def test_every_event_round_trips_and_stray_lines_are_no_events():
    assert [type(event) for event in ONE_OF_EACH] == list(EVENTS)
    assert PHASES == tuple(event.phase for event in ONE_OF_EACH)
    for event in ONE_OF_EACH:
        assert read_progress(progress_line(event)) == event
    whole = '{"phase": "checkpoint", "iteration": 3, "path": "f.npz"}'
    assert read_progress(whole) == Checkpoint(3, "f.npz")
    strays = [
        "",
        "loading model...",
        "[1, 2]",
        '{"no": "phase"}',
        '{"phase": "unknown"}',
        "{",
        '{"phase": 3}',
        "[" * 10**5,
    ]
    strays += [
        '{"phase": "checkpoint", "iteration": 3}',  # a field missing
        '{"phase": "checkpoint", "iteration": 3, "path": "f.npz", "loss": 1}',  # one too many
        '{"phase": "checkpoint", "iteration": "3", "path": "f.npz"}',  # not of its type
        '{"phase": "checkpoint", "iteration": true, "path": "f.npz"}',
        '{"phase": "done", "out": "f.npz", "seconds": {"masks": "1"}}',
    ]
    for stray in strays:
        assert read_progress(stray) is None, stray


def test_the_lines_on_the_wire_are_the_phase_and_the_fields():
    """What readers of `--progress json` other than the add-on see (README): unchanged by the typed events."""
    assert progress_line(Iterations(3, 10, 1.25, {"gfl": 0.75}, 0.5, 1.0)) == (
        '{"phase": "iterations", "iteration": 3, "of": 10, "loss": 1.25, "losses": {"gfl": 0.75}, '
        '"elapsed_s": 0.5, "remaining_s": 1.0}'
    )
    assert (
        progress_line(Planned(22, "inside", 0)) == '{"phase": "planned", "views": 22, "layout": "inside", "dropped": 0}'
    )


def test_a_mistake_is_one_error_line_and_exit_2_read_back_as_the_message(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "backend",
            "train",
            "--splat",
            str(tmp_path / "missing.ply"),
            "--out",
            str(tmp_path / "f.npz"),
            "--iterations",
            "0",
            "--progress",
            "json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == EXIT_USER_ERROR
    assert user_error(result.stderr.splitlines()) == "--iterations 0: must be a whole number from 1 to 10,000,000"
    assert not [line for line in result.stdout.splitlines() if read_progress(line)]  # nothing started


def test_the_last_error_line_is_the_message_and_other_lines_are_not():
    lines = ["Traceback (most recent call last):", "error: first", "  warning: something", "error: the last one  "]
    assert user_error(lines) == "the last one"
    assert user_error(["Killed", ""]) is None
