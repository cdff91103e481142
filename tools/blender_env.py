"""Real Blender (the bpy module) with the built add-on zip installed into a temporary user folder.

Shared by the tests, the demo and the benchmarks, so all three exercise the add-on exactly as a
user installs it: Edit > Preferences > Get Extensions > Install from Disk.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ADDON_MODULE = "bl_ext.user_default.clickgauss"


def built_zip() -> Path:
    path = Path(os.environ.get("CLICKGAUSS_ZIP") or max((ROOT / "dist").glob("clickgauss-*.zip"), default=""))
    if not path.is_file():
        sys.exit("The add-on zip is missing: run 'python3 build.py zip' (or use build.py test / demo / bench)")
    return path


def start_blender(user_folder: str | None = None):
    """Import bpy with a fresh user folder, install and enable the zip; returns (bpy, add-on module)."""
    if "bpy" in sys.modules:
        raise RuntimeError("start_blender must run before anything imports bpy (the user folder is read at import)")
    user_folder = user_folder or tempfile.mkdtemp(prefix="clickgauss-blender-user-")
    os.environ["BLENDER_USER_RESOURCES"] = user_folder
    import bpy

    bpy.ops.extensions.package_install_files(filepath=str(built_zip()), repo="user_default", enable_on_install=True)
    return bpy, sys.modules[ADDON_MODULE]


def clear_scene(bpy) -> None:
    """An empty scene for the next test, the add-on still enabled (factory settings would disable it)."""
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    for data in (bpy.data.pointclouds, bpy.data.meshes, bpy.data.materials):
        for block in list(data):
            if block.users == 0:
                data.remove(block)
