"""The camera model every loader converts to: OpenCV-style (x right, y down, z forward, world-to-camera
matrices, pixel centres at (x + 0.5, y + 0.5) as in COLMAP and gsplat). numpy only, so the add-on can use it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np

from ..formats.transform import matrices_to_quaternions, quaternions_to_matrices

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

    def digest(self) -> str:
        """A hash of the camera's size, intrinsics and pose: caches of what it sees are keyed by it."""
        intrinsics = (self.width, self.height, self.fx, self.fy, self.cx, self.cy)
        return hashlib.sha256((repr(intrinsics) + self.world_to_camera.tobytes().hex()).encode()).hexdigest()

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
        return replace(
            self,
            width=int(width),
            height=int(height),
            fx=self.fx * sx,
            fy=self.fy * sy,
            cx=self.cx * sx,
            cy=self.cy * sy,
        )

    def scaled(self, factor: float) -> Camera:
        """The camera for the image scaled by `factor` (0.5 = half size), the size rounded."""
        return self.resized(max(1, round(self.width * factor)), max(1, round(self.height * factor)))

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (N, 3) -> pixel coordinates (N, 2) and depths (N,) along the view axis."""
        local = np.asarray(points, dtype=np.float64) @ self.world_to_camera[:3, :3].T + self.world_to_camera[:3, 3]
        depth = local[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            pixels = np.stack(
                [self.fx * local[:, 0] / depth + self.cx, self.fy * local[:, 1] / depth + self.cy], axis=1
            )
        return pixels, depth

    def ray(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """The world-space ray through image point (x, y): origin (3,), unit direction (3,).

        x, y are continuous pixel coordinates like cx, cy: the centre of pixel (i, j) is
        (i + 0.5, j + 0.5). Arrays of points give directions of shape (..., 3).
        """
        local = np.stack(
            np.broadcast_arrays(
                (np.asarray(x, dtype=np.float64) - self.cx) / self.fx,
                (np.asarray(y, dtype=np.float64) - self.cy) / self.fy,
                1.0,
            ),
            axis=-1,
        )  # (..., 3) in the camera frame
        camera_to_world = self.camera_to_world
        direction = local @ camera_to_world[:3, :3].T
        return camera_to_world[:3, 3].copy(), direction / np.linalg.norm(direction, axis=-1, keepdims=True)


def camera_problem(width, height, focal, centre, world_to_camera: np.ndarray) -> str | None:
    """What makes these intrinsics and pose unusable, or None: every camera loader's one check."""
    if not (
        isinstance(width, (int, np.integer)) and isinstance(height, (int, np.integer)) and width >= 1 and height >= 1
    ):
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


def look_at(name: str, eye, target, width: int, height: int, focal: float, up=(0.0, -1.0, 0.0)) -> Camera:
    """A pinhole camera at `eye` looking at `target`, the image's up along the world vector `up` (default -y)."""
    eye, target = np.asarray(eye, np.float64), np.asarray(target, np.float64)
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, np.asarray(up, np.float64))
    if np.linalg.norm(right) < 1e-9:  # looking straight along up: any image up will do
        right = np.cross(forward, np.eye(3)[int(np.argmin(np.abs(forward)))])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward])
    return Camera(name, width, height, focal, focal, width / 2, height / 2, pose_matrix(rotation, -rotation @ eye))


def pose_matrix(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """(4, 4) from a (3, 3) rotation and a (3,) translation."""
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = translation
    return matrix
