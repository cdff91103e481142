"""The two protocols between `python -m backend` and the add-on, read back as the add-on reads them."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT

from backend.cli.protocol import EXIT_USER_ERROR, PHASES, progress_line, read_progress, user_error


def test_every_phase_round_trips_and_stray_lines_are_no_events():
    for phase in PHASES:
        event = {"phase": phase, "iteration": 3, "of": 10}
        assert read_progress(progress_line(event)) == event
    for stray in ("", "loading model...", "[1, 2]", '{"no": "phase"}', '{"phase": "unknown"}', "{"):
        assert read_progress(stray) is None


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
