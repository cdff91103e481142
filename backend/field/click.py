"""Click selection, numpy only: it runs inside Blender, where torch never loads.

A click's feature is the feature field rendered at the clicked pixel: the same compositing as
`render.composite_weights` (gsplat's maths) for one pixel. The Gaussians selected are those whose
unit feature at the chosen level has cosine similarity above a threshold with it (METHOD.md).
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import numpy as np
import numpy.typing as npt

from ..formats.features import COARSE_DIM, LEVEL_DIMS, Level
from ..formats.splat import Splat
from ..formats.transform import quaternions_to_matrices
from .gsplat_constants import ALPHA_MAX, ALPHA_MIN, EPS2D, FOV_CLAMP, NEAR_PLANE, T_MIN

# Picked by the threshold sweep of bench/bench_accuracy.py on its tuning scenes (docs/accuracy.md): the middle
# of the thresholds within 2 mIoU points of the best (coarse 0.525-0.975, fine 0.925-0.975 there).
DEFAULT_THRESHOLDS: dict[Level, float] = {"coarse": 0.75, "fine": 0.95}
Mode = Literal["SET", "ADD", "SUBTRACT"]  # a click replaces the selection, adds to it or takes from it
T = TypeVar("T")


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


UNIT_SCALE = 32767  # unit features are held as int16 fixed point, component x UNIT_SCALE: half float32's bytes
QUANTUM = 2e-4  # bounds |similarity - cosine| that the rounding allows (under 8e-5 at 24 channels), doubled
CHUNK = 1 << 14  # rows per step of a pass over features: their float32 copy stays in cache
BLOCK = 1 << 18  # Gaussians per build step of a sort or gather (ClickIndex.build): tens of ms


def level_columns(features: np.ndarray, level: Level, granularity_prior: bool = True) -> np.ndarray:
    """(N, D) the columns of features (N, 24) that make `level`'s feature (a view): a field trained without the
    granularity prior has its fine level in channels 12-23 alone."""
    fine_alone = level == "fine" and not granularity_prior
    return features[:, COARSE_DIM:] if fine_alone else features[:, : LEVEL_DIMS[level]]


def unit_features(features: np.ndarray, level: Level, granularity_prior: bool = True) -> np.ndarray:
    """(N, D) int16 unit features at `level` in fixed point (UNIT_SCALE), computed once per level and kept.

    Each click's pass reads them whole, so their bytes are its cost: int16 halves float32's, and
    moves a similarity by under 1e-4 (docs/accuracy.md).
    """
    return unit_of(level_columns(features, level, granularity_prior))


def unit_of(source: np.ndarray) -> np.ndarray:
    """(N, D) int16 the unit rows of features `source` (N, D) in fixed point (UNIT_SCALE)."""
    return finished(unit_steps(source))


def unit_steps(source: np.ndarray) -> Generator[None, None, np.ndarray]:
    """`unit_of` in steps (ClickIndex.build), a chunk each.

    Channel by channel, elementwise: a row's values do not depend on the rows beside it or on the
    layout, so any slice or gather of the rows gives the same values (RawFeatures relies on it), and
    features held channel-major (as Blender's attributes are read: a transposed view) take one
    contiguous pass per channel (0.1 s at 6 million, where a row-major pass over them took 0.5).
    """
    count, dims = source.shape
    unit = np.empty((count, dims), np.int16)
    block = np.empty((dims, min(CHUNK, count)), np.float32)  # (D, C) a chunk channel-major, in cache
    norms, term = np.empty((2, block.shape[1]), np.float32)
    for start in range(0, count, CHUNK):
        yield
        rows = block[:, : min(CHUNK, count - start)]
        rows[...] = source[start : start + rows.shape[1]].T
        norm, squared = norms[: rows.shape[1]], term[: rows.shape[1]]
        np.multiply(rows[0], rows[0], out=norm)
        for channel in rows[1:]:
            norm += np.multiply(channel, channel, out=squared)
        np.sqrt(norm, out=norm)
        np.divide(np.float32(UNIT_SCALE), np.maximum(norm, np.float32(1e-30), out=norm), out=norm)
        rows *= norm  # |values| <= 32767.01
        unit[start : start + rows.shape[1]] = np.rint(rows, out=rows).T
    return unit


def unit_rows(unit: np.ndarray) -> np.ndarray:
    """(K, D) float32 the unit features that rows of `unit_features` hold."""
    return unit.astype(np.float32) * np.float32(1 / UNIT_SCALE)


def click_feature(unit: np.ndarray, ids: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
    """The (D,) float32 unit feature rendered at a pixel from its (ids, weights), or None where nothing is drawn."""
    if len(ids) == 0:
        return None
    rendered = weights @ unit_rows(unit[ids])
    norm = np.linalg.norm(rendered)
    return rendered / norm if norm > 0 else None


def similarities(unit: np.ndarray, query: np.ndarray) -> np.ndarray:
    """(N,) float32 cosine similarities (within QUANTUM) of (N, D) int16 unit features with a (D,) unit query.

    Chunk by chunk through a float32 copy that stays in cache, and einsum, not BLAS: each row's value
    is the same whatever slice of rows it is computed in (BLAS's differs in the last bit with the
    slice's alignment), so FeatureGroups reproduces `select` exactly; and it stays on one core, where
    a threaded BLAS call of a few thousand rows stalls for milliseconds whenever the other core is
    busy (Blender's drawing, another program).
    """
    scaled = (query / UNIT_SCALE).astype(np.float32)
    result = np.empty(len(unit), np.float32)
    buffer = np.empty((min(CHUNK, len(unit)), unit.shape[1]), np.float32)
    for start in range(0, len(unit), CHUNK):
        rows = buffer[: min(CHUNK, len(unit) - start)]
        rows[...] = unit[start : start + len(rows)]
        np.einsum("nd,d->n", rows, scaled, out=result[start : start + len(rows)])
    return result


def cosines(unit: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """(N, K) float32 cosine similarities of (N, D) int16 unit features with (K, D) unit directions."""
    result = np.empty((len(unit), len(directions)), np.float32)
    scaled = (directions.T / UNIT_SCALE).astype(np.float32)
    for start in range(0, len(unit), CHUNK):
        np.matmul(unit[start : start + CHUNK].astype(np.float32), scaled, out=result[start : start + CHUNK])
    return result


def select(unit: np.ndarray, query: np.ndarray, threshold: float | np.floating | np.ndarray) -> np.ndarray:
    """(N,) bool: the Gaussians whose unit feature has cosine similarity above `threshold` with `query`; (T, N)
    for a (T, 1) array of thresholds."""
    return similarities(unit, query) > threshold


@dataclass
class FeatureGroups:
    """One level's unit features sorted into groups of similar direction, built once per splat and level.

    A click's similarity pass then reads only the groups that straddle its threshold: a group whose
    members all lie, by its centre's angle and its angular radius, too far from the click's feature
    is skipped, one whose members all lie close enough is selected whole. Within a group that
    straddles it, members are sorted by their angle to the centre, so the inner ones that the same
    bound settles are skipped or selected without being read (a click on an object whose feature
    lies just outside a large object's threshold read most of that object before). Decisions keep a
    margin over float32 rounding (MARGIN) and over the fixed point's (QUANTUM), so the selection is
    `select`'s. Whole groups are united as packed bitmaps (N / 8 bytes each), as a scatter of
    millions of ids costs more than the similarity pass.
    """

    order: np.ndarray  # (N,) int32 Gaussian ids, group by group
    rows: np.ndarray  # (N,) int32 each Gaussian's row in `unit` (the inverse of `order`)
    unit: np.ndarray  # (N, D) int16 unit features (unit_features) in `order`
    starts: np.ndarray  # (G + 1,) int64 where each group begins
    centres: np.ndarray  # (G, D) float64 unit directions
    radii: np.ndarray  # (G,) float64 radians from the centre to the group's farthest member (pi: a zero feature)
    spreads: np.ndarray  # (N,) uint16 in `order`: each member's angle to its centre in steps of STEP, rounded down
    bitmaps: np.ndarray  # (G, ceil(N / 8)) uint8 each group's members in Gaussian order, packed

    CENTRES = 64  # spherical k-means on a sample; each centre has a core group and a rim group
    CORE = np.cos(np.radians(25.0))  # members closer than this (cosine) to their centre form its core
    SAMPLE, ITERATIONS = 20_000, 10
    MARGIN = 2e-3  # radians: above the float32 rounding of any angle here (worst near 0 rad: sqrt(2 * 3e-7))
    STEP = np.pi / 65535  # radians per step of `spreads`

    @classmethod
    def of(cls, unit: np.ndarray, seed: int = 0) -> FeatureGroups:
        """Groups of `unit` (N, D) int16 unit features, in Gaussian order."""
        return finished(cls.steps(unit, seed))

    @classmethod
    def steps(cls, unit: np.ndarray, seed: int = 0) -> Generator[None, None, FeatureGroups]:
        """`of` in steps (ClickIndex.build), a block of Gaussians each."""
        centres = yield from spherical_kmeans_steps(unit, cls.CENTRES, cls.SAMPLE, cls.ITERATIONS, seed)
        keys = np.empty(len(unit), np.uint8)  # each Gaussian's group: 2 x its nearest centre, + 1 in the rim
        spreads = np.empty(len(unit), np.uint16)
        for start in range(0, len(unit), CHUNK):  # (chunk, K) similarities stay in cache
            yield
            rows = unit_rows(unit[start : start + CHUNK])
            norms = np.linalg.norm(rows, axis=1)
            similarity = (rows @ centres.T.astype(np.float32)) / np.maximum(norms, np.float32(1e-30))[:, None]
            nearest = similarity.argmax(axis=1)
            # a zero feature (no direction: its similarity is 0 with any click) gives its group a radius of pi
            cosine = np.where(norms > 0, similarity[np.arange(len(rows)), nearest], np.float32(-1.0))
            keys[start : start + len(rows)] = nearest * 2 + (cosine < cls.CORE)
            angles = np.arccos(np.clip(cosine, -1.0, 1.0)) / np.float32(cls.STEP)
            spreads[start : start + len(rows)] = np.minimum(angles, 65535)
        by_spread = yield from stable_order_steps(spreads, 65536)  # by group, then angle: two counting sorts
        by_group = yield from stable_order_steps((yield from gather_steps(keys, by_spread)), 2 * len(centres))
        order = yield from gather_steps(by_spread, by_group)
        sorted_spreads = yield from gather_steps(spreads, order)
        counts = np.bincount(keys, minlength=2 * len(centres))
        filled = np.flatnonzero(counts)
        starts = np.concatenate([[0], np.cumsum(counts[filled])])
        rows = np.empty_like(order)
        for begin in range(0, len(order), BLOCK):
            yield
            block = order[begin : begin + BLOCK]
            rows[block] = np.arange(begin, begin + len(block), dtype=np.int32)
        group_of = np.zeros(len(counts), np.uint8)  # (2K,) -> (N,): each Gaussian's group (2K <= 256)
        group_of[filled] = np.arange(len(filled))
        group_of = group_of[keys]
        bitmaps = np.zeros((len(filled), (len(unit) + 7) // 8), np.uint8)
        for g in range(len(filled)):
            yield
            bitmaps[g] = np.packbits(group_of == g)
        sorted_unit = yield from gather_steps(unit, order)
        return cls(
            order,
            rows,
            sorted_unit,
            starts,
            centres[filled // 2],
            (sorted_spreads[starts[1:] - 1] + 1.0) * cls.STEP,
            sorted_spreads,
            bitmaps,
        )

    def settled(self, begin: int, end: int, angle: float) -> int:
        """How many of the members begin:end lie surely nearer their centre than `angle` (radians)."""
        steps = int(np.floor(angle / self.STEP)) - 2  # a member with spread s lies within (s + 1) steps
        return 0 if steps < 0 else int(np.searchsorted(self.spreads[begin:end], np.uint16(min(steps, 65535)), "right"))

    def features(self, ids: np.ndarray) -> np.ndarray:
        """(K, D) int16 unit features of Gaussians `ids`."""
        return self.unit[self.rows[ids]]

    def cosines(self, directions: np.ndarray) -> np.ndarray:
        """(N, K) float32 cosine similarities of every Gaussian, in Gaussian order, with (K, D) unit directions."""
        result = np.empty((len(self.order), len(directions)), np.float32)
        result[self.order] = cosines(self.unit, directions)
        return result

    def select(self, query: np.ndarray, threshold) -> np.ndarray:
        """(N,) bool, or (T, N) for T thresholds: exactly `select(unit, query, threshold)`."""
        thresholds = np.atleast_1d(np.asarray(threshold, dtype=np.float64))
        count = len(self.order)
        selection = np.zeros((len(thresholds), count), bool)
        angles = np.arccos(np.clip(self.centres @ query.astype(np.float64), -1.0, 1.0))  # (G,)
        highest = np.cos(np.maximum(angles - self.radii - self.MARGIN, 0.0)) + QUANTUM  # (G,) over any member's
        lowest = np.cos(np.minimum(angles + self.radii + self.MARGIN, np.pi)) - QUANTUM  # under any member's
        for index, value in enumerate(thresholds):
            whole = lowest > value
            partial = ~whole & (highest > value)
            if whole.sum() * 2 > len(whole):  # most groups whole: unite the others and take the complement
                packed = ~united(self.bitmaps, np.flatnonzero(~whole))
                selection[index] = np.unpackbits(packed, count=count).view(bool)
            elif whole.any():
                selection[index] = np.unpackbits(united(self.bitmaps, np.flatnonzero(whole)), count=count).view(bool)
            # within a straddling group, members nearer its centre than these (radians) are settled unread
            skipped = angles - self.MARGIN - np.arccos(np.clip(value - QUANTUM, -1.0, 1.0))  # (G,) are not selected
            chosen = np.arccos(np.clip(value + QUANTUM, -1.0, 1.0)) - angles - self.MARGIN  # (G,) are selected
            for g in np.flatnonzero(partial):
                begin, end = self.starts[g], self.starts[g + 1]
                selected = self.settled(begin, end, chosen[g])
                selection[index, self.order[begin : begin + selected]] = True
                first = begin + max(selected, self.settled(begin, end, skipped[g]))
                selection[index, self.order[first:end][select(self.unit[first:end], query, np.float32(value))]] = True
        return selection if np.ndim(threshold) else selection[0]


def united(bitmaps: np.ndarray, groups: np.ndarray) -> npt.NDArray[np.uint8]:
    """(B,) uint8 the union of packed bitmaps `groups` of (G, B), zeros for none."""
    packed = np.zeros(bitmaps.shape[1], np.uint8)
    for g in groups:
        np.bitwise_or(packed, bitmaps[g], out=packed)
    return packed


def spherical_kmeans_steps(
    unit: np.ndarray, count: int, sample: int, iterations: int, seed: int
) -> Generator[None, None, np.ndarray]:
    """(K <= count, D) float64 unit centres of a seeded sample of `unit` (N, D) int16, by spherical k-means; an
    iteration a step (ClickIndex.build)."""
    rng = np.random.default_rng(seed)
    points = unit[np.sort(rng.choice(len(unit), min(sample, len(unit)), replace=False))].astype(np.float64)  # (S, D)
    points /= np.maximum(np.linalg.norm(points, axis=1, keepdims=True), 1e-12)
    centres = points[rng.choice(len(points), min(count, len(points)), replace=False)]
    for _ in range(iterations):
        yield
        labels = (points @ centres.T).argmax(axis=1)
        sums = np.zeros_like(centres)
        np.add.at(sums, labels, points)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        centres = np.where(norms > 0, sums / np.maximum(norms, 1e-12), centres)  # an empty cluster keeps its centre
    return centres


@dataclass
class Click:
    camera: object  # cameras.Camera
    x: float  # image point, pixel centres at +0.5
    y: float
    mode: Mode = "ADD"


@dataclass
class PlainFeatures:
    """One level's unit features in Gaussian order, read whole by each click: for a few clicks on a splat
    (`segment`), where building FeatureGroups costs more than it saves, for the clicks before the groups are
    built, and the reference the groups match."""

    unit: np.ndarray  # (N, D) int16 (unit_features)

    def features(self, ids: np.ndarray) -> np.ndarray:
        return self.unit[ids]

    def cosines(self, directions: np.ndarray) -> np.ndarray:
        """(N, K) float32 cosine similarities with (K, D) unit directions."""
        return cosines(self.unit, directions)

    def select(self, query: np.ndarray, threshold) -> np.ndarray:
        """(N,) bool, or (T, N) for T thresholds."""
        return select(
            self.unit, query, np.asarray(threshold, np.float32)[..., None] if np.ndim(threshold) else threshold
        )


RAW_MARGIN = QUANTUM + 1e-5  # bounds |similarity - float32 cosine of the features as stored|: fixed point + rounding


@dataclass
class RawFeatures:
    """One level's features as stored, for the clicks before their unit features are made (unit_of: 0.1 s to
    0.5 s at 6 million Gaussians, where one float32 pass over the stored features takes 30 ms).

    That pass decides every Gaussian whose cosine lies farther than RAW_MARGIN from the threshold; the
    few within it are decided by their own unit rows, so the selection is exactly PlainFeatures'.
    """

    source: np.ndarray  # (N, D) float32 features as stored; fastest as a transposed view of (D, N)

    def features(self, ids: np.ndarray) -> np.ndarray:
        """(K, D) int16 unit features of Gaussians `ids`: unit_features' rows."""
        return unit_of(self.source[ids])

    def cosines(self, directions: np.ndarray) -> np.ndarray:
        """(N, K) float32 cosine similarities with (K, D) unit directions: PlainFeatures' (a one-off, Segment
        Everything: the unit features are made for it)."""
        return cosines(unit_of(self.source), directions)

    def select(self, query: np.ndarray, threshold, chunk: int = 1 << 16) -> np.ndarray:
        """(N,) bool, or (T, N) for T thresholds: exactly PlainFeatures.select. Chunk by chunk: no temporary
        of N values (fresh memory costs page faults, the pass's own cost again)."""
        values = np.asarray(threshold, np.float32)[..., None]  # (1,) or (T, 1)
        low, high = values - np.float32(RAW_MARGIN), values + np.float32(RAW_MARGIN)
        count = len(self.source)
        selection = np.empty((count,) if values.ndim == 1 else (len(values), count), bool)
        query32, near_threshold = np.asarray(query, np.float32), [np.zeros(0, np.int64)]
        for start in range(0, count, chunk):
            rows = self.source[start : start + chunk].T  # (D, C)
            cosine = np.sqrt(np.einsum("dn,dn->n", rows, rows))
            np.divide(query32 @ rows, np.maximum(cosine, np.float32(1e-30), out=cosine), out=cosine)  # within 1e-5
            np.greater(cosine, high, out=selection[..., start : start + len(cosine)])
            near = (cosine >= low) & (cosine <= high)
            near_threshold.append(np.flatnonzero(near.any(axis=0) if near.ndim == 2 else near) + start)
        unsure = np.concatenate(near_threshold)
        if len(unsure):  # within RAW_MARGIN of a threshold: as their unit rows decide
            selection[..., unsure] = PlainFeatures(unit_of(self.source[unsure])).select(query, threshold)
        return selection


def stable_order_steps(keys: np.ndarray, key_count: int) -> Generator[None, None, np.ndarray]:
    """(N,) int32 np.argsort(keys, kind="stable") of keys in [0, key_count), by a counting sort a block a step."""
    counts = np.bincount(keys, minlength=key_count)
    next_slot = np.cumsum(counts) - counts  # (K,) where each key's next Gaussian goes
    order = np.empty(len(keys), np.int32)
    for begin in range(0, len(keys), BLOCK):
        yield
        block = keys[begin : begin + BLOCK]
        local = np.argsort(block, kind="stable")
        sorted_block = block[local]
        block_counts = np.bincount(block, minlength=key_count)
        run_start = np.cumsum(block_counts) - block_counts  # (K,) where each key's run begins in the sorted block
        order[next_slot[sorted_block] + np.arange(len(block)) - run_start[sorted_block]] = begin + local
        next_slot += block_counts
    return order


def gather_steps(source: np.ndarray, ids: np.ndarray) -> Generator[None, None, np.ndarray]:
    """np.take(source, ids, axis=0), a block of rows a step."""
    out = np.empty((len(ids), *source.shape[1:]), source.dtype)
    for begin in range(0, len(ids), BLOCK):
        yield
        np.take(source, ids[begin : begin + BLOCK], axis=0, out=out[begin : begin + BLOCK])
    return out


def finished(steps: Generator[None, None, T]) -> T:
    """What build steps make (CentreGrid.steps, FeatureGroups.steps), run all at once."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


class ClickIndex:
    """What the clicks on one splat reuse: its geometry, its centres' grid, per level its grouped unit features.

    `level_unit(level)` gives that level's (N, D) unit features (`unit_features`); it is called when a
    level is first needed. `level_features(level)`, where given, that level's features as stored
    (`level_columns`): until a level's groups are built, a click compares with those (RawFeatures), so no
    click waits for unit features either. Either may give None for a level whose features are not at hand
    yet: nothing is built for it until `resume()`, and its caller brings them before clicking at it.
    `indexed=False`: no grid and no groups, every click reads everything (a one-off click: `segment`).
    `background=True`: the grid and both levels' groups are built a step at a time by `build(seconds)`,
    which the caller calls when it is idle (the add-on: a Blender timer), and the clicks until then take the
    plain path (the same selection): neither the features' arrival nor a first click waits seconds for them.
    The steps run on the caller's thread, never on one beside it: Blender's Python API is not thread safe
    (a builder thread crashed the add-on's tests in Blender 4.2 and 5.0 while Blender applied a modifier).
    """

    def __init__(
        self,
        geometry: Geometry,
        level_unit,
        hidden: np.ndarray | None = None,
        indexed: bool = True,
        background: bool = False,
        level_features=None,
    ):
        self.geometry, self.level_unit, self.indexed, self.background = geometry, level_unit, indexed, background
        self.level_features = level_features if background else None
        self.hidden = hidden  # (N,) bool: Gaussians no pixel composites and no click selects, or None
        self.grid = CentreGrid.of(geometry) if indexed and not background else None
        self.groups: dict[Level, FeatureGroups | PlainFeatures] = {}
        self._steps: Iterator[None] = iter(())
        self.resume()

    @property
    def nbytes(self) -> int:
        """Memory held: geometry, grid and each level's groups."""
        parts = [self.geometry, self.grid, *self.groups.values()]
        return sum(
            value.nbytes
            for part in parts
            if part is not None
            for value in vars(part).values()
            if isinstance(value, np.ndarray)
        )

    @property
    def built(self) -> bool:
        """Whether every click now takes the indexed path (always, for an index that is not `indexed`)."""
        levels = self.groups.values()
        return not self.indexed or (
            self.grid is not None
            and len(levels) == len(LEVEL_DIMS)
            and all(isinstance(g, FeatureGroups) for g in levels)
        )

    def build(self, seconds: float) -> bool:
        """Build steps for about `seconds` (a step may overrun it: by at most 0.1 s at 6 million Gaussians on a
        2-core CPU); whether steps remain."""
        end = time.perf_counter() + seconds
        for _ in self._steps:
            if time.perf_counter() >= end:
                return True
        return False

    def wait(self) -> None:
        """Until every level is built (tests, benchmarks)."""
        self.build(math.inf)
        for level in LEVEL_DIMS:
            self._unit_level(level)

    def move(self, geometry: Geometry) -> None:
        """The points moved: a new geometry and grid; the features, and so their groups, stay."""
        self.geometry, self.grid = geometry, None
        if self.indexed and not self.background:
            self.grid = CentreGrid.of(geometry)
        self.resume()

    def replace_features(self, level_unit, level_features=None) -> None:
        """New features for the same points (a training checkpoint): each level's unit features and groups anew."""
        self.level_unit, self.groups = level_unit, {}
        self.level_features = level_features if self.background else None
        self.resume()

    def resume(self) -> None:
        """What the index holds changed (or features that were not at hand are now): the build starts over, and
        keeps what is built and still valid."""
        if self.indexed and self.background:
            self._steps = self._build_steps()

    def stop(self) -> None:
        """No more build steps: the index is no longer used."""
        self._steps = iter(())

    def level(self, level: Level) -> FeatureGroups | PlainFeatures | RawFeatures:
        """What a click at `level` compares with: its groups once built, else its features as stored where the
        index holds them, else its plain unit features (made here when missing: `_unit_level`)."""
        current = self.groups.get(level)
        if isinstance(current, FeatureGroups) or (current is not None and self.level_features is None):
            return current
        stored = None if self.level_features is None else self.level_features(level)
        made = self._unit_level(level) if stored is None else RawFeatures(stored)
        if made is None:
            raise ValueError(f"the {level} level's features are not at hand: bring them before clicking at it")
        return made

    def _unit_level(self, level: Level) -> FeatureGroups | PlainFeatures | None:
        """The level's groups or plain unit features, made here when missing (None: not at hand yet)."""
        current = self.groups.get(level)
        if current is None:
            unit = self.level_unit(level)
            if unit is None:
                return None
            current = PlainFeatures(unit) if not self.indexed or self.background else FeatureGroups.of(unit)
            self.groups[level] = current
        return current

    def query(self, level: Level, click: Click) -> np.ndarray | None:
        """The unit feature rendered at the click's pixel, or None where nothing is drawn."""
        ids, weights = pixel_weights(self.geometry, click.camera, click.x, click.y, self.grid, self.hidden)
        return None if len(ids) == 0 else click_feature(self.level(level).features(ids), np.arange(len(ids)), weights)

    def _unit_steps(self, level: Level) -> Generator[None, None, FeatureGroups | PlainFeatures | None]:
        """`_unit_level` in steps where the features as stored are at hand (`unit_features` of them, a chunk a
        step)."""
        stored = None if level in self.groups or self.level_features is None else self.level_features(level)
        if stored is not None:
            unit = yield from unit_steps(stored)
            self.groups.setdefault(level, PlainFeatures(unit))  # unless a click made them meanwhile
        return self._unit_level(level)

    def _build_steps(self) -> Iterator[None]:
        """The coarse level's unit features (a click needs them first), the grid, then per level its groups. The
        steps are dropped, mid-way, when what they build from changes (`resume`)."""
        yield from self._unit_steps("coarse")
        if self.grid is None:
            self.grid = yield from CentreGrid.steps(self.geometry)
        for level in LEVEL_DIMS:
            plain = yield from self._unit_steps(level)
            if isinstance(plain, PlainFeatures):
                self.groups[level] = yield from FeatureGroups.steps(plain.unit)
        if self.built:
            self.level_unit = self.level_features = None  # every level is built: what they came from can go


def combine(selection: np.ndarray, hit: np.ndarray, mode: Mode) -> np.ndarray:
    """(N,) or (T, N) bool: `hit` replacing the selection (SET), added to it (ADD) or taken from it (SUBTRACT)."""
    if mode == "SET":
        return hit.copy()
    return selection | hit if mode == "ADD" else selection & ~hit


def compose(
    index: ClickIndex, clicks: list[Click], level: Level, threshold, start: np.ndarray
) -> tuple[np.ndarray, list]:
    """The selection `clicks` make from `start` ((N,) bool, or (T, N) for T thresholds), and the clicks that hit
    nothing.

    The one composition of clicks that the add-on, `segment` and `eval` share: SET replaces, ADD
    unites, SUBTRACT removes; hidden Gaussians end unselected.
    """
    selection, missed = start.copy(), []
    for click in clicks:
        query = index.query(level, click)
        if query is None:
            missed.append(click)
            continue
        selection = combine(selection, index.level(level).select(query, threshold), click.mode)
    if index.hidden is not None:
        selection[..., index.hidden] = False
    return selection, missed
