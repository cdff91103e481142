"""Shared fixtures: generated splat files, the real data in ../shared, and real Blender with the zip installed."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def shared_file(relative: str) -> Path:
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"{path} is absent (the real data lives in ../shared beside the checkout)")
    return path


@pytest.fixture(scope="session")
def blender(tmp_path_factory):
    """The real bpy module with the built add-on zip installed in a temporary user folder."""
    if not os.environ.get("CLICKGAUSS_ZIP"):
        sys.path.insert(0, str(ROOT))
        import build

        os.environ["CLICKGAUSS_ZIP"] = str(build.build_zip(Path(sys.executable)))
    from tools.blender_env import start_blender

    bpy, _ = start_blender(str(tmp_path_factory.mktemp("blender-user")))
    return bpy


@pytest.fixture
def bpy(blender):
    """bpy with an empty scene, the add-on enabled."""
    from tools.blender_env import clear_scene

    clear_scene(blender)
    yield blender
    clear_scene(blender)
