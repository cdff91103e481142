"""Click selection, numpy only: it runs inside Blender, where torch never loads.

A click's feature is the feature field rendered at the clicked pixel: the same compositing as
`render.composite_weights` (gsplat's maths) for one pixel. The Gaussians selected are those whose
unit feature at the chosen level has cosine similarity above a threshold with it (METHOD.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .features import COARSE_DIM, LEVEL_DIMS
from .splat import Splat

# Picked by the threshold sweep of bench/bench_accuracy.py on its tuning scenes (docs/accuracy.md): the middle
# of the thresholds within 2 mIoU points of the best (coarse 0.525-0.975, fine 0.925-0.975 there).
DEFAULT_THRESHOLDS = {"coarse": 0.75, "fine": 0.95}
BLUR = 0.3  # gsplat's eps2d: added to the 2D covariance's diagonal
ALPHA_MIN, ALPHA_MAX, TRANSMITTANCE_MIN, NEAR = 1.0 / 255.0, 0.999, 1e-4, 0.01  # as gsplat 1.5 (and render.py)


@dataclass
class Geometry:
    """What the click needs of a splat, computed once per splat (not per click).

    Covariances are built per click for the few Gaussians near its pixel (`covariances`): building
    all of them up front cost most of a first click at 1M Gaussians.
    """

    positions: np.ndarray  # (N, 3) float32
    rotations: np.ndarray  # (N, 4) float32 w x y z as stored (normalised when used)
    scales: np.ndarray  # (N, 3) float32 standard deviations
    opacities: np.ndarray  # (N,) float32 in [0, 1]
    extents: np.ndarray  # (N,) float32 a bound on the reach: 4 standard deviations of the widest axis

    @classmethod
    def of(cls, splat: Splat) -> Geometry:
        scales = np.exp(splat.scales.astype(np.float32))
        return cls(splat.positions, splat.rotations.astype(np.float32), scales, splat.alphas.astype(np.float32),
                   4 * scales.max(axis=1))

    def covariances(self, ids: np.ndarray) -> np.ndarray:
        """(K, 3, 3) float64 world-space covariances of Gaussians `ids`."""
        q = self.rotations[ids].astype(np.float64)
        w, x, y, z = (q / np.linalg.norm(q, axis=1, keepdims=True)).T
        rotation = np.stack([
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ], axis=1).reshape(-1, 3, 3)
        m = rotation * self.scales[ids].astype(np.float64)[:, None, :]
        return m @ m.transpose(0, 2, 1)


@dataclass
class Projection:
    """Every Gaussian's centre in one view: the part of a click that depends on the view alone.

    Clicks in an unchanged view (the usual case in click mode) reuse it, so a click only looks
    at the few Gaussians near its pixel.
    """

    camera: object  # cameras.Camera
    camera_points: np.ndarray  # (N, 3) float32 centres in camera space
    u: np.ndarray  # (N,) float32 pixel coordinates of the centres
    v: np.ndarray
    reach: np.ndarray  # (N,) float32 a bound on each footprint's radius, pixels; -1 behind the near plane

    @classmethod
    def of(cls, geometry: Geometry, camera) -> Projection:
        R, t = camera.world_to_camera[:3, :3].astype(np.float32), camera.world_to_camera[:3, 3].astype(np.float32)
        camera_points = geometry.positions @ R.T + t
        depth = camera_points[:, 2]
        safe_depth = np.where(depth > NEAR, depth, 1.0)
        u = camera.fx * camera_points[:, 0] / safe_depth + camera.cx
        v = camera.fy * camera_points[:, 1] / safe_depth + camera.cy
        # gsplat draws a Gaussian out to sqrt(2 ln(255 opacity)) <= 3.33 sigma; 4 sigma (+2 px) bounds that cheaply
        reach = geometry.extents * max(camera.fx, camera.fy) / safe_depth + 2.0
        return cls(camera, camera_points, u, v, np.where(depth > NEAR, reach, -1.0).astype(np.float32))


def pixel_weights(geometry: Geometry, camera, x: float, y: float, projection: Projection | None = None):
    """(ids, weights) of the Gaussians composited at image point (x, y) of `camera`, front to back.

    (x, y) in pixels with pixel centres at +0.5, as gsplat; `camera` a cameras.Camera (OpenCV);
    `projection` that camera's Projection, when the caller keeps one.
    """
    projection = projection or Projection.of(geometry, camera)
    R = camera.world_to_camera[:3, :3].astype(np.float32)
    fx, fy, cx, cy = camera.fx, camera.fy, camera.cx, camera.cy
    u, v, depth = projection.u, projection.v, projection.camera_points[:, 2]
    ids = np.flatnonzero((np.abs(u - x) < projection.reach) & (np.abs(v - y) < projection.reach))
    if len(ids) == 0:
        return ids, np.zeros(0, np.float32)
    p, z = projection.camera_points[ids].astype(np.float64), depth[ids].astype(np.float64)
    # EWA: the 2D covariance J R Sigma R^T J^T, the Jacobian taken at a point clamped to 1.3x the frustum (gsplat).
    tan_x, tan_y = 0.5 * camera.width / fx, 0.5 * camera.height / fy
    tx = np.clip(p[:, 0] / z, -(cx / fx + 0.3 * tan_x), (camera.width - cx) / fx + 0.3 * tan_x) * z
    ty = np.clip(p[:, 1] / z, -(cy / fy + 0.3 * tan_y), (camera.height - cy) / fy + 0.3 * tan_y) * z
    J = np.zeros((len(ids), 2, 3))
    J[:, 0, 0], J[:, 0, 2] = fx / z, -fx * tx / z**2
    J[:, 1, 1], J[:, 1, 2] = fy / z, -fy * ty / z**2
    cov_camera = R.astype(np.float64) @ geometry.covariances(ids) @ R.T.astype(np.float64)
    cov2d = J @ cov_camera @ J.transpose(0, 2, 1) + BLUR * np.eye(2)
    a, b, c = cov2d[:, 0, 0], cov2d[:, 0, 1], cov2d[:, 1, 1]
    determinant = a * c - b * b
    dx, dy = u[ids] - x, v[ids] - y
    power = -0.5 * (c * dx * dx - 2 * b * dx * dy + a * dy * dy) / determinant
    alpha = np.minimum(ALPHA_MAX, geometry.opacities[ids] * np.exp(power))
    keep = (power <= 0) & (alpha >= ALPHA_MIN) & (determinant > 0)
    ids, alpha = ids[keep], alpha[keep]
    order = np.argsort(depth[ids], kind="stable")  # float32 depths, ties by index: the renderer's order
    ids, alpha = ids[order], alpha[order]
    after = np.cumprod(1.0 - alpha)  # transmittance behind each fragment
    before = np.concatenate([[1.0], after[:-1]])
    live = after > TRANSMITTANCE_MIN  # gsplat stops before the fragment that would drop T below it
    return ids[live], (alpha * before)[live].astype(np.float32)


def unit_features(features: np.ndarray, level: str, granularity_prior: bool = True) -> np.ndarray:
    """(N, D) float32 unit features at `level`, computed once per level and kept, as clicks reuse them.

    A field trained without the granularity prior has its fine level in channels 12-23 alone.
    """
    fine_alone = level == "fine" and not granularity_prior
    level_features = (features[:, COARSE_DIM:] if fine_alone else features[:, : LEVEL_DIMS[level]]).astype(np.float32)
    norms = np.linalg.norm(level_features, axis=1, keepdims=True)
    return level_features / np.maximum(norms, 1e-12)


def click_feature(unit: np.ndarray, ids: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
    """The unit feature rendered at a pixel from its (ids, weights), or None where nothing is drawn."""
    if len(ids) == 0:
        return None
    rendered = weights @ unit[ids]
    norm = np.linalg.norm(rendered)
    return rendered / norm if norm > 0 else None


def select(unit: np.ndarray, query: np.ndarray, threshold: float) -> np.ndarray:
    """(N,) bool: the Gaussians whose unit feature has cosine similarity above `threshold` with `query`."""
    return unit @ query > threshold
