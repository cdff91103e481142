"""File > Import / Export > Gaussian Splat, and drag-and-drop of splat files into the viewport."""

from __future__ import annotations

import time
import traceback
from pathlib import Path

import bpy
import numpy as np
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, FloatProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper, axis_conversion, orientation_helper

from . import click_engine
from .backend.errors import UserError
from .backend.formats import SPLAT_EXTENSIONS, read_splat
from .backend.ply import write_ply
from .backend.splat import Splat
from .splat_object import is_splat, merge, object_to_splat, splat_to_object

def axis_matrix(operator):
    return axis_conversion(from_forward=operator.axis_forward, from_up=operator.axis_up).to_4x4()


# Captures are usually in the OpenCV frame (y down, z into the scene): up is -Y, forward is Z.
@orientation_helper(axis_forward="Z", axis_up="-Y")
class CLICKGAUSS_OT_import_splat(bpy.types.Operator, ImportHelper):
    """Import a 3D Gaussian Splatting file (.ply, compressed .ply, .spz) as a point-cloud object, every column an attribute"""

    bl_idname = "clickgauss.import_splat"
    bl_label = "Import Gaussian Splat"
    bl_options = {"REGISTER", "UNDO", "PRESET"}

    filename_ext = ".ply"
    filter_glob: StringProperty(default="*.ply;*.spz", options={"HIDDEN"})
    files: CollectionProperty(type=bpy.types.OperatorFileListElement, options={"HIDDEN", "SKIP_SAVE"})
    directory: StringProperty(subtype="DIR_PATH", options={"HIDDEN", "SKIP_SAVE"})
    drop_invalid: BoolProperty(
        name="Drop Invalid Points",
        description="Skip points with NaN or infinite values instead of refusing the file",
        default=False,
    )
    point_size: FloatProperty(
        name="Point Size",
        description="Display radius of each point, as a multiple of twice its Gaussian's middle standard deviation",
        default=1.0, min=0.01, max=100.0,
    )

    def paths(self):
        if self.files and self.directory:
            return [Path(self.directory) / f.name for f in self.files if f.name]
        return [Path(self.filepath)]

    def execute(self, context):
        imported = []
        for path in self.paths():
            started = time.perf_counter()
            try:
                splat = read_splat(path, drop_invalid=self.drop_invalid)
                obj = splat_to_object(splat, path.stem, context.collection, axis_matrix(self), self.point_size)
            except Exception as error:  # an internal failure too: one message, the scene as it was
                self.report({"ERROR"}, failure_message(error, path))
                return {"FINISHED"} if imported else {"CANCELLED"}
            imported.append(obj)
            self.report(
                {"INFO"},
                f"Imported {splat.count:,} Gaussians (SH degree {splat.sh_degree}) from {path.name} "
                f"in {time.perf_counter() - started:.2f} s",
            )
        remember_training_inputs(context.scene.clickgauss, self.paths()[0])
        for obj in context.view_layer.objects.selected:
            obj.select_set(False)
        for obj in imported:
            obj.select_set(True)
        context.view_layer.objects.active = imported[-1]
        return {"FINISHED"}

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.prop(self, "axis_forward")
        layout.prop(self, "axis_up")
        layout.prop(self, "point_size")
        layout.prop(self, "drop_invalid")


def failure_message(error: Exception, path: Path) -> str:
    """A user mistake's own message; for an internal failure, which file and what failed, in one line."""
    if isinstance(error, UserError):
        return str(error)
    traceback.print_exc()  # the details for a bug report go to the console, not into the user's message
    return f"importing {path.name} failed inside Blender {bpy.app.version_string}: {type(error).__name__}: {error}"


def remember_training_inputs(settings, splat_path: Path) -> None:
    """Fill in the photos and cameras found beside an imported splat, where the panel has none yet."""
    for folder in (splat_path.parent, splat_path.parent.parent):
        if not settings.images_dir and (folder / "images").is_dir():
            settings.images_dir = str(folder / "images")
        for name in ("sparse/0", "sparse", "transforms.json", "poses_bounds.npy"):
            if not settings.cameras_path and (folder / name).exists():
                settings.cameras_path = str(folder / name)


class CLICKGAUSS_OT_export_splat(bpy.types.Operator, ExportHelper):
    """Export splat objects as a 3D Gaussian Splatting .ply file that any splat viewer opens"""

    bl_idname = "clickgauss.export_splat"
    bl_label = "Export Gaussian Splat"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".ply"
    filter_glob: StringProperty(default="*.ply", options={"HIDDEN"})
    use_selection: BoolProperty(
        name="Selected Objects",
        description="Write every selected splat object into the one file; otherwise only the active object",
        default=False,
    )
    include_features: BoolProperty(
        name="Include Features",
        description="Also write the learned features as 24 float columns (cg_feature_00..23); importing "
                    "the file brings them back. Other splat viewers ignore extra columns",
        default=False,
    )

    def objects(self, context):
        if self.use_selection:
            return [obj for obj in context.selected_objects if is_splat(obj)]
        return [context.active_object] if context.active_object else []

    def execute(self, context):
        objects = self.objects(context)
        if not objects:
            self.report({"ERROR"}, "Select a splat object to export (File > Import > Gaussian Splat makes one)")
            return {"CANCELLED"}
        started = time.perf_counter()
        try:
            splat = merge([splat_for_export(obj, self.include_features) for obj in objects], [obj.name for obj in objects])
            write_ply(self.filepath, splat)
        except UserError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report(
            {"INFO"},
            f"Exported {splat.count:,} Gaussians to {Path(self.filepath).name} in {time.perf_counter() - started:.2f} s",
        )
        return {"FINISHED"}


def splat_for_export(obj, include_features: bool) -> Splat:
    """The object's splat, with its features as extra float columns when asked for and present."""
    splat = object_to_splat(obj)
    if include_features and click_engine.has_features(obj):
        features = click_engine.read_features(obj)
        for i, name in enumerate(click_engine.FEATURE_ATTRIBUTES):
            splat.columns.setdefault(name, np.ascontiguousarray(features[:, i]))
    return splat


class CLICKGAUSS_FH_splat(bpy.types.FileHandler):
    bl_idname = "CLICKGAUSS_FH_splat"
    bl_label = "Gaussian Splat"
    bl_import_operator = CLICKGAUSS_OT_import_splat.bl_idname
    bl_file_extensions = ";".join(SPLAT_EXTENSIONS)

    @classmethod
    def poll_drop(cls, context):
        return context.area is not None and context.area.type == "VIEW_3D"


def menu_import(self, context):
    self.layout.operator(CLICKGAUSS_OT_import_splat.bl_idname, text="Gaussian Splat (.ply, .spz)")


def menu_export(self, context):
    self.layout.operator(CLICKGAUSS_OT_export_splat.bl_idname, text="Gaussian Splat (.ply)")


classes = (CLICKGAUSS_OT_import_splat, CLICKGAUSS_OT_export_splat, CLICKGAUSS_FH_splat)
