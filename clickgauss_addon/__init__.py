"""Click-Gaussian for Blender: import, select and export 3D Gaussian Splatting scenes."""

import bpy

from . import (
    click_cache,
    click_operators,
    edit_operators,
    io_operators,
    overlay,
    panel,
    preferences,
    selection_tools,
    settings,
    training,
    transform_operators,
    view_cameras,
)

classes = (
    settings.classes
    + preferences.classes
    + io_operators.classes
    + click_operators.classes
    + edit_operators.classes
    + selection_tools.classes
    + transform_operators.classes
    + training.classes
    + view_cameras.classes
    + panel.classes
)
keymaps: list[tuple] = []  # (keymap, keymap item) pairs to remove on unregister


def register():
    for cls in classes:
        bpy.utils.register_class(cls)
    settings.register()
    click_cache.register()
    overlay.register()
    transform_operators.register()
    bpy.types.TOPBAR_MT_file_import.append(io_operators.menu_import)
    bpy.types.TOPBAR_MT_file_export.append(io_operators.menu_export)
    keyconfig = bpy.context.window_manager.keyconfigs.addon
    if keyconfig:  # none in background mode
        keymap = keyconfig.keymaps.new(name="3D View", space_type="VIEW_3D")
        keymaps.append((keymap, keymap.keymap_items.new("clickgauss.click_mode", "C", "PRESS", shift=True, alt=True)))
        # Ctrl+J on splats: Join Splats before Blender's own Join, which moves only the points (transform_operators)
        keymap = keyconfig.keymaps.new(name="Object Mode", space_type="EMPTY")
        keymaps.append((keymap, keymap.keymap_items.new("clickgauss.join", "J", "PRESS", ctrl=True)))


def unregister():
    for keymap, item in keymaps:
        keymap.keymap_items.remove(item)
    keymaps.clear()
    bpy.types.TOPBAR_MT_file_export.remove(io_operators.menu_export)
    bpy.types.TOPBAR_MT_file_import.remove(io_operators.menu_import)
    preferences.cancel_running_install()
    preferences.sam_download.stop()
    transform_operators.unregister()
    overlay.unregister()
    click_cache.unregister()
    settings.unregister()
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
