"""Which Gaussians a clicked pixel composites, numpy only: it runs inside Blender, where torch never loads.

The same compositing as `render.composite_weights` (gsplat's maths) for one pixel, over the few Gaussians a
coarse grid of the centres puts near its ray: a splat's geometry, its centres' grid and the pixel's weights.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field

import numpy as np

from ..formats.splat import Splat
from ..formats.transform import quaternions_to_matrices
from .build_steps import BLOCK, finished, gather_steps, stable_order_steps
from .gsplat_constants import ALPHA_MAX, ALPHA_MIN, EPS2D, FOV_CLAMP, NEAR_PLANE, T_MIN


@dataclass
class Geometry:
    """What the click needs of a splat, computed once per splat (not per click).

    Covariances and reaches are built per click for the few Gaussians near its pixel (`covariances`,
    `extents`): building all of them up front cost most of a first click at 1M Gaussians, and memory.
    """

    positions: np.ndarray  # (N, 3) float32
    rotations: np.ndarray  # (N, 4) float32 w x y z as stored (normalised when used)
    scales: np.ndarray  # (N, 3) float32 standard deviations
    opacities: np.ndarray  # (N,) float32 in [0, 1]
    _all_extents: np.ndarray | None = field(default=None, repr=False)  # (N,) float32, see all_extents
    _largest: float | None = field(default=None, repr=False)

    @classmethod
    def of(cls, splat: Splat) -> Geometry:
        return cls(
            splat.positions,
            splat.rotations.astype(np.float32),
            np.exp(splat.scales.astype(np.float32)),
            splat.alphas.astype(np.float32),
        )

    def extents(self, ids: np.ndarray | slice = slice(None)) -> np.ndarray:
        """(K,) float32 a bound on the reach of Gaussians `ids`: 4 standard deviations of the widest axis."""
        scales = self.scales[ids]
        return 4 * np.maximum(np.maximum(scales[:, 0], scales[:, 1]), scales[:, 2])  # .max(axis=1) is 10x slower

    @property
    def all_extents(self) -> np.ndarray:
        """(N,) float32 `extents()` of every Gaussian, made at first use and kept (a plain click and the grid read
        them all)."""
        if self._all_extents is None:
            self._all_extents = self.extents()
        return self._all_extents

    @property
    def largest(self) -> float:
        """The largest |coordinate| of any centre, made at first use and kept."""
        if self._largest is None:
            self._largest = max(float(self.positions.max(initial=0.0)), -float(self.positions.min(initial=0.0)))
        return self._largest

    def covariances(self, ids: np.ndarray) -> np.ndarray:
        """(K, 3, 3) float64 world-space covariances of Gaussians `ids`."""
        m = (
            quaternions_to_matrices(self.rotations[ids].astype(np.float64))
            * self.scales[ids].astype(np.float64)[:, None, :]
        )
        return m @ m.transpose(0, 2, 1)


@dataclass
class Projection:
    """Centres of some Gaussians (`ids`) in one view, computed elementwise so that any subset gets the very
    numbers the whole splat would (a click projects only the few Gaussians its grid cells hold)."""

    ids: np.ndarray  # (K,) the Gaussians projected
    camera_points: np.ndarray  # (K, 3) float32 centres in camera space
    u: np.ndarray  # (K,) float32 pixel coordinates of the centres
    v: np.ndarray
    reach: np.ndarray  # (K,) float32 a bound on each footprint's radius, pixels; -1 behind the near plane

    @classmethod
    def of(cls, geometry: Geometry, camera, ids: np.ndarray | None = None) -> Projection:
        rows = slice(None) if ids is None else ids  # every centre: no gathered copies
        p = geometry.positions if ids is None else np.take(geometry.positions, ids, axis=0)  # 3x faster than [ids]
        ids = np.arange(len(geometry.positions)) if ids is None else ids
        R, t = camera.world_to_camera[:3, :3].astype(np.float32), camera.world_to_camera[:3, 3].astype(np.float32)
        camera_points = np.stack(
            [p[:, 0] * R[i, 0] + p[:, 1] * R[i, 1] + p[:, 2] * R[i, 2] + t[i] for i in range(3)], 1
        )
        x, y, depth = camera_points.T
        safe_depth = np.where(depth > NEAR_PLANE, depth, np.float32(1.0))
        u = np.float32(camera.fx) * x / safe_depth + np.float32(camera.cx)
        v = np.float32(camera.fy) * y / safe_depth + np.float32(camera.cy)
        # gsplat draws a Gaussian out to sqrt(2 ln(255 opacity)) <= 3.33 sigma; 4 sigma (+2 px) bounds that cheaply
        reach = geometry.extents(rows) * np.float32(max(camera.fx, camera.fy)) / safe_depth + np.float32(2.0)
        return cls(ids, camera_points, u, v, np.where(depth > NEAR_PLANE, reach, np.float32(-1.0)))


@dataclass
class CentreGrid:
    """The centres sorted into a coarse 3D grid, built once per splat and valid in every view.

    A click projects only the Gaussians of the cells its pixel's ray passes near, so neither a click
    nor the first click after the view moves touches all N centres.
    """

    order: np.ndarray  # (N,) int32 Gaussian ids, cell by cell
    starts: np.ndarray  # (M + 1,) int64 where each non-empty cell's ids begin in `order`
    centres: np.ndarray  # (M, 3) float64 the middle of each cell's bounding box of centres
    radii: np.ndarray  # (M,) float64 half its diagonal: every centre of the cell lies within it
    extents: np.ndarray  # (M,) float64 the largest extent (Geometry.extents) in the cell

    CELLS = 40  # per axis: 40^3 = 64,000 cells fit a 16-bit key, which numpy sorts by radix

    @classmethod
    def of(cls, geometry: Geometry) -> CentreGrid:
        return finished(cls.steps(geometry))

    @classmethod
    def steps(cls, geometry: Geometry) -> Generator[None, None, CentreGrid]:
        """`of` in steps (ClickIndex.build), a block of Gaussians each."""
        positions = geometry.positions
        sample = positions[:: max(1, len(positions) // 100_000)]
        low, high = np.quantile(sample, [0.005, 0.995], axis=0)  # far stragglers join the border cells
        low, scale = low.astype(np.float32), (cls.CELLS / np.maximum(high - low, 1e-9)).astype(np.float32)
        keys = np.empty(len(positions), np.uint16)
        for begin in range(0, len(positions), BLOCK):
            yield
            block = positions[begin : begin + BLOCK]
            cell = np.clip(((block - low) * scale).astype(np.int32), 0, cls.CELLS - 1)
            keys[begin : begin + BLOCK] = (cell[:, 0] * cls.CELLS + cell[:, 1]) * cls.CELLS + cell[:, 2]
        order = yield from stable_order_steps(keys, cls.CELLS**3)
        counts = np.bincount(keys, minlength=cls.CELLS**3)
        starts = np.concatenate([[0], np.cumsum(counts[counts > 0])])
        sorted_positions = yield from gather_steps(positions, order)
        box_low = np.minimum.reduceat(sorted_positions, starts[:-1], axis=0).astype(np.float64)
        box_high = np.maximum.reduceat(sorted_positions, starts[:-1], axis=0).astype(np.float64)
        yield
        all_extents = geometry.all_extents
        yield
        sorted_extents = yield from gather_steps(all_extents, order)
        extents = np.maximum.reduceat(sorted_extents, starts[:-1]).astype(np.float64)  # 1D: 10x faster
        return cls(order, starts, (box_low + box_high) / 2, np.linalg.norm(box_high - box_low, axis=1) / 2, extents)

    def near_ray(self, camera, x: float, y: float) -> np.ndarray:
        """(K,) ids of a superset of the Gaussians whose footprint bound (Projection.reach) covers image point (x, y).

        A centre p at depth z is within reach of the pixel when both its camera-plane offsets from the
        pixel's ray are under extent * f / f_axis + 2 z / f_axis, so its distance from the ray is under
        sqrt(2) times the larger; a cell qualifies when its bounding sphere allows that for some member.
        """
        R, t = camera.world_to_camera[:3, :3], camera.world_to_camera[:3, 3]
        c = self.centres
        centres = np.stack([c[:, 0] * R[i, 0] + c[:, 1] * R[i, 1] + c[:, 2] * R[i, 2] + t[i] for i in range(3)], 1)
        ray = np.array([(x - camera.cx) / camera.fx, (y - camera.cy) / camera.fy, 1.0])
        ray /= np.linalg.norm(ray)
        along = centres[:, 0] * ray[0] + centres[:, 1] * ray[1] + centres[:, 2] * ray[2]  # (M,) elementwise, as
        distance = np.linalg.norm(
            centres - along[:, None] * ray, axis=1
        )  # a small BLAS call can stall (see similarities)
        f_min, f_max = min(camera.fx, camera.fy), max(camera.fx, camera.fy)
        deepest = np.maximum(centres[:, 2] + self.radii, 0.0)
        allowed = np.sqrt(2) * (self.extents * f_max / f_min + 2 * deepest / f_min) + self.radii
        # 0.1 % slack covers float32 rounding of the projected centres (1e-7 relative, under 1e-3 px)
        near = np.flatnonzero(
            (distance <= allowed * 1.001 + 1e-9) & (centres[:, 2] + self.radii * 1.001 + 1e-6 > NEAR_PLANE)
        )
        if len(near) == 0:
            return np.zeros(0, np.int32)
        return np.concatenate([self.order[self.starts[i] : self.starts[i + 1]] for i in near])


def near_pixel(geometry: Geometry, camera, x: float, y: float, chunk: int = 1 << 16) -> np.ndarray:
    """(K,) ids of a superset of the Gaussians whose footprint bound (Projection.reach) covers image point (x, y),
    every centre tested: a few float32 operations per centre, elementwise on chunks that stay in cache (a
    plain click's pick at 6 million Gaussians: about 40 ms, where float64 matrix products took 150).

    With exact camera coordinates (X, Y, Z), |u - x| < reach is |fx X + (cx - x) Z| < extent f + 2 Z for Z
    > 0 (likewise for v). Projection's float32 coordinates differ from exact ones by under 1e-6 of the
    magnitude of their terms (4x float32's rounding of its sums), its u and reach by 1e-6 relative; this
    test's own float32 sums by as much again: `slack` allows 3e-6.
    """
    R, t = camera.world_to_camera[:3, :3].astype(np.float64), camera.world_to_camera[:3, 3].astype(np.float64)
    offsets = np.stack([camera.fx * R[0] + (camera.cx - x) * R[2], camera.fy * R[1] + (camera.cy - y) * R[2], R[2]])
    origin = np.array([camera.fx * t[0] + (camera.cx - x) * t[2], camera.fy * t[1] + (camera.cy - y) * t[2], t[2]])
    spread = max(camera.fx, camera.fy) + max(abs(camera.cx - x), abs(camera.cy - y)) + 4.0  # d(offset) / d(coordinate)
    positions, extents = geometry.positions, geometry.all_extents
    if len(positions) == 0:
        return np.zeros(0, np.int64)
    slack = 3e-6 * (3 * geometry.largest * float(np.abs(R).max()) + float(np.abs(t).max())) * spread
    o, c = offsets.astype(np.float32), origin.astype(np.float32)
    f_reach, near, slack32 = (
        np.float32(max(camera.fx, camera.fy) * 1.00001),
        np.float32(NEAR_PLANE - slack),
        np.float32(slack),
    )
    buffers = np.empty((4, min(chunk, len(positions))), np.float32)  # reused chunk by chunk: they stay in cache
    keep, within = np.empty((2, buffers.shape[1]), bool)
    found = []
    for start in range(0, len(positions), chunk):
        p = positions[start : start + chunk]
        reach, depth, across, term = buffers[:, : len(p)]
        linear(p, o[2], c[2], depth, term)
        linear(p, o[0], c[0], across, term)
        np.multiply(extents[start : start + len(p)], f_reach, out=reach)
        reach += np.multiply(depth, np.float32(2.00001), out=term)
        reach += slack32
        k = np.greater(depth, near, out=keep[: len(p)])
        k &= np.less_equal(np.abs(across, out=across), reach, out=within[: len(p)])
        rows = np.flatnonzero(k)  # a narrow band of the centres: the test down the image for those alone
        q = np.take(p, rows, axis=0)
        down = np.abs(q[:, 0] * o[1, 0] + q[:, 1] * o[1, 1] + q[:, 2] * o[1, 2] + c[1])
        found.append(rows[down <= reach[rows]] + start)
    return np.concatenate(found)


def linear(p: np.ndarray, weights: np.ndarray, offset: np.float32, out: np.ndarray, term: np.ndarray) -> None:
    """out = p @ weights + offset for (C, 3) float32 centres `p`, elementwise (`term`: scratch of out's size)."""
    np.multiply(p[:, 0], weights[0], out=out)
    for axis in (1, 2):
        out += np.multiply(p[:, axis], weights[axis], out=term)
    out += offset


# Projecting one of the grid's candidates costs about 16 centres of near_pixel's pass: beyond a 16th of all, the
# pass is cheaper. Large Gaussians near every ray (the statue's background) put 29 % of its 800k near a click's ray.
GRID_WORTH = 16


def pixel_weights(
    geometry: Geometry, camera, x: float, y: float, grid: CentreGrid | None = None, hidden: np.ndarray | None = None
):
    """(ids, weights) of the Gaussians composited at image point (x, y) of `camera`, front to back.

    (x, y) in pixels with pixel centres at +0.5, as gsplat; `camera` a cameras.Camera (OpenCV);
    `grid` the splat's CentreGrid, when the caller keeps one (else every centre is tested: `near_pixel`);
    `hidden` (N,) bool: Gaussians that no pixel composites.
    """
    candidates = None if grid is None else grid.near_ray(camera, x, y)
    if candidates is None or len(candidates) * GRID_WORTH > len(geometry.positions):
        candidates = near_pixel(geometry, camera, x, y)
    projection = Projection.of(geometry, camera, candidates)
    R = camera.world_to_camera[:3, :3].astype(np.float32)
    fx, fy, cx, cy = camera.fx, camera.fy, camera.cx, camera.cy
    near = (np.abs(projection.u - x) < projection.reach) & (np.abs(projection.v - y) < projection.reach)
    if hidden is not None:
        near &= ~hidden[projection.ids]
    near = np.flatnonzero(near)
    ids = projection.ids[near]
    if len(ids) == 0:
        return ids, np.zeros(0, np.float32)
    u, v, p = projection.u[near], projection.v[near], projection.camera_points[near]
    depth = p[:, 2]
    p, z = p.astype(np.float64), depth.astype(np.float64)
    # EWA: the 2D covariance J R Sigma R^T J^T, the Jacobian taken at a point clamped to 1.3x the frustum (gsplat).
    tan_x, tan_y = 0.5 * camera.width / fx, 0.5 * camera.height / fy
    tx = np.clip(p[:, 0] / z, -(cx / fx + FOV_CLAMP * tan_x), (camera.width - cx) / fx + FOV_CLAMP * tan_x) * z
    ty = np.clip(p[:, 1] / z, -(cy / fy + FOV_CLAMP * tan_y), (camera.height - cy) / fy + FOV_CLAMP * tan_y) * z
    J = np.zeros((len(ids), 2, 3))
    J[:, 0, 0], J[:, 0, 2] = fx / z, -fx * tx / z**2
    J[:, 1, 1], J[:, 1, 2] = fy / z, -fy * ty / z**2
    cov_camera = R.astype(np.float64) @ geometry.covariances(ids) @ R.T.astype(np.float64)
    cov2d = J @ cov_camera @ J.transpose(0, 2, 1) + EPS2D * np.eye(2)
    a, b, c = cov2d[:, 0, 0], cov2d[:, 0, 1], cov2d[:, 1, 1]
    determinant = a * c - b * b
    dx, dy = u - x, v - y
    power = -0.5 * (c * dx * dx - 2 * b * dx * dy + a * dy * dy) / determinant
    alpha = np.minimum(ALPHA_MAX, geometry.opacities[ids] * np.exp(power))
    keep = (power <= 0) & (alpha >= ALPHA_MIN) & (determinant > 0)
    ids, alpha, depth = ids[keep], alpha[keep], depth[keep]
    order = np.lexsort((ids, depth))  # float32 depths, ties by index: the renderer's order
    ids, alpha = ids[order], alpha[order]
    after = np.cumprod(1.0 - alpha)  # transmittance behind each fragment
    before = np.concatenate([[1.0], after[:-1]])
    live = after > T_MIN  # gsplat stops before the fragment that would drop T below it
    return ids[live], (alpha * before)[live].astype(np.float32)
