"""Cameras planned from a splat alone, for training when the photos it came from are not at hand.

The rule (docs/views_from_splat.md explains it):
  1. Extent: an opacity-weighted density grid (64 cells a side) over the 0.5-99.5 % box of the positions;
     the densest cells holding half of all opacity are the core. Floaters and the sparse, blurry outside
     of a capture hold little opacity per cell and drop out. Centre: the core's median. A floor is the core's
     lowest band (5 % of the heights, widened by 5 % of their range) where it holds at least FLOOR_SHARE of the
     core's opacity (a lawn, a table top) and the highest band does not (a flat thing's two faces are no floor
     and its top); an object scanned on its own (a turntable, a studio) has none. A core that is all band (a
     dense splat of small things on a wide ground: the densest cells are all ground) is a floor where things
     stand on it.
     Radius: 80 % of the core's opacity off the floor lies within it, so that a large floor does not make the
     things on it small; with no floor, 95 %, so that the whole object is in the frame. Target: the centre
     raised to the median height of what stands on the floor (the core off the floor), not a point of it.
  2. Up: a core with a floor, or no long axis, is flattest along its up (a floor, a table, a donut lying);
     a core much longer along one axis than along the others with no floor stands on its end (a person, a
     guitar on its stand or alone, flat as it is, a bottle). That axis is snapped to a coordinate axis within 30
     degrees, and signed by the frame's convention: a splat's file is in its capture's camera frame, y down
     (COLMAP, 3DGS), or in a z-up frame (Blender, nerfstudio), so -y or +z is up; a tilted axis, or x, points
     away from where all points pile up (the floor). The add-on passes Blender's +Z.
  3. Layout: "inside" when the core surrounds its centre (80 % of 64 rays from it meet a core cell: a
     room, a street), else "object". Object: rings around the whole core, looking at the target
     (elevations 25, 35, 45 degrees, at the distance where the core fills the shorter side of the frame),
     the views picked far apart in direction (rings at 15 and 60 degrees put most views on those two: side-on
     views where things hide each other and top-down ones, and small parts were lost). Inside: cameras near
     the centre looking outwards at several headings, level and tilted 25 degrees up and down.
  4. Never from inside floaters: where Gaussians nearer than a third of the distance to the target would
     hide more than a tenth of the frame (their 2-sigma discs composited on a coarse grid), the camera
     moves towards its target, up to three times 15 %, and is dropped if that does not clear it.
numpy only: the add-on plans inside Blender and shows the cameras before training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from .camera import Camera, look_at

MIN_GAUSSIANS = 50  # fewer than this is not a scene to plan views for
GRID_CELLS = 64  # per axis of the density grid
CORE_MASS = 0.5  # share of the opacity the core's cells hold
INSIDE_HIT_SHARE = 0.8  # rays from the centre that must meet the core for "inside"
NEAR_FIELD = 1 / 3  # of the distance to the target: the camera's own surroundings
NEAR_COVER_LIMIT = 0.1  # share of the frame that opaque Gaussians in the near field may cover
FOCAL_PER_WIDTH = 0.9  # focal length in pixels per image width: a 58 degree horizontal field of view
ASPECT = 0.75  # height / width of planned views
LAYOUTS = ("auto", "object", "inside")
RING_ELEVATIONS = (25, 35, 45)  # degrees above the horizon of the rings of views around an object-like scene
FLOOR_SHARE = 0.4  # of the core's opacity in its lowest band: a floor (rule 1)
STANDING_SHARE = 0.05  # of the opacity over a core that is all floor, within its reach: things stand on it
FRAMED_SHARE = (0.8, 0.95)  # of the core's opacity within the radius: with a floor (left out), with none
LONG_AXIS = 0.45  # a core whose second extent is below this share of its first, with no floor, stands on its end
SNAP_DEGREES = 30  # an up this close to a coordinate axis is that axis
CONVENTION_UP = {1: -1.0, 2: 1.0}  # coordinate axis -> the sign that is up in splat files (rule 2)


@dataclass
class SceneExtent:
    center: np.ndarray  # (3,) the core's median position
    target: np.ndarray  # (3,) what views around the scene look at: the centre at the height of what stands on the floor
    radius: float  # the core's radius: 80 % of its opacity lies within it (the floor excluded where there is one)
    up: np.ndarray  # (3,) unit vector
    floor: bool  # the core's lowest band holds FLOOR_SHARE of its opacity: things stand on a floor
    layout: str  # "object" or "inside"
    core: np.ndarray  # (G, G, G) bool: the core's grid cells
    low: np.ndarray  # (3,) corner of the grid
    cell: np.ndarray  # (3,) size of a grid cell


@dataclass
class ViewPlan:
    cameras: list  # list[Camera], OpenCV, in the splat's frame
    extent: SceneExtent
    dropped: int  # planned cameras whose near field stayed full of Gaussians


def planned_size(long_side: int) -> tuple[int, int]:
    """(width, height) of a planned view whose longer side is `long_side` pixels."""
    return int(long_side), max(1, round(long_side * ASPECT))


def usable(positions: np.ndarray, alphas: np.ndarray, name: str = "the splat") -> tuple[np.ndarray, np.ndarray]:
    """The finite, not fully transparent Gaussians; a UserError when too few or too flat to plan views around."""
    keep = np.isfinite(positions).all(axis=1) & np.isfinite(alphas) & (alphas >= 1 / 255)
    positions, alphas = positions[keep].astype(np.float64), alphas[keep].astype(np.float64)
    if len(positions) < MIN_GAUSSIANS:
        raise UserError(
            f"{name}: {len(positions)} visible Gaussians are too few to plan views around "
            f"(at least {MIN_GAUSSIANS} are needed)"
        )
    spread = np.linalg.svd(positions - positions.mean(axis=0), full_matrices=False, compute_uv=False)
    if spread[0] <= 0 or spread[2] < 1e-4 * spread[0]:
        shape = "one point" if spread[0] <= 0 else "a line" if spread[1] < 1e-4 * spread[0] else "one plane"
        raise UserError(
            f"{name}: all its Gaussians lie in {shape}, so it has no inside or outside to plan views around"
        )
    return positions, alphas


def scene_extent(
    positions: np.ndarray, alphas: np.ndarray, up=None, layout: str = "auto", name: str = "the splat"
) -> SceneExtent:
    """Where the scene is, which way is up and whether views look at it or out from it (rules 1-3 above)."""
    if layout not in LAYOUTS:
        raise UserError(f"view layout {layout!r}: use one of {', '.join(LAYOUTS)}")
    positions, alphas = usable(positions, alphas, name)
    low, high = np.percentile(positions, [0.5, 99.5], axis=0)
    high = np.maximum(high, low + 1e-6 * max(1.0, float(np.abs(high - low).max())))
    mass, _ = np.histogramdd(positions, bins=GRID_CELLS, range=list(zip(low, high)), weights=alphas)
    order = np.argsort(mass, axis=None)[::-1]
    cumulative = np.cumsum(mass.reshape(-1)[order])
    core = np.zeros(mass.size, bool)
    core[order[: int(np.searchsorted(cumulative, CORE_MASS * cumulative[-1])) + 1]] = True
    core = core.reshape(mass.shape)
    extent = SceneExtent(
        np.zeros(3), np.zeros(3), 0.0, np.zeros(3), False, layout, core, low, (high - low) / GRID_CELLS
    )
    member = in_core(positions, extent)
    core_points, core_alphas = positions[member], alphas[member]
    extent.center = np.median(core_points, axis=0)
    if up is None:
        extent.up = estimate_up(core_points, core_alphas, positions, alphas)
    else:
        extent.up = np.asarray(up, np.float64) / np.linalg.norm(up)
    scene = (positions, alphas)
    band = floor_band(core_points, core_alphas, extent.center, extent.up, scene)
    extent.floor = band is not None
    upright, upright_alphas = off_floor(core_points, core_alphas, band, extent.center, extent.up, scene)
    extent.radius = core_radius(upright, upright_alphas, extent.center, extent.floor)
    extent.target = extent.center + float(np.median((upright - extent.center) @ extent.up)) * extent.up
    if layout == "auto":
        extent.layout = (
            "inside" if enclosed_share(core, low, extent.cell, extent.center) >= INSIDE_HIT_SHARE else "object"
        )
    return extent


def estimate_up(core: np.ndarray, alphas: np.ndarray, everything: np.ndarray, all_alphas: np.ndarray) -> np.ndarray:
    """Up (rule 2) from the core (P, 3), its opacities (P,) and all the points (N, 3) with theirs (N,)."""
    centre = np.median(core, axis=0)

    def floored(direction: np.ndarray) -> bool:
        return floor_band(core, alphas, centre, direction, (everything, all_alphas)) is not None

    _, spread, axes = np.linalg.svd((core - core.mean(axis=0))[:: max(1, len(core) // 200_000)], full_matrices=False)
    axis = axes[2]
    if spread[1] < LONG_AXIS * spread[0] and not (floored(axis) or floored(-axis)):
        axis = axes[0]
    index = int(np.argmax(np.abs(axis)))
    if abs(axis[index]) > np.cos(np.radians(SNAP_DEGREES)):
        axis = np.eye(3)[index]
        if index in CONVENTION_UP:
            up = CONVENTION_UP[index] * axis
            return -up if floored(-up) and not floored(up) else up
    low, middle, high = np.percentile(everything[:: max(1, len(everything) // 1_000_000)] @ axis, [1, 50, 99])
    return axis if middle - low < high - middle else -axis  # the median sits close to the floor


def floor_band(
    points: np.ndarray, alphas: np.ndarray, center: np.ndarray, up: np.ndarray, scene=None
) -> np.ndarray | None:
    """(P,) bool: the points (P, 3) in the lowest band of heights along `up` (the lowest 5 %, widened by 5 % of
    their range) where that band holds at least FLOOR_SHARE of the opacity `alphas` (P,), leaves 5 % of the
    points above it, and the highest band (its mirror) holds less; else None (no floor: a board's back face).

    A core that is all band (a wide ground with small things on it, whose densest cells are all ground) is a
    floor where things stand on it: STANDING_SHARE of `scene`'s opacity ((N, 3) points, (N,) opacities: all of
    them) over the band, within the core's reach (`standing`). A board scanned alone has nothing on it."""
    height = (points - center) @ up
    band = height < np.percentile(height, 5) + 0.05 * np.ptp(height)
    top = height > np.percentile(height, 95) - 0.05 * np.ptp(height)
    share = FLOOR_SHARE * alphas.sum()
    if alphas[band].sum() < share:
        return None
    if all_band(band):
        if scene is None:
            return None
        on_it, near = standing(points, band, center, up, scene)
        return band if scene[1][on_it].sum() >= STANDING_SHARE * scene[1][near].sum() else None
    return None if alphas[top].sum() >= share else band


def standing(points: np.ndarray, band: np.ndarray, center: np.ndarray, up: np.ndarray, scene):
    """(N,) bool twice: `scene`'s points over the floor band of the core `points` (P, 3) and within the core's
    horizontal reach, and all of them within that reach."""
    everything = scene[0]
    flat = (points - center) - np.outer((points - center) @ up, up)
    reach = float(np.linalg.norm(flat, axis=1).max())
    offsets = everything - center
    heights = offsets @ up
    near = np.linalg.norm(offsets - np.outer(heights, up), axis=1) <= reach
    return near & (heights > float(((points[band] - center) @ up).max())), near


def all_band(band: np.ndarray) -> bool:
    """Whether the lowest band leaves under 5 % of the core's points above it."""
    return (~band).sum() < 0.05 * len(band)


def core_radius(upright: np.ndarray, alphas: np.ndarray, center: np.ndarray, floor: bool) -> float:
    """FRAMED_SHARE of the opacity of the core off the floor (`off_floor`: points (P, 3), opacities (P,)) lies
    within this distance of its centre: 80 % where there is a floor (a large floor holds most of a scene's
    opacity; framing all of it makes the things on it small), 95 % of an object with none (all of it in the
    frame)."""
    share = FRAMED_SHARE[0] if floor else FRAMED_SHARE[1]
    distance = np.linalg.norm(upright - center, axis=1)
    order = np.argsort(distance)
    cumulative = np.cumsum(alphas[order])
    return float(max(distance[order][np.searchsorted(cumulative, share * cumulative[-1])], 1e-6))


def sphere_directions(count: int) -> np.ndarray:
    """(count, 3) unit vectors spread evenly over the sphere (a Fibonacci lattice)."""
    k = np.arange(count) + 0.5
    z = 1 - 2 * k / count
    angle = np.pi * (1 + 5**0.5) * k
    r = np.sqrt(1 - z * z)
    return np.stack([r * np.cos(angle), r * np.sin(angle), z], axis=1)


def enclosed_share(core: np.ndarray, low: np.ndarray, cell: np.ndarray, center: np.ndarray, rays: int = 64) -> float:
    """Share of the rays from `center` that meet a core cell before leaving the grid."""
    steps = np.arange(1, 2 * GRID_CELLS) * 0.5  # half a cell apart, out past the grid's far corner
    hits = 0
    start = (center - low) / cell  # in cells
    for direction in sphere_directions(rays):
        cells = np.floor(start + steps[:, None] * direction).astype(np.int64)
        cells = cells[((cells >= 0) & (cells < GRID_CELLS)).all(axis=1)]
        away = np.linalg.norm(cells + 0.5 - start, axis=1) > 1.0  # not the centre's own cell
        hits += bool(core[cells[away, 0], cells[away, 1], cells[away, 2]].any())
    return hits / rays


def basis(up: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors perpendicular to `up` and to each other: the horizontal plane."""
    side = np.eye(3)[int(np.argmin(np.abs(up)))]
    first = np.cross(up, side)
    first /= np.linalg.norm(first)
    return first, np.cross(up, first)


def ring(center, up, distance: float, elevations, azimuths: int) -> list[np.ndarray]:
    """Eyes on circles around `center` at `distance`, one circle per elevation (radians), every other one turned
    half a step."""
    first, second = basis(up)
    eyes = []
    for number, elevation in enumerate(elevations):
        for i in range(azimuths):
            azimuth = 2 * np.pi * (i + 0.5 * (number % 2)) / azimuths
            horizontal = np.cos(azimuth) * first + np.sin(azimuth) * second
            eyes.append(center + distance * (np.cos(elevation) * horizontal + np.sin(elevation) * up))
    return eyes


def off_floor(points: np.ndarray, alphas: np.ndarray, band, center: np.ndarray, up: np.ndarray, scene):
    """The points (P, 3) and their opacities (P,) above the floor `band` (`floor_band`); all where there is none.
    A core that is all floor: what stands on it, from `scene`."""
    if band is None:
        return points, alphas
    if all_band(band):
        on_it, _ = standing(points, band, center, up, scene)
        return scene[0][on_it], scene[1][on_it]
    return points[~band], alphas[~band]


def inside_views(extent: SceneExtent, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(eye, target) pairs from near the centre, looking outwards at several headings, level and tilted."""
    pairs = []
    for tilt in (0.0, np.radians(-25), np.radians(25)):
        for direction in ring(np.zeros(3), extent.up, 1.0, [tilt], max(8, count)):
            horizontal = direction - (direction @ extent.up) * extent.up
            eye = extent.center - 0.15 * extent.radius * horizontal / np.linalg.norm(horizontal)
            pairs.append((eye, eye + extent.radius * direction))
    return pairs


def near_cover(
    camera: Camera, points: np.ndarray, alphas: np.ndarray, sizes: np.ndarray, depth_limit: float, bins: int = 32
) -> float:
    """Share of the frame that Gaussians nearer than `depth_limit` hide: each one's 2-sigma disc, opacity-weighted,
    splatted into a grid of `bins` columns (and rows in proportion) and composited there, overlaps not counted twice."""
    pixels, depth = camera.project(points)
    near = (depth > 1e-9) & (depth < depth_limit)
    cell = camera.width / bins
    rows = max(1, round(camera.height / cell))
    radius = 2 * camera.fx * sizes[near] / depth[near] / cell  # in bins
    x, y = (pixels[near] / cell).T
    x0 = np.clip(np.floor(x - radius), 0, bins).astype(np.int64)
    x1 = np.clip(np.floor(x + radius) + 1, 0, bins).astype(np.int64)
    y0 = np.clip(np.floor(y - radius), 0, rows).astype(np.int64)
    y1 = np.clip(np.floor(y + radius) + 1, 0, rows).astype(np.int64)
    spans_x, spans_y = x1 - x0, y1 - y0
    seen = (spans_x > 0) & (spans_y > 0)
    if not seen.any():
        return 0.0
    # each Gaussian's opacity spread over its box: the share of each bin its disc fills, at most all of it
    fill = np.minimum(1.0, np.pi * radius**2 / np.maximum(spans_x * spans_y, 1))
    density = -np.log1p(-np.clip(alphas[near] * fill, 0.0, 0.999))
    density, x0, y0, spans_x, spans_y = (v[seen] for v in (density, x0, y0, spans_x, spans_y))
    grid = np.zeros((rows + 1, bins + 1))  # a 2D difference array: each box adds its density with 4 corner updates
    np.add.at(grid, (y0, x0), density)
    np.add.at(grid, (y0, x0 + spans_x), -density)
    np.add.at(grid, (y0 + spans_y, x0), -density)
    np.add.at(grid, (y0 + spans_y, x0 + spans_x), density)
    optical_depth = grid.cumsum(axis=0).cumsum(axis=1)[:rows, :bins]
    return float(np.mean(1.0 - np.exp(-optical_depth)))


def spread_pick(eyes: list, targets: list, count: int) -> list[int]:
    """`count` indices of (eye, target) pairs whose viewing directions are far apart (farthest-point sampling)."""
    if count <= 0:
        return []
    if count >= len(eyes):
        return list(range(len(eyes)))
    directions = np.array([(e - t) / np.linalg.norm(e - t) for e, t in zip(eyes, targets)])
    chosen = [0]
    closest = directions @ directions[0]
    while len(chosen) < count:
        pick = int(np.argmin(closest))
        chosen.append(pick)
        closest = np.maximum(closest, directions @ directions[pick])
    return sorted(chosen)


def plan_views(
    positions: np.ndarray,
    alphas: np.ndarray,
    sizes: np.ndarray,
    count: int = 24,
    long_side: int = 512,
    up=None,
    layout: str = "auto",
    name: str = "the splat",
) -> ViewPlan:
    """`count` cameras (`long_side` px wide, 4:3) that see the whole scene from several sides; see the module's rule.

    positions (N, 3), alphas (N,) opacity in [0, 1], sizes (N,) each Gaussian's largest standard deviation.
    """
    if count < 1:
        raise UserError(f"views: {count} is too few; plan at least one")
    if long_side < 16:
        raise UserError(f"view size: {long_side} px is too small to segment (at least 16)")
    extent = scene_extent(positions, alphas, up, layout, name)
    width, height = planned_size(long_side)
    focal = FOCAL_PER_WIDTH * width
    half_fov = np.arctan(0.5 * min(width, height) / focal)
    keep = np.isfinite(positions).all(axis=1) & (alphas >= 0.1) & np.isfinite(sizes)
    sample = np.nonzero(keep)[0][
        :: max(1, int(keep.sum()) // 100_000)
    ]  # an estimate of what covers a frame needs no more
    points, point_alphas, point_sizes = positions[sample].astype(np.float64), alphas[sample], sizes[sample]

    # Candidates (eye, target): out from the centre, or rings around the whole core.
    if extent.layout == "inside":
        pairs = inside_views(extent, count)
    else:
        distance = extent.radius / np.sin(half_fov)
        eyes = ring(extent.target, extent.up, distance, np.radians(RING_ELEVATIONS), max(12, count))
        pairs = [(eye, extent.target) for eye in eyes]
    clear_eyes, clear_targets = [], []
    for eye, target in pairs:
        eye = clear_view(eye, target, width, height, focal, extent.up, points, point_alphas, point_sizes)
        if eye is not None:
            clear_eyes.append(eye)
            clear_targets.append(target)
    dropped = len(pairs) - len(clear_eyes)
    cameras: list[Camera] = [
        look_at(f"view_{number:03d}.png", clear_eyes[index], clear_targets[index], width, height, focal, up=extent.up)
        for number, index in enumerate(spread_pick(clear_eyes, clear_targets, count))
    ]
    if not cameras:
        raise UserError(
            f"{name}: every planned view starts inside dense Gaussians (floaters or a closed space) or "
            f"looks at the scene through them; place cameras by hand"
        )
    return ViewPlan(cameras, extent, dropped)


def clear_view(eye, target, width, height, focal, up, points, alphas, sizes):
    """`eye`, moved up to three times towards `target` until Gaussians in its near field hide at most a tenth of
    the frame; None if that never happens (rule 4)."""
    for _ in range(4):
        camera = look_at("candidate", eye, target, width, height, focal, up=up)
        if (
            near_cover(camera, points, alphas, sizes, NEAR_FIELD * float(np.linalg.norm(target - eye)))
            <= NEAR_COVER_LIMIT
        ):
            return eye
        eye = eye + 0.15 * (target - eye)
    return None


def in_core(points: np.ndarray, extent: SceneExtent) -> np.ndarray:
    """(P,) whether each finite point (P, 3) lies in one of the core's cells."""
    index = np.floor((points - extent.low) / extent.cell).astype(np.int64)
    inside = ((index >= 0) & (index < GRID_CELLS)).all(axis=1)
    member = np.zeros(len(points), bool)
    member[inside] = extent.core[index[inside, 0], index[inside, 1], index[inside, 2]]
    return member


def plan_splat_views(
    splat, count: int = 24, long_side: int = 512, up=None, layout: str = "auto", name: str = "the splat"
) -> ViewPlan:
    """`plan_views` for a Splat."""
    sizes = np.exp(splat.scales.astype(np.float64)).max(axis=1)
    return plan_views(splat.positions, splat.alphas, sizes, count, long_side, up, layout, name)
