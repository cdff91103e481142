"""The add-on's folders and its preferences, for every module that reads them (preferences.py draws and edits them)."""

from __future__ import annotations

from pathlib import Path

import bpy

ADDON_DIR = Path(__file__).resolve().parent  # holds backend/, so `python -m backend` runs with it on PYTHONPATH


def preferences(context=None):
    return (context or bpy.context).preferences.addons[__package__].preferences


def user_data_folder(name: str, create: bool = True) -> Path:
    """Folder `name` among the extension's user data, which Blender keeps when the extension is updated; an add-on
    installed the legacy way has none, so Blender's user datafiles."""
    try:
        return Path(bpy.utils.extension_path_user(__package__, path=name, create=create))
    except ValueError:
        return Path(bpy.utils.user_resource("DATAFILES", path=f"clickgauss_{name}", create=create))
