"""What every benchmark prints and loads: the machine, peak memory, the real statue scene, generated scenes."""

from __future__ import annotations

import os
import platform
import resource
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATUE = ROOT.parent / "shared" / "data" / "statue"
sys.path.insert(0, str(ROOT))


def machine() -> str:
    import torch

    return (
        f"machine: {platform.platform()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, Python {platform.python_version()}"
        + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU")
    )


def feature_pass_ms(unit, repeats: int = 50) -> float:
    """Median ms of one pass over (N, D) unit features against one query: the floor of any click's time."""
    import time

    import numpy as np

    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        unit @ unit[0]
        times.append((time.perf_counter() - started) * 1e3)
    return float(np.median(times))


def peak_rss_gb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 30) if sys.platform == "darwin" else peak / (1 << 20)  # bytes / KiB


def statue_or_skip():
    """The statue's splat and its 29 cameras, or exit 0 with a message where ../shared is absent."""
    if not (STATUE / "splat.ply").is_file():
        print(f"skipped: no statue scene at {STATUE} (../shared is only on developer machines)")
        sys.exit(0)
    from backend.formats.ply import read_ply
    from backend.scene.cameras import load_cameras

    return read_ply(STATUE / "splat.ply"), load_cameras(STATUE / "poses_bounds.npy", images_dir=STATUE / "images")


def write_generated_scene(folder, scene, cameras, flaws, seed: int = 0) -> list:
    """Writes a generated scene in the real-data layout and reads its masks back the way `train` does: label maps."""
    from backend.benchmark.synthetic import write_scene
    from backend.scene.images import load_images
    from backend.scene.masks import view_labels

    write_scene(folder, scene, cameras, flaws, seed)
    _, images = load_images(folder / "images", cameras)
    return [view_labels(image, c.name, "folder", mask_dir=folder / "masks") for c, image in zip(cameras, images)]
