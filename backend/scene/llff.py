"""LLFF poses_bounds.npy: rows that follow the images sorted by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError
from ..files import npy_array, read_file_bytes
from .camera import Camera, pose_matrix, rigid_inverse
from .images import IMAGE_EXTENSIONS


def load_llff(path, images_dir=None) -> list[Camera]:
    """Cameras of an LLFF poses_bounds.npy; its rows follow the images sorted by name.

    Each row is a 3x5 [R | t | (h, w, f)] plus near/far; R's columns are (down, right,
    backwards), so OpenCV camera-to-world is [col1, col0, -col2, t]. The principal point is the
    centre. The names come from `images_dir` (default: `images` beside the file).
    """
    path = Path(path)
    images_dir = Path(images_dir) if images_dir is not None else path.parent / "images"
    try:
        rows = npy_array(path, read_file_bytes(path))
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: cannot read it as a .npy array ({error})") from error
    if rows.ndim != 2 or rows.shape[1] not in (15, 17) or len(rows) == 0:
        raise UserError(f"{path}: expected rows of 17 floats (LLFF poses_bounds), got shape {rows.shape}")
    if not images_dir.is_dir():
        raise UserError(
            f"{images_dir}: no such image folder; LLFF poses need the images to know their names "
            f"(pass the image folder)"
        )
    names = sorted(p.name for p in images_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if len(names) != len(rows):
        raise UserError(
            f"{path}: {len(rows)} poses but {len(names)} images in {images_dir}; "
            f"they must pair one to one in name order"
        )
    cameras = []
    for name, row in zip(names, rows):
        matrix = row[:15].reshape(3, 5)  # (3, 5)
        rotation, translation, (height, width, focal) = matrix[:, :3], matrix[:, 3], matrix[:, 4]
        camera_to_world = pose_matrix(np.stack([rotation[:, 1], rotation[:, 0], -rotation[:, 2]], axis=1), translation)
        cameras.append(
            Camera(
                name,
                int(round(width)),
                int(round(height)),
                float(focal),
                float(focal),
                float(width) / 2,
                float(height) / 2,
                rigid_inverse(camera_to_world),
            )
        )
    return cameras
