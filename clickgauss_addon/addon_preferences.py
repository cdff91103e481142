"""The add-on's folder and its preferences, for every module that reads them (preferences.py draws and edits them)."""

from __future__ import annotations

from pathlib import Path

import bpy

ADDON_DIR = Path(__file__).resolve().parent  # holds backend/, so `python -m backend` runs with it on PYTHONPATH


def preferences(context=None):
    return (context or bpy.context).preferences.addons[__package__].preferences
