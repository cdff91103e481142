"""What every subcommand shares: the scene arguments (splat, cameras, photos, planned views) and loading them."""

from __future__ import annotations

from pathlib import Path

from ..device_defaults import DEVICE_DEFAULTS
from ..errors import UserError
from ..ranges import SETTINGS
from .arguments import path_argument


def add_scene_arguments(
    parser, images_required: bool, cameras_help: str = "", downscale_per_device: bool = False
) -> None:
    """The splat, its cameras and photos; with `cameras_help` the cameras are optional, and it says what then."""
    path_argument(parser, "--splat", "input", required=True, help="the trained splat (.ply, compressed .ply or .spz)")
    path_argument(
        parser,
        "--cameras",
        "input",
        required=not cameras_help,
        help="COLMAP model folder (text or binary), transforms.json, or LLFF poses_bounds.npy" + cameras_help,
    )
    path_argument(
        parser,
        "--images",
        "input",
        required=images_required,
        help="the folder of photos the splat was trained from"
        + ("" if images_required else " (LLFF cameras need it for the names)"),
    )
    per_device = ", ".join(f"{name} {d.downscale}" for name, d in DEVICE_DEFAULTS.items())
    parser.add_argument(
        "--downscale",
        type=SETTINGS["downscale"],
        default=None if downscale_per_device else 1,
        help="divide the image size by this (default "
        + (f"per device: {per_device})" if downscale_per_device else "1)"),
    )


def add_view_arguments(parser) -> None:
    """Views rendered from the splat itself (backend/scene/view_planning.py, backend/field/rendered_views.py)."""
    from ..scene.view_planning import LAYOUTS

    parser.add_argument(
        "--views", type=SETTINGS["views"], default=24, help="views to plan when there are no cameras (default 24)"
    )
    parser.add_argument(
        "--view-size",
        type=SETTINGS["view_size"],
        default=512,
        help="width of planned views in pixels, 4:3 (default 512)",
    )
    parser.add_argument(
        "--view-layout",
        choices=LAYOUTS,
        default="auto",
        help="planned views around the scene (object), from inside it (inside), or decided from the splat (auto)",
    )


def load_scene(options, need_images: bool):
    from ..formats import read_splat
    from ..scene.cameras import load_cameras
    from ..scene.images import load_images

    splat = read_splat(options.splat)
    cameras = load_cameras(options.cameras, images_dir=options.images)
    images = None
    if need_images:
        cameras, images = load_images(options.images, cameras, downscale=options.downscale)
    elif options.downscale != 1:
        cameras = [camera.scaled(1.0 / options.downscale) for camera in cameras]
    return splat, cameras, images


def views_cache(options) -> Path:
    """Where the views rendered from the splat are cached: <out>.views/."""
    return options.out.with_name(options.out.name + ".views")


def rendered_scene(options, progress, stop, device="cpu", planned=lambda splat, cameras: None, render: bool = True):
    """The splat, views rendered from it (from --cameras where given, else planned; cached in <out>.views/) and
    their weights on `device`, for training. `planned(splat, cameras)` is called before the views are rendered.
    With `render` False only the cameras: no images and no weights (None) for a run that trains nothing."""
    from ..field.rendered_views import training_cameras, views_for_training
    from ..formats import read_splat
    from ..scene.cameras import load_cameras

    splat = read_splat(options.splat)
    cameras = None
    if options.cameras:
        cameras = [camera.scaled(1.0 / options.downscale) for camera in load_cameras(options.cameras)]
    planning = (options.views, options.view_size, options.view_layout)
    if not render:
        cameras = training_cameras(splat, cameras, *planning, progress, str(options.splat))
        planned(splat, cameras)
        return splat, cameras, None, None
    cameras, images, weights = views_for_training(
        splat, cameras, *planning, views_cache(options), progress, stop, str(options.splat), device, planned
    )
    return splat, cameras, images, weights


def find_view(cameras, name: str):
    for camera in cameras:
        if name in (camera.name, Path(camera.name).name, Path(camera.name).stem):
            return camera
    names = ", ".join(c.name for c in cameras[:8]) + (", ..." if len(cameras) > 8 else "")
    raise UserError(f"--view {name}: no camera has that image name (there are: {names})")
