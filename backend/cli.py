"""`python -m backend`: train a feature field, segment by clicks, render views and features, evaluate.

Exit codes: 0 done; 2 a mistake in the input or the settings (one message on stderr, no
traceback); 130 / 143 stopped by Ctrl+C / SIGTERM, nothing written; 1 an internal error.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

import numpy as np

from .arguments import COSINE, FINITE, POSITIVE, Parser, Range, check_paths, path_argument
from .device import DEVICE_DEFAULTS, DEVICES, resolve_device, sam_device
from .errors import UserError

MASK_SOURCES = ("auto", "sam", "folder", "geometric", "felzenszwalb")


def add_scene_arguments(parser, images_required: bool, cameras_help: str = "", downscale_per_device: bool = False) -> None:
    """The splat, its cameras and photos; `cameras_help` set: the cameras are optional and it says what happens without."""
    path_argument(parser, "--splat", "input", required=True, help="the trained splat (.ply, compressed .ply or .spz)")
    path_argument(parser, "--cameras", "input", required=not cameras_help,
                  help="COLMAP model folder (text or binary), transforms.json, or LLFF poses_bounds.npy" + cameras_help)
    path_argument(parser, "--images", "input", required=images_required,
                        help="the folder of photos the splat was trained from" + ("" if images_required else
                                                                                  " (LLFF cameras need it for the names)"))
    per_device = ", ".join(f"{name} {d.downscale}" for name, d in DEVICE_DEFAULTS.items())
    parser.add_argument("--downscale", type=POSITIVE, default=None if downscale_per_device else 1,
                        help="divide the image size by this (default " + (f"per device: {per_device})" if
                                                                          downscale_per_device else "1)"))


def add_view_arguments(parser) -> None:
    """Views rendered from the splat itself (backend/view_planning.py, backend/rendered_views.py)."""
    from .view_planning import LAYOUTS

    parser.add_argument("--views", type=POSITIVE, default=24, help="views to plan when there are no cameras (default 24)")
    parser.add_argument("--view-size", type=POSITIVE, default=512, help="width of planned views in pixels, 4:3 (default 512)")
    parser.add_argument("--view-layout", choices=LAYOUTS, default="auto",
                        help="planned views around the scene (object), from inside it (inside), or decided from "
                             "the splat (auto)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m backend", description="Click-Gaussian backend.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="learn 24 features per Gaussian from the photos and 2D masks",
                                description="Learn the Click-Gaussian feature field (../shared/METHOD.md).")
    add_scene_arguments(train, images_required=False, cameras_help=(
        "; with no --images, these cameras' views are rendered from the splat, and with neither, views are planned "
        "and rendered from the splat alone (docs/views_from_splat.md)"), downscale_per_device=True)
    add_view_arguments(train)
    path_argument(train, "--out", "output", required=True, help="features file to write (.npz), atomically")
    train.add_argument("--masks", choices=MASK_SOURCES, default="auto",
                       help="mask source: SAM with --sam-checkpoint, a folder with --mask-dir, or the weight-free "
                            "geometric masks (3D groups of the splat rendered into every view); auto picks in that "
                            "order. felzenszwalb: colour segments of each photo (lower quality)")
    path_argument(train, "--mask-dir", "input", help="precomputed masks, one label PNG or .npz per image")
    path_argument(train, "--sam-checkpoint", "input", help="a segment-anything checkpoint (.pth)")
    train.add_argument("--sam-model", default="vit_h", help="SAM model type of the checkpoint (default vit_h)")
    path_argument(train, "--mask-cache", "output folder", help="folder caching computed masks (default: <out>.masks/)")
    train.add_argument("--device", default="auto", choices=DEVICES,
                       help="auto: an NVIDIA GPU (cuda), else an Apple GPU (mps), else the CPU")
    train.add_argument("--progress", default="bar", choices=("bar", "json", "none"),
                       help="progress on stderr as a bar, or one JSON object per line on stdout")
    train.add_argument("--checkpoint-every", type=Range(int, 0), metavar="STEPS",
                       help="write the features so far to <out>.checkpoint.npz every STEPS steps (0: never; default "
                            "per device: " + ", ".join(f"{n} {d.checkpoint_every}" for n, d in DEVICE_DEFAULTS.items())
                            + "); it is removed when the run ends")
    train.add_argument("--parent-link", type=Path, metavar="FOLDER",
                       help="run as a program's child (the add-on's): when standard input closes, because that "
                            "program ended or crashed, stop at once and remove FOLDER, the run's scratch folder")
    from .train import SETTING_RANGES, TrainConfig, setting_option

    defaults = TrainConfig()
    for name, value in vars(defaults).items():
        if isinstance(value, bool):
            train.add_argument(f"--no-{name[4:].replace('_', '-')}", dest=name, action="store_false",
                               help=f"switch off the {name[4:].replace('_', ' ')} term (ablation)")
        elif hasattr(DEVICE_DEFAULTS["cpu"], name):
            per_device = ", ".join(f"{n} {getattr(d, name)}" for n, d in DEVICE_DEFAULTS.items())
            train.add_argument(setting_option(name), type=SETTING_RANGES.get(name, type(value)),
                               help=f"default per device: {per_device}")
        else:
            special = {"gfl_start": "the step GFL starts at (default -1: two thirds of the iterations, as the paper's 2000 of 3000)",
                       "mask_balance": f"share of a step's pixels drawn evenly over the view's masks, the rest uniformly "
                                       f"(default {value:g}; 0: uniform, where thin parts lose to big ones: docs/accuracy.md)"}
            train.add_argument(setting_option(name), type=SETTING_RANGES.get(name, type(value)), default=value,
                               help=special.get(name, f"default {value}"))

    segment = commands.add_parser("segment", help="select the object under one or more clicks",
                                  description="Select Gaussians by clicking a view; write them and the rest as splats.")
    add_scene_arguments(segment, images_required=False)
    path_argument(segment, "--features", "input", required=True, help="features from 'train'")
    segment.add_argument("--view", required=True, help="the image (camera) name the clicks are in")
    segment.add_argument("--click", nargs=2, type=FINITE, action="append", required=True, metavar=("X", "Y"),
                         help="a pixel of the object (repeat to add more)")
    segment.add_argument("--exclude", nargs=2, type=FINITE, action="append", default=[], metavar=("X", "Y"),
                         help="a pixel whose object is removed from the selection")
    segment.add_argument("--level", choices=("coarse", "fine"), default="coarse", help="whole objects or parts")
    segment.add_argument("--threshold", type=COSINE, help="cosine similarity to select above (default per level)")
    path_argument(segment, "--out", "output", required=True, help="the selected Gaussians (.ply)")
    path_argument(segment, "--rest", "output", help="the other Gaussians (.ply)")
    path_argument(segment, "--mask-dir", "output folder", help="write the selection's rendered mask of every view here (PNG)")

    render = commands.add_parser("render", help="write a view's colours and its coarse/fine features as pictures",
                                 description="Render a view's RGB and a false-colour (PCA) picture of each feature level.")
    add_scene_arguments(render, images_required=False, cameras_help=(
        "; without it, the views training would plan from the splat alone are all written, with their cameras "
        "(sparse/0)"))
    add_view_arguments(render)
    render.add_argument("--view", help="the image (camera) name to render (needed with --cameras)")
    path_argument(render, "--features", "input", help="features from 'train' (without them only RGB is written)")
    path_argument(render, "--out", "output folder", required=True, help="folder for the PNG files")
    from .evaluate import add_eval_command

    add_eval_command(commands)
    return parser


class StopRequested:
    """Ctrl+C and SIGTERM set a flag that training polls, so it stops between steps and writes nothing."""

    def __init__(self):
        self.signal = None
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, self.request)

    def request(self, number, frame):
        self.signal = number

    def __call__(self) -> bool:
        return self.signal is not None


def follow_parent(scratch: Path) -> None:
    """End this process, and remove its scratch folder, when standard input closes.

    The parent holds the other end of the pipe; whichever way it ends (quit, crash, kill) its
    operating system closes it, so this works wherever pipes do (Linux, macOS, Windows).
    """
    import os
    import shutil
    import threading

    stdin = sys.stdin.fileno()

    def watch():  # os.read, not sys.stdin: a daemon thread holding the buffered reader's lock aborts the exit
        while os.read(stdin, 1 << 16):
            pass
        shutil.rmtree(scratch, ignore_errors=True)
        os._exit(128 + 15)  # as SIGTERM would; nothing is left to report to

    threading.Thread(target=watch, daemon=True, name="parent-link").start()


def progress_printer(mode: str):
    def as_json(event):
        print(json.dumps(event), flush=True)

    def as_bar(event):
        if event["phase"] == "checkpoint":
            return  # the bar goes on; the file is there for whoever polls it
        if event["phase"] != "iterations":
            detail = (f": {event['source']}" if "source" in event else
                      f" {event['view']}/{event['of']}" if "view" in event else "")
            print(f"{event['phase']}{detail}", file=sys.stderr, flush=True)
            return
        done = event["iteration"] / event["of"]
        bar = "#" * int(30 * done) + "." * (30 - int(30 * done))
        end = "\n" if event["iteration"] == event["of"] else ""
        print(f"\r[{bar}] {event['iteration']}/{event['of']} loss {event['loss']:.4f} "
              f"{event['remaining_s']:.0f} s left ", file=sys.stderr, end=end, flush=True)

    return {"json": as_json, "bar": as_bar, "none": lambda event: None}[mode]


def mask_settings(options, device: str = "cpu") -> tuple[str, dict]:
    """The mask source and its settings, `auto` resolved; each source's own function checks the rest."""
    source = options.masks
    if source == "auto":
        source = "sam" if options.sam_checkpoint else "folder" if options.mask_dir else "geometric"
    cache = options.mask_cache or options.out.with_name(options.out.name + ".masks")
    settings = {
        "sam": lambda: {"checkpoint": options.sam_checkpoint, "model_type": options.sam_model, "cache_dir": cache,
                        "device": sam_device(device)},
        "folder": lambda: {"mask_dir": options.mask_dir},
        "felzenszwalb": lambda: {"cache_dir": cache},
        "geometric": lambda: {},
    }[source]()
    if source == "sam" and not options.sam_checkpoint:
        raise UserError("--masks sam needs --sam-checkpoint (a segment-anything .pth file)")
    if source == "folder" and not options.mask_dir:
        raise UserError("--masks folder needs --mask-dir")
    return source, settings


def load_scene(options, need_images: bool):
    from .cameras import load_cameras, load_images
    from .formats import read_splat

    splat = read_splat(options.splat)
    cameras = load_cameras(options.cameras, images_dir=options.images)
    images = None
    if need_images:
        cameras, images = load_images(options.images, cameras, downscale=options.downscale)
    elif options.downscale != 1:
        cameras = [camera.scaled(1.0 / options.downscale) for camera in cameras]
    return splat, cameras, images


def rendered_scene(options, progress, stop):
    """The splat, and views rendered from it: from --cameras where given, else planned (cached in <out>.views/)."""
    from .cameras import load_cameras
    from .formats import read_splat
    from .rendered_views import views_for_training

    splat = read_splat(options.splat)
    cameras = None
    if options.cameras:
        cameras = [camera.scaled(1.0 / options.downscale) for camera in load_cameras(options.cameras)]
    cameras, images = views_for_training(splat, cameras, options.views, options.view_size, options.view_layout,
                                         options.out.with_name(options.out.name + ".views"), progress, stop,
                                         str(options.splat))
    return splat, cameras, images


def find_view(cameras, name: str):
    for camera in cameras:
        if name in (camera.name, Path(camera.name).name, Path(camera.name).stem):
            return camera
    names = ", ".join(c.name for c in cameras[:8]) + (", ..." if len(cameras) > 8 else "")
    raise UserError(f"--view {name}: no camera has that image name (there are: {names})")


def run_train(options) -> int:
    from .features import features_file_bytes, save_features
    from .files import write_keeping
    from .geometric_masks import geometric_labels
    from .masks import mask_source_description, view_labels
    from .train import TrainConfig, train_features

    stop = StopRequested()
    if options.parent_link:
        follow_parent(options.parent_link)
    progress = progress_printer(options.progress)
    device = resolve_device(options.device)
    for name, value in vars(DEVICE_DEFAULTS[device]).items():  # the settings not given take the device's defaults
        if getattr(options, name) is None:
            setattr(options, name, value)
    config = TrainConfig(**{name: getattr(options, name) for name in vars(TrainConfig())})
    source, settings = mask_settings(options, device)
    description = mask_source_description(source, **settings)
    started = time.perf_counter()
    if options.images is None:
        splat, cameras, images = rendered_scene(options, progress, stop)
        if stop():
            return cancelled(stop)
    else:
        splat, cameras, images = load_scene(options, need_images=True)
    render_seconds = time.perf_counter() - started
    started = time.perf_counter()
    progress({"phase": "masks", "source": description, "views": len(cameras)})
    if source == "geometric":
        labels = geometric_labels(splat, cameras, stop)
    else:
        labels = []
        for camera, image in zip(cameras, images):
            if stop():
                break
            labels.append(view_labels(image, camera.name, source, **settings))
    if stop():
        return cancelled(stop)
    mask_seconds = time.perf_counter() - started
    checkpoint_path = options.out.with_name(options.out.stem + ".checkpoint.npz")

    def write_checkpoint(field) -> None:
        save_features(checkpoint_path, field, compress=False)  # a second, not the minute zlib takes on the statue
        progress({"phase": "checkpoint", "iteration": field.step, "path": str(checkpoint_path)})

    try:
        result = train_features(splat, cameras, labels, config, description, device, progress, stop,
                                options.checkpoint_every, write_checkpoint)
    except UserError:
        if stop():
            return cancelled(stop)
        raise
    finally:
        checkpoint_path.unlink(missing_ok=True)
    write_keeping(options.out, features_file_bytes(result.field), "trained features")
    seconds = {"masks": round(mask_seconds, 2), **{k: round(v, 2) for k, v in result.seconds.items()}}
    if options.images is None:
        seconds = {"views": round(render_seconds, 2), **seconds}
    progress({"phase": "done", "out": str(options.out), "seconds": seconds})
    if options.progress == "bar":
        print(f"wrote {options.out} ({splat.count:,} Gaussians); seconds per phase: "
              + ", ".join(f"{k} {v}" for k, v in seconds.items()), file=sys.stderr)
    return 0


def cancelled(stop) -> int:
    print("\ncancelled: nothing was written", file=sys.stderr)
    return 128 + stop.signal


def run_segment(options) -> int:
    from .click import DEFAULT_THRESHOLDS, Click, ClickIndex, Geometry, compose, unit_features
    from .features import load_features
    from .files import StagedOutputs
    from .ply import ply_chunks

    splat, cameras, _ = load_scene(options, need_images=False)
    field = load_features(options.features, splat)
    camera = find_view(cameras, options.view)
    threshold = DEFAULT_THRESHOLDS[options.level] if options.threshold is None else options.threshold
    prior = field.config.get("use_granularity_prior", True)
    index = ClickIndex(Geometry.of(splat), lambda level: unit_features(field.features, level, prior), indexed=False)
    points = [(x, y, mode) for chosen, mode in ((options.click, "ADD"), (options.exclude, "SUBTRACT")) for x, y in chosen]
    for x, y, _ in points:
        if not (0 <= x < camera.width and 0 <= y < camera.height):
            raise UserError(f"click ({x:g}, {y:g}) is outside view {camera.name} ({camera.width}x{camera.height})")
    clicks = [Click(camera, x + 0.5, y + 0.5, mode) for x, y, mode in points]  # pixel centres
    selected, missed = compose(index, clicks, options.level, threshold, np.zeros(splat.count, dtype=bool))
    if missed:
        x, y = missed[0].x - 0.5, missed[0].y - 0.5
        raise UserError(f"click ({x:g}, {y:g}) in {camera.name} hits no Gaussian")
    if not selected.any():
        raise UserError(f"the clicks select no Gaussian at the {options.level} level (threshold {threshold:g}): "
                        f"lower --threshold or click elsewhere; nothing was written")
    with StagedOutputs() as staged:  # all of them or, after an error or a stop, none
        staged.write(options.out, ply_chunks(splat.subset(selected)))
        if options.rest:
            staged.write(options.rest, ply_chunks(splat.subset(~selected)))
        if options.mask_dir:
            write_selection_masks(splat, cameras, selected, options.mask_dir, staged)
    print(f"selected {int(selected.sum()):,} of {splat.count:,} Gaussians ({options.level}, threshold {threshold}) "
          f"-> {options.out}", file=sys.stderr)
    return 0


def write_selection_masks(splat, cameras, selected: np.ndarray, folder: Path, staged) -> None:
    """Each view's rendered selection: white where more than half of a pixel's colour comes from it."""
    import torch
    from PIL import Image

    from .render import apply_weights
    from .views import camera_weights

    staged.make_folder(folder)
    share = torch.from_numpy(selected.astype(np.float32))[:, None]
    for camera in cameras:
        mask = apply_weights(camera_weights(splat, camera), share).reshape(camera.height, camera.width) > 0.5
        png = io_png(Image.fromarray((mask.numpy() * 255).astype(np.uint8)))
        staged.write(folder / (Path(camera.name).stem + ".png"), [png])


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


def run_render(options) -> int:
    import torch
    from PIL import Image

    from .click import unit_features
    from .features import load_features
    from .files import StagedOutputs
    from .render import apply_weights
    from .views import camera_weights

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
            rendered = apply_weights(weights, torch.from_numpy(unit_features(field.features, level))).numpy()
            colors = np.zeros((len(rendered), 3))
            covered = alpha > 0.5
            colors[covered] = pca_colors(rendered[covered])
            pictures[f"{stem}_{level}.png"] = (colors.reshape(*shape, 3) * 255).astype(np.uint8)
    with StagedOutputs() as staged:
        staged.make_folder(options.out)
        for name, picture in pictures.items():
            staged.write(options.out / name, [io_png(Image.fromarray(picture))])
    for name in pictures:
        print(f"wrote {options.out / name}", file=sys.stderr)
    return 0


def write_planned_views(options) -> int:
    """`render` without --cameras: the views training would plan and render, as PNGs and a COLMAP model."""
    from .cameras import write_colmap_text
    from .formats import read_splat
    from .rendered_views import render_views, write_png
    from .view_planning import plan_splat_views

    splat = read_splat(options.splat)
    cameras = plan_splat_views(splat, options.views, options.view_size, layout=options.view_layout,
                               name=str(options.splat)).cameras
    images = render_views(splat, cameras, None)
    for camera, image in zip(cameras, images):
        write_png(options.out / camera.name, image)
    write_colmap_text(options.out / "sparse" / "0", cameras)
    print(f"wrote {len(cameras)} planned views of {cameras[0].width}x{cameras[0].height} and their cameras "
          f"({options.out / 'sparse' / '0'}) to {options.out}", file=sys.stderr)
    return 0


class Stopped(BaseException):
    """SIGTERM as an exception, like Ctrl+C's KeyboardInterrupt, so staged outputs are removed on the way out."""

    def __init__(self, number: int):
        super().__init__(number)
        self.number = number


def raise_stopped(number, frame):
    raise Stopped(number)


def main(argv=None) -> int:
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, raise_stopped)  # `train` polls a flag instead (StopRequested)
    options = build_parser().parse_args(argv)
    from .evaluate import run_eval

    run = {"train": run_train, "segment": run_segment, "render": run_render, "eval": run_eval}[options.command]
    try:
        check_paths(options)  # before any work: no output may destroy an input or fail to be written at the end
        return run(options)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ncancelled: nothing was written", file=sys.stderr)
        return 130
    except Stopped as stop:
        print("\ncancelled: nothing was written", file=sys.stderr)
        return 128 + stop.number
