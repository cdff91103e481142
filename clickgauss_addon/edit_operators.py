"""Split, Delete, Invert, Select None and Segment Everything on a splat's selection, each one undo step.

Split and Delete are Blender's own point-cloud separate / delete, so every attribute (features
included) goes with its points; what Blender does not copy (the file layout kept for export,
the material) is carried over here.
"""

from __future__ import annotations

import bpy
import numpy as np

from . import click_engine
from .backend.click import DEFAULT_THRESHOLDS
from .backend.errors import UserError
from .splat_object import is_splat

CARRIED_KEYS = ("cg_ply_columns", "cg_ply_comments", click_engine.CENTERS_KEY)


def select_only(obj) -> None:
    """Make `obj` the one selected and active object, so mode changes and edit operators touch it alone."""
    view_layer = bpy.context.view_layer
    for other in view_layer.objects.selected:
        other.select_set(False)
    obj.select_set(True)
    view_layer.objects.active = obj


def run_in_edit_mode(obj, operator) -> None:
    """Run a point-cloud edit operator on `obj` alone, coming back to the mode we were in."""
    select_only(obj)
    was_editing = obj.mode == "EDIT"
    if not was_editing:
        bpy.ops.object.mode_set(mode="EDIT")
    operator()
    if not was_editing:
        bpy.ops.object.mode_set(mode="OBJECT")
    click_engine.forget(obj)


def selected_count(obj) -> int:
    return int(click_engine.read_selection(obj).sum())


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
    run_in_edit_mode(obj, bpy.ops.pointcloud.separate)
    (part,) = set(bpy.data.objects) - before
    part.name = part.data.name = name or f"{obj.name} part"
    for key in CARRIED_KEYS:
        if key in obj.data:
            part.data[key] = obj.data[key]
    if not part.data.materials and obj.data.materials:
        part.data.materials.append(obj.data.materials[0])
    click_engine.write_selection(part, np.zeros(len(part.data.points), dtype=bool))
    return part


def delete_selection(obj) -> int:
    count = require_selection(obj)
    if count == len(obj.data.points):
        raise UserError(f"every Gaussian of '{obj.name}' is selected: delete the object instead")
    run_in_edit_mode(obj, bpy.ops.pointcloud.delete)
    return count


def invert_selection(obj) -> None:
    click_engine.write_selection(obj, ~click_engine.read_selection(obj))


def select_none(obj) -> None:
    click_engine.write_selection(obj, np.zeros(len(obj.data.points), dtype=bool))


def segment_everything(obj, threshold: float = DEFAULT_THRESHOLDS["coarse"]) -> list:
    """One new object per global coarse cluster; Gaussians close to none stay in `obj`."""
    labels = click_engine.cluster_labels(obj, threshold)
    parts = []
    for label in np.unique(labels[labels >= 0]):
        click_engine.write_selection(obj, labels == label)
        if selected_count(obj) == len(obj.data.points):
            break  # the last cluster holds everything left: it stays as the source object
        parts.append(split_selection(obj, f"{obj.name} {label:02d}"))
        labels = labels[labels != label]
    select_none(obj)
    return parts


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


class CLICKGAUSS_OT_segment_everything(SplatEditOperator):
    """Split the splat into one object per object the training found (its global coarse clusters)"""

    bl_idname = "clickgauss.segment_everything"
    bl_label = "Segment Everything"

    def edit(self, context, obj):
        parts = segment_everything(obj, context.scene.clickgauss.threshold_coarse)
        return f"Split '{obj.name}' into {len(parts)} objects (the rest stays in '{obj.name}')"


classes = (CLICKGAUSS_OT_split, CLICKGAUSS_OT_delete, CLICKGAUSS_OT_invert, CLICKGAUSS_OT_select_none,
           CLICKGAUSS_OT_segment_everything)
