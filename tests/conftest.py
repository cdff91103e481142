"""Shared fixtures: generated splat files, the real data in ../shared, and real Blender with the zip installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
# The Python with torch that runs the backend: this one, except in another Blender's Python (build.py matrix)
BACKEND_PYTHON = os.environ.get("CLICKGAUSS_BACKEND_PYTHON") or sys.executable


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


@pytest.fixture
def addon(blender):
    """The installed add-on's package, as Blender named it."""
    return sys.modules["bl_ext.user_default.clickgauss"]


@pytest.fixture
def splat_with_features(bpy, addon, trained_scene):
    """The trained test scene imported, its features loaded: clickable."""
    folder = trained_scene["folder"]
    assert bpy.ops.clickgauss.import_splat(filepath=str(folder / "splat.ply")) == {"FINISHED"}
    obj = bpy.context.view_layer.objects.active
    assert bpy.ops.clickgauss.load_features(filepath=str(folder / "features.npz")) == {"FINISHED"}
    return obj


def trained_scene_on_disk(folder: Path):
    """Write the small generated scene to `folder` and train its feature field there (needs torch)."""
    from backend.benchmark.synthetic import write_scene
    from backend.field.train import TrainConfig, train_features
    from backend.formats.features import save_features
    from backend.scene.masks import view_labels

    scene, cameras = small_scene()
    write_scene(folder, scene, cameras)
    from backend.scene.images import load_images

    _, images = load_images(folder / "images", cameras)
    labels = [view_labels(image, c.name, "folder", mask_dir=folder / "masks") for c, image in zip(cameras, images)]
    config = TrainConfig(iterations=600, pixels=2000, gfl_start=400, gfl_refresh=100, seed=1)
    result = train_features(scene.splat, cameras, labels, config, "ground-truth masks")
    save_features(folder / "features.npz", result.field)
    return labels, result


def small_scene():
    from backend.benchmark.synthetic import make_scene, orbit_cameras

    return make_scene(6000, seed=3), orbit_cameras(6, width=160, height=120)


@pytest.fixture(scope="session")
def trained_scene(tmp_path_factory):
    """A small generated scene on disk (real-data layout) and a feature field trained on its masks.

    Made by the backend's Python: this one, or where it has no torch (another Blender's Python in
    the version matrix) BACKEND_PYTHON in a child process, as the add-on trains.
    """
    if BACKEND_PYTHON == sys.executable:
        folder = tmp_path_factory.mktemp("scene")
        labels, result = trained_scene_on_disk(folder)
    else:  # made once for all the matrix's versions in CLICKGAUSS_TRAINED_SCENE (build.py matrix sets it)
        folder = Path(os.environ.get("CLICKGAUSS_TRAINED_SCENE") or tmp_path_factory.mktemp("scene"))
        if not (folder / "features.npz").exists():  # written last, atomically
            code = (
                "import sys, pathlib; sys.path[:0] = sys.argv[1:3]; import conftest; "
                "conftest.trained_scene_on_disk(pathlib.Path(sys.argv[3]))"
            )
            subprocess.run([BACKEND_PYTHON, "-c", code, str(ROOT), str(ROOT / "tests"), str(folder)], check=True)
        labels, result = None, None  # only the backend's own tests read them, and they run in the backend's Python
    scene, cameras = small_scene()
    from backend.formats.ply import read_ply

    assert np.array_equal(read_ply(folder / "splat.ply").positions, scene.splat.positions), "numpy made another scene"
    return {"folder": folder, "scene": scene, "cameras": cameras, "labels": labels, "result": result}


def finished_job_events(job) -> list:
    """Every progress event of the add-on's training job (training.TrainingJob), once its process has ended."""
    import time

    events = []
    while job.running:
        events += job.events()
        time.sleep(0.1)
    return events + job.events()


def pytest_sessionfinish(session, exitstatus):
    global EXIT_STATUS
    EXIT_STATUS = int(exitstatus)


def pytest_unconfigure(config):
    """bpy before 5.0, as a Python module, crashes in its own teardown at interpreter exit once an add-on
    has registered classes (Blender itself does not): end with pytest's status, its report printed."""
    bpy = sys.modules.get("bpy")
    if bpy is not None and bpy.app.version < (5, 0, 0) and "EXIT_STATUS" in globals():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_STATUS)


def same_gaussians(parts, whole) -> bool:
    """The parts' rows together are the whole's, bit for bit, in any order."""
    rows = np.concatenate([part.stack(whole.columns) for part in parts])
    return len(rows) == whole.count and np.array_equal(
        np.unique(rows, axis=0), np.unique(whole.stack(whole.columns), axis=0)
    )
