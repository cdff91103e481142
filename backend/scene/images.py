"""The photos that go with the cameras: found by name (with or without extension, any case), sized, loaded.
Pillow is imported where images are read."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..files import read_file_bytes
from .camera import Camera

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def _match_key(name: str) -> str:
    """Name without an image extension, lower case: IMG_1.JPG, img_1.jpg and img_1 match."""
    path = Path(name.replace("\\", "/"))
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        path = path.with_suffix("")
    return path.as_posix().lower()


def list_images(images_dir: Path, subfolders) -> list[str]:
    """Image files (posix paths relative to images_dir) at the top level and in the named subfolders.

    Only folders that camera names mention are searched, so unrelated folders (masks, depth)
    beside the images are not taken for images without a camera.
    """
    names: set[str] = set()
    for sub in {""} | set(subfolders):
        folder = images_dir / sub
        if folder.is_dir():
            names.update(
                (Path(sub) / p.name).as_posix()
                for p in folder.iterdir()
                if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
            )
    return sorted(names)


def match_images(images_dir: Path, cameras: list[Camera]) -> list[str]:
    """The image file (relative to images_dir) of every camera, or a UserError listing the mismatches.

    A camera matches by its full relative name, then by its base name when that is unique
    (transforms.json names such as train/r_0 against a folder of r_0.png).
    """
    files = list_images(images_dir, {str(Path(c.name.replace("\\", "/")).parent) for c in cameras} - {"."})
    by_key: dict[str, list[str]] = {}
    by_base: dict[str, list[str]] = {}
    for file in files:
        by_key.setdefault(_match_key(file), []).append(file)
        by_base.setdefault(_match_key(Path(file).name), []).append(file)
    matched, missing = [], []
    for camera in cameras:
        candidates = by_key.get(_match_key(camera.name)) or by_base.get(_match_key(Path(camera.name).name), [])
        exact = [f for f in candidates if f == camera.name]
        candidates = exact or candidates
        if len(candidates) == 1:
            matched.append(candidates[0])
        else:
            missing.append(camera.name)
    unused = sorted(set(files) - set(matched))
    if missing or unused:
        problems = []
        if missing:
            problems.append(f"{_count(missing, 'camera')} no image ({_first_few(missing)})")
        if unused:
            problems.append(f"{_count(unused, 'image')} no camera ({_first_few(unused)})")
        raise UserError(f"{images_dir}: the images do not match the cameras: " + "; ".join(problems))
    return matched


def _count(names, noun: str) -> str:
    return f"1 {noun} has" if len(names) == 1 else f"{len(names)} {noun}s have"


def _first_few(names, limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def image_size(path: Path, why: str = "") -> tuple[int, int]:
    """(width, height) from the image header, without decoding the pixels."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(read_file_bytes(path))) as image:  # a regular file, read once: no pipe waits
            return image.size
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        because = f" ({why})" if why else ""
        raise UserError(f"{path}: cannot read the image size{because}: {error}") from error


def fit_camera_to_image(camera: Camera, width: int, height: int, path: Path) -> Camera:
    """The camera for an image of width x height: itself, or scaled down when the image is an
    integer multiple smaller (images_2/, images_4/), within a pixel of rounding."""
    if (width, height) == (camera.width, camera.height):
        return camera
    factor = round(camera.width / width)
    if factor >= 2 and abs(camera.width / factor - width) <= 1 and abs(camera.height / factor - height) <= 1:
        return camera.resized(width, height)
    raise UserError(f"{path}: the image is {width}x{height} but its camera is {camera.width}x{camera.height}")


def load_images(images_dir, cameras: list[Camera], downscale: int = 1) -> tuple[list[Camera], list[np.ndarray]]:
    """The image of every camera, as (H, W, 3) uint8, and the cameras scaled to match.

    `downscale` (an integer) shrinks every image by that factor (area average). Images already
    an integer multiple smaller than their cameras (images_2/, images_4/) scale the camera instead.
    An alpha channel is dropped.
    """
    from PIL import Image

    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise UserError(f"{images_dir}: no such image folder")
    if int(downscale) != downscale or downscale < 1:
        raise UserError(f"downscale must be a whole number of at least 1, got {downscale}")
    downscale = int(downscale)
    fitted, images = [], []
    for camera, file in zip(cameras, match_images(images_dir, cameras)):
        path = images_dir / file
        try:
            with Image.open(io.BytesIO(read_file_bytes(path))) as opened:
                image = opened.convert("RGB")
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            raise UserError(f"{path}: cannot read the image ({error})") from error
        camera = fit_camera_to_image(camera, image.width, image.height, path)
        if downscale > 1:
            camera = camera.scaled(1 / downscale)
            image = image.resize((camera.width, camera.height), Image.Resampling.BOX)
        fitted.append(camera)
        images.append(np.asarray(image, dtype=np.uint8))  # (H, W, 3)
    return fitted, images
