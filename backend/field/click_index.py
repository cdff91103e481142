"""The click index and the composition of clicks through it, numpy only: it runs inside Blender.

A click's feature is the feature field rendered at the clicked pixel (click_pixels); the Gaussians selected are
those whose unit feature at the chosen level has cosine similarity above a threshold with it (click_features,
METHOD.md). ClickIndex keeps what the clicks on one splat reuse, built a step at a time; `compose` is the one
composition of clicks that the add-on, `segment` and `eval` share.
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator, Iterator

import numpy as np

from ..formats.features import LEVEL_DIMS, Level
from .click import Click, combine
from .click_features import FeatureGroups, PlainFeatures, RawFeatures, click_feature, unit_steps
from .click_pixels import CentreGrid, Geometry, pixel_weights


class ClickIndex:
    """What the clicks on one splat reuse: its geometry, its centres' grid, per level its grouped unit features.

    `level_unit(level)` gives that level's (N, D) unit features (`unit_features`); it is called when a
    level is first needed. `level_features(level)`, where given, that level's features as stored
    (`level_columns`): until a level's groups are built, a click compares with those (RawFeatures), so no
    click waits for unit features either. Either may give None for a level whose features are not at hand
    yet: nothing is built for it until `resume()`, and its caller brings them before clicking at it.
    `indexed=False`: no grid and no groups, every click reads everything (a one-off click: `segment`).
    `background=True`: the grid and both levels' groups are built a step at a time by `build(seconds)`,
    which the caller calls when it is idle (the add-on: a Blender timer), and the clicks until then take the
    plain path (the same selection): neither the features' arrival nor a first click waits seconds for them.
    The steps run on the caller's thread, never on one beside it: Blender's Python API is not thread safe
    (a builder thread crashed the add-on's tests in Blender 4.2 and 5.0 while Blender applied a modifier).
    """

    def __init__(
        self,
        geometry: Geometry,
        level_unit,
        hidden: np.ndarray | None = None,
        indexed: bool = True,
        background: bool = False,
        level_features=None,
    ):
        self.geometry, self.level_unit, self.indexed, self.background = geometry, level_unit, indexed, background
        self.level_features = level_features if background else None
        self.hidden = hidden  # (N,) bool: Gaussians no pixel composites and no click selects, or None
        self.grid = CentreGrid.of(geometry) if indexed and not background else None
        self.groups: dict[Level, FeatureGroups | PlainFeatures] = {}
        self._steps: Iterator[None] = iter(())
        self.resume()

    @property
    def nbytes(self) -> int:
        """Memory held: geometry, grid and each level's groups."""
        parts = [self.geometry, self.grid, *self.groups.values()]
        return sum(
            value.nbytes
            for part in parts
            if part is not None
            for value in vars(part).values()
            if isinstance(value, np.ndarray)
        )

    @property
    def built(self) -> bool:
        """Whether every click now takes the indexed path (always, for an index that is not `indexed`)."""
        levels = self.groups.values()
        return not self.indexed or (
            self.grid is not None
            and len(levels) == len(LEVEL_DIMS)
            and all(isinstance(g, FeatureGroups) for g in levels)
        )

    def build(self, seconds: float) -> bool:
        """Build steps for about `seconds` (a step may overrun it: by at most 0.1 s at 6 million Gaussians on a
        2-core CPU); whether steps remain."""
        end = time.perf_counter() + seconds
        for _ in self._steps:
            if time.perf_counter() >= end:
                return True
        return False

    def wait(self) -> None:
        """Until every level is built (tests, benchmarks)."""
        self.build(math.inf)
        for level in LEVEL_DIMS:
            self._unit_level(level)

    def move(self, geometry: Geometry) -> None:
        """The points moved: a new geometry and grid; the features, and so their groups, stay."""
        self.geometry, self.grid = geometry, None
        if self.indexed and not self.background:
            self.grid = CentreGrid.of(geometry)
        self.resume()

    def replace_features(self, level_unit, level_features=None) -> None:
        """New features for the same points (a training checkpoint): each level's unit features and groups anew."""
        self.level_unit, self.groups = level_unit, {}
        self.level_features = level_features if self.background else None
        self.resume()

    def resume(self) -> None:
        """What the index holds changed (or features that were not at hand are now): the build starts over, and
        keeps what is built and still valid."""
        if self.indexed and self.background:
            self._steps = self._build_steps()

    def stop(self) -> None:
        """No more build steps: the index is no longer used."""
        self._steps = iter(())

    def level(self, level: Level) -> FeatureGroups | PlainFeatures | RawFeatures:
        """What a click at `level` compares with: its groups once built, else its features as stored where the
        index holds them, else its plain unit features (made here when missing: `_unit_level`)."""
        current = self.groups.get(level)
        if isinstance(current, FeatureGroups) or (current is not None and self.level_features is None):
            return current
        stored = None if self.level_features is None else self.level_features(level)
        made = self._unit_level(level) if stored is None else RawFeatures(stored)
        if made is None:
            raise ValueError(f"the {level} level's features are not at hand: bring them before clicking at it")
        return made

    def _unit_level(self, level: Level) -> FeatureGroups | PlainFeatures | None:
        """The level's groups or plain unit features, made here when missing (None: not at hand yet)."""
        current = self.groups.get(level)
        if current is None:
            unit = self.level_unit(level)
            if unit is None:
                return None
            current = PlainFeatures(unit) if not self.indexed or self.background else FeatureGroups.of(unit)
            self.groups[level] = current
        return current

    def query(self, level: Level, click: Click) -> np.ndarray | None:
        """The unit feature rendered at the click's pixel, or None where nothing is drawn."""
        ids, weights = pixel_weights(self.geometry, click.camera, click.x, click.y, self.grid, self.hidden)
        return None if len(ids) == 0 else click_feature(self.level(level).features(ids), np.arange(len(ids)), weights)

    def _unit_steps(self, level: Level) -> Generator[None, None, FeatureGroups | PlainFeatures | None]:
        """`_unit_level` in steps where the features as stored are at hand (`unit_features` of them, a chunk a
        step)."""
        stored = None if level in self.groups or self.level_features is None else self.level_features(level)
        if stored is not None:
            unit = yield from unit_steps(stored)
            self.groups.setdefault(level, PlainFeatures(unit))  # unless a click made them meanwhile
        return self._unit_level(level)

    def _build_steps(self) -> Iterator[None]:
        """The coarse level's unit features (a click needs them first), the grid, then per level its groups. The
        steps are dropped, mid-way, when what they build from changes (`resume`)."""
        yield from self._unit_steps("coarse")
        if self.grid is None:
            self.grid = yield from CentreGrid.steps(self.geometry)
        for level in LEVEL_DIMS:
            plain = yield from self._unit_steps(level)
            if isinstance(plain, PlainFeatures):
                self.groups[level] = yield from FeatureGroups.steps(plain.unit)
        if self.built:
            self.level_unit = self.level_features = None  # every level is built: what they came from can go


def compose(
    index: ClickIndex, clicks: list[Click], level: Level, threshold, start: np.ndarray
) -> tuple[np.ndarray, list]:
    """The selection `clicks` make from `start` ((N,) bool, or (T, N) for T thresholds), and the clicks that hit
    nothing.

    The one composition of clicks that the add-on, `segment` and `eval` share: SET replaces, ADD
    unites, SUBTRACT removes; hidden Gaussians end unselected.
    """
    selection, missed = start.copy(), []
    for click in clicks:
        query = index.query(level, click)
        if query is None:
            missed.append(click)
            continue
        selection = combine(selection, index.level(level).select(query, threshold), click.mode)
    if index.hidden is not None:
        selection[..., index.hidden] = False
    return selection, missed
