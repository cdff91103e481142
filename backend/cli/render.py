"""`python -m backend render`: a view's colours and features as pictures, or the views training would plan."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ..errors import UserError
from .arguments import path_argument
from .scene import add_scene_arguments, add_view_arguments, find_view, load_scene


def add_parser(commands) -> None:
    render = commands.add_parser(
        "render",
        help="write a view's colours and its coarse/fine features as pictures",
        description="Render a view's RGB and a false-colour (PCA) picture of each feature level.",
    )
    add_scene_arguments(
        render,
        images_required=False,
        cameras_help=(
            "; without it, the views training would plan from the splat alone are all written, with their cameras "
            "(sparse/0)"
        ),
    )
    add_view_arguments(render)
    render.add_argument("--view", help="the image (camera) name to render (needed with --cameras)")
    path_argument(render, "--features", "input", help="features from 'train' (without them only RGB is written)")
    path_argument(render, "--out", "output folder", required=True, help="folder for the PNG files")


def io_png(image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def pca_colors(features: np.ndarray) -> np.ndarray:
    """(P, 3) in [0, 1]: the first three principal components of (P, D) features, stretched per channel."""
    centred = features - features.mean(axis=0)
    _, _, components = np.linalg.svd(centred[:: max(1, len(centred) // 20000)], full_matrices=False)
    projected = centred @ components[:3].T
    low, high = np.percentile(projected, [1, 99], axis=0)
    return np.clip((projected - low) / np.maximum(high - low, 1e-8), 0, 1)


def run(options) -> int:
    import torch
    from PIL import Image

    from ..field.click_features import unit_features, unit_rows
    from ..field.render import apply_weights
    from ..field.views import camera_weights
    from ..files import StagedOutputs
    from ..formats.features import load_features

    if options.cameras is None:
        return write_planned_views(options)
    if options.view is None:
        raise UserError("--view: name the image (camera) to render from --cameras")
    splat, cameras, _ = load_scene(options, need_images=False)
    field = load_features(options.features, splat) if options.features else None
    camera = find_view(cameras, options.view)
    weights = camera_weights(splat, camera)
    shape = (camera.height, camera.width)
    stem = Path(camera.name).stem
    rgb = apply_weights(weights, torch.from_numpy(splat.colors.astype(np.float32))).reshape(*shape, 3)
    pictures = {f"{stem}_rgb.png": (rgb.clamp(0, 1) * 255).to(torch.uint8).numpy()}
    if field is not None:
        alpha = apply_weights(weights, torch.ones(splat.count, 1)).reshape(-1).numpy()
        for level in ("coarse", "fine"):
            unit = unit_rows(unit_features(field.features, level))  # (N, D) float32
            rendered = apply_weights(weights, torch.from_numpy(unit)).numpy()
            colors = np.zeros((len(rendered), 3))
            covered = alpha > 0.5
            colors[covered] = pca_colors(rendered[covered])
            pictures[f"{stem}_{level}.png"] = (colors.reshape(*shape, 3) * 255).astype(np.uint8)
    with StagedOutputs(final=True) as staged:
        staged.make_folder(options.out)
        for name, picture in pictures.items():
            staged.write(options.out / name, [io_png(Image.fromarray(picture))])
    for name in pictures:
        print(f"wrote {options.out / name}", file=sys.stderr)
    return 0


def write_planned_views(options) -> int:
    """`render` without --cameras: the views training would plan and render, as PNGs and a COLMAP model."""
    from ..field.rendered_views import render_views, write_png
    from ..formats import read_splat
    from ..scene.colmap import write_colmap_text
    from ..scene.view_planning import plan_splat_views

    splat = read_splat(options.splat)
    cameras = plan_splat_views(
        splat, options.views, options.view_size, layout=options.view_layout, name=str(options.splat)
    ).cameras
    images, _ = render_views(splat, cameras, None)
    for camera, image in zip(cameras, images):
        write_png(options.out / camera.name, image)
    write_colmap_text(options.out / "sparse" / "0", cameras)
    print(
        f"wrote {len(cameras)} planned views of {cameras[0].width}x{cameras[0].height} and their cameras "
        f"({options.out / 'sparse' / '0'}) to {options.out}",
        file=sys.stderr,
    )
    return 0
