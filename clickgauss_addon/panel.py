"""The "Click-Gaussian" tab of the 3D viewport's sidebar: import, train, click, split, export."""

import bpy

from . import feature_store, view_cameras
from .addon_preferences import preferences
from .backend.for_blender import sh_degree_for_rest_count
from .preferences import sam_status
from .splat_object import column_layout, is_splat


class SidebarPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Click-Gaussian"


class CLICKGAUSS_PT_main(SidebarPanel, bpy.types.Panel):
    bl_idname = "CLICKGAUSS_PT_main"
    bl_label = "Click-Gaussian"

    def draw(self, context):
        layout = self.layout
        row = layout.row(align=True)
        row.operator("clickgauss.import_splat", text="Import", icon="IMPORT")
        row.operator("clickgauss.export_splat", text="Export", icon="EXPORT")
        obj = context.active_object
        if not is_splat(obj):
            layout.label(text="Import a splat, or select one", icon="INFO")
            return
        box = layout.box()
        box.label(text=obj.name, icon="POINTCLOUD_DATA")
        cloud = obj.data
        rest = sum(1 for column, _, _ in column_layout(cloud) if column.startswith("f_rest_"))  # native or not
        degree = sh_degree_for_rest_count(rest)
        box.label(text=f"{len(cloud.points):,} Gaussians, SH degree {'?' if degree is None else degree}")
        step = feature_store.features_step(obj) if feature_store.has_features(obj) else None
        features = "none yet" if not feature_store.has_features(obj) else feature_store.field_name(step)
        box.label(text=f"Features: {features}")
        row = layout.row(align=True)
        row.operator("clickgauss.apply_transform", text="Apply Transform", icon="OBJECT_ORIGIN")
        row.operator("clickgauss.join", text="Join", icon="SELECT_EXTEND")


class SplatSubpanel(SidebarPanel):
    """A sub-panel of the main one, shown while the active object is a splat."""

    bl_parent_id = "CLICKGAUSS_PT_main"

    @classmethod
    def poll(cls, context):
        return is_splat(context.active_object)


class CLICKGAUSS_PT_train(SplatSubpanel, bpy.types.Panel):
    bl_label = "Train"

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        settings = context.scene.clickgauss
        layout.prop(settings, "images_dir")
        if settings.images_dir:
            layout.prop(settings, "cameras_path")
        else:  # no photos: the backend renders views of the splat from the scene's cameras
            box = layout.box()
            box.label(text="No photos: render views from the splat", icon="RENDER_STILL")
            box.prop(settings, "view_count")
            box.prop(settings, "view_size")
            box.prop(settings, "use_viewport")
            box.operator("clickgauss.plan_views", icon="OUTLINER_OB_CAMERA")
            count = len(view_cameras.scene_cameras(context))
            box.label(text=f"Train renders the {count} cameras of the scene" if count else "Train plans views first")
        layout.prop(settings, "mask_source")
        if settings.mask_source in {"SAM", "AUTO"} and (why := sam_status(preferences(context))):
            layout.label(text=f"SAM unavailable: {why}", icon="ERROR")
        if settings.mask_source in {"FOLDER", "AUTO"}:
            layout.prop(settings, "mask_dir")
        layout.prop(settings, "iterations", text="Iterations (0: Auto)")
        if settings.images_dir:
            layout.prop(settings, "downscale")
        layout.prop(settings, "checkpoint_every")
        if settings.training:
            layout.progress(factor=settings.progress / 100, text=settings.status)
            if settings.checkpoint_step >= 0:
                layout.label(
                    text=f"Clicks use the field: {feature_store.field_name(settings.checkpoint_step)}",
                    icon="RESTRICT_SELECT_OFF",
                )
            layout.operator("clickgauss.cancel_training", icon="CANCEL")
        else:
            layout.operator("clickgauss.train", icon="PLAY")
            if settings.status:
                layout.label(text=settings.status)
        layout.operator("clickgauss.load_features", icon="FILE_FOLDER")


class CLICKGAUSS_PT_select(SidebarPanel, bpy.types.Panel):
    bl_label = "Select"
    bl_parent_id = "CLICKGAUSS_PT_main"

    @classmethod
    def poll(cls, context):
        return feature_store.has_features(context.active_object)

    def draw(self, context):
        layout = self.layout
        settings = context.scene.clickgauss
        layout.operator("clickgauss.click_mode", icon="RESTRICT_SELECT_OFF")
        layout.row().prop(settings, "level", expand=True)
        layout.prop(settings, "threshold_coarse" if settings.level == "COARSE" else "threshold_fine", slider=True)
        row = layout.row(align=True)
        row.operator("clickgauss.invert", text="Invert")
        row.operator("clickgauss.select_none", text="None")
        row = layout.row(align=True)
        row.operator("clickgauss.hide", text="Hide", icon="HIDE_ON").unselected = False
        row.operator("clickgauss.hide", text="Hide Others").unselected = True
        row.operator("clickgauss.reveal", text="Reveal", icon="HIDE_OFF")
        row = layout.row(align=True)
        row.operator("clickgauss.split", text="Split", icon="MOD_EXPLODE")
        row.operator("clickgauss.delete", text="Delete", icon="TRASH")
        layout.operator("clickgauss.segment_everything", icon="OUTLINER_OB_POINTCLOUD")


class CLICKGAUSS_PT_clean(SplatSubpanel, bpy.types.Panel):
    bl_label = "Clean"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.clickgauss
        layout.row().prop(settings, "select_mode", expand=True)
        row = layout.row(align=True)
        row.operator("clickgauss.select_floaters", icon="PARTICLES")
        row.prop(settings, "floater_strength", slider=True)
        box = layout.box()
        box.prop(settings, "select_attribute")
        row = box.row(align=True)
        if settings.select_attribute == "COLOR":
            row.prop(settings, "select_color", text="")
            row.operator("clickgauss.color_from_selection", text="", icon="EYEDROPPER")
            row.prop(settings, "color_distance")
        else:
            prefix = "opacity" if settings.select_attribute == "OPACITY" else "size"
            row.prop(settings, f"{prefix}_low")
            row.prop(settings, f"{prefix}_high")
        box.operator("clickgauss.select_by_attribute", icon="FILTER")
        row = layout.row(align=True)
        row.operator("clickgauss.grow_selection", text="Grow", icon="ADD").step = "GROW"
        row.operator("clickgauss.grow_selection", text="Shrink", icon="REMOVE").step = "SHRINK"
        row = layout.row(align=True)
        row.operator("clickgauss.delete", text="Delete", icon="TRASH")
        row.operator("clickgauss.select_none", text="None")


classes = (CLICKGAUSS_PT_main, CLICKGAUSS_PT_train, CLICKGAUSS_PT_select, CLICKGAUSS_PT_clean)
