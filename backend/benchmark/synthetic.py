"""Seeded synthetic splat scenes: objects made of parts, on a ground plane, with a label per Gaussian.

The demo, the tests and the benchmarks make their data here, so they need no downloads, and the
labels are exact ground truth for segmentation. The world frame is OpenCV-like: y points down,
so the ground is the plane y = 0 and objects stand at negative y.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..formats.splat import SCALE_COLUMNS, SH_C0, Splat, join_splats


@dataclass
class Part:
    object_name: str
    part_name: str
    shape: str  # "box", "cylinder", "sphere" or "torus"
    center: tuple[float, float, float]
    # box: half extents; cylinder: radius, half height, -; sphere: radius; torus: R, r, -
    size: tuple[float, float, float]
    color: tuple[float, float, float]  # sRGB in [0, 1]


# (object, part, shape, centre, size, colour); the ground is object 0.
DEFAULT_PARTS = [
    Part("ground", "ground", "box", (0.0, 0.02, 0.0), (3.0, 0.02, 3.0), (0.45, 0.55, 0.35)),
    Part("mug", "body", "cylinder", (-1.3, -0.35, 0.3), (0.3, 0.35, 0), (0.85, 0.15, 0.1)),
    Part("mug", "handle", "torus", (-0.92, -0.35, 0.3), (0.15, 0.05, 0), (0.95, 0.75, 0.1)),
    Part("table", "top", "box", (0.6, -0.75, 0.4), (0.7, 0.05, 0.5), (0.55, 0.35, 0.2)),
    Part("table", "legs", "legs", (0.6, -0.35, 0.4), (0.6, 0.35, 0.4), (0.25, 0.15, 0.1)),
    Part("figure", "body", "cylinder", (0.2, -0.4, -1.4), (0.22, 0.4, 0), (0.1, 0.3, 0.85)),
    Part("figure", "head", "sphere", (0.2, -1.0, -1.4), (0.2, 0, 0), (0.95, 0.8, 0.65)),
]


# Objects that `random_layout` places: per kind, (part, shape, offset from the object's foot, size).
Vector = tuple[float, float, float]
# kind -> its parts: (name, shape, centre relative to the object's foot, size)
CATALOGUE: dict[str, list[tuple[str, str, Vector, Vector]]] = {
    "mug": [
        ("body", "cylinder", (0, -0.35, 0), (0.3, 0.35, 0)),
        ("handle", "torus", (0.38, -0.35, 0), (0.15, 0.05, 0)),
    ],
    "table": [("top", "box", (0, -0.75, 0), (0.7, 0.05, 0.5)), ("legs", "legs", (0, -0.35, 0), (0.6, 0.35, 0.4))],
    "figure": [("body", "cylinder", (0, -0.4, 0), (0.22, 0.4, 0)), ("head", "sphere", (0, -1.0, 0), (0.2, 0, 0))],
    "lamp": [
        ("base", "cylinder", (0, -0.05, 0), (0.3, 0.05, 0)),
        ("pole", "cylinder", (0, -0.6, 0), (0.06, 0.5, 0)),
        ("shade", "cylinder", (0, -1.2, 0), (0.3, 0.15, 0)),
    ],
    "bottle": [
        ("body", "cylinder", (0, -0.3, 0), (0.18, 0.3, 0)),
        ("neck", "cylinder", (0, -0.75, 0), (0.08, 0.15, 0)),
    ],
    "snowman": [("bottom", "sphere", (0, -0.3, 0), (0.3, 0, 0)), ("top", "sphere", (0, -0.78, 0), (0.19, 0, 0))],
    "ball": [("ball", "sphere", (0, -0.3, 0), (0.3, 0, 0))],
}
FOOTPRINTS = {"mug": 0.55, "table": 0.9, "figure": 0.3, "lamp": 0.35, "bottle": 0.25, "snowman": 0.35, "ball": 0.35}


def random_layout(objects: int = 6, seed: int = 0, radius: float = 1.9) -> list[Part]:
    """Ground plus `objects` objects of the catalogue at seeded, non-overlapping places, in random colours.

    Different seeds give different scenes of the same kind, so a setting can be tuned on one and
    reported on another.
    """
    rng = np.random.default_rng(seed)
    kinds = list(CATALOGUE)
    chosen = [kinds[i % len(kinds)] for i in rng.permutation(max(objects, len(kinds)))[:objects]]
    parts = [DEFAULT_PARTS[0]]
    placed: list[tuple[float, float, float]] = []
    for number, kind in enumerate(chosen):
        for _ in range(1000):  # rejection sampling: a free spot inside the disc
            x, z = rng.uniform(-radius, radius, 2)
            free = all(np.hypot(x - px, z - pz) > FOOTPRINTS[kind] + reach for px, pz, reach in placed)
            if np.hypot(x, z) < radius and free:
                break
        else:
            raise ValueError(f"no room for {objects} objects within radius {radius}")
        placed.append((x, z, FOOTPRINTS[kind]))
        for part_name, shape, (dx, dy, dz), size in CATALOGUE[kind]:
            red, green, blue = (float(c) for c in rng.uniform(0.1, 0.95, 3))
            parts.append(Part(f"{kind}{number}", part_name, shape, (x + dx, dy, z + dz), size, (red, green, blue)))
    return parts


def sample_surface(part: Part, count: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """(count, 3) points on the part's surface and their (count, 3) unit normals."""
    c = np.asarray(part.center, dtype=np.float64)
    if part.shape == "sphere":
        n = rng.normal(size=(count, 3))
        n /= np.linalg.norm(n, axis=1, keepdims=True)
        return c + part.size[0] * n, n
    if part.shape == "cylinder":  # axis along y
        radius, height = part.size[0], part.size[1]
        angle = rng.uniform(0, 2 * np.pi, count)
        n = np.stack([np.cos(angle), np.zeros(count), np.sin(angle)], axis=1)
        y = rng.uniform(-height, height, count)
        return c + radius * n + np.outer(y, [0, 1, 0]), n
    if part.shape == "torus":  # ring in the x-y plane
        big, small = part.size[0], part.size[1]
        u, v = rng.uniform(0, 2 * np.pi, (2, count))
        ring = np.stack([np.cos(u), np.sin(u), np.zeros(count)], axis=1)
        n = np.cos(v)[:, None] * ring + np.sin(v)[:, None] * np.array([0, 0, 1.0])
        return c + big * ring + small * n, n
    if part.shape == "legs":  # four thin boxes at the corners of a rectangle
        corners = np.array([[sx * part.size[0], 0, sz * part.size[2]] for sx in (-1, 1) for sz in (-1, 1)])
        leg = Part("", "", "box", (0, 0, 0), (0.05, part.size[1], 0.05), part.color)
        points, normals = sample_surface(leg, count, rng)
        return points + c + corners[rng.integers(0, 4, count)], normals
    half = np.asarray(part.size, dtype=np.float64)  # box
    areas = np.array([half[1] * half[2], half[0] * half[2], half[0] * half[1]]) * 2
    axis = rng.choice(3, size=count, p=areas / areas.sum())
    sign = rng.choice([-1.0, 1.0], size=count)
    points = rng.uniform(-1, 1, (count, 3)) * half
    points[np.arange(count), axis] = sign * half[axis]
    normals = np.zeros((count, 3))
    normals[np.arange(count), axis] = sign
    return c + points, normals


def surface_area(part: Part) -> float:
    s = part.size
    return {
        "sphere": lambda: 4 * np.pi * s[0] ** 2,
        "cylinder": lambda: 2 * np.pi * s[0] * 2 * s[1],
        "torus": lambda: 4 * np.pi**2 * s[0] * s[1],
        "legs": lambda: 4 * 4 * 0.1 * 2 * s[1],
        "box": lambda: 8 * (s[0] * s[1] + s[1] * s[2] + s[0] * s[2]),
    }[part.shape]()


def quaternions_from_z(normals: np.ndarray) -> np.ndarray:
    """(N, 4) w x y z rotations taking +z to each (N, 3) unit normal: flat Gaussians lie on the surface."""
    w = 1.0 + normals[:, 2]
    q = np.stack([w, -normals[:, 1], normals[:, 0], np.zeros(len(normals))], axis=1)
    q[w < 1e-6] = [0.0, 1.0, 0.0, 0.0]  # the normal is -z: half a turn about x
    return q / np.linalg.norm(q, axis=1, keepdims=True)


@dataclass
class SyntheticScene:
    splat: Splat
    object_ids: np.ndarray  # (N,) int32, index into object_names; 0 is the ground
    part_ids: np.ndarray  # (N,) int32, index into parts
    object_names: list[str]
    parts: list[Part]


def make_scene(count: int = 20_000, sh_degree: int = 0, seed: int = 0, parts=None) -> SyntheticScene:
    """A scene of `count` Gaussians spread over the parts' surfaces by area."""
    rng = np.random.default_rng(seed)
    parts = parts or DEFAULT_PARTS
    areas = np.array([surface_area(p) for p in parts])
    counts = np.floor(areas / areas.sum() * count).astype(int)
    counts[0] += count - counts.sum()
    object_names = list(dict.fromkeys(p.object_name for p in parts))
    positions, normals, colors, spacing, object_ids, part_ids = [], [], [], [], [], []
    for index, (part, n) in enumerate(zip(parts, counts)):
        p, nrm = sample_surface(part, n, rng)
        positions.append(p)
        normals.append(nrm)
        shade = rng.uniform(-0.04, 0.04, (n, 1))
        colors.append(np.clip(np.asarray(part.color) + shade, 0.02, 0.98))
        spacing.append(np.full(n, np.sqrt(surface_area(part) / max(n, 1))))
        object_ids.append(np.full(n, object_names.index(part.object_name), dtype=np.int32))
        part_ids.append(np.full(n, index, dtype=np.int32))
    spacing = np.concatenate(spacing)
    scales = np.log(np.stack([spacing * 0.7, spacing * 0.7, spacing * 0.1], axis=1))
    rest = rng.normal(0, 0.05, (count, (sh_degree + 1) ** 2 - 1, 3)) if sh_degree else None
    splat = Splat.from_arrays(
        positions=np.concatenate(positions),
        sh_dc=(np.concatenate(colors) - 0.5) / SH_C0,
        opacities=np.full(count, 4.0),
        scales=scales,
        rotations=quaternions_from_z(np.concatenate(normals)),
        sh_rest=rest,
    )
    return SyntheticScene(splat, np.concatenate(object_ids), np.concatenate(part_ids), object_names, list(parts))


def look_at(name: str, eye, target, width: int, height: int, focal: float):
    """An OpenCV camera at `eye` looking at `target`, with the world's up being -y."""
    from ..scene.camera import look_at

    return look_at(name, eye, target, width, height, focal)


def orbit_cameras(count: int, width: int = 160, height: int = 120, radius: float = 5.0, elevation: float = 0.6):
    """`count` cameras on a circle around the scene, looking at its centre from above."""
    cameras = []
    for i in range(count):
        angle = 2 * np.pi * i / count
        eye = (
            radius * np.cos(angle) * np.cos(elevation),
            -radius * np.sin(elevation),
            radius * np.sin(angle) * np.cos(elevation),
        )
        cameras.append(look_at(f"view_{i:03d}.png", eye, (0.0, -0.4, 0.0), width, height, focal=0.9 * width))
    return cameras


def render_views(scene: SyntheticScene, cameras):
    """Per camera: the RGB image (H, W, 3) uint8 and ground-truth object and part label maps (H, W) int32.

    A pixel's label is the object (part) that holds more than half of its compositing weight, -1
    where none does (background, and boundary pixels that mix three things): exactly the pixels
    where a perfect selection of that object renders as selected (evaluate.py's rule).
    """
    import torch

    from ..field.render import apply_weights
    from ..field.views import camera_weights, majority_labels, splat_tensors

    splat = scene.splat
    tensors = splat_tensors(splat)
    colors = torch.from_numpy(splat.colors.astype(np.float32))
    ids = [torch.from_numpy(level.astype(np.int64)) for level in (scene.object_ids, scene.part_ids)]
    views = []
    for camera in cameras:
        weights = camera_weights(splat, camera, tensors=tensors)
        shape = (camera.height, camera.width)
        rgb = apply_weights(weights, colors).reshape(*shape, 3)
        labels = [majority_labels(weights, level).reshape(shape).numpy().astype(np.int32) for level in ids]
        image = (rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()
        views.append((image, labels[0], labels[1]))
    return views


def write_scene(folder, scene: SyntheticScene, cameras, flaws=None, seed: int = 0) -> None:
    """The on-disk layout of real data, so the ordinary commands run on it unchanged.

    splat.ply, images/*.png, sparse/0 (a COLMAP text model), masks/*.npz (each view's overlapping
    boolean mask stack, the way SAM returns masks: exact objects and parts, or with `flaws`, a
    mask_simulator.MaskFlaws, SAM-like ones seeded by `seed` and the view's index), gt/*.npz
    (exact object and part label maps, -1 = background) and gt/labels.json (their names; the
    ground is listed under "ignore": the evaluation scores objects, not the floor).
    """
    import json

    from PIL import Image

    from ..formats.ply import write_ply
    from ..scene.colmap import write_colmap_text
    from .mask_simulator import PERFECT, simulate_masks

    folder = Path(folder)
    for sub in ("images", "masks", "gt"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    write_ply(folder / "splat.ply", scene.splat)
    write_colmap_text(folder / "sparse" / "0", cameras)
    part_objects = np.array([scene.object_names.index(p.object_name) for p in scene.parts])
    for index, (camera, (image, objects, parts)) in enumerate(zip(cameras, render_views(scene, cameras))):
        stem = Path(camera.name).stem
        Image.fromarray(image).save(folder / "images" / camera.name)
        masks = simulate_masks(objects, parts, part_objects, flaws or PERFECT, np.random.default_rng([seed, index]))
        np.savez_compressed(folder / "masks" / f"{stem}.npz", masks=masks)
        np.savez_compressed(folder / "gt" / f"{stem}.npz", objects=objects, parts=parts)
    names = {
        "objects": scene.object_names,
        "parts": [f"{p.object_name}/{p.part_name}" for p in scene.parts],
        "ignore": [scene.object_names[0], f"{scene.parts[0].object_name}/{scene.parts[0].part_name}"],
    }
    (folder / "gt" / "labels.json").write_text(json.dumps(names, indent=1))


def with_floaters(splat: Splat, share: float, seed: int = 0) -> tuple[Splat, np.ndarray]:
    """The splat as a capture holds it: surface Gaussians of mixed opacity and size (a tenth of them faint), and
    `share` of floaters added (random positions in the bounds and a third beyond, low opacity, sizes from a third
    to ten times the surface's). Returns the splat and (N,) bool, True for the floaters."""
    rng = np.random.default_rng(seed)
    count = splat.count
    surface = splat.subset(np.arange(count))
    opacity = rng.normal(3.0, 1.0, count)
    faint = rng.random(count) < 0.1
    faint_alphas = rng.uniform(0.03, 0.4, faint.sum())
    opacity[faint] = np.log(faint_alphas / (1 - faint_alphas))
    surface.columns["opacity"] = opacity.astype(np.float32)
    for name in SCALE_COLUMNS:
        surface.columns[name] = (surface.columns[name] + rng.normal(0, 0.3, count)).astype(np.float32)
    extra = max(1, round(share * count))
    low, high = splat.positions.min(axis=0), splat.positions.max(axis=0)
    margin = (high - low) / 3
    size = np.median(splat.scales.max(axis=1)) + rng.uniform(np.log(1 / 3), np.log(10), extra)
    alphas = rng.uniform(0.02, 0.3, extra)
    floaters = Splat.from_arrays(
        positions=rng.uniform(low - margin, high + margin, (extra, 3)),
        sh_dc=rng.normal(0, 1, (extra, 3)),
        opacities=np.log(alphas / (1 - alphas)),
        scales=np.stack([size, size + rng.normal(0, 0.3, extra), size + rng.normal(0, 0.3, extra)], axis=1),
        rotations=rng.normal(0, 1, (extra, 4)),
    )
    joined, _ = join_splats([surface, floaters])
    return joined, np.arange(joined.count) >= count
