"""The real statue scene beside the repository (../shared/data/statue), as the statue tools load it."""

from __future__ import annotations

from pathlib import Path

STATUE = Path(__file__).resolve().parents[2] / "shared" / "data" / "statue"


def load_statue(downscale: int):
    """The statue's splat, and its photos with their cameras at 1/`downscale` resolution."""
    from backend.formats.ply import read_ply
    from backend.scene.cameras import load_cameras
    from backend.scene.images import load_images

    cameras = load_cameras(STATUE / "poses_bounds.npy", images_dir=STATUE / "images")
    return (read_ply(STATUE / "splat.ply"), *load_images(STATUE / "images", cameras, downscale=downscale))
