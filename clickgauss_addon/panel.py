"""The "Click-Gaussian" tab of the 3D viewport's sidebar."""

import bpy

from .splat_object import is_splat


class CLICKGAUSS_PT_main(bpy.types.Panel):
    bl_idname = "CLICKGAUSS_PT_main"
    bl_label = "Click-Gaussian"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Click-Gaussian"

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
        rest = sum(1 for a in cloud.attributes if a.name.startswith("f_rest_"))
        degree = {0: 0, 9: 1, 24: 2, 45: 3}.get(rest, "?")
        box.label(text=f"{len(cloud.points):,} Gaussians, SH degree {degree}")


classes = (CLICKGAUSS_PT_main,)
