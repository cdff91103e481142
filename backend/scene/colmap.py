"""COLMAP sparse models, text and binary: read, and written as text for views planned from a splat."""

from __future__ import annotations

import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..files import StagedOutputs, read_file_bytes
from .camera import (
    Camera,
    matrix_to_quaternion,
    pose_matrix,
    quaternion_to_matrix,
)

# model name -> (COLMAP model id, parameter count, has distortion). The ids are the binary format's.
COLMAP_MODELS = {
    "SIMPLE_PINHOLE": (0, 3, False),
    "PINHOLE": (1, 4, False),
    "SIMPLE_RADIAL": (2, 4, True),
    "RADIAL": (3, 5, True),
    "OPENCV": (4, 8, True),
    "OPENCV_FISHEYE": (5, 8, True),
    "FULL_OPENCV": (6, 12, True),
    "FOV": (7, 5, True),
    "SIMPLE_RADIAL_FISHEYE": (8, 4, True),
    "RADIAL_FISHEYE": (9, 5, True),
    "THIN_PRISM_FISHEYE": (10, 12, True),
    "RAD_TAN_THIN_PRISM_FISHEYE": (11, 16, True),
}
COLMAP_MODEL_NAMES = {model_id: name for name, (model_id, _, _) in COLMAP_MODELS.items()}
# Models whose distortion is small enough to ignore with a warning; the rest (fisheye, FOV)
# bend straight lines so much that a pinhole would misplace every pixel far from the centre.
NEAR_PINHOLE_MODELS = {"SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV", "FULL_OPENCV"}


@dataclass(frozen=True)
class _Intrinsics:
    model: str
    width: int
    height: int
    params: tuple[float, ...]


def find_colmap_model(path: Path) -> Path | None:
    """The folder holding cameras + images (.bin or .txt) at `path`, `path/sparse/0` or `path/sparse`."""
    for folder in (path, path / "sparse" / "0", path / "sparse", path / "0"):
        for ext in (".bin", ".txt"):
            if (folder / f"cameras{ext}").is_file() and (folder / f"images{ext}").is_file():
                return folder
    return None


def load_colmap(path) -> list[Camera]:
    """Cameras of a COLMAP sparse model folder (or a scene folder with sparse/0), sorted by image name.

    Binary files are preferred when both exist (COLMAP writes them; text is an export).
    Radial distortion is ignored with a warning: undistorted images (colmap image_undistorter)
    are what a pinhole splat expects.
    """
    path = Path(path)
    folder = find_colmap_model(path)
    if folder is None:
        raise UserError(
            f"{path}: no COLMAP model here (need cameras.bin + images.bin or cameras.txt + "
            f"images.txt, in this folder or in sparse/0)"
        )
    if (folder / "cameras.bin").is_file() and (folder / "images.bin").is_file():
        intrinsics = read_colmap_cameras_bin(folder / "cameras.bin")
        images = read_colmap_images_bin(folder / "images.bin")
        cameras_file = folder / "cameras.bin"
    else:
        intrinsics = read_colmap_cameras_txt(folder / "cameras.txt")
        images = read_colmap_images_txt(folder / "images.txt")
        cameras_file = folder / "cameras.txt"
    if not images:
        raise UserError(f"{folder}: the COLMAP model has no registered images")
    warn_about_distortion(cameras_file, intrinsics)
    cameras = []
    for name, quaternion, translation, camera_id in images:
        if camera_id not in intrinsics:
            raise UserError(f"{cameras_file}: image {name} uses camera {camera_id}, which is not in the file")
        world_to_camera = pose_matrix(quaternion_to_matrix(*quaternion), translation)
        cameras.append(camera_from_colmap(name, intrinsics[camera_id], world_to_camera))
    return sorted(cameras, key=lambda camera: camera.name)


def camera_from_colmap(name: str, intrinsics: _Intrinsics, world_to_camera: np.ndarray) -> Camera:
    """Pinhole part of a COLMAP camera; COLMAP's pixel convention is already ours."""
    p = intrinsics.params
    if intrinsics.model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL", "SIMPLE_RADIAL_FISHEYE", "RADIAL_FISHEYE"):
        fx = fy = p[0]
        cx, cy = p[1], p[2]
    else:  # f_x f_y c_x c_y first
        fx, fy, cx, cy = p[:4]
    return Camera(
        name, intrinsics.width, intrinsics.height, float(fx), float(fy), float(cx), float(cy), world_to_camera
    )


def warn_about_distortion(cameras_file: Path, intrinsics: dict[int, _Intrinsics]) -> None:
    models = sorted({i.model for i in intrinsics.values()})
    unusable = [m for m in models if m not in NEAR_PINHOLE_MODELS]
    if unusable:
        raise UserError(
            f"{cameras_file}: camera model {', '.join(unusable)} is too far from a pinhole to "
            f"use; undistort the images first (colmap image_undistorter) and use its sparse model"
        )
    distorted = [m for m in models if COLMAP_MODELS[m][2]]
    if distorted:
        warnings.warn(
            f"{cameras_file}: camera model {', '.join(distorted)} has lens distortion, which is "
            f"ignored (treated as a pinhole); undistorted images (colmap image_undistorter) fit better",
            stacklevel=3,
        )


def _data_lines(path: Path):
    """Lines of a COLMAP text file with comments dropped; blank lines kept (images.txt needs them)."""
    try:
        text = read_file_bytes(path).decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read it ({error})") from error
    return [line.strip() for line in text.splitlines() if not line.lstrip().startswith("#")]


def read_colmap_cameras_txt(path: Path) -> dict[int, _Intrinsics]:
    """CAMERA_ID MODEL WIDTH HEIGHT PARAMS[] per line."""
    cameras = {}
    for number, line in enumerate(_data_lines(path), 1):
        if not line:
            continue
        parts = line.split()
        try:
            model = parts[1]
            if model not in COLMAP_MODELS:
                raise UserError(f"{path}: unknown camera model {model!r}")
            count = COLMAP_MODELS[model][1]
            params = tuple(float(v) for v in parts[4:])
            if len(params) != count:
                raise UserError(f"{path}: camera {parts[0]} ({model}) has {len(params)} parameters, expected {count}")
            cameras[int(parts[0])] = _Intrinsics(model, int(parts[2]), int(parts[3]), params)
        except (IndexError, ValueError) as error:
            raise UserError(f"{path}: cannot read camera line {line!r} ({error})") from error
    return cameras


def read_colmap_images_txt(path: Path) -> list[tuple[str, tuple, np.ndarray, int]]:
    """(name, (qw, qx, qy, qz), t (3,), camera_id) per image.

    Each image takes two lines; the second (its 2D points) may be blank, so blank lines
    cannot simply be skipped.
    """
    lines = _data_lines(path)
    images = []
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line:
            continue
        parts = line.split()
        try:
            quaternion = tuple(float(v) for v in parts[1:5])
            translation = np.array([float(v) for v in parts[5:8]])
            camera_id = int(parts[8])
            name = " ".join(parts[9:])
        except (IndexError, ValueError) as error:
            raise UserError(f"{path}: cannot read image line {line!r} ({error})") from error
        if not name or translation.shape != (3,):
            raise UserError(f"{path}: image line {line!r} needs IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME")
        images.append((name.replace("\\", "/"), quaternion, translation, camera_id))
        index += 1  # the 2D points line
    return images


def write_colmap_text(folder, cameras: list[Camera]) -> None:
    """A COLMAP text model (cameras.txt, images.txt, empty points3D.txt) of PINHOLE cameras, written all or none."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    camera_lines, image_lines = [], []
    for index, camera in enumerate(cameras, start=1):
        camera_lines.append(
            f"{index} PINHOLE {camera.width} {camera.height} {camera.fx!r} {camera.fy!r} {camera.cx!r} {camera.cy!r}"
        )
        q = matrix_to_quaternion(camera.world_to_camera[:3, :3])
        t = camera.world_to_camera[:3, 3]
        image_lines.append(" ".join([str(index), *(repr(float(v)) for v in (*q, *t)), str(index), camera.name]))
        image_lines.append("")
    texts = {"cameras.txt": "\n".join(camera_lines) + "\n", "images.txt": "\n".join(image_lines) + "\n"}
    with StagedOutputs() as staged:  # the model whole or not at all; "\n" on every system
        for name, text in (*texts.items(), ("points3D.txt", "")):
            staged.write(folder / name, [text.encode("utf-8")])


class _BinaryReader:
    """Little-endian reads from a COLMAP .bin file; running out of bytes is the user's truncated file."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.data = read_file_bytes(path)
        except OSError as error:
            raise UserError(f"{path}: cannot read it ({error})") from error
        self.offset = 0

    def read(self, fmt: str):
        size = struct.calcsize("<" + fmt)
        if self.offset + size > len(self.data):
            raise UserError(f"{self.path}: the file ends too early (truncated or not a COLMAP binary file)")
        values = struct.unpack_from("<" + fmt, self.data, self.offset)
        self.offset += size
        return values

    def skip(self, count: int) -> None:
        if self.offset + count > len(self.data):
            raise UserError(f"{self.path}: the file ends too early (truncated or not a COLMAP binary file)")
        self.offset += count

    def read_name(self) -> str:
        end = self.data.find(b"\0", self.offset)
        if end < 0:
            raise UserError(f"{self.path}: the file ends inside an image name (truncated?)")
        name = self.data[self.offset : end].decode("utf-8", errors="replace")
        self.offset = end + 1
        return name


def read_colmap_cameras_bin(path: Path) -> dict[int, _Intrinsics]:
    """uint64 count, then per camera: int32 id, int32 model, uint64 width, uint64 height, float64 params[]."""
    reader = _BinaryReader(path)
    cameras = {}
    (count,) = reader.read("Q")
    for _ in range(count):
        camera_id, model_id, width, height = reader.read("iiQQ")
        if model_id not in COLMAP_MODEL_NAMES:
            raise UserError(f"{path}: camera {camera_id} has unknown model id {model_id}")
        model = COLMAP_MODEL_NAMES[model_id]
        params = reader.read(f"{COLMAP_MODELS[model][1]}d")
        cameras[camera_id] = _Intrinsics(model, int(width), int(height), tuple(params))
    return cameras


def read_colmap_images_bin(path: Path) -> list[tuple[str, tuple, np.ndarray, int]]:
    """uint64 count, then per image: int32 id, float64 qvec[4], float64 tvec[3], int32 camera id,
    a NUL-terminated name, uint64 point count and that many (float64 x, float64 y, int64 id)."""
    reader = _BinaryReader(path)
    images = []
    (count,) = reader.read("Q")
    for _ in range(count):
        values = reader.read("i7di")
        quaternion, translation, camera_id = values[1:5], np.array(values[5:8]), values[8]
        name = reader.read_name()
        (points,) = reader.read("Q")
        reader.skip(points * 24)
        images.append((name.replace("\\", "/"), quaternion, translation, camera_id))
    return images
