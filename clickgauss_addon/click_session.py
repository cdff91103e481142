"""A click session on one object: each click selects by the backend's one click function
(backend/field/click_index.py `compose`), and the session's clicks are kept so that a change of level or threshold
replays them. numpy only.
The modal operator, the tests and the demo all drive these plain functions, so the headless path is the one a
user's clicks take. The selection is Blender's own point-cloud selection (`.selection`), so edit mode draws it
and Blender's separate / delete act on it."""

from __future__ import annotations

import time

import numpy as np

from .backend.for_blender import DEFAULT_THRESHOLDS, Camera, Click, Level, Mode, compose
from .click_cache import ObjectState, _states, state_of, write_selection
from .feature_store import read_hidden, read_selection


def selection_info(
    state: ObjectState, selection: np.ndarray, level: Level, threshold: float, started: float, missed: list
) -> dict:
    """What the header shows after a click or a replay; `missed` tells apart a click on nothing."""
    state.info = {
        "selected": int(np.count_nonzero(selection)),
        "ms": (time.perf_counter() - started) * 1e3,
        "level": level,
        "threshold": threshold,
        "clicks": len(state.clicks),
        "missed": len(missed),
    }
    return state.info


def latest_info(obj) -> dict | None:
    """The header's figures of the session's last click or replay (a replay the settings' update ran, say)."""
    state = _states.get(obj.data.session_uid)
    return None if state is None else state.info


def empty_reason(info: dict) -> str | None:
    """Why a click or replay left nothing selected, for the header and a report; None when something is."""
    if info["missed"]:
        return "Nothing under the pointer: click on the splat"
    if info["selected"] == 0:
        return (
            f"Nothing selected at the {info['level']} level, threshold {info['threshold']:.2f}: "
            "lower the threshold (− key) or click another place"
        )
    return None


def apply_click(
    obj, camera: Camera, x: float, y: float, mode: Mode = "SET", level: Level = "coarse", threshold: float | None = None
) -> dict:
    """Select by a click at image point (x, y) of `camera`; returns what the header shows."""
    started = time.perf_counter()
    state = state_of(obj)
    state.read_level(obj, level)
    current = state.selection if state.selection is not None else read_selection(obj)
    if not state.clicks:
        state.base = current
    click = Click(camera, x, y, mode)
    state.clicks.append(click)
    threshold = DEFAULT_THRESHOLDS[level] if threshold is None else threshold
    selection, missed = compose(state.index, [click], level, threshold, current)
    write_selection(obj, selection)
    return selection_info(state, selection, level, threshold, started, missed)


def reapply(obj, level: Level, threshold: float) -> dict:
    """Replay this session's clicks at another level or threshold (the live slider)."""
    started = time.perf_counter()
    state = state_of(obj)
    state.read_level(obj, level)
    start = state.base if state.base is not None else read_selection(obj)
    selection, missed = compose(state.index, state.clicks, level, threshold, start)
    write_selection(obj, selection)
    return selection_info(state, selection, level, threshold, started, missed)


def end_session(obj, keep: bool) -> None:
    """Finish a click session: keep the selection, or put back the one it started from."""
    state = _states.get(obj.data.session_uid)
    if state is None:
        return
    if not keep and state.base is not None:
        base = state.base & ~read_hidden(
            obj
        )  # what was hidden during the session stays unselected, as Blender's hide does
        write_selection(obj, base)
    state.clicks, state.base = [], None
