"""Selections made by rule rather than by a click: Select Floaters, Select by Attribute, Grow and Shrink.

Floaters and attribute ranges follow their sliders live while the selection is still the one they made (nothing
else wrote it since: `click_cache.generation`); each starts again from the selection it found, so a slider that
moves back gives back what was there. Floater scores are computed once per splat (seconds at 1M Gaussians) and
kept while its points stay where they were: a Strength change is then one comparison and a selection write.
"""

from __future__ import annotations

import numpy as np
from bpy.props import EnumProperty

from . import click_cache, feature_store
from .backend.for_blender import (
    DC_COLUMNS,
    UserError,
    attribute_values,
    combine,
    floater_scores,
    floaters,
    grow,
    in_range,
    shrink,
)
from .edit_operators import SplatEditOperator
from .point_attributes import read_positions
from .splat_object import is_splat, object_to_splat

_kept: dict[tuple, tuple[np.ndarray, int, np.ndarray]] = {}  # (session_uid, what) -> (positions, edits, (N,) values)
_live: dict[int, tuple[str, int, np.ndarray]] = {}  # session_uid -> (tool, generation it wrote, selection before)


def write_live(obj, tool: str, before: np.ndarray, selection: np.ndarray) -> int:
    """Write a tool's selection (hidden Gaussians never selected) and remember it; returns how many are selected."""
    selection = selection & ~feature_store.read_hidden(obj)
    click_cache.write_selection(obj, selection)
    _live[obj.data.session_uid] = (tool, click_cache.generation(obj), before)
    return int(selection.sum())


def live_before(obj, tool: str) -> np.ndarray | None:
    """The selection `tool` started from, while the object's selection is still the one it wrote; else None."""
    if not is_splat(obj):
        return None
    kept = _live.get(obj.data.session_uid)
    return kept[2] if kept and kept[0] == tool and kept[1] == click_cache.generation(obj) else None


def kept_values(obj, what: tuple, compute) -> np.ndarray:
    """(N,) per-Gaussian values `compute()` gives, kept per object and `what` while its points stay where they
    are and nothing edits them (an opacity changed with Blender's own tools, an undo): a slider then costs a
    comparison, not the values again."""
    key = (obj.data.session_uid, *what)
    positions, edits = read_positions(obj.data), click_cache.edits(obj)
    kept = _kept.get(key)
    if kept is not None and kept[1] == edits and np.array_equal(kept[0], positions):
        return kept[2]
    for old in [k for k in _kept if k[0] == key[0] and k[1] == key[1]]:
        del _kept[old]  # one set of values per object and kind
    values = compute()
    _kept[key] = (positions, edits, values)
    return values


def floater_scores_of(obj) -> np.ndarray:
    def compute():
        geometry = click_cache.geometry_of(obj)
        return floater_scores(geometry.positions, geometry.scales, geometry.opacities)

    return kept_values(obj, ("FLOATERS",), compute)


def select_floaters(obj, settings, before: np.ndarray) -> int:
    taken = floaters(floater_scores_of(obj), settings.floater_strength)
    return write_live(obj, "FLOATERS", before, combine(before, taken, settings.select_mode))


def select_by_attribute(obj, settings, before: np.ndarray) -> int:
    attribute, reference = settings.select_attribute, np.array(settings.select_color, np.float32)

    def compute():
        geometry = click_cache.geometry_of(obj)
        colors = object_to_splat(obj, DC_COLUMNS).colors if attribute == "COLOR" else None
        return attribute_values(attribute, geometry.scales, geometry.opacities, colors, reference)

    values = kept_values(obj, (attribute, *(reference.tolist() if attribute == "COLOR" else ())), compute)
    low, high = settings.attribute_range(attribute)
    return write_live(obj, "ATTRIBUTE", before, combine(before, in_range(values, low, high), settings.select_mode))


def rule_changed(settings, context) -> None:
    """A setting of Select Floaters or Select by Attribute changed: the live one selects again from where it began."""
    obj = context.active_object
    for tool, select in (("FLOATERS", select_floaters), ("ATTRIBUTE", select_by_attribute)):
        before = live_before(obj, tool)
        if before is not None:
            select(obj, settings, before)


class SelectionTool(SplatEditOperator):
    def edit(self, context, obj):
        if len(obj.data.points) == 0:
            raise UserError(f"'{obj.name}' has no Gaussians")
        return self.select(context, obj, feature_store.read_selection(obj))


class CLICKGAUSS_OT_select_floaters(SelectionTool):
    """Select the Gaussians that belong to no surface: isolated from the others, or faint and far larger than the
    detail around them. The Strength slider then updates the selection; Delete cleans the capture"""

    bl_idname = "clickgauss.select_floaters"
    bl_label = "Select Floaters"

    def select(self, context, obj, before):
        settings = context.scene.clickgauss
        count = select_floaters(obj, settings, before)
        strength = settings.floater_strength
        return f"{count:,} of {len(obj.data.points):,} Gaussians selected (floaters at strength {strength:g})"


class CLICKGAUSS_OT_select_by_attribute(SelectionTool):
    """Select the Gaussians whose opacity, size or colour is in a range (set, added to or taken from the
    selection); the range's sliders then update it"""

    bl_idname = "clickgauss.select_by_attribute"
    bl_label = "Select by Attribute"

    def select(self, context, obj, before):
        settings = context.scene.clickgauss
        count = select_by_attribute(obj, settings, before)
        return f"{count:,} Gaussians selected ({settings.select_attribute.lower()} in range)"


class CLICKGAUSS_OT_color_from_selection(SelectionTool):
    """Take Select by Attribute's colour from the selected Gaussians (their median base colour): click an object
    or part, then select the Gaussians coloured like it"""

    bl_idname = "clickgauss.color_from_selection"
    bl_label = "Colour from Selection"

    def select(self, context, obj, before):
        if not before.any():
            raise UserError(f"nothing is selected in '{obj.name}': click what has the colour first")
        color = np.median(object_to_splat(obj, DC_COLUMNS).colors[before], axis=0)
        settings = context.scene.clickgauss
        settings.select_attribute, settings.select_color = "COLOR", tuple(float(c) for c in np.clip(color, 0, 1))
        return f"Colour {', '.join(f'{c:.2f}' for c in color)} from {int(before.sum()):,} Gaussians"


class CLICKGAUSS_OT_grow_selection(SelectionTool):
    """Grow the selection to the Gaussians touching it: with features, those whose feature agrees with the
    selection's at the current level and threshold; without, every touching one"""

    bl_idname = "clickgauss.grow_selection"
    bl_label = "Grow Selection"

    step: EnumProperty(items=[("GROW", "Grow", ""), ("SHRINK", "Shrink", "")], options={"HIDDEN"})

    @classmethod
    def description(cls, context, properties):
        if properties.step == "SHRINK":
            return "Shrink the selection by its boundary: the selected Gaussians that touch an unselected one"
        return cls.__doc__

    def select(self, context, obj, before):
        if not before.any():
            raise UserError(f"nothing is selected in '{obj.name}': select something to grow or shrink first")
        positions = read_positions(obj.data)
        if self.step == "SHRINK":
            after = shrink(positions, before)
        else:
            after = grow(positions, before, agreeing(context, obj, before))
        count = write_live(obj, self.step, before, after)
        return f"{count:,} Gaussians selected ({count - int(before.sum()):+,})"


def agreeing(context, obj, selection: np.ndarray) -> np.ndarray | None:
    """(N,) bool the Gaussians whose unit feature is within the threshold's cosine of the selection's mean one at
    the current level; None without features (every touching Gaussian agrees)."""
    if not feature_store.has_features(obj):
        return None
    settings = context.scene.clickgauss
    state, level = click_cache.state_of(obj), settings.click_level
    state.read_level(obj, level)
    features = state.index.level(level)
    mean = features.features(np.flatnonzero(selection)).astype(np.float64).mean(axis=0)  # (D,) in UNIT_SCALE units
    return features.select(mean / max(float(np.linalg.norm(mean)), 1e-12), settings.threshold)


classes = (
    CLICKGAUSS_OT_select_floaters,
    CLICKGAUSS_OT_select_by_attribute,
    CLICKGAUSS_OT_color_from_selection,
    CLICKGAUSS_OT_grow_selection,
)
