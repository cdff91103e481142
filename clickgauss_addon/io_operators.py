"""File > Import / Export > Gaussian Splat, and drag-and-drop of splat files into the viewport."""

from __future__ import annotations

import time
import traceback
from pathlib import Path

import bpy
import numpy as np
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, FloatProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper, axis_conversion, orientation_helper

from . import feature_store
from .backend.for_blender import (
    SEGMENT_COLUMNS,
    SPLAT_EXTENSIONS,
    WRITE_FORMATS,
    Splat,
    UserError,
    join_splats,
    left_out,
    read_splat,
    segment_file_names,
    transform_splat,
    write_splat,
    write_splats,
)
from .compat import HAS_NATIVE_SPLATS
from .edit_operators import cluster_labels
from .splat_object import FILE_AXES_KEY, is_splat, object_to_splat, source_axes, splat_to_object
from .transform_operators import guard


def axis_matrix(forward: str, up: str):
    """The file's axes turned into Blender's (Z up)."""
    return axis_conversion(from_forward=forward, from_up=up).to_4x4()


def file_axes(operator, obj) -> tuple[str, str]:
    """The axes an object is exported in: the export's own where the user set them, otherwise those of the file
    the object came from."""
    chosen = operator.properties
    if chosen.is_property_set("axis_forward", ghost=False) or chosen.is_property_set("axis_up", ghost=False):
        return operator.axis_forward, operator.axis_up
    return source_axes(obj.data) or (operator.axis_forward, operator.axis_up)


# Captures are usually in the OpenCV frame (y down, z into the scene): up is -Y, forward is Z.
@orientation_helper(axis_forward="Z", axis_up="-Y")
class CLICKGAUSS_OT_import_splat(bpy.types.Operator, ImportHelper):
    """Import a 3D Gaussian Splatting file (.ply, compressed .ply, .spz, .splat, .sog) as a point-cloud object, every column an attribute"""  # noqa: E501  Blender's tooltip: one line

    bl_idname = "clickgauss.import_splat"
    bl_label = "Import Gaussian Splat"
    bl_options = {"REGISTER", "UNDO", "PRESET"}

    filename_ext = ".ply"
    filter_glob: StringProperty(default=";".join(f"*{ending}" for ending in SPLAT_EXTENSIONS), options={"HIDDEN"})
    files: CollectionProperty(type=bpy.types.OperatorFileListElement, options={"HIDDEN", "SKIP_SAVE"})
    directory: StringProperty(subtype="DIR_PATH", options={"HIDDEN", "SKIP_SAVE"})
    drop_invalid: BoolProperty(
        name="Drop Invalid Points",
        description="Skip points with NaN or infinite values instead of refusing the file",
        default=False,
    )
    point_size: FloatProperty(
        name="Point Size",
        description="Display radius of each point, as a multiple of twice its Gaussian's middle standard deviation "
        "(Blender 5.3 and later draw the Gaussians themselves, at their own size)",
        default=1.0,
        min=0.01,
        max=100.0,
    )

    def paths(self):
        if self.files and self.directory:
            return [Path(self.directory) / f.name for f in self.files if f.name]
        return [Path(self.filepath)]

    def execute(self, context):
        if click_mode_running(context):
            self.report({"ERROR"}, "Leave Click Select first (Enter keeps the selection, Esc leaves), then import")
            return {"CANCELLED"}
        if context.mode != "OBJECT":  # a splat (or anything) in edit mode: new objects are added in object mode
            bpy.ops.object.mode_set(mode="OBJECT")
        imported, imported_from, failed = [], [], []
        for path in self.paths():  # a bad file is reported by name; the others are still imported
            started = time.perf_counter()
            try:
                splat = read_splat(path, drop_invalid=self.drop_invalid)
                obj = splat_to_object(
                    splat, path.stem, context.collection, axis_matrix(self.axis_forward, self.axis_up), self.point_size
                )
                obj.data[FILE_AXES_KEY] = [self.axis_forward, self.axis_up]
            except Exception as error:  # an internal failure too: one message, the scene as it was
                failed.append(failure_message(error, path))
                continue
            imported.append(obj)
            imported_from.append(path)
            self.report(
                {"INFO"},
                f"Imported {splat.count:,} Gaussians (SH degree {splat.sh_degree}) from {path.name} "
                f"in {time.perf_counter() - started:.2f} s",
            )
        if failed:
            skipped = f" ({len(failed)} of {len(failed) + len(imported)} files not imported)" if len(failed) > 1 else ""
            self.report({"ERROR"}, "; ".join(failed) + skipped)
        if not imported:
            return {"CANCELLED"}
        remember_training_inputs(context.scene.clickgauss, Path(imported_from[0]))
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
        if not HAS_NATIVE_SPLATS:  # drawn as discs: their size is ours to choose
            layout.prop(self, "point_size")
        layout.prop(self, "drop_invalid")


def failure_message(error: Exception, path: Path) -> str:
    """A user mistake's own message; for an internal failure, which file and what failed, in one line."""
    if isinstance(error, UserError):
        return str(error)
    traceback.print_exc()  # the details for a bug report go to the console, not into the user's message
    return f"importing {path.name} failed inside Blender {bpy.app.version_string}: {type(error).__name__}: {error}"


def click_mode_running(context) -> bool:
    """Whether a Click Select session runs in any window (its modal handler owns the edit-mode selection)."""
    return any(
        operator.bl_idname == "CLICKGAUSS_OT_click_mode"
        for window in context.window_manager.windows
        for operator in window.modal_operators
    )


def remember_training_inputs(settings, splat_path: Path) -> None:
    """Fill in the photos and cameras found beside an imported splat, where the panel has none yet."""
    for folder in (splat_path.parent, splat_path.parent.parent):
        if not settings.images_dir and (folder / "images").is_dir():
            settings.images_dir = str(folder / "images")
        for name in ("sparse/0", "sparse", "transforms.json", "poses_bounds.npy"):
            if not settings.cameras_path and (folder / name).exists():
                settings.cameras_path = str(folder / name)


@orientation_helper(axis_forward="Z", axis_up="-Y")
class CLICKGAUSS_OT_export_splat(bpy.types.Operator, ExportHelper):
    """Export splat objects as a Gaussian splat file that any splat viewer opens, each placed, turned and scaled as it stands in the scene. The name's ending picks the format: .ply, .compressed.ply (PlayCanvas), .spz (Niantic), .splat (antimatter15)"""  # noqa: E501  Blender's tooltip: one line

    bl_idname = "clickgauss.export_splat"
    bl_label = "Export Gaussian Splat"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".ply"
    filter_glob: StringProperty(
        default=";".join(sorted({"*." + e.rsplit(".", 1)[1] for e in WRITE_FORMATS})), options={"HIDDEN"}
    )
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
    segment_ids: BoolProperty(
        name="Segment IDs",
        description="Also write each Gaussian's segment, its nearest global cluster of the training at the "
        "Click-Gaussian thresholds, as the int columns segment_coarse and segment_fine (-1: none), for other tools; "
        "needs features trained with GFL (.ply only)",
        default=False,
    )

    def check(self, context):
        """Keep whichever format's ending the name has (ExportHelper would force .ply on it); any other name
        gets .ply as before. (The Forward / Up options fix their own conflicts as they change.)"""
        if Path(self.filepath).name.lower().endswith(tuple(WRITE_FORMATS)):
            return False
        return super().check(context)

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
            parts = [
                splat_for_export(
                    obj,
                    axis_matrix(*file_axes(self, obj)).inverted() @ obj.matrix_world,
                    self.include_features,
                    segment_thresholds(context.scene.clickgauss) if self.segment_ids else None,
                )
                for obj in objects
            ]
            splat, dropped = join_splats(parts)
            lost = left_out(splat, self.filepath)
            write_splat(self.filepath, splat)
        except UserError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report(
            {"WARNING" if dropped or lost else "INFO"},
            f"Exported {splat.count:,} Gaussians to {Path(self.filepath).name} in {time.perf_counter() - started:.2f} s"
            + (f"; column(s) {', '.join(dropped)} left out: not every object has them" if dropped else "")
            + (f"; the format holds no {' nor '.join(lost)}" if lost else ""),
        )
        return {"FINISHED"}


def segment_thresholds(settings) -> dict:
    """Level -> the Click-Gaussian threshold each level's Segment IDs are labelled at."""
    return {level: settings.threshold_of(level) for level in SEGMENT_COLUMNS}


def splat_for_export(obj, matrix, include_features: bool = False, segment_at: dict | None = None) -> Splat:
    """The object's splat mapped by `matrix` (4x4), with its features as extra float columns when asked
    for and present, and with `segment_at` (level -> threshold) its segment IDs. An identity matrix leaves every
    value as imported."""
    guard(obj)  # a Blender Apply Transform the depsgraph handler has not seen yet
    splat = object_to_splat(obj)
    if include_features and feature_store.has_features(obj):
        features = feature_store.read_features(obj)
        for i, name in enumerate(feature_store.FEATURE_ATTRIBUTES):
            splat.columns.setdefault(name, np.ascontiguousarray(features[:, i]))
    if segment_at is not None:
        if not feature_store.has_features(obj):
            raise UserError(f"'{obj.name}' has no features: Segment IDs need a training's clusters")
        for level, column in SEGMENT_COLUMNS.items():
            splat.columns[column] = cluster_labels(obj, segment_at[level], level, hidden_too=True)
    try:
        return transform_splat(splat, np.array(matrix))
    except UserError as error:
        raise UserError(f"'{obj.name}': {error}") from None


class CLICKGAUSS_FH_splat(bpy.types.FileHandler):
    bl_idname = "CLICKGAUSS_FH_splat"
    bl_label = "Gaussian Splat"
    bl_import_operator = CLICKGAUSS_OT_import_splat.bl_idname
    bl_file_extensions = ";".join(SPLAT_EXTENSIONS)

    @classmethod
    def poll_drop(cls, context):
        return context.area is not None and context.area.type == "VIEW_3D"


def menu_import(self, context):
    self.layout.operator(CLICKGAUSS_OT_import_splat.bl_idname, text="Gaussian Splat (.ply, .spz, .splat, .sog)")


@orientation_helper(axis_forward="Z", axis_up="-Y")
class CLICKGAUSS_OT_export_segments(bpy.types.Operator):
    """Export each object the training found in the active splat (its global coarse clusters) as its own splat file in a folder, placed as it stands in the scene; the Gaussians close to no cluster go to 'unassigned'"""  # noqa: E501  Blender's tooltip: one line

    bl_idname = "clickgauss.export_segments"
    bl_label = "Export Segments"
    bl_options = {"REGISTER"}

    directory: StringProperty(subtype="DIR_PATH")
    filter_folder: BoolProperty(default=True, options={"HIDDEN"})
    file_format: EnumProperty(
        name="Format", items=[(ending, ending, f"Write {ending} files") for ending in WRITE_FORMATS], default=".ply"
    )

    @classmethod
    def poll(cls, context):
        return is_splat(context.active_object)

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        obj, folder = context.active_object, Path(bpy.path.abspath(self.directory))
        try:
            if not folder.is_dir():
                raise UserError(f"{folder}: not a folder; choose one to write the segments into")
            labels = cluster_labels(obj, context.scene.clickgauss.threshold_coarse, hidden_too=True)
            splat = splat_for_export(obj, axis_matrix(*file_axes(self, obj)).inverted() @ obj.matrix_world)
            names = segment_file_names(labels, self.file_format)
            write_splats((folder / name, splat.subset(labels == label)) for label, name in names.items())
        except UserError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Wrote {len(names)} files of '{obj.name}' ({splat.count:,} Gaussians) to {folder}")
        return {"FINISHED"}


def menu_export(self, context):
    self.layout.operator(CLICKGAUSS_OT_export_splat.bl_idname, text="Gaussian Splat (.ply, .spz, .splat)")
    self.layout.operator(CLICKGAUSS_OT_export_segments.bl_idname, text="Gaussian Splat Segments (folder)")


classes = (CLICKGAUSS_OT_import_splat, CLICKGAUSS_OT_export_splat, CLICKGAUSS_OT_export_segments, CLICKGAUSS_FH_splat)
