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
def addon_zip() -> Path:
    """The add-on zip: the one build.py made for this run, or built now."""
    if not os.environ.get("CLICKGAUSS_ZIP"):
        sys.path.insert(0, str(ROOT))
        import build

        os.environ["CLICKGAUSS_ZIP"] = str(build.build_zip(Path(sys.executable)))
    return Path(os.environ["CLICKGAUSS_ZIP"])


@pytest.fixture(scope="session")
def blender(tmp_path_factory, addon_zip):
    """The real bpy module with the built add-on zip installed in a temporary user folder."""
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


@pytest.fixture(scope="session")
def trained_scene(tmp_path_factory):
    """A small generated scene on disk (real-data layout) and a feature field trained on its masks."""
    from backend.features import save_features
    from backend.masks import view_labels
    from backend.synthetic import make_scene, orbit_cameras, write_scene
    from backend.train import TrainConfig, train_features

    folder = tmp_path_factory.mktemp("scene")
    scene = make_scene(6000, seed=3)
    cameras = orbit_cameras(6, width=160, height=120)
    write_scene(folder, scene, cameras)
    from backend.cameras import load_images

    _, images = load_images(folder / "images", cameras)
    labels = [view_labels(image, c.name, "folder", mask_dir=folder / "masks") for c, image in zip(cameras, images)]
    config = TrainConfig(iterations=600, pixels=2000, gfl_start=400, gfl_refresh=100, seed=1)
    result = train_features(scene.splat, cameras, labels, config, "ground-truth masks")
    save_features(folder / "features.npz", result.field)
    return {"folder": folder, "scene": scene, "cameras": cameras, "labels": labels, "result": result}


def finished_job_events(job) -> list[dict]:
    """Every progress event of the add-on's training job (training.TrainingJob), once its process has ended."""
    import time

    events = []
    while job.running:
        events += job.poll()
        time.sleep(0.1)
    return events + job.poll()
