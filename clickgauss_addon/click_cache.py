"""What clicks on an object reuse (its backend ClickIndex: geometry, the centres' grid, the grouped
unit features per level, and the last selection written) is built once per point cloud, when its
features are stored, when click mode starts or at its first click, and kept across click sessions
and view changes. The grid and the groups are built a slice at a time by a Blender timer
(build_indexes), on Blender's thread as its Python API requires, and clicks until then take the
plain path, which selects the same Gaussians. It is
kept up to date without a per-click read of its million positions: a depsgraph handler
notes every geometry update that is not the engine's own selection write (points moved in edit
mode, undo, Blender's select tools), and the next click then compares the positions once. A
script that moves points right after an engine write, with no depsgraph evaluation between
(`view_layer.update()`), should call `forget()`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import bpy
import numpy as np
from bpy.app.handlers import persistent

from .backend.for_blender import (
    COARSE_DIM,
    FEATURE_DIM,
    LEVEL_DIMS,
    ROTATION_COLUMNS,
    SCALE_COLUMNS,
    ClickIndex,
    Geometry,
    Level,
    UserError,
    alphas_of,
    level_columns,
    unit_features,
)
from .feature_store import (
    CENTERS_KEYS,
    FEATURE_ATTRIBUTES,
    PRIOR_KEY,
    SELECTION,
    STEP_KEY,
    granularity_prior,
    has_features,
    read_features,
    read_hidden,
)
from .native_splat import BASE
from .point_attributes import read_positions, set_attribute
from .splat_object import GEOMETRY_COLUMNS, column_layout, is_native, object_to_splat, read_native


def store_features(
    obj, features: np.ndarray, centers: dict | None = None, step: int | None = None, prior: bool = True
) -> None:
    """Features (N, 24) as point attributes, and the caches built from them (build_indexes), so the first
    click is instant.

    `step`: an intermediate field of a run still training (None: a finished one). `prior`: whether the field was
    trained with the granularity prior, which the click then applies (backend/field/click_features.py unit_features). A
    click session under way goes on with the new features: its next click uses them.
    """
    cloud = obj.data
    channels = features.T.astype(np.float32, order="C")  # (24, N): one pass, 2.5x faster than column by column
    for name, values in zip(FEATURE_ATTRIBUTES, channels):
        set_attribute(cloud, name, "FLOAT", values)
    for level, key in CENTERS_KEYS.items():
        if centers and centers.get(level) is not None:
            cloud[key] = json.dumps(np.asarray(centers[level], dtype=float).round(6).tolist())
        elif key in cloud:
            del cloud[key]  # the old clusters belong to the old features
    for key, value in ((STEP_KEY, step), (PRIOR_KEY, None if prior else False)):
        if value is not None:
            cloud[key] = value
        elif key in cloud:
            del cloud[key]
    if len(features) == 0:
        forget(obj)
        return
    stored = channels.T  # (N, 24) as the attributes hold them, kept: clicks read no attribute back
    state = _states.get(cloud.session_uid)
    if state is not None and state.count == len(features):  # a click session under way goes on with them
        state.features, state.levels = None, set(LEVEL_DIMS)
        state.index.replace_features(*feature_sources(stored, prior, state.levels))
        _bump_generation(cloud.session_uid)
        return
    forget(obj)
    uid = cloud.session_uid
    _states[uid] = new_state(obj, stored, prior)
    _changed.discard(uid)


def new_state(obj, features: np.ndarray, prior: bool, levels: set | None = None) -> ObjectState:
    """A cache of `obj`'s points whose index builds its grid and groups from its features (N, 24) float32
    (build_indexes; clicks meanwhile compare with the features as stored, which select the same). `levels`:
    those whose channels `features` holds (all by default; ObjectState.read_level brings the others)."""
    levels = set(LEVEL_DIMS) if levels is None else levels
    level_unit, level_features = feature_sources(features, prior, levels)
    index = ClickIndex(geometry_of(obj), level_unit, read_hidden(obj), background=True, level_features=level_features)
    unread = levels != set(LEVEL_DIMS)
    return ObjectState(len(features), index, features=features if unread else None, levels=levels)


def feature_sources(features: np.ndarray, prior: bool, levels=LEVEL_DIMS):
    """The index's `level_unit` and `level_features` for features (N, 24) at hand (fastest a transposed view of
    (24, N), as Blender's attributes are read), None for a level not in `levels` (its channels unread yet)."""

    def at_hand(make):
        return lambda level: make(features, level, prior) if level in levels else None

    return at_hand(unit_features), at_hand(level_columns)


def remove_features(obj) -> None:
    """The object as it was before it had features."""
    cloud = obj.data
    for name in FEATURE_ATTRIBUTES:
        if name in cloud.attributes:
            cloud.attributes.remove(cloud.attributes[name])
    for key in (*CENTERS_KEYS.values(), STEP_KEY, PRIOR_KEY):
        if key in cloud:
            del cloud[key]
    forget(obj)


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


def geometry_of(obj) -> Geometry:
    """What a click needs of `obj`'s points, each attribute read straight into the arrays kept (0.1 s at 6
    million Gaussians, where object_to_splat and Geometry.of took 0.3 s through their copies); the same
    values as Geometry.of(object_to_splat(obj)), which reports what is missing or unusual."""
    cloud = obj.data
    if is_native(cloud) and len(cloud.points):  # what Blender draws: unit quaternions, linear scales, alphas
        native = read_native(cloud, ("position", "rotation", "scale", BASE))
        if len(native) == 4:
            return Geometry(native["position"], native["rotation"], native["scale"], native[BASE][:, 3].copy())
    names = {column: name for column, _, name in column_layout(cloud)}
    columns = SCALE_COLUMNS + ROTATION_COLUMNS + ("opacity",)
    attributes = [cloud.attributes.get(names.get(column, "")) for column in columns]
    if len(cloud.points) == 0 or any(a is None or a.data_type != "FLOAT" for a in attributes):
        return Geometry.of(object_to_splat(obj, GEOMETRY_COLUMNS))
    count = len(cloud.points)
    scales, rotations, opacities = (
        np.empty((count, 3), np.float32),
        np.empty((count, 4), np.float32),
        np.empty(count, np.float32),
    )
    for attribute, column in zip(attributes, [*scales.T, *rotations.T]):  # the opacities last
        attribute.data.foreach_get("value", opacities)  # foreach_get fills contiguous arrays only: a column via it
        column[...] = opacities
    attributes[-1].data.foreach_get("value", opacities)
    return Geometry(
        read_positions(cloud),
        rotations,
        np.exp(scales, out=scales),  # on (N, 3) as Geometry.of: numpy's exp may round otherwise on other layouts
        alphas_of(opacities),
    )


@dataclass
class ObjectState:
    """What clicks on one object reuse: its click index, this session's clicks, the selection last written."""

    count: int
    index: ClickIndex
    features: np.ndarray | None = None  # (N, 24) the index's features, while some levels' channels are unread
    levels: set = field(default_factory=lambda: set(LEVEL_DIMS))  # the levels whose channels `features` holds
    clicks: list = field(default_factory=list)  # this click session's clicks, replayed when level or threshold change
    base: np.ndarray | None = None  # the selection before the session's first click
    selection: np.ndarray | None = None  # (N,) bool what the engine last wrote, while nothing else changed it
    info: dict | None = None  # what the last click or replay selected, for the header (click_session)

    @property
    def geometry(self) -> Geometry:
        return self.index.geometry

    def read_level(self, obj, level: Level) -> None:
        """Bring the channels a click at `level` needs where state_of left them unread: it reads the coarse level's
        alone (12 of the 24 attributes), so entering click mode on a reopened .blend costs half, and the first
        fine click the rest."""
        if level not in self.levels and self.features is not None:
            read_features(obj, range(COARSE_DIM, FEATURE_DIM), into=self.features.T)
            self.levels.add(level)
            self.features = None  # every level's channels are read: the index holds them while it needs them
            self.index.resume()

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
_edits: dict[int, int] = {}  # bumped whenever anything but the engine's own selection writes changed a point cloud


def _bump_generation(uid: int) -> None:
    _generations[uid] = _generations.get(uid, 0) + 1


def note_change(uid: int) -> None:
    """The points of point cloud `uid` may have moved, been hidden or revealed, or had their attributes edited."""
    _changed.add(uid)
    _bump_generation(uid)
    _edits[uid] = _edits.get(uid, 0) + 1


def edits(obj) -> int:
    """A number that changes whenever `obj`'s points may have been edited (not by a selection of ours): the key of
    values computed from their attributes."""
    return _edits.get(obj.data.session_uid, 0)


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
    dropped(_states.pop(obj.data.session_uid, None))
    note_change(obj.data.session_uid)


def dropped(*states: ObjectState | None) -> None:
    """Caches no longer used: their index stops building."""
    for state in states:
        if state is not None:
            state.index.stop()


def in_session(obj) -> bool:
    """Whether clicks on `obj` are under way (so the threshold slider has clicks to replay)."""
    state = _states.get(obj.data.session_uid)
    return state is not None and bool(state.clicks)


def forget_all() -> None:
    dropped(*_states.values())
    for cache in (_states, _changed, _own_writes):  # generations stay: they only ever count up
        cache.clear()


def state_of(obj) -> ObjectState:
    """The object's click cache, made now (its build started) where there is none."""
    if not has_features(obj):
        raise UserError(f"'{obj.name}' has no features yet: train them, or load a features file")
    uid, count = obj.data.session_uid, len(obj.data.points)
    state = _states.get(uid)
    if state is None or state.count != count:
        forget(obj)
        coarse = read_features(obj, range(COARSE_DIM))  # the fine channels when a click needs them: read_level
        state = _states[uid] = new_state(obj, coarse, granularity_prior(obj), {"coarse"})
    elif uid in _changed:
        state.refresh(obj)
    _changed.discard(uid)
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
    dropped(*_states.values())
    _states.clear()
    _own_writes.clear()
    for uid in uids:
        note_change(uid)


@persistent
def forget_file(*_) -> None:
    forget_all()  # another .blend: its point clouds have new session ids


HANDLERS = (
    (bpy.app.handlers.depsgraph_update_post, note_depsgraph_updates),
    (bpy.app.handlers.undo_post, note_undo),
    (bpy.app.handlers.redo_post, note_undo),
    (bpy.app.handlers.load_post, forget_file),
)


BUILD_SLICE = 0.02  # seconds of Blender's thread a timer tick lends the indexes' builds: the viewport stays fluid


def build_indexes() -> float:
    """The timer that builds the click indexes a slice at a time between Blender's events; the seconds to its
    next tick. An index whose build fails is left unbuilt: its clicks keep the plain path, which selects the same."""
    for state in list(_states.values()):
        try:
            if state.index.build(BUILD_SLICE):
                return 0.01
        except Exception as error:  # the timer must live on for the other objects and the next features
            state.index.stop()
            print(f"Click-Gaussian: a click cache was not built ({error!r}); its clicks take the plain path")
    return 0.25


def register() -> None:
    for handlers, handler in HANDLERS:
        handlers.append(handler)
    bpy.app.timers.register(build_indexes, first_interval=0.25, persistent=True)


def unregister() -> None:
    if bpy.app.timers.is_registered(build_indexes):
        bpy.app.timers.unregister(build_indexes)
    for handlers, handler in HANDLERS:
        if handler in handlers:
            handlers.remove(handler)
    forget_all()
