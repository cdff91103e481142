"""Click mode in the 3D viewport, and loading a features file onto a splat."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import StringProperty
from bpy_extras.io_utils import ImportHelper

from . import click_cache, click_session, feature_store, viewport
from .backend.for_blender import UserError, load_features
from .compat import enter_point_edit_mode
from .edit_operators import select_only
from .splat_object import GEOMETRY_COLUMNS, is_splat, object_to_splat

NAVIGATION = {
    "MIDDLEMOUSE",
    "WHEELUPMOUSE",
    "WHEELDOWNMOUSE",
    "TRACKPADPAN",
    "TRACKPADZOOM",
    "MOUSEROTATE",
    "NDOF_MOTION",
    "MOUSEMOVE",
    "INBETWEEN_MOUSEMOVE",
}
HINTS = (
    "Click: new · Shift: add · Ctrl: subtract · L or Alt+Wheel: coarse/fine · +/−: threshold · Enter: keep · Esc: leave"
)


def event_action(kind: str, value: str, shift: bool, ctrl: bool, alt: bool, inside: bool) -> tuple[str, object]:
    """What a viewport event does in click mode, and its argument: ("KEEP" | "LEAVE" | "SWITCH_LEVEL", None),
    ("THRESHOLD", step), ("CLICK", "SET" | "ADD" | "SUBTRACT"), ("PASS", None) to let Blender have it (navigation,
    or anything outside the region), ("IGNORE", None) to swallow it."""
    pressed = value == "PRESS"
    if pressed and kind in {"RET", "NUMPAD_ENTER"}:
        return "KEEP", None
    if pressed and kind in {"ESC", "RIGHTMOUSE"}:
        return "LEAVE", None
    if pressed and (kind == "L" or (alt and kind in {"WHEELUPMOUSE", "WHEELDOWNMOUSE"})):
        return "SWITCH_LEVEL", None
    if pressed and kind in {"NUMPAD_PLUS", "EQUAL", "NUMPAD_MINUS", "MINUS"}:
        return "THRESHOLD", 0.01 if kind in {"NUMPAD_PLUS", "EQUAL"} else -0.01
    if pressed and kind == "LEFTMOUSE" and inside:
        return "CLICK", "ADD" if shift else "SUBTRACT" if ctrl else "SET"
    return ("PASS", None) if kind in NAVIGATION or not inside else ("IGNORE", None)


def window_region(area):
    return next(region for region in area.regions if region.type == "WINDOW")


class CLICKGAUSS_OT_click_mode(bpy.types.Operator):
    """Click an object in the viewport to select its Gaussians (Shift adds, Ctrl subtracts, Enter keeps, Esc leaves)"""

    bl_idname = "clickgauss.click_mode"
    bl_label = "Click Select"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return context.area is not None and context.area.type == "VIEW_3D" and is_splat(context.active_object)

    def invoke(self, context, event):
        obj = context.active_object
        if not feature_store.has_features(obj):
            self.report({"ERROR"}, f"'{obj.name}' has no features yet: train them or load a features file first")
            return {"CANCELLED"}
        select_only(obj)
        enter_point_edit_mode(obj)
        click_session.end_session(obj, keep=True)
        click_cache.state_of(obj)  # a reopened .blend: the click caches start building now, not at the first click
        self.info = {"selected": feature_store.read_selection(obj).sum(), "ms": 0.0, "missed": 0}
        self.show(context)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def show(self, context):
        settings = context.scene.clickgauss
        empty = click_session.empty_reason(self.info) if "level" in self.info else None  # none before the first click
        status = empty or f"{int(self.info['selected']):,} selected · {self.info['ms']:.1f} ms per click"
        step = feature_store.features_step(context.active_object)
        field = "" if step is None else f"field: {feature_store.field_name(step)} · "
        context.area.header_text_set(
            f"Click-Gaussian · {field}{settings.click_level} · threshold {settings.threshold:.2f} · {status}"
            f"   |   {HINTS}"
        )
        context.area.tag_redraw()

    def modal(self, context, event):
        settings, obj = context.scene.clickgauss, context.active_object
        region = window_region(context.area)
        inside = 0 <= event.mouse_x - region.x < region.width and 0 <= event.mouse_y - region.y < region.height
        action, argument = event_action(event.type, event.value, event.shift, event.ctrl, event.alt, inside)
        try:
            if action in ("KEEP", "LEAVE"):
                return self.finish(context, obj, keep=action == "KEEP")
            if action == "SWITCH_LEVEL":  # the settings' update replays the session's clicks (settings.py)
                settings.level = "FINE" if settings.level == "COARSE" else "COARSE"
                self.info = click_session.latest_info(obj) or self.info
            elif action == "THRESHOLD":
                attribute = "threshold_coarse" if settings.level == "COARSE" else "threshold_fine"
                setattr(settings, attribute, getattr(settings, attribute) + argument)
                self.info = click_session.latest_info(obj) or self.info
            elif action == "CLICK":
                camera = viewport.view_camera(
                    region.width,
                    region.height,
                    context.space_data.region_3d.view_matrix,
                    context.space_data.region_3d.window_matrix,
                    obj.matrix_world,
                )
                x, y = viewport.region_pixel(region.height, event.mouse_x - region.x, event.mouse_y - region.y)
                self.info = click_session.apply_click(
                    obj, camera, x, y, argument, settings.click_level, settings.threshold
                )
                if click_session.empty_reason(self.info):
                    self.report({"WARNING"}, click_session.empty_reason(self.info))
            else:
                return {"PASS_THROUGH"} if action == "PASS" else {"RUNNING_MODAL"}
        except UserError as error:
            self.report({"ERROR"}, str(error))
        self.show(context)
        return {"RUNNING_MODAL"}

    def finish(self, context, obj, keep: bool):
        click_session.end_session(obj, keep)
        context.area.header_text_set(None)
        context.area.tag_redraw()
        return {"FINISHED"} if keep else {"CANCELLED"}


class CLICKGAUSS_OT_load_features(bpy.types.Operator, ImportHelper):
    """Load a features file written by 'python -m backend train' onto the active splat"""

    bl_idname = "clickgauss.load_features"
    bl_label = "Load Features"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".npz"
    filter_glob: StringProperty(default="*.npz", options={"HIDDEN"})

    @classmethod
    def poll(cls, context):
        return is_splat(context.active_object)

    def execute(self, context):
        obj = context.active_object
        try:
            attach_features_file(obj, Path(self.filepath))
        except UserError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Loaded features for {len(obj.data.points):,} Gaussians onto '{obj.name}'")
        return {"FINISHED"}


def attach_features_file(obj, path: Path) -> None:
    """The features in `path` onto `obj`, refused unless they were trained for exactly its Gaussians."""
    field = load_features(path, object_to_splat(obj, GEOMETRY_COLUMNS))  # the fingerprint hashes the geometry alone
    click_cache.store_features(obj, field.features, field.centers, prior=field.granularity_prior)


classes = (CLICKGAUSS_OT_click_mode, CLICKGAUSS_OT_load_features)
