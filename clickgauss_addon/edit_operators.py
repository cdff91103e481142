"""Split, Delete, Invert, Select None, Hide, Reveal and Segment Everything on a splat's selection, each one undo step.

Split and Delete are Blender's own point-cloud separate / delete, so every attribute (features
included) goes with its points; what Blender does not copy (the file layout kept for export,
the material) is carried over here.

Blender's point clouds have no hide flag, so Hide keeps its own (`cg_hidden`) and draws hidden
Gaussians at radius 0 in every shading mode; clicks see through them and never select them.
Export keeps them, unchanged, as Blender's hide keeps geometry and SuperSplat's export keeps
hidden splats.
"""

from __future__ import annotations

import bpy
import numpy as np
from bpy.props import BoolProperty

from . import click_cache, feature_store
from .backend.for_blender import DEFAULT_THRESHOLDS, UNASSIGNED, Level, UserError, segment_labels
from .compat import edit_selected_points
from .point_attributes import get_attribute
from .splat_object import FILE_AXES_KEY, HIDDEN_ATTRIBUTE, draw_hidden, is_splat

CARRIED_KEYS = (
    "cg_ply_columns",
    "cg_ply_comments",
    FILE_AXES_KEY,
    *feature_store.CENTERS_KEYS.values(),
    feature_store.PRIOR_KEY,
)


def select_only(obj) -> None:
    """Make `obj` the one selected and active object, so mode changes and edit operators touch it alone."""
    view_layer = bpy.context.view_layer
    for other in view_layer.objects.selected:
        other.select_set(False)
    obj.select_set(True)
    view_layer.objects.active = obj


def run_in_edit_mode(obj, operation: str) -> None:
    """Blender's point-cloud `operation` ("separate" or "delete") on `obj` alone, coming back to the mode we were in."""
    select_only(obj)
    edit_selected_points(obj, operation, feature_store.read_selection(obj))
    click_cache.forget(obj)


def selected_count(obj) -> int:
    return int(feature_store.read_selection(obj).sum())


def require_selection(obj) -> int:
    count = selected_count(obj)
    if count == 0:
        raise UserError(f"nothing is selected in '{obj.name}': click an object first")
    return count


def split_selection(obj, name: str | None = None):
    """Move the selected Gaussians into a new object (named after the source); returns it."""
    require_selection(obj)
    if selected_count(obj) == len(obj.data.points):
        raise UserError(f"every Gaussian of '{obj.name}' is selected: there is nothing to split it from")
    before = set(bpy.data.objects)
    # Blender's point-cloud separate copies the material slots without counting the new user: the material
    # then goes unsaved once either object is deleted. So the split runs with no slots, and both get them after.
    materials = list(obj.data.materials)
    obj.data.materials.clear()
    try:
        run_in_edit_mode(obj, "separate")
    finally:
        for material in materials:
            obj.data.materials.append(material)
    (part,) = set(bpy.data.objects) - before
    part.name = part.data.name = name or f"{obj.name} part"
    for key in CARRIED_KEYS:
        if key in obj.data:
            part.data[key] = obj.data[key]
    for material in materials:
        part.data.materials.append(material)
    click_cache.write_selection(part, np.zeros(len(part.data.points), dtype=bool))
    return part


def delete_selection(obj) -> int:
    count = require_selection(obj)
    if count == len(obj.data.points):
        raise UserError(f"every Gaussian of '{obj.name}' is selected: delete the object instead")
    run_in_edit_mode(obj, "delete")
    return count


def invert_selection(obj) -> None:
    """Select the visible Gaussians that are not selected: hidden ones stay out of every selection."""
    hidden = get_attribute(obj.data, HIDDEN_ATTRIBUTE, bool)
    click_cache.write_selection(obj, ~feature_store.read_selection(obj) & ~hidden)


def select_none(obj) -> None:
    click_cache.write_selection(obj, np.zeros(len(obj.data.points), dtype=bool))


def hide_gaussians(obj, unselected: bool = False) -> int:
    """Hide the selected (or the unselected) Gaussians and deselect them; returns how many were newly hidden."""
    cloud = obj.data
    if not unselected:
        require_selection(obj)
    selection = feature_store.read_selection(obj)
    was_hidden = get_attribute(cloud, HIDDEN_ATTRIBUTE, bool)
    hidden = was_hidden | (~selection if unselected else selection)
    draw_hidden(cloud, hidden)
    click_cache.write_selection(obj, selection & ~hidden)
    click_cache.note_change(cloud.session_uid)
    return int(hidden.sum() - was_hidden.sum())


def reveal_gaussians(obj, select: bool = True) -> int:
    """Show every hidden Gaussian at its radius again (selected, as Blender's Reveal does); returns how many."""
    cloud = obj.data
    hidden = get_attribute(cloud, HIDDEN_ATTRIBUTE, bool)
    draw_hidden(cloud, None)
    if select:
        click_cache.write_selection(obj, feature_store.read_selection(obj) | hidden)
    click_cache.note_change(cloud.session_uid)
    return int(hidden.sum())


def segment_everything(obj, threshold: float = DEFAULT_THRESHOLDS["coarse"]) -> list:
    """One new object per global coarse cluster; Gaussians close to none stay in `obj`."""
    labels = cluster_labels(obj, threshold)
    parts = []
    for label in np.unique(labels[labels >= 0]):
        click_cache.write_selection(obj, labels == label)
        if selected_count(obj) == len(obj.data.points):
            break  # the last cluster holds everything left: it stays as the source object
        parts.append(split_selection(obj, f"{obj.name} {label:02d}"))
        labels = labels[labels != label]
    select_none(obj)
    return parts


def cluster_labels(obj, threshold: float, level: Level = "coarse", hidden_too: bool = False) -> np.ndarray:
    """(N,) index of each Gaussian's most similar global cluster at `level`, -1 below `threshold`; hidden Gaussians
    -1 too (they stay where they are) unless `hidden_too` (an export labels every Gaussian it writes)."""
    centers = feature_store.read_centers(obj, level)
    if centers.size == 0:
        raise UserError(
            f"'{obj.name}' has no global {level} clusters: train with GFL on, or load a features file that has them"
        )
    state = click_cache.state_of(obj)
    state.read_level(obj, level)
    labels = segment_labels(state.index.level(level).cosines(centers), threshold)  # (N,)
    if state.index.hidden is not None and not hidden_too:
        labels[state.index.hidden] = UNASSIGNED
    return labels


class SplatEditOperator(bpy.types.Operator):
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return is_splat(context.active_object)

    def execute(self, context):
        try:
            message = self.edit(context, context.active_object)
        except UserError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        if message:
            self.report({"INFO"}, message)
        return {"FINISHED"}


class CLICKGAUSS_OT_split(SplatEditOperator):
    """Move the selected Gaussians into a new splat object, every attribute and feature carried"""

    bl_idname = "clickgauss.split"
    bl_label = "Split Selection"

    def edit(self, context, obj):
        part = split_selection(obj)
        return f"Split {len(part.data.points):,} Gaussians into '{part.name}'"


class CLICKGAUSS_OT_delete(SplatEditOperator):
    """Delete the selected Gaussians from the splat"""

    bl_idname = "clickgauss.delete"
    bl_label = "Delete Selection"

    def edit(self, context, obj):
        return f"Deleted {delete_selection(obj):,} Gaussians"


class CLICKGAUSS_OT_invert(SplatEditOperator):
    """Select the Gaussians that are not selected, and deselect the others"""

    bl_idname = "clickgauss.invert"
    bl_label = "Invert Selection"

    def edit(self, context, obj):
        invert_selection(obj)


class CLICKGAUSS_OT_select_none(SplatEditOperator):
    """Deselect every Gaussian of the splat"""

    bl_idname = "clickgauss.select_none"
    bl_label = "Select None"

    def edit(self, context, obj):
        select_none(obj)


class CLICKGAUSS_OT_hide(SplatEditOperator):
    """Hide the selected Gaussians: they draw nowhere and clicks see through them; export still writes them"""

    bl_idname = "clickgauss.hide"
    bl_label = "Hide Selection"

    unselected: BoolProperty(name="Unselected", description="Hide the Gaussians that are not selected instead")

    @classmethod
    def description(cls, context, properties):
        if properties.unselected:
            return "Hide every Gaussian that is not selected: the rest draw nowhere and clicks see through them"
        return cls.__doc__

    def edit(self, context, obj):
        return f"Hid {hide_gaussians(obj, self.unselected):,} Gaussians"


class CLICKGAUSS_OT_reveal(SplatEditOperator):
    """Show the hidden Gaussians again"""

    bl_idname = "clickgauss.reveal"
    bl_label = "Reveal Hidden"

    select: BoolProperty(name="Select", description="Select the revealed Gaussians", default=True)

    def edit(self, context, obj):
        return f"Revealed {reveal_gaussians(obj, self.select):,} Gaussians"


class CLICKGAUSS_OT_segment_everything(SplatEditOperator):
    """Split the splat into one object per object the training found (its global coarse clusters)"""

    bl_idname = "clickgauss.segment_everything"
    bl_label = "Segment Everything"

    def edit(self, context, obj):
        parts = segment_everything(obj, context.scene.clickgauss.threshold_coarse)
        return f"Split '{obj.name}' into {len(parts)} objects (the rest stays in '{obj.name}')"


classes = (
    CLICKGAUSS_OT_split,
    CLICKGAUSS_OT_delete,
    CLICKGAUSS_OT_invert,
    CLICKGAUSS_OT_select_none,
    CLICKGAUSS_OT_hide,
    CLICKGAUSS_OT_reveal,
    CLICKGAUSS_OT_segment_everything,
)
