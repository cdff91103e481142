"""Click selection inside Blender, numpy only: a view and a pixel in, the object's selection out.

The modal operator, the tests and the demo all drive these plain functions, so the headless
path is the one a user's clicks take. The selection is Blender's own point-cloud selection
(`.selection`), so edit mode draws it and Blender's separate / delete act on it.

What clicks on an object reuse (its backend ClickIndex: geometry, the centres' grid, the grouped
unit features per level, and the last selection written) is built once per point cloud, when its
features are stored or at its first click, and kept across click sessions and view changes. It is
kept up to date without a per-click read of its million positions: a depsgraph handler
notes every geometry update that is not the engine's own selection write (points moved in edit
mode, undo, Blender's select tools), and the next click then compares the positions once. A
script that moves points right after an engine write, with no depsgraph evaluation between
(`view_layer.update()`), should call `forget()`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import bpy
import numpy as np
from bpy.app.handlers import persistent

from .backend.cameras import Camera
from .backend.click import (DEFAULT_THRESHOLDS, Click, ClickIndex, FeatureGroups, Geometry, compose,
                            unit_features)
from .backend.errors import UserError
from .backend.features import FEATURE_DIM, LEVEL_DIMS
from .splat_object import (GEOMETRY_COLUMNS, HIDDEN_ATTRIBUTE, get_attribute, object_to_splat, read_positions,
                           set_attribute)

FEATURE_ATTRIBUTES = tuple(f"cg_feature_{i:02d}" for i in range(FEATURE_DIM))
CENTERS_KEY = "cg_centers_coarse"  # the training's global coarse clusters, for Segment Everything
STEP_KEY = "cg_features_step"  # while training runs: the step of the intermediate field the features are
SELECTION = ".selection"
OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])  # Blender views look down -z with y up


def store_features(obj, features: np.ndarray, centers: np.ndarray | None = None, step: int | None = None) -> None:
    """Features (N, 24) as point attributes, so they follow separate, duplicate, undo and .blend saves.

    `step`: an intermediate field of a run still training (None: a finished one). A click session under
    way goes on with the new features: its next click uses them.
    """
    cloud = obj.data
    for i, name in enumerate(FEATURE_ATTRIBUTES):
        set_attribute(cloud, name, "FLOAT", features[:, i].astype(np.float32))
    if centers is not None:
        cloud[CENTERS_KEY] = json.dumps(np.asarray(centers, dtype=float).round(6).tolist())
    elif CENTERS_KEY in cloud:
        del cloud[CENTERS_KEY]  # the old clusters belong to the old features
    if step is not None:
        cloud[STEP_KEY] = step
    elif STEP_KEY in cloud:
        del cloud[STEP_KEY]
    if len(features) == 0:
        forget(obj)
        return
    # the caches are built now, from the features at hand: the first click is then instant
    groups = {"coarse": FeatureGroups.of(unit_features(features, "coarse"))}
    state = _states.get(cloud.session_uid)
    if state is not None and state.count == len(features):  # a click session under way goes on with them
        state.index.groups = groups
        _bump_generation(cloud.session_uid)
        return
    forget(obj)
    uid = cloud.session_uid
    index = ClickIndex(geometry_of(obj), None, read_hidden(obj))
    index.groups = groups
    _states[uid] = ObjectState(len(features), index)
    _changed.discard(uid)


def remove_features(obj) -> None:
    """The object as it was before it had features."""
    cloud = obj.data
    for name in FEATURE_ATTRIBUTES:
        if name in cloud.attributes:
            cloud.attributes.remove(cloud.attributes[name])
    for key in (CENTERS_KEY, STEP_KEY):
        if key in cloud:
            del cloud[key]
    forget(obj)


def features_step(obj) -> int | None:
    """The training step of the object's features while a run is still improving them; None when finished."""
    step = obj.data.get(STEP_KEY)
    return None if step is None else int(step)


def has_features(obj) -> bool:
    return obj is not None and obj.type == "POINTCLOUD" and all(n in obj.data.attributes for n in FEATURE_ATTRIBUTES)


def read_features(obj, channels: int = FEATURE_DIM) -> np.ndarray:  # (N, channels) float32: the first `channels`
    count = len(obj.data.points)
    features = np.empty((channels, count), dtype=np.float32)
    for i, name in enumerate(FEATURE_ATTRIBUTES[:channels]):
        obj.data.attributes[name].data.foreach_get("value", features[i])
    return features.T


def read_selection(obj) -> np.ndarray:  # (N,) bool
    return get_attribute(obj.data, SELECTION, bool)


def write_selection(obj, selection: np.ndarray) -> None:
    """Blender's point selection; the depsgraph update it causes is known not to move points."""
    selection = np.asarray(selection, dtype=bool)
    set_attribute(obj.data, SELECTION, "BOOLEAN", selection)
    uid = obj.data.session_uid
    if uid in _states:
        _states[uid].selection = selection  # the next click starts from it without reading it back
    _own_writes.add(uid)
    _bump_generation(uid)
    obj.data.update_tag()


def read_hidden(obj) -> np.ndarray:  # (N,) bool: the hidden Gaussians
    return get_attribute(obj.data, HIDDEN_ATTRIBUTE, bool)


def geometry_of(obj) -> Geometry:
    return Geometry.of(object_to_splat(obj, GEOMETRY_COLUMNS))


@dataclass
class ObjectState:
    """What clicks on one object reuse: its click index, this session's clicks, the selection last written."""

    count: int
    index: ClickIndex
    clicks: list = field(default_factory=list)  # this click session's clicks, replayed when level or threshold change
    base: np.ndarray | None = None  # the selection before the session's first click
    selection: np.ndarray | None = None  # (N,) bool what the engine last wrote, while nothing else changed it

    @property
    def geometry(self) -> Geometry:
        return self.index.geometry

    def refresh(self, obj) -> None:
        """Catch up with an update of the points: moved ones change the geometry, hidden ones the index's mask."""
        self.selection = None  # Blender's select tools may have changed it
        if not np.array_equal(read_positions(obj.data), self.index.geometry.positions):
            self.index.move(geometry_of(obj))
        self.index.hidden = read_hidden(obj)


_states: dict[int, ObjectState] = {}  # by the point cloud's session_uid
_changed: set[int] = set()  # point clouds updated since their last click
_own_writes: set[int] = set()  # point clouds whose next depsgraph update is the engine's own selection write
_generations: dict[int, int] = {}  # bumped whenever a point cloud's selection or points may have changed


def _bump_generation(uid: int) -> None:
    _generations[uid] = _generations.get(uid, 0) + 1


def note_change(uid: int) -> None:
    """The points of point cloud `uid` may have moved, or been hidden or revealed."""
    _changed.add(uid)
    _bump_generation(uid)


def generation(obj) -> int:
    """A number that changes whenever `obj`'s selection or points may have: the highlight's cache key."""
    return _generations.get(obj.data.session_uid, 0)


def cached_positions(obj) -> np.ndarray | None:
    """(N, 3) the click cache's positions of `obj` while they are known to be current, else None."""
    uid = obj.data.session_uid
    state = _states.get(uid)
    if state is None or uid in _changed or state.count != len(obj.data.points):
        return None
    return state.geometry.positions


def forget(obj) -> None:
    """Drop the cache of an object whose points or features changed."""
    _states.pop(obj.data.session_uid, None)
    note_change(obj.data.session_uid)


def in_session(obj) -> bool:
    """Whether clicks on `obj` are under way (so the threshold slider has clicks to replay)."""
    state = _states.get(obj.data.session_uid)
    return state is not None and bool(state.clicks)


def forget_all() -> None:
    for cache in (_states, _changed, _own_writes):  # generations stay: they only ever count up
        cache.clear()


def state_of(obj) -> ObjectState:
    if not has_features(obj):
        raise UserError(f"'{obj.name}' has no features yet: train them, or load a features file")
    uid, count = obj.data.session_uid, len(obj.data.points)
    state = _states.get(uid)
    if state is None or state.count != count:
        state = _states[uid] = ObjectState(count, ClickIndex(geometry_of(obj), None, read_hidden(obj)))
    elif uid in _changed:
        state.refresh(obj)
    _changed.discard(uid)
    # a level not clicked yet reads only its own channels, from this object (the index outlives no undo)
    state.index.level_unit = lambda level: unit_features(read_features(obj, LEVEL_DIMS[level]), level)
    return state


@persistent
def note_depsgraph_updates(scene, depsgraph) -> None:
    """Geometry updates of point clouds, but for the engine's own selection writes, mark them changed."""
    for update in depsgraph.updates:
        if isinstance(update.id, bpy.types.PointCloud) and update.is_updated_geometry:
            uid = update.id.original.session_uid
            if uid in _own_writes:
                _own_writes.discard(uid)
            else:
                note_change(uid)


@persistent
def note_undo(*_) -> None:
    """Undo and redo replace data wholesale (features included): every cache is rebuilt on its next click."""
    uids = set(_states) | set(_generations)
    _states.clear()
    _own_writes.clear()
    for uid in uids:
        note_change(uid)


@persistent
def forget_file(*_) -> None:
    forget_all()  # another .blend: its point clouds have new session ids


HANDLERS = ((bpy.app.handlers.depsgraph_update_post, note_depsgraph_updates), (bpy.app.handlers.undo_post, note_undo),
            (bpy.app.handlers.redo_post, note_undo), (bpy.app.handlers.load_post, forget_file))


def register() -> None:
    for handlers, handler in HANDLERS:
        handlers.append(handler)


def unregister() -> None:
    for handlers, handler in HANDLERS:
        if handler in handlers:
            handlers.remove(handler)
    forget_all()


def view_camera(width: int, height: int, view_matrix, window_matrix, object_matrix) -> Camera:
    """The OpenCV camera of a 3D viewport region, in the object's own (file) coordinates.

    view_matrix, window_matrix: the region's RegionView3D matrices; object_matrix: matrix_world.
    """
    projection = np.array(window_matrix, dtype=np.float64)
    if abs(projection[3, 3]) > 1e-9:
        raise UserError("clicking needs a perspective view: press Numpad 5 to leave the orthographic view")
    world_to_camera = OPENGL_TO_OPENCV @ np.array(view_matrix, dtype=np.float64) @ np.array(object_matrix, dtype=np.float64)
    fx, fy = width / 2 * projection[0, 0], height / 2 * projection[1, 1]
    cx, cy = width / 2 * (1 - projection[0, 2]), height / 2 * (1 + projection[1, 2])
    return Camera("viewport", width, height, fx, fy, cx, cy, world_to_camera)


def region_pixel(height: int, mouse_x: int, mouse_y: int) -> tuple[float, float]:
    """A mouse position in a region (origin bottom left) as an OpenCV image point (origin top left, centres at +0.5)."""
    return mouse_x + 0.5, height - mouse_y - 0.5


def selection_info(state: ObjectState, selection: np.ndarray, level: str, threshold: float, started: float,
                   missed: list) -> dict:
    """What the header shows after a click or a replay; `missed` tells apart a click on nothing."""
    return {"selected": int(np.count_nonzero(selection)), "ms": (time.perf_counter() - started) * 1e3,
            "level": level, "threshold": threshold, "clicks": len(state.clicks), "missed": len(missed)}


def empty_reason(info: dict) -> str | None:
    """Why a click or replay left nothing selected, for the header and a report; None when something is."""
    if info["missed"]:
        return "Nothing under the pointer: click on the splat"
    if info["selected"] == 0:
        return (f"Nothing selected at the {info['level']} level, threshold {info['threshold']:.2f}: "
                "lower the threshold (− key) or click another place")
    return None


def apply_click(obj, camera: Camera, x: float, y: float, mode: str = "SET", level: str = "coarse",
                threshold: float | None = None) -> dict:
    """Select by a click at image point (x, y) of `camera`; returns what the header shows."""
    started = time.perf_counter()
    state = state_of(obj)
    current = state.selection if state.selection is not None else read_selection(obj)
    if not state.clicks:
        state.base = current
    click = Click(camera, x, y, mode)
    state.clicks.append(click)
    threshold = DEFAULT_THRESHOLDS[level] if threshold is None else threshold
    selection, missed = compose(state.index, [click], level, threshold, current)
    write_selection(obj, selection)
    return selection_info(state, selection, level, threshold, started, missed)


def reapply(obj, level: str, threshold: float) -> dict:
    """Replay this session's clicks at another level or threshold (the live slider)."""
    started = time.perf_counter()
    state = state_of(obj)
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
        base = state.base & ~read_hidden(obj)  # what was hidden during the session stays unselected, as Blender's hide does
        write_selection(obj, base)
    state.clicks, state.base = [], None


def cluster_labels(obj, threshold: float) -> np.ndarray:
    """(N,) index of each Gaussian's most similar global coarse cluster, -1 below `threshold` or without clusters."""
    state = state_of(obj)
    centers = np.array(json.loads(obj.data.get(CENTERS_KEY, "[]")), dtype=np.float32)
    if centers.size == 0:
        raise UserError(f"'{obj.name}' has no global clusters: train with GFL on, or load a features file that has them")
    groups = state.index.level("coarse")
    similarity = groups.unit @ centers.T  # (N, K), rows in the groups' order
    labels = np.empty(len(similarity), np.int64)
    labels[groups.order] = np.where(similarity.max(axis=1) > threshold, similarity.argmax(axis=1), -1)
    labels[state.index.hidden] = -1  # hidden Gaussians stay where they are
    return labels
