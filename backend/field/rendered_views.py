"""Training views rendered from the splat itself, for when the photos it came from are not at hand.

Each view is rendered in colour with the product's rasterizer, every Gaussian's colour evaluated
from its spherical harmonics along the direction from the camera centre to it (as gsplat and the
original 3DGS viewer do), so the renders look as the splat does in any viewer. They are cached as
PNG files beside the mask cache, keyed by the splat's look and the camera, so a second run (another
mask source, more iterations) renders nothing.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..formats.sh import sh_colors
from ..formats.splat import Splat
from ..progress import Planned, Planning, Progress, Rendering
from ..scene.camera import Camera
from ..scene.colmap import write_colmap_text
from .render import apply_weights
from .view_weights import ViewWeights, view_weights
from .views import camera_weights

BYTES_PER_FRAGMENT = 8  # a compositing weight in training: int32 Gaussian index + float32 value
MEMORY_SHARE = 0.7  # of the memory available now that the views' weights may take


def view_colors(splat: Splat, camera: Camera) -> torch.Tensor:
    """(N, 3) float32 colours of the Gaussians as `camera` sees them (SH along the ray from its centre)."""
    positions = splat.positions.astype(np.float64)
    directions = positions - camera.center
    directions /= np.maximum(np.linalg.norm(directions, axis=1, keepdims=True), 1e-12)
    rest = splat.sh_rest if splat.sh_degree else None
    return torch.from_numpy(sh_colors(splat.sh_dc, rest, directions.astype(np.float32)).astype(np.float32))


def render_rgb(splat: Splat, camera: Camera, weights=None) -> np.ndarray:
    """(H, W, 3) uint8: the splat in `camera` over black; `weights` (on any device) from views.camera_weights if
    already made."""
    weights = camera_weights(splat, camera) if weights is None else weights
    colors = view_colors(splat, camera).to(weights.device)
    rgb = apply_weights(weights, colors).reshape(camera.height, camera.width, 3)
    return (rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()


def look_key(splat: Splat) -> str:
    """A hash of everything that decides how the splat looks: every column but the normals and extras."""
    digest = hashlib.sha256()
    for name, values in splat.columns.items():
        if name in ("x", "y", "z", "opacity") or name.startswith(("f_dc_", "f_rest_", "scale_", "rot_")):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(values, dtype=np.float32).tobytes())
    return digest.hexdigest()


def view_file(cache_dir: Path, splat_key: str, camera: Camera) -> Path:
    key = hashlib.sha256((splat_key + camera.digest()).encode()).hexdigest()
    return cache_dir / f"{Path(camera.name).stem}_{key[:16]}.png"


def available_memory() -> int | None:
    """Bytes of memory available now, or None where the system does not say."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(fragments: int, cameras: list[Camera], available: int | None) -> None:
    """A UserError when the views' compositing weights (about `fragments` per view, as in the first) would not fit."""
    need = fragments * BYTES_PER_FRAGMENT * len(cameras)
    if available is not None and need > MEMORY_SHARE * available:
        size = f"{cameras[0].width}x{cameras[0].height}"
        raise UserError(
            f"the {len(cameras)} rendered views at {size} would need about {need / 2**30:.1f} GB for "
            f"training, more than the {MEMORY_SHARE * available / 2**30:.1f} GB free: use fewer views "
            f"(--views) or smaller ones (--view-size)"
        )


def render_views(
    splat: Splat,
    cameras: list[Camera],
    cache_dir: Path | None,
    progress: Progress = lambda event: None,
    should_stop=lambda: False,
    available: int | None = -1,
    device="cpu",
) -> tuple[list[np.ndarray], ViewWeights]:
    """The (H, W, 3) uint8 colour render of every camera, from `cache_dir` where already there, and the views'
    compositing weights on `device`, which training takes as they are (the renders cost no second pass).

    The first view's weights are made before anything is written, to refuse (UserError) a set of views
    whose training weights would not fit in memory (`available` bytes; -1: ask the system, None: no check).
    """
    splat_key = look_key(splat)
    images = []

    def render(index: int, ordered: Splat, weights) -> None:
        if index == 0:
            check_memory(weights._nnz(), cameras, available_memory() if available == -1 else available)
        camera = cameras[index]
        progress(Rendering(view=index + 1, of=len(cameras)))
        path = view_file(cache_dir, splat_key, camera) if cache_dir is not None else None
        image = read_png(path, camera) if path is not None and path.is_file() else None
        if image is None:
            image = render_rgb(ordered, camera, weights)
            if path is not None:
                write_png(path, image)
        images.append(image)

    weights = view_weights(splat, cameras, device, should_stop, each=render)
    if should_stop():
        return [], weights
    if cache_dir is not None:
        write_colmap_text(cache_dir / "sparse" / "0", cameras)  # so the renders can be reused as photos
    return images, weights


def read_png(path: Path, camera: Camera) -> np.ndarray | None:
    """A cached render, or None when it is unreadable or not the camera's size (then it is rendered again)."""
    from PIL import Image

    try:
        with Image.open(path) as picture:
            image = np.asarray(picture.convert("RGB"))
    except OSError:
        return None
    return image if image.shape == (camera.height, camera.width, 3) else None


def write_png(path: Path, image: np.ndarray) -> None:
    import io

    from PIL import Image

    from ..files import write_atomic

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"view cache folder {path.parent}: cannot be created ({error})") from error
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    write_atomic(path, [buffer.getvalue()])


def training_cameras(
    splat: Splat,
    cameras: list[Camera] | None,
    count: int,
    long_side: int,
    layout: str,
    progress: Progress = lambda event: None,
    name: str = "the splat",
) -> list[Camera]:
    """The cameras given, or `count` planned from the splat when None."""
    from ..scene.view_planning import plan_splat_views

    if cameras is None:
        progress(Planning(views=count))
        plan = plan_splat_views(splat, count, long_side, layout=layout, name=name)
        cameras = plan.cameras
        progress(Planned(views=len(cameras), layout=plan.extent.layout, dropped=plan.dropped))
    if not cameras:
        raise UserError(f"{name}: no cameras to render views from")
    return cameras


def views_for_training(
    splat: Splat,
    cameras: list[Camera] | None,
    count: int,
    long_side: int,
    layout: str,
    cache_dir: Path | None,
    progress: Progress = lambda event: None,
    should_stop=lambda: False,
    name: str = "the splat",
    device="cpu",
    planned=lambda splat, cameras: None,
) -> tuple[list[Camera], list[np.ndarray], ViewWeights]:
    """The cameras (planned from the splat when None), their colour renders (what training reads for photos) and
    their weights on `device`, for training. `planned(splat, cameras)` is called once the cameras are known, before
    the views are rendered (the first lifted field)."""
    cameras = training_cameras(splat, cameras, count, long_side, layout, progress, name)
    planned(splat, cameras)
    images, weights = render_views(splat, cameras, cache_dir, progress, should_stop, device=device)
    return cameras, images, weights
