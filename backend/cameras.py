"""Cameras in one convention, and loaders for the formats photos come with.

Inside the backend every camera is OpenCV-style (x right, y down, z forward, world-to-camera
matrices, pixel centres at (x + 0.5, y + 0.5) as in COLMAP and gsplat). The loaders convert at
the edge: COLMAP sparse models (text and binary), NeRF transforms.json (OpenGL/Blender cameras)
and LLFF poses_bounds.npy. Every problem with an input is a UserError naming the file.
numpy only; Pillow is imported where images are read, so the add-on can use the cameras without it.
"""

from __future__ import annotations

import io
import json
import struct
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .errors import UserError
from .files import input_size, npy_array, read_file_bytes
from .transform import matrices_to_quaternions, quaternions_to_matrices

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

# OpenGL/Blender camera axes (x right, y up, z backwards) -> OpenCV: flip y and z.
OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])


@dataclass(frozen=True, eq=False)  # eq=False: comparing numpy fields with == has no single truth value
class Camera:
    name: str  # the image file name it belongs to, e.g. "IMG_2714.jpg" (COLMAP names may hold subfolders)
    width: int
    height: int
    fx: float
    fy: float
    cx: float  # pixels, in coordinates where pixel (i, j) covers [i, i+1) x [j, j+1)
    cy: float
    world_to_camera: np.ndarray  # (4, 4) float64, OpenCV: x right, y down, z forward

    def __post_init__(self):
        matrix = np.array(self.world_to_camera, dtype=np.float64)  # a private copy, then read-only
        if matrix.shape != (4, 4):
            raise ValueError(f"camera {self.name}: world_to_camera must be 4x4, got {matrix.shape}")
        problem = camera_problem(self.width, self.height, (self.fx, self.fy), (self.cx, self.cy), matrix)
        if problem:
            raise ValueError(f"camera {self.name}: {problem}")
        matrix.flags.writeable = False
        object.__setattr__(self, "world_to_camera", matrix)

    @property
    def K(self) -> np.ndarray:  # (3, 3)
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def camera_to_world(self) -> np.ndarray:  # (4, 4)
        return rigid_inverse(self.world_to_camera)

    @property
    def center(self) -> np.ndarray:  # (3,) the camera's position in the world
        return self.camera_to_world[:3, 3]

    def resized(self, width: int, height: int) -> Camera:
        """The same camera for the image resampled to width x height.

        Each axis scales by its own exact ratio, so a rounded size stays consistent with the
        intrinsics (the image's edges, not its pixel centres, stay where they were).
        """
        sx, sy = width / self.width, height / self.height
        return replace(self, width=int(width), height=int(height),
                       fx=self.fx * sx, fy=self.fy * sy, cx=self.cx * sx, cy=self.cy * sy)

    def scaled(self, factor: float) -> Camera:
        """The camera for the image scaled by `factor` (0.5 = half size), the size rounded."""
        return self.resized(max(1, round(self.width * factor)), max(1, round(self.height * factor)))

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (N, 3) -> pixel coordinates (N, 2) and depths (N,) along the view axis."""
        local = np.asarray(points, dtype=np.float64) @ self.world_to_camera[:3, :3].T + self.world_to_camera[:3, 3]
        depth = local[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            pixels = np.stack([self.fx * local[:, 0] / depth + self.cx,
                               self.fy * local[:, 1] / depth + self.cy], axis=1)
        return pixels, depth

    def ray(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """The world-space ray through image point (x, y): origin (3,), unit direction (3,).

        x, y are continuous pixel coordinates like cx, cy: the centre of pixel (i, j) is
        (i + 0.5, j + 0.5). Arrays of points give directions of shape (..., 3).
        """
        local = np.stack(np.broadcast_arrays((np.asarray(x, dtype=np.float64) - self.cx) / self.fx,
                                             (np.asarray(y, dtype=np.float64) - self.cy) / self.fy,
                                             1.0), axis=-1)  # (..., 3) in the camera frame
        camera_to_world = self.camera_to_world
        direction = local @ camera_to_world[:3, :3].T
        return camera_to_world[:3, 3].copy(), direction / np.linalg.norm(direction, axis=-1, keepdims=True)


def camera_problem(width, height, focal, centre, world_to_camera: np.ndarray) -> str | None:
    """What makes these intrinsics and pose unusable, or None: every camera loader's one check."""
    if not (isinstance(width, (int, np.integer)) and isinstance(height, (int, np.integer)) and width >= 1 and height >= 1):
        return f"its image size {width}x{height} is not at least 1x1 pixel"
    if not all(isinstance(f, (int, float, np.number)) and np.isfinite(f) and f > 0 for f in focal):
        return f"its focal length {focal[0]}, {focal[1]} is not a positive number of pixels"
    if not all(isinstance(c, (int, float, np.number)) and np.isfinite(c) for c in centre):
        return f"its principal point {centre[0]}, {centre[1]} is not a pair of numbers"
    if not np.isfinite(world_to_camera).all():
        return "its pose holds NaN or infinite values"
    return None


def rigid_inverse(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a (4, 4) rotation + translation, exact where np.linalg.inv would round."""
    rotation, translation = matrix[:3, :3], matrix[:3, 3]
    inverse = np.eye(4)
    inverse[:3, :3] = rotation.T
    inverse[:3, 3] = -rotation.T @ translation
    return inverse


def quaternion_to_matrix(qw, qx, qy, qz) -> np.ndarray:
    """(3, 3) rotation of a w x y z quaternion (normalised here: files round their digits)."""
    return quaternions_to_matrices(np.array([[qw, qx, qy, qz]], dtype=np.float64))[0]


def matrix_to_quaternion(rotation: np.ndarray) -> np.ndarray:
    """(4,) w x y z unit quaternion of a (3, 3) rotation, w >= 0 (Shepperd's method: stable everywhere)."""
    return matrices_to_quaternions(np.asarray(rotation, dtype=np.float64)[None])[0]


def pose_matrix(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """(4, 4) from a (3, 3) rotation and a (3,) translation."""
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = translation
    return matrix


# ---------------------------------------------------------------------------------------------
# COLMAP sparse models

# model name -> (COLMAP model id, parameter count, has distortion). The ids are the binary format's.
COLMAP_MODELS = {
    "SIMPLE_PINHOLE": (0, 3, False), "PINHOLE": (1, 4, False),
    "SIMPLE_RADIAL": (2, 4, True), "RADIAL": (3, 5, True),
    "OPENCV": (4, 8, True), "OPENCV_FISHEYE": (5, 8, True), "FULL_OPENCV": (6, 12, True),
    "FOV": (7, 5, True), "SIMPLE_RADIAL_FISHEYE": (8, 4, True), "RADIAL_FISHEYE": (9, 5, True),
    "THIN_PRISM_FISHEYE": (10, 12, True), "RAD_TAN_THIN_PRISM_FISHEYE": (11, 16, True),
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
        raise UserError(f"{path}: no COLMAP model here (need cameras.bin + images.bin or cameras.txt + "
                        f"images.txt, in this folder or in sparse/0)")
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
    return Camera(name, intrinsics.width, intrinsics.height, float(fx), float(fy), float(cx), float(cy),
                  world_to_camera)


def warn_about_distortion(cameras_file: Path, intrinsics: dict[int, _Intrinsics]) -> None:
    models = sorted({i.model for i in intrinsics.values()})
    unusable = [m for m in models if m not in NEAR_PINHOLE_MODELS]
    if unusable:
        raise UserError(f"{cameras_file}: camera model {', '.join(unusable)} is too far from a pinhole to "
                        f"use; undistort the images first (colmap image_undistorter) and use its sparse model")
    distorted = [m for m in models if COLMAP_MODELS[m][2]]
    if distorted:
        warnings.warn(f"{cameras_file}: camera model {', '.join(distorted)} has lens distortion, which is "
                      f"ignored (treated as a pinhole); undistorted images (colmap image_undistorter) fit better",
                      stacklevel=3)


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
                raise UserError(f"{path}: camera {parts[0]} ({model}) has {len(params)} parameters, "
                                f"expected {count}")
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
    """A COLMAP text model (cameras.txt, images.txt, empty points3D.txt) of PINHOLE cameras."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    camera_lines, image_lines = [], []
    for index, camera in enumerate(cameras, start=1):
        camera_lines.append(f"{index} PINHOLE {camera.width} {camera.height} "
                            f"{camera.fx!r} {camera.fy!r} {camera.cx!r} {camera.cy!r}")
        q = matrix_to_quaternion(camera.world_to_camera[:3, :3])
        t = camera.world_to_camera[:3, 3]
        image_lines.append(" ".join([str(index), *(repr(float(v)) for v in (*q, *t)), str(index), camera.name]))
        image_lines.append("")
    (folder / "cameras.txt").write_text("\n".join(camera_lines) + "\n")
    (folder / "images.txt").write_text("\n".join(image_lines) + "\n")
    (folder / "points3D.txt").write_text("")


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
        name = self.data[self.offset:end].decode("utf-8", errors="replace")
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


# ---------------------------------------------------------------------------------------------
# NeRF transforms.json

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
        warnings.warn(f"{path}: lens distortion (k1, k2, p1, p2...) is ignored (treated as a pinhole)",
                      stacklevel=2)
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


# ---------------------------------------------------------------------------------------------
# LLFF poses_bounds.npy

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
        raise UserError(f"{images_dir}: no such image folder; LLFF poses need the images to know their names "
                        f"(pass the image folder)")
    names = sorted(p.name for p in images_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if len(names) != len(rows):
        raise UserError(f"{path}: {len(rows)} poses but {len(names)} images in {images_dir}; "
                        f"they must pair one to one in name order")
    cameras = []
    for name, row in zip(names, rows):
        matrix = row[:15].reshape(3, 5)  # (3, 5)
        rotation, translation, (height, width, focal) = matrix[:, :3], matrix[:, 3], matrix[:, 4]
        camera_to_world = pose_matrix(np.stack([rotation[:, 1], rotation[:, 0], -rotation[:, 2]], axis=1),
                                      translation)
        cameras.append(Camera(name, int(round(width)), int(round(height)), float(focal), float(focal),
                              float(width) / 2, float(height) / 2, rigid_inverse(camera_to_world)))
    return cameras


# ---------------------------------------------------------------------------------------------
# Dispatch

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
        raise UserError(f"{path}: not a known camera file (expected a COLMAP model, transforms.json "
                        f"or poses_bounds.npy)")
    if find_colmap_model(path) is not None:
        return load_colmap(path)
    for name in ("transforms.json", "transforms_train.json"):
        if (path / name).is_file():
            return load_transforms(path / name)
    if (path / "poses_bounds.npy").is_file():
        return load_llff(path / "poses_bounds.npy", images_dir)
    raise UserError(f"{path}: no cameras found here (expected a COLMAP model in it or in sparse/0, "
                    f"transforms.json or poses_bounds.npy)")


# ---------------------------------------------------------------------------------------------
# Images

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
    names = set()
    for sub in {""} | set(subfolders):
        folder = images_dir / sub
        if folder.is_dir():
            names.update((Path(sub) / p.name).as_posix() for p in folder.iterdir()
                         if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    return sorted(names)


def match_images(images_dir: Path, cameras: list[Camera]) -> list[str]:
    """The image file (relative to images_dir) of every camera, or a UserError listing the mismatches.

    A camera matches by its full relative name, then by its base name when that is unique
    (transforms.json names such as train/r_0 against a folder of r_0.png).
    """
    files = list_images(images_dir, {str(Path(c.name.replace("\\", "/")).parent) for c in cameras} - {"."})
    by_key, by_base = {}, {}
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
            with Image.open(io.BytesIO(read_file_bytes(path))) as image:
                image = image.convert("RGB")
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            raise UserError(f"{path}: cannot read the image ({error})") from error
        camera = fit_camera_to_image(camera, image.width, image.height, path)
        if downscale > 1:
            camera = camera.scaled(1 / downscale)
            image = image.resize((camera.width, camera.height), Image.Resampling.BOX)
        fitted.append(camera)
        images.append(np.asarray(image, dtype=np.uint8))  # (H, W, 3)
    return fitted, images
