"""The two protocols between `python -m backend` and a program that runs it (the add-on), each defined once here.

Progress: with `--progress json`, one JSON object per line on stdout, `{"phase": ..., **fields}`: a typed event of
backend/progress.py (one frozen dataclass per phase, PHASES in the order a run sends them: planning, planned,
rendering, masks, precompute, clustering, iterations, checkpoint, done), written by `progress_line` and read back by
`read_progress` into the same class. Anything else on stdout (a library's stray print, an unknown phase, fields
that do not fit the phase's class) is not an event.
Errors: a mistake the user can fix is one line on stderr starting with ERROR_PREFIX, and exit code
EXIT_USER_ERROR; Ctrl+C / SIGTERM exit 128 + the signal's number with nothing written; 1 is an internal error.
Standard library only: the add-on reads it inside Blender.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import get_args, get_origin, get_type_hints

from ..progress import EVENTS, Checkpoint, Iterations, Masks, Progress, ProgressEvent, Rendering

ERROR_PREFIX = "error: "
EXIT_USER_ERROR = 2


def error_line(message: str) -> str:
    return ERROR_PREFIX + message


def user_error(stderr_lines) -> str | None:
    """The last user-error message among a run's stderr lines, without the prefix; None when there is none."""
    messages = [line.strip()[len(ERROR_PREFIX) :] for line in stderr_lines if line.strip().startswith(ERROR_PREFIX)]
    return messages[-1] if messages else None


def progress_line(event: ProgressEvent) -> str:
    return json.dumps({"phase": event.phase, **asdict(event)})


def read_progress(line: str) -> ProgressEvent | None:
    """The event on one stdout line, or None for a line that is not one (never raises)."""
    try:
        fields = json.loads(line)
    except (json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(fields, dict) or not isinstance(fields.get("phase"), str) or fields["phase"] not in _READERS:
        return None
    event, fits = _READERS[fields.pop("phase")]
    if fields.keys() != fits.keys() or not all(fits[name](value) for name, value in fields.items()):
        return None
    return event(**fields)


def _reader(kind) -> Callable[[object], bool]:
    """Whether a JSON value is of a field's type (int, float, str, dict[str, float]); an int is a float too."""
    if kind in (int, str):
        return lambda value: type(value) is kind  # not a bool for an int
    if kind is float:
        return lambda value: type(value) in (int, float)
    if get_origin(kind) is dict:
        key, item = map(_reader, get_args(kind))
        return lambda value: isinstance(value, dict) and all(key(k) and item(v) for k, v in value.items())
    raise TypeError(f"a progress field of type {kind}: teach _reader to check it")


# each phase's class and a check of each of its fields, by phase name; an unknown field type fails on import
_READERS = {
    event.phase: (event, {name: _reader(kind) for name, kind in get_type_hints(event).items() if name != "phase"})
    for event in EVENTS
}


def progress_printer(mode: str) -> Progress:
    """The progress callback for `--progress`: JSON lines on stdout, a bar on stderr, or nothing."""

    def as_json(event: ProgressEvent) -> None:
        print(progress_line(event), flush=True)

    def as_bar(event: ProgressEvent) -> None:
        if isinstance(event, Checkpoint):
            return  # the bar goes on; the file is there for whoever polls it
        if not isinstance(event, Iterations):
            detail = (
                f": {event.source}"
                if isinstance(event, Masks)
                else f" {event.view}/{event.of}"
                if isinstance(event, Rendering)
                else ""
            )
            print(f"{event.phase}{detail}", file=sys.stderr, flush=True)
            return
        done = event.iteration / event.of
        bar = "#" * int(30 * done) + "." * (30 - int(30 * done))
        end = "\n" if event.iteration == event.of else ""
        print(
            f"\r[{bar}] {event.iteration}/{event.of} loss {event.loss:.4f} {event.remaining_s:.0f} s left ",
            file=sys.stderr,
            end=end,
            flush=True,
        )

    def quiet(event: ProgressEvent) -> None:
        pass

    return {"json": as_json, "bar": as_bar, "none": quiet}[mode]
