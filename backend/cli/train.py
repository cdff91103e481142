"""`python -m backend train`: masks, then the feature field, written atomically; checkpoints while it runs."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..device import resolve_device, sam_device
from ..device_defaults import DEVICE_DEFAULTS, DEVICES
from ..errors import UserError
from ..progress import Checkpoint, Done, Masks
from ..ranges import SETTINGS
from .arguments import cache_folders, path_argument
from .protocol import progress_printer
from .scene import add_scene_arguments, add_view_arguments, load_scene, rendered_scene, views_cache
from .stopping import StopRequested, cancelled

MASK_SOURCES = ("auto", "sam", "folder", "geometric", "felzenszwalb")


def add_parser(commands) -> None:
    train = commands.add_parser(
        "train",
        help="learn 24 features per Gaussian from the photos and 2D masks",
        description="Learn the Click-Gaussian feature field (../shared/METHOD.md).",
    )
    add_scene_arguments(
        train,
        images_required=False,
        cameras_help=(
            "; with no --images, these cameras' views are rendered from the splat, and with neither, views are planned "
            "and rendered from the splat alone (docs/views_from_splat.md)"
        ),
        downscale_per_device=True,
    )
    add_view_arguments(train)
    path_argument(train, "--out", "output", required=True, help="features file to write (.npz), atomically")
    train.add_argument(
        "--masks",
        choices=MASK_SOURCES,
        default="auto",
        help="mask source: SAM with --sam-checkpoint, a folder with --mask-dir, or the weight-free "
        "geometric masks (3D groups of the splat rendered into every view); auto picks in that "
        "order. felzenszwalb: colour segments of each photo (lower quality)",
    )
    path_argument(train, "--mask-dir", "input", help="precomputed masks, one label PNG or .npz per image")
    path_argument(train, "--sam-checkpoint", "input", help="a segment-anything checkpoint (.pth)")
    train.add_argument("--sam-model", default="vit_h", help="SAM model type of the checkpoint (default vit_h)")
    path_argument(train, "--mask-cache", "output folder", help="folder caching computed masks (default: <out>.masks/)")
    cache_folders(train, default_caches)
    train.add_argument(
        "--device",
        default="auto",
        choices=DEVICES,
        help="auto: an NVIDIA GPU (cuda), else an Apple GPU (mps), else the CPU",
    )
    train.add_argument(
        "--progress",
        default="bar",
        choices=("bar", "json", "none"),
        help="progress on stderr as a bar, or one JSON object per line on stdout",
    )
    train.add_argument(
        "--checkpoint-every",
        type=SETTINGS["checkpoint_every"],
        metavar="STEPS",
        help="write the features so far to <out>.checkpoint.npz every STEPS steps (0: never; default "
        "per device: "
        + ", ".join(f"{n} {d.checkpoint_every}" for n, d in DEVICE_DEFAULTS.items())
        + "); it is removed when the run ends",
    )
    train.add_argument(
        "--parent-link",
        type=Path,
        metavar="FOLDER",
        help="run as a program's child (the add-on's): when standard input closes, because that "
        "program ended or crashed, stop at once and remove FOLDER, the run's scratch folder",
    )
    from ..field.train import SETTING_RANGES, TrainConfig, setting_option

    defaults = TrainConfig()
    for name, value in vars(defaults).items():
        if isinstance(value, bool):
            train.add_argument(
                f"--no-{name[4:].replace('_', '-')}",
                dest=name,
                action="store_false",
                help=f"switch off the {name[4:].replace('_', ' ')} term (ablation)",
            )
        elif hasattr(DEVICE_DEFAULTS["cpu"], name):
            per_device = ", ".join(f"{n} {getattr(d, name)}" for n, d in DEVICE_DEFAULTS.items())
            train.add_argument(
                setting_option(name),
                type=SETTING_RANGES.get(name, type(value)),
                help=f"default per device: {per_device}",
            )
        else:
            special = {
                "iterations": f"training steps (default {value} with masks from images; with the geometric masks "
                "none: their field is lifted from the splat's 3D groups at once, and steps asked for start from it)",
                "gfl_start": "the step GFL starts at "
                "(default -1: two thirds of the iterations, as the paper's 2000 of 3000)",
                "mask_balance": f"share of a step's pixels drawn evenly over the view's masks, the rest uniformly "
                f"(default {value:g}; 0: uniform, where thin parts lose to big ones: docs/accuracy.md)",
            }
            train.add_argument(
                setting_option(name),
                type=SETTING_RANGES.get(name, type(value)),
                default=None if name == "iterations" else value,
                help=special.get(name, f"default {value}"),
            )


def default_caches(options) -> dict[str, Path]:
    """The caches beside --out the run will write: the masks' unless --mask-cache names another, and without
    --images the rendered views'."""
    caches = {} if options.mask_cache else {"the mask cache": mask_cache(options)}
    if options.images is None:
        caches["the views cache"] = views_cache(options)
    return caches


def mask_cache(options) -> Path:
    return options.mask_cache or options.out.with_name(options.out.name + ".masks")


def mask_settings(options, device: str = "cpu") -> tuple[str, dict]:
    """The mask source and its settings, `auto` resolved; each source's own function checks the rest."""
    source = options.masks
    if source == "auto":
        source = "sam" if options.sam_checkpoint else "folder" if options.mask_dir else "geometric"
    cache = mask_cache(options)
    settings = {
        "sam": lambda: {
            "checkpoint": options.sam_checkpoint,
            "model_type": options.sam_model,
            "cache_dir": cache,
            "device": sam_device(device),
        },
        "folder": lambda: {"mask_dir": options.mask_dir},
        "felzenszwalb": lambda: {"cache_dir": cache},
        "geometric": lambda: {},
    }[source]()
    if source == "sam" and not options.sam_checkpoint:
        raise UserError("--masks sam needs --sam-checkpoint (a segment-anything .pth file)")
    if source == "folder" and not options.mask_dir:
        raise UserError("--masks folder needs --mask-dir")
    return source, settings


def run(options) -> int:
    from ..field.train import TrainConfig, TrainResult, train_features
    from ..field.training_masks import TrainingMasks
    from ..field.view_weights import view_weights
    from ..files import write_keeping
    from ..formats.features import features_file_bytes, save_features

    stop = StopRequested()
    progress = progress_printer(options.progress)
    device = resolve_device(options.device)
    config = TrainConfig.for_device(device, **{name: getattr(options, name) for name in vars(TrainConfig())})
    for name, value in vars(DEVICE_DEFAULTS[device]).items():  # the other settings not given (downscale, checkpoints)
        if name not in vars(config) and getattr(options, name) is None:
            setattr(options, name, value)
    masks = TrainingMasks(*mask_settings(options, device), mask_cache(options))
    checkpoint_path = options.out.with_name(options.out.stem + ".checkpoint.npz")

    checkpoints: list[int] = []  # the steps written: the file is this run's to remove only when it wrote one

    def write_checkpoint(field) -> None:
        save_features(checkpoint_path, field, compress=False)  # a second, not the minute zlib takes on the statue
        checkpoints.append(field.step)
        progress(Checkpoint(iteration=field.step, path=str(checkpoint_path)))

    def first_field(splat, cameras) -> None:
        """The first field that clicks, before the views are rendered or weighed: the groups of a sample of the
        Gaussians (the groups of all of them follow, from the cache at once when they are there)."""
        quick = masks.quick_field(splat, cameras) if options.checkpoint_every else None
        if quick is not None:
            write_checkpoint(quick)

    lifted_is_final = masks.geometric and options.iterations is None  # training would only redraw the groups
    try:  # a checkpoint written on the way (the lifted fields, steps) is removed however the run ends
        started = time.perf_counter()
        weights = None  # the views' weights, made once: by rendering, or for the geometric masks, then by training
        if options.images is None:
            splat, cameras, images, weights = rendered_scene(
                options, progress, stop, device, first_field, render=not lifted_is_final
            )
            if stop():
                return cancelled(stop)
        else:
            splat, cameras, images = load_scene(options, need_images=not lifted_is_final)
            first_field(splat, cameras)
        render_seconds = time.perf_counter() - started
        started = time.perf_counter()
        progress(Masks(source=masks.description, views=len(cameras)))
        weights_seconds = 0.0
        lifted = None  # the field of the 3D groups: the final field, or where training starts
        if masks.geometric:  # the 3D groups: a field at once (lifted), then masks drawn with the views' weights
            lifted = masks.groups_field(splat, cameras, final=lifted_is_final)
            if stop():
                return cancelled(stop)
            if not lifted_is_final:
                if options.checkpoint_every:  # the groups of all of them, until training's first checkpoint
                    write_checkpoint(lifted)
                weights_started = time.perf_counter()
                weights = weights if weights is not None else view_weights(splat, cameras, device, stop)
                weights_seconds = time.perf_counter() - weights_started
        labels = [] if lifted_is_final else masks.label_maps(splat, cameras, images, weights, stop)
        if stop():
            return cancelled(stop)
        mask_seconds = time.perf_counter() - started - weights_seconds
        if lifted is not None and lifted.step is None:  # final
            result = TrainResult(lifted, {})
        else:
            result = train_features(
                splat,
                cameras,
                labels,
                config,
                masks.description,
                device,
                progress,
                stop,
                options.checkpoint_every,
                write_checkpoint,
                precomputed=weights,
                initial=None if lifted is None else lifted.features,
            )
    except UserError:
        if stop():
            return cancelled(stop)
        raise
    finally:
        if checkpoints:
            checkpoint_path.unlink(missing_ok=True)
    write_keeping(options.out, features_file_bytes(result.field), "trained features")
    if weights_seconds:  # the weights belong to training's precompute, masks or not
        result.seconds["precompute"] += weights_seconds
    seconds = {"masks": round(mask_seconds, 2), **{k: round(v, 2) for k, v in result.seconds.items()}}
    if options.images is None:
        seconds = {"views": round(render_seconds, 2), **seconds}
    progress(Done(out=str(options.out), seconds=seconds))
    if options.progress == "bar":
        print(
            f"wrote {options.out} ({splat.count:,} Gaussians); seconds per phase: "
            + ", ".join(f"{k} {v}" for k, v in seconds.items()),
            file=sys.stderr,
        )
    return 0
