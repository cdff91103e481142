"""Click-Gaussian for Blender: import, select and export 3D Gaussian Splatting scenes."""

import bpy

from . import io_operators, panel

classes = io_operators.classes + panel.classes


def register():
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.TOPBAR_MT_file_import.append(io_operators.menu_import)
    bpy.types.TOPBAR_MT_file_export.append(io_operators.menu_export)


def unregister():
    bpy.types.TOPBAR_MT_file_export.remove(io_operators.menu_export)
    bpy.types.TOPBAR_MT_file_import.remove(io_operators.menu_import)
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
