"""NeRF / nerfstudio transforms.json: OpenGL (Blender) camera-to-world poses, flipped to OpenCV."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..files import read_file_bytes
from .camera import OPENGL_TO_OPENCV, Camera
from .images import IMAGE_EXTENSIONS, image_size


def load_transforms(path) -> list[Camera]:
    """Cameras of a NeRF/nerfstudio transforms.json, sorted by image name.

    Intrinsics come from fl_x/fl_y or camera_angle_x (camera_angle_y), cx/cy (default: the
    centre) and w/h, each per frame or for the file. Poses are OpenGL camera-to-world (Blender's
    convention) and are flipped to OpenCV. Without w/h the size is read from the image itself.
    """
    path = Path(path)
    try:
        meta = json.loads(read_file_bytes(path).decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{path}: cannot read it as JSON ({error})") from error
    frames = meta.get("frames") if isinstance(meta, dict) else None
    if not frames:
        raise UserError(f"{path}: no 'frames' list, so not a NeRF transforms.json")
    if any(float(meta.get(key, 0) or 0) != 0 for key in ("k1", "k2", "k3", "k4", "p1", "p2")):
        warnings.warn(f"{path}: lens distortion (k1, k2, p1, p2...) is ignored (treated as a pinhole)", stacklevel=2)
    cameras = [camera_from_frame(path, meta, frame) for frame in frames]
    return sorted(cameras, key=lambda camera: camera.name)


def camera_from_frame(path: Path, meta: dict, frame: dict) -> Camera:
    def get(key):  # per-frame values override the file's
        return frame.get(key, meta.get(key))

    if "file_path" not in frame or "transform_matrix" not in frame:
        raise UserError(f"{path}: a frame lacks file_path or transform_matrix")
    name = resolve_frame_name(path.parent, frame["file_path"])
    width, height = get("w"), get("h")
    if width is None or height is None:
        width, height = image_size(path.parent / name, why=f"{path} gives no w/h")
    width, height = int(width), int(height)
    fx, fy = get("fl_x"), get("fl_y")
    if fx is None:
        if get("camera_angle_x") is None:
            raise UserError(f"{path}: frame {frame['file_path']} has neither fl_x nor camera_angle_x")
        fx = 0.5 * width / np.tan(0.5 * float(get("camera_angle_x")))
    if fy is None:
        angle_y = get("camera_angle_y")
        fy = 0.5 * height / np.tan(0.5 * float(angle_y)) if angle_y is not None else fx
    cx, cy = get("cx"), get("cy")
    cx = width / 2 if cx is None else cx
    cy = height / 2 if cy is None else cy
    camera_to_world_gl = np.array(frame["transform_matrix"], dtype=np.float64)
    if camera_to_world_gl.shape == (3, 4):
        camera_to_world_gl = np.vstack([camera_to_world_gl, [0, 0, 0, 1]])
    if camera_to_world_gl.shape != (4, 4):
        raise UserError(f"{path}: transform_matrix of {frame['file_path']} is not 4x4")
    world_to_camera = np.linalg.inv(camera_to_world_gl @ OPENGL_TO_OPENCV)  # inv: it may hold a scale
    return Camera(name, width, height, float(fx), float(fy), float(cx), float(cy), world_to_camera)


def resolve_frame_name(folder: Path, file_path: str) -> str:
    """file_path relative to the JSON, with its image extension found when the file omits it."""
    name = str(file_path).replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    if Path(name).suffix.lower() in IMAGE_EXTENSIONS:
        return name
    for ext in IMAGE_EXTENSIONS + tuple(e.upper() for e in IMAGE_EXTENSIONS):
        if (folder / (name + ext)).is_file():
            return name + ext
    return name  # load_images matches names without an extension too
