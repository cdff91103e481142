"""`python -m backend segment`: the object under one or more clicks, written as splats (and masks)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..field.click import DEFAULT_THRESHOLDS
from ..field.floaters import DEFAULT_STRENGTH, floater_scores, floaters
from ..files import StagedOutputs
from ..formats import WRITE_FORMATS, left_out, read_splat, splat_chunks, write_format
from ..ranges import SETTINGS
from .arguments import path_argument
from .render import io_png
from .scene import add_scene_arguments, find_view, load_scene


def add_parser(commands) -> None:
    segment = commands.add_parser(
        "segment",
        help="select the object under one or more clicks",
        description="Select Gaussians by clicking a view, or the floaters (--floaters); write them and the rest "
        "as splats. Or write every segment the training found as its own file (--everything).",
    )
    add_scene_arguments(segment, images_required=False, cameras_help=" (needed for clicks)")
    path_argument(segment, "--features", "input", help="features from 'train' (needed for clicks)")
    segment.add_argument("--view", help="the image (camera) name the clicks are in")
    segment.add_argument(
        "--click",
        nargs=2,
        type=SETTINGS["click"],
        action="append",
        default=[],
        metavar=("X", "Y"),
        help="a pixel of the object (repeat to add more)",
    )
    segment.add_argument(
        "--exclude",
        nargs=2,
        type=SETTINGS["click"],
        action="append",
        default=[],
        metavar=("X", "Y"),
        help="a pixel whose object is removed from the selection",
    )
    segment.add_argument("--level", choices=("coarse", "fine"), default="coarse", help="whole objects or parts")
    segment.add_argument(
        "--threshold", type=SETTINGS["threshold"], help="cosine similarity to select above (default per level)"
    )
    segment.add_argument(
        "--floaters",
        action="store_true",
        help="select the Gaussians that belong to no surface instead of clicking (no features or cameras needed)",
    )
    segment.add_argument(
        "--strength",
        type=SETTINGS["strength"],
        help=f"with --floaters: how readily a Gaussian is taken, 0 none to 1 all (default {DEFAULT_STRENGTH})",
    )
    segment.add_argument(
        "--everything",
        action="store_true",
        help="write each segment (the training's global clusters at --level) as its own file into --out-dir, "
        "the Gaussians close to none as 'unassigned' (needs --features)",
    )
    path_argument(segment, "--out-dir", "output folder", help="with --everything: the folder for the files")
    segment.add_argument(
        "--format", choices=WRITE_FORMATS, default=".ply", help="with --everything: the files' format (default .ply)"
    )
    formats = ", ".join(WRITE_FORMATS)
    path_argument(segment, "--out", "output", help=f"the selected Gaussians ({formats}: by its name)")
    path_argument(segment, "--rest", "output", help=f"the other Gaussians ({formats})")
    path_argument(
        segment, "--mask-dir", "output folder", help="write the selection's rendered mask of every view here (PNG)"
    )


def run(options) -> int:
    check_mode(options)
    for flag, path in (("--out", options.out), ("--rest", options.rest)):
        if path is not None:
            try:
                write_format(path)
            except UserError as error:  # before any work
                raise UserError(f"{flag} {error}") from None
    if options.everything:
        return write_segments(options)
    if options.floaters:
        splat, cameras = read_splat(options.splat), []
        strength = DEFAULT_STRENGTH if options.strength is None else options.strength
        selected = floaters(floater_scores(splat.positions, np.exp(splat.scales), splat.alphas), strength)
        if not selected.any():
            raise UserError(f"--floaters takes no Gaussian at --strength {strength:g}: raise it; nothing was written")
        what = f"floaters (strength {strength:g})"
    else:
        splat, cameras, selected, what = clicked(options)
    with StagedOutputs(final=True) as staged:  # all of them or, after an error or a stop, none
        staged.write(options.out, splat_chunks(options.out, splat.subset(selected)))
        if options.rest:
            staged.write(options.rest, splat_chunks(options.rest, splat.subset(~selected)))
        if options.mask_dir:
            write_selection_masks(splat, cameras, selected, options.mask_dir, staged)
    print(f"selected {int(selected.sum()):,} of {splat.count:,} Gaussians ({what}) -> {options.out}", file=sys.stderr)
    for path in (options.out, options.rest):
        lost = left_out(splat, path) if path else []
        if lost:
            print(f"{path}: its format holds no {' nor '.join(lost)}", file=sys.stderr)
    return 0


FLAGS = (
    *("--features", "--cameras", "--view", "--click", "--exclude", "--threshold", "--mask-dir", "--out", "--rest"),
    *("--strength", "--out-dir"),
)
# each way of selecting: the flags it needs, and the others it takes
MODES = {
    "--floaters": (("--out",), ("--rest", "--strength")),
    "--everything": (("--features", "--out-dir"), ("--threshold",)),
    "clicks": (
        ("--features", "--cameras", "--view", "--click", "--out"),
        ("--exclude", "--threshold", "--mask-dir", "--rest"),
    ),
}


def check_mode(options) -> None:
    """One way of selecting, with what it needs and no flag it does not take."""
    if options.floaters and options.everything:
        raise UserError("--floaters and --everything are two ways of selecting: give one")
    mode = "--floaters" if options.floaters else "--everything" if options.everything else "clicks"
    needs, takes = MODES[mode]
    given = [flag for flag in FLAGS if value(options, flag) not in (None, [])]
    stray = [flag for flag in given if flag not in needs + takes]
    if stray:
        raise UserError(f"{stray[0]} does not go with {mode}")
    missing = [flag for flag in needs if flag not in given]
    if missing:
        for_what = "to select by clicks (or select floaters with --floaters)" if mode == "clicks" else f"with {mode}"
        raise UserError(f"{missing[0]} is needed {for_what}")


def value(options, flag: str):
    return getattr(options, flag.lstrip("-").replace("-", "_"))


def write_segments(options) -> int:
    """--everything: one file per segment at --level, their union the splat."""
    from ..field.click_features import cosines, unit_features
    from ..field.segments import segment_file_names, segment_labels
    from ..formats.features import load_features

    splat = read_splat(options.splat)
    field = load_features(options.features, splat)
    centers = field.centers.get(options.level)
    if centers is None or len(centers) == 0:
        raise UserError(f"{options.features}: it holds no {options.level} clusters (train with GFL on)")
    threshold = DEFAULT_THRESHOLDS[options.level] if options.threshold is None else options.threshold
    unit = unit_features(field.features, options.level, field.granularity_prior)  # (N, D) int16
    labels = segment_labels(cosines(unit, centers), threshold)
    names = segment_file_names(labels, options.format)
    with StagedOutputs(final=True) as staged:
        staged.make_folder(options.out_dir)
        for label, name in names.items():
            staged.write(options.out_dir / name, splat_chunks(name, splat.subset(labels == label)))
    print(f"wrote {len(names)} files of {splat.count:,} Gaussians to {options.out_dir}", file=sys.stderr)
    return 0


def clicked(options):
    """The splat, its cameras, (N,) bool the Gaussians the clicks select, and what selected them in words."""
    from ..field.click import Click, Mode
    from ..field.click_features import unit_features
    from ..field.click_index import ClickIndex, compose
    from ..field.click_pixels import Geometry
    from ..formats.features import load_features

    splat, cameras, _ = load_scene(options, need_images=False)
    field = load_features(options.features, splat)
    camera = find_view(cameras, options.view)
    threshold = DEFAULT_THRESHOLDS[options.level] if options.threshold is None else options.threshold
    prior = field.granularity_prior
    index = ClickIndex(Geometry.of(splat), lambda level: unit_features(field.features, level, prior), indexed=False)
    modes: list[tuple[list, Mode]] = [(options.click, "ADD"), (options.exclude, "SUBTRACT")]
    points = [(x, y, mode) for chosen, mode in modes for x, y in chosen]
    for x, y, _ in points:
        if not (0 <= x < camera.width and 0 <= y < camera.height):
            raise UserError(f"click ({x:g}, {y:g}) is outside view {camera.name} ({camera.width}x{camera.height})")
    clicks = [Click(camera, x + 0.5, y + 0.5, mode) for x, y, mode in points]  # pixel centres
    selected, missed = compose(index, clicks, options.level, threshold, np.zeros(splat.count, dtype=bool))
    if missed:
        x, y = missed[0].x - 0.5, missed[0].y - 0.5
        raise UserError(f"click ({x:g}, {y:g}) in {camera.name} hits no Gaussian")
    if not selected.any():
        raise UserError(
            f"the clicks select no Gaussian at the {options.level} level (threshold {threshold:g}): "
            f"lower --threshold or click elsewhere; nothing was written"
        )
    return splat, cameras, selected, f"{options.level}, threshold {threshold}"


def write_selection_masks(splat, cameras, selected: np.ndarray, folder: Path, staged) -> None:
    """Each view's rendered selection: white where more than half of a pixel's colour comes from it."""
    import torch
    from PIL import Image

    from ..field.views import camera_weights, drawn_masks

    staged.make_folder(folder)
    share = torch.from_numpy(selected.astype(np.float32))[:, None]
    for camera in cameras:
        mask = drawn_masks(camera_weights(splat, camera), share).reshape(camera.height, camera.width)
        png = io_png(Image.fromarray((mask.numpy() * 255).astype(np.uint8)))
        staged.write(folder / (Path(camera.name).stem + ".png"), [png])
