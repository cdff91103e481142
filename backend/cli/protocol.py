"""The two protocols between `python -m backend` and a program that runs it (the add-on), each defined once here.

Progress: with `--progress json`, one JSON object per line on stdout, each naming its `phase` (PHASES), in
this order: planning, planned, rendering (views from the splat alone), masks, precompute, clustering and
iterations (the loop; clustering each time GFL re-clusters), checkpoint (a clickable field so far at `path`),
done. Anything else on stdout (a library's stray print) is not an event.
Errors: a mistake the user can fix is one line on stderr starting with ERROR_PREFIX, and exit code
EXIT_USER_ERROR; Ctrl+C / SIGTERM exit 128 + the signal's number with nothing written; 1 is an internal error.
Standard library only: the add-on reads it inside Blender.
"""

from __future__ import annotations

import json
import sys

ERROR_PREFIX = "error: "
EXIT_USER_ERROR = 2
PHASES = ("planning", "planned", "rendering", "masks", "precompute", "clustering", "iterations", "checkpoint", "done")


def error_line(message: str) -> str:
    return ERROR_PREFIX + message


def user_error(stderr_lines) -> str | None:
    """The last user-error message among a run's stderr lines, without the prefix; None when there is none."""
    messages = [line.strip()[len(ERROR_PREFIX) :] for line in stderr_lines if line.strip().startswith(ERROR_PREFIX)]
    return messages[-1] if messages else None


def progress_line(event: dict) -> str:
    assert event.get("phase") in PHASES, event
    return json.dumps(event)


def read_progress(line: str) -> dict | None:
    """The event on one stdout line, or None for a line that is not one."""
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) and event.get("phase") in PHASES else None


def progress_printer(mode: str):
    """The progress callback for `--progress`: JSON lines on stdout, a bar on stderr, or nothing."""

    def as_json(event):
        print(progress_line(event), flush=True)

    def as_bar(event):
        if event["phase"] == "checkpoint":
            return  # the bar goes on; the file is there for whoever polls it
        if event["phase"] != "iterations":
            detail = (
                f": {event['source']}"
                if "source" in event
                else f" {event['view']}/{event['of']}"
                if "view" in event
                else ""
            )
            print(f"{event['phase']}{detail}", file=sys.stderr, flush=True)
            return
        done = event["iteration"] / event["of"]
        bar = "#" * int(30 * done) + "." * (30 - int(30 * done))
        end = "\n" if event["iteration"] == event["of"] else ""
        print(
            f"\r[{bar}] {event['iteration']}/{event['of']} loss {event['loss']:.4f} {event['remaining_s']:.0f} s left ",
            file=sys.stderr,
            end=end,
            flush=True,
        )

    return {"json": as_json, "bar": as_bar, "none": lambda event: None}[mode]
