"""Cameras from whatever a user points at: a COLMAP model, a transforms.json, a poses_bounds.npy, or a folder
holding one. Every problem with an input is a UserError naming the file."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..files import input_size
from .camera import Camera
from .colmap import find_colmap_model, load_colmap
from .llff import load_llff
from .nerf import load_transforms


def load_cameras(path, images_dir=None) -> list[Camera]:
    """Cameras from whatever `path` is: a COLMAP model (file, folder, or scene folder with sparse/0),
    a transforms.json, a poses_bounds.npy, or a folder holding one of them. Sorted by image name.

    Whatever a camera file holds (a focal length that is text, a 0x0 image, a pose of the wrong
    shape), the outcome is the cameras or one UserError naming the file.
    """
    path = Path(path)
    try:
        return find_and_load_cameras(path, images_dir)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, ZeroDivisionError) as error:
        raise UserError(f"{path}: malformed camera data ({error})") from None


def find_and_load_cameras(path: Path, images_dir) -> list[Camera]:
    if not path.exists():
        raise UserError(f"{path}: no such file or folder")
    if not path.is_dir():
        input_size(path)  # a device or pipe is refused before anything waits on it
        if path.suffix.lower() == ".npy":
            return load_llff(path, images_dir)
        if path.suffix.lower() == ".json":
            return load_transforms(path)
        if path.name in ("cameras.txt", "images.txt", "cameras.bin", "images.bin"):
            return load_colmap(path.parent)
        raise UserError(
            f"{path}: not a known camera file (expected a COLMAP model, transforms.json or poses_bounds.npy)"
        )
    if find_colmap_model(path) is not None:
        return load_colmap(path)
    for name in ("transforms.json", "transforms_train.json"):
        if (path / name).is_file():
            return load_transforms(path / name)
    if (path / "poses_bounds.npy").is_file():
        return load_llff(path / "poses_bounds.npy", images_dir)
    raise UserError(
        f"{path}: no cameras found here (expected a COLMAP model in it or in sparse/0, "
        f"transforms.json or poses_bounds.npy)"
    )
