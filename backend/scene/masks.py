"""2D masks per training view, turned into the two label maps the contrastive losses read.

Three sources, one entry point (`view_labels`, or `view_masks` for the raw masks):
  "sam"          SAM's automatic mask generator with the user's checkpoint (the paper's source);
  "folder"       precomputed masks, one file per image matched by stem (label PNG or .npz stack);
  "felzenszwalb" graph-based segmentation at two scales: needs no weights, lower quality.
SAM and felzenszwalb results are cached on disk, one .npz per image, so a view is segmented once.

Two-level construction (METHOD.md): masks overlap; the coarse map gives a pixel to the largest
mask covering it, the fine map to the smallest; -1 marks pixels no mask covers (ignored).
Label values are mask indices, so a value means the same mask in both maps.

numpy only at import time; torch, segment_anything, scikit-image and pillow load when used.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..device import resolve_device, sam_device
from ..errors import UserError
from ..files import read_file_bytes, read_npz, write_atomic

NO_MASK = -1  # label of pixels that no mask covers; the losses skip them

SAM_MODEL_TYPES = ("vit_h", "vit_l", "vit_b", "default")  # the keys of sam_model_registry
SAM_PRED_IOU_THRESH = 0.88  # SamAutomaticMaskGenerator's defaults
SAM_STABILITY_SCORE_THRESH = 0.95
SAM_POINTS_PER_SIDE = 32

FELZENSZWALB_SOURCE = "felzenszwalb (lower quality than SAM)"
# Felzenszwalb's scale is a colour-difference budget (skimage works on [0, 1] colours):
# larger means fewer, larger segments. Minimum sizes are fractions of the image area so that
# the result does not depend on resolution and the mask count stays bounded (<= 1/fraction).
FELZENSZWALB_COARSE = (300.0, 1 / 60)  # (scale, min segment size as a fraction of H*W)
FELZENSZWALB_FINE = (100.0, 1 / 600)
FELZENSZWALB_SIGMA = 0.8

MASK_FILE_SUFFIXES = (".png", ".npz")
CACHE_VERSION = 1  # bump when what a cache file holds, or how it is computed, changes


@dataclass
class MaskSet:
    """The masks of one view, before they become label maps."""

    masks: np.ndarray  # (M, H, W) bool, may overlap
    scores: np.ndarray | None  # (M,) float32 confidence (SAM's predicted IoU), or None
    source: str  # human-readable: where the masks came from


# ---------------------------------------------------------------------------------------------
# Two-level label maps


def two_level_labels(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(M, H, W) bool -> coarse, fine: (H, W) int32 mask indices, NO_MASK where uncovered.

    Sorting the masks by area and taking the first covering one per pixel (argmax of a bool
    stack) is the largest (coarse) or smallest (fine) covering mask, without a Python loop.
    Equal areas go to the lower index at both levels.
    """
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks must be (M, H, W), got shape {masks.shape}")
    m, h, w = masks.shape
    flat = masks.reshape(m, h * w).astype(bool, copy=False)  # (M, HW)
    covered = flat.any(axis=0) if m else np.zeros(h * w, bool)  # (HW,)
    areas = flat.sum(axis=1)  # (M,)
    levels = []
    for order in (np.argsort(-areas, kind="stable"), np.argsort(areas, kind="stable")):
        first = flat[order].argmax(axis=0) if m else np.zeros(h * w, np.intp)  # (HW,) rank
        labels = np.where(covered, order[first] if m else NO_MASK, NO_MASK).astype(np.int32)
        levels.append(labels.reshape(h, w))
    return levels[0], levels[1]


# ---------------------------------------------------------------------------------------------
# The one entry point


def view_labels(image: np.ndarray, name: str, source: str, **options) -> tuple[np.ndarray, np.ndarray]:
    """The coarse and fine (H, W) int32 label maps of one view; see `two_level_labels`."""
    return two_level_labels(view_masks(image, name, source, **options).masks)


def view_masks(image: np.ndarray, name: str, source: str, **options) -> MaskSet:
    """The masks of one view from `source` ("sam", "folder" or "felzenszwalb").

    `image` is (H, W, 3) uint8 RGB, `name` its file name (folder masks are matched by its stem);
    `options` are the keyword settings of that source's function (sam_masks, folder_masks,
    felzenszwalb_masks). Wrong sources and settings are UserErrors naming them.
    """
    function = _source_function(source)
    _check_options(source, function, options)
    image = _as_rgb(image, name)
    if function is folder_masks:
        return folder_masks(image, name, **options)
    return function(image, **options)


GEOMETRIC_SOURCE = "geometric masks (3D groups of the splat's Gaussians, rendered into every view)"


def mask_source_description(source: str, **options) -> str:
    """One line for logs and the UI: which masks training uses, and how good they are."""
    if source == "geometric":  # from the splat and cameras, not per photo: geometric_masks.geometric_labels
        return GEOMETRIC_SOURCE
    function = _source_function(source)
    _check_options(source, function, options)
    if function is sam_masks:
        return _sam_description(**_sam_settings(**options))
    if function is folder_masks:
        return f"precomputed masks from {options['mask_dir']}"
    return FELZENSZWALB_SOURCE


def _source_function(source: str) -> Callable:
    sources: dict[str, Callable] = {"sam": sam_masks, "folder": folder_masks, "felzenszwalb": felzenszwalb_masks}
    if source not in sources:
        raise UserError(f"mask source {source!r} is unknown: use one of {', '.join(sources)}")
    return sources[source]


def _check_options(source: str, function: Callable, options: dict) -> None:
    """Turn what would be a TypeError deep inside into a message naming the setting."""
    parameters = inspect.signature(function).parameters
    settings = [p for p in parameters if p not in ("image", "name")]
    for key in options:
        if key not in settings:
            raise UserError(
                f"mask setting {key!r} does not apply to mask source {source!r} (its settings: {', '.join(settings)})"
            )
    for key in settings:
        if parameters[key].default is inspect.Parameter.empty and options.get(key) is None:
            raise UserError(f"mask source {source!r} needs the setting {key!r}")


def _as_rgb(image: np.ndarray, name: str) -> np.ndarray:
    """(H, W), (H, W, 3) or (H, W, 4) uint8 -> (H, W, 3) uint8; grey and alpha are common in the wild."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise UserError(f"{name}: expected an 8-bit grey, RGB or RGBA image, got {image.dtype} {image.shape}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])


# ---------------------------------------------------------------------------------------------
# Source (a): SAM's automatic mask generator


def sam_masks(
    image: np.ndarray,
    checkpoint: str | os.PathLike,
    model_type: str = "vit_h",
    pred_iou_thresh: float = SAM_PRED_IOU_THRESH,
    stability_score_thresh: float = SAM_STABILITY_SCORE_THRESH,
    points_per_side: int = SAM_POINTS_PER_SIDE,
    device: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> MaskSet:
    """SAM's confident automatic masks of an (H, W, 3) uint8 image, cached in `cache_dir`.

    The thresholds are SAM's own filters (its defaults); the cache key holds the image's content,
    the model type, the checkpoint's name and size and these settings, so changing any re-runs SAM.
    """
    settings = _sam_settings(checkpoint, model_type, pred_iou_thresh, stability_score_thresh, points_per_side)
    source = _sam_description(**settings)

    def compute() -> MaskSet:
        generator = _sam_generator(**settings, device=device or sam_device(resolve_device()))
        records = generator.generate(image)  # list of dicts, 'segmentation': (H, W) bool
        h, w = image.shape[:2]
        masks = np.array([r["segmentation"] for r in records], bool).reshape(-1, h, w)
        scores = np.array([r["predicted_iou"] for r in records], np.float32)
        return MaskSet(masks, scores, source)

    key = {
        **settings,
        "checkpoint": Path(settings["checkpoint"]).name,
        "checkpoint_bytes": os.path.getsize(settings["checkpoint"]),
    }
    return cached_masks(cache_dir, image, "sam", key, compute)


def _sam_settings(
    checkpoint=None,
    model_type="vit_h",
    pred_iou_thresh=SAM_PRED_IOU_THRESH,
    stability_score_thresh=SAM_STABILITY_SCORE_THRESH,
    points_per_side=SAM_POINTS_PER_SIDE,
    device=None,
    cache_dir=None,
) -> dict:
    """Checked SAM settings; fails before torch loads, so a typo costs no time."""
    if checkpoint is None:
        raise UserError("mask source 'sam' needs the setting 'checkpoint' (a SAM .pth file)")
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise UserError(f"SAM checkpoint {path}: no such file")
    if not os.access(path, os.R_OK):
        raise UserError(f"SAM checkpoint {path}: cannot be read (permissions)")
    if model_type not in SAM_MODEL_TYPES:
        raise UserError(f"SAM model type {model_type!r} is unknown: use one of {', '.join(SAM_MODEL_TYPES)}")
    for setting, value in (("pred_iou_thresh", pred_iou_thresh), ("stability_score_thresh", stability_score_thresh)):
        if not 0.0 <= float(value) <= 1.0:
            raise UserError(f"SAM setting {setting} = {value} must lie between 0 and 1")
    if int(points_per_side) < 1:
        raise UserError(f"SAM setting points_per_side = {points_per_side} must be at least 1")
    return {
        "checkpoint": str(path),
        "model_type": model_type,
        "pred_iou_thresh": float(pred_iou_thresh),
        "stability_score_thresh": float(stability_score_thresh),
        "points_per_side": int(points_per_side),
    }


def _sam_description(checkpoint, model_type, pred_iou_thresh, stability_score_thresh, points_per_side) -> str:
    return (
        f"SAM {model_type} ({Path(checkpoint).name}), predicted IoU >= {pred_iou_thresh}, "
        f"stability >= {stability_score_thresh}, {points_per_side} points per side"
    )


_SAM_CACHE: dict = {}  # settings -> generator: one model load per process, not per view


def _sam_generator(checkpoint, model_type, pred_iou_thresh, stability_score_thresh, points_per_side, device):
    key = (checkpoint, model_type, pred_iou_thresh, stability_score_thresh, points_per_side, device)
    if key not in _SAM_CACHE:
        _SAM_CACHE.clear()  # a SAM model is GBs: keep one
        sam_model_registry, generator_class = _import_segment_anything()
        try:
            model = sam_model_registry[model_type](checkpoint=checkpoint)
        except Exception as error:  # unpickling, zip or state-dict mismatch errors; all the user's
            raise UserError(
                f"SAM checkpoint {checkpoint}: cannot be loaded as a {model_type} model "
                f"({type(error).__name__}: {str(error)[:200]})"
            ) from error
        model.to(device=device).eval()
        _SAM_CACHE[key] = generator_class(
            model,
            points_per_side=points_per_side,
            pred_iou_thresh=pred_iou_thresh,
            stability_score_thresh=stability_score_thresh,
            output_mode="binary_mask",
        )
    return _SAM_CACHE[key]


def _import_segment_anything():
    try:
        from segment_anything import SamAutomaticMaskGenerator, sam_model_registry
    except ImportError as error:
        missing = getattr(error, "name", None) or str(error)
        raise UserError(
            f"mask source 'sam' needs the Python package {missing!r}, which cannot be "
            f"imported ({error}); install it into the backend's Python "
            "(segment-anything needs torch and torchvision)"
        ) from error
    return sam_model_registry, SamAutomaticMaskGenerator


# ---------------------------------------------------------------------------------------------
# Source (b): precomputed masks in a folder


def folder_masks(image: np.ndarray, name: str, mask_dir: str | os.PathLike) -> MaskSet:
    """The masks for image `name` from `mask_dir`: `<stem>.png` or `<stem>.npz`."""
    folder = Path(mask_dir).expanduser()
    if not folder.is_dir():
        raise UserError(f"mask folder {folder}: no such folder")
    stem = Path(name).stem
    found = [folder / (stem + suffix) for suffix in MASK_FILE_SUFFIXES if (folder / (stem + suffix)).is_file()]
    if not found:
        raise UserError(
            f"mask folder {folder}: no mask file for image {name} "
            f"(looked for {', '.join(stem + s for s in MASK_FILE_SUFFIXES)})"
        )
    if len(found) > 1:
        raise UserError(f"mask folder {folder}: both {found[0].name} and {found[1].name} match image {name}; keep one")
    height, width = image.shape[:2]
    return read_mask_file(found[0], (height, width))


def read_mask_file(path: str | os.PathLike, size: tuple[int, int]) -> MaskSet:
    """A label PNG or a .npz mask stack, checked against the view's (H, W) `size`."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        masks, scores = _read_mask_npz(path, size)
    elif path.suffix.lower() == ".png":
        masks, scores = _masks_from_labels(_read_label_png(path)), None
    else:
        raise UserError(f"{path}: mask files must be .png (labels) or .npz (mask stack)")
    factor = masks.shape[1] // max(size[0], 1)
    if factor > 1 and (masks.shape[1] // factor, masks.shape[2] // factor) == tuple(size):
        # masks of the full photo, training on it downscaled (--downscale, a device's default): the mask
        # pixel at the centre of each downscaled pixel
        masks = masks[:, factor // 2 :: factor, factor // 2 :: factor][:, : size[0], : size[1]]
    if masks.shape[1:] != tuple(size):
        raise UserError(
            f"{path}: the masks are {masks.shape[2]}x{masks.shape[1]} (width x height) "
            f"but the image is {size[1]}x{size[0]}"
        )
    return MaskSet(masks, scores, f"precomputed masks from {path.parent}")


def _read_label_png(path: Path) -> np.ndarray:
    """-> (H, W) integer labels; single-channel (grey or palette), 1-, 8- or 16-bit."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(read_file_bytes(path))) as png:
            mode = png.mode
            labels = np.array(png)
    except Exception as error:  # PIL raises many kinds for broken files
        raise UserError(f"{path}: cannot be read as a PNG ({error})") from error
    if labels.ndim != 2 or mode not in ("1", "L", "P", "I", "I;16", "I;16B", "I;16L"):
        raise UserError(
            f"{path}: a label PNG must be single-channel 8- or 16-bit "
            f"(0 = no mask, each other value one mask), this one is {mode}"
        )
    return labels


MAX_MASKS = 4096  # per view; SAM's automatic generator gives 100-200
MASK_BYTES = 1 << 30  # what a mask stack may always hold: 200 full-size masks of a 2.5k x 2k photo


def _masks_from_labels(labels: np.ndarray) -> np.ndarray:
    """(H, W) labels -> (M, H, W) bool, one mask per nonzero value, in value order."""
    values = np.unique(labels)
    values = values[values != 0]  # (M,)
    return labels[None] == values[:, None, None]


def _read_mask_npz(path: Path, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray | None]:
    """The 'masks' stack (and 'scores') for a view of (H, W) `size`, refused before inflating more than
    MAX_MASKS masks of the view, or MASK_BYTES, whichever is larger (full-photo masks for a smaller view)."""
    limit = max(MAX_MASKS * size[0] * size[1], MASK_BYTES)

    def fits(name, shape) -> bool:
        return math.prod(shape) <= (limit if name == "masks" else MAX_MASKS)

    arrays = read_npz(path, fits)
    if "masks" not in arrays:
        raise UserError(f"{path}: holds no array named 'masks' (it has: {', '.join(arrays) or 'nothing'})")
    masks = arrays["masks"]
    if masks.ndim != 3:
        raise UserError(f"{path}: 'masks' must be a stack of shape (M, H, W), got {masks.shape}")
    if masks.dtype != bool:
        if masks.dtype.kind not in "uif" or not np.isin(masks, (0, 1)).all():
            raise UserError(f"{path}: 'masks' must be boolean (or 0/1), got {masks.dtype} values")
        masks = masks.astype(bool)
    scores = arrays.get("scores")
    if scores is not None:
        if scores.shape != (masks.shape[0],) or scores.dtype.kind not in "uif":
            raise UserError(
                f"{path}: 'scores' must be {masks.shape[0]} numbers, one per mask, got {scores.dtype} {scores.shape}"
            )
        scores = scores.astype(np.float32)
    return masks, scores


# ---------------------------------------------------------------------------------------------
# Source (c): felzenszwalb, the fallback that needs no weights


def felzenszwalb_masks(
    image: np.ndarray,
    coarse_scale: float = FELZENSZWALB_COARSE[0],
    fine_scale: float = FELZENSZWALB_FINE[0],
    cache_dir: str | os.PathLike | None = None,
) -> MaskSet:
    """Segments at a coarse and a fine scale, as masks, so the two-level construction applies.

    Each scale partitions the image; a coarse segment and the fine pieces inside it overlap like
    SAM's object and part masks, so the coarse map takes the coarse segments and the fine map
    the fine pieces. Colour regions are not objects: lower quality than SAM.
    """
    if not 0 < fine_scale <= coarse_scale:
        raise UserError(
            f"felzenszwalb scales must satisfy 0 < fine_scale ({fine_scale}) <= coarse_scale ({coarse_scale})"
        )
    settings = {
        "coarse_scale": float(coarse_scale),
        "fine_scale": float(fine_scale),
        "sigma": FELZENSZWALB_SIGMA,
        "min_size": [FELZENSZWALB_COARSE[1], FELZENSZWALB_FINE[1]],
    }
    return cached_masks(
        cache_dir,
        image,
        "felzenszwalb",
        settings,
        lambda: _felzenszwalb_masks(image, float(coarse_scale), float(fine_scale)),
    )


def _felzenszwalb_masks(image: np.ndarray, coarse_scale: float, fine_scale: float) -> MaskSet:
    """Coarse segments, then fine segments cut along the coarse borders (nested, like object/part).

    Nesting keeps the granularity prior true (a part lies in one object): a fine segment that
    straddles two coarse ones would otherwise win the coarse map for being larger. Pieces smaller
    than the fine minimum size, and pieces equal to their whole coarse segment, are dropped: their
    pixels take the coarse segment's label in the fine map too.
    """
    from skimage.segmentation import felzenszwalb

    h, w = image.shape[:2]
    coarse_min, fine_min = (max(1, int(f * h * w)) for f in (FELZENSZWALB_COARSE[1], FELZENSZWALB_FINE[1]))
    coarse = felzenszwalb(image, scale=coarse_scale, sigma=FELZENSZWALB_SIGMA, min_size=coarse_min)  # (H, W)
    fine = felzenszwalb(image, scale=fine_scale, sigma=FELZENSZWALB_SIGMA, min_size=fine_min)  # (H, W)
    coarse_ids, coarse_areas = np.unique(coarse, return_counts=True)  # (C,), ids 0..C-1
    pieces, piece_of_pixel, piece_areas = np.unique(
        coarse.astype(np.int64) * (int(fine.max()) + 1) + fine, return_inverse=True, return_counts=True
    )  # (P,)
    piece_coarse = pieces // (int(fine.max()) + 1)  # (P,) the coarse segment holding each piece
    kept = np.flatnonzero((piece_areas >= fine_min) & (piece_areas < coarse_areas[piece_coarse]))  # (K,)
    coarse_masks = coarse[None] == coarse_ids[:, None, None]  # (C, H, W)
    fine_masks = piece_of_pixel.reshape(h, w)[None] == kept[:, None, None]  # (K, H, W)
    return MaskSet(np.concatenate([coarse_masks, fine_masks]), None, FELZENSZWALB_SOURCE)


# ---------------------------------------------------------------------------------------------
# The disk cache


def image_digest(image: np.ndarray) -> str:
    """A hash of the pixels and their shape: the same picture under another name hits the cache."""
    image = np.ascontiguousarray(image)
    digest = hashlib.sha256(repr((image.shape, image.dtype.str)).encode())
    digest.update(image.data)
    return digest.hexdigest()


def cached_masks(
    cache_dir: str | os.PathLike | None, image: np.ndarray, source: str, settings: dict, compute: Callable[[], MaskSet]
) -> MaskSet:
    """`compute()`, or its stored result for this image, source and settings.

    One compressed .npz per image and setting; written to a temporary file then renamed, so an
    interrupted run never leaves a half-written cache that a later run would trust. An unreadable
    cache file is recomputed, not an error: the cache is ours, not the user's.
    """
    if cache_dir is None:
        return compute()
    key, path = cache_entry(cache_dir, source, {"image": image_digest(image), **settings})
    cached = _read_cache(path, key)
    if cached is not None:
        return cached
    result = compute()
    _write_cache(path, key, result)
    return result


def cache_entry(cache_dir: str | os.PathLike, source: str, settings: dict) -> tuple[str, Path]:
    """The key a cache file of `source` and `settings` holds (to tell a hash collision from a hit), and its path."""
    key = json.dumps({"version": CACHE_VERSION, "source": source, **settings}, sort_keys=True)
    return key, Path(cache_dir).expanduser() / f"{source}_{hashlib.sha256(key.encode()).hexdigest()[:32]}.npz"


def stored_label_maps(cache_dir: str | os.PathLike, source: str, settings: dict) -> list | None:
    """The (coarse, fine) label maps of every view that `store_label_maps` kept for these settings, or None.

    For masks drawn from the splat rather than from each picture (geometric): the whole set is one file,
    keyed by what decides it (the splat's geometry, the cameras)."""
    key, path = cache_entry(cache_dir, source, settings)
    return _read_npz(path, key, lambda data: list(zip(data["coarse"], data["fine"])))


def store_label_maps(cache_dir: str | os.PathLike, source: str, settings: dict, labels: list) -> None:
    """Keeps every view's (coarse (H, W), fine (H, W)) int32 label maps, all of one size, for `stored_label_maps`."""
    key, path = cache_entry(cache_dir, source, settings)
    coarse, fine = (np.stack([maps[level] for maps in labels]) for level in (0, 1))
    _write_npz(path, {"key": np.array(key), "coarse": coarse, "fine": fine})


def stored_groups(cache_dir: str | os.PathLike, settings: dict) -> tuple[np.ndarray, np.ndarray, int] | None:
    """The 3D groups (coarse (N,), fine (N,) int32 ids, the ground's id) `store_groups` kept for these settings (the
    splat's geometry, the cameras), or None: what the geometric masks and the lifted field are drawn from."""
    key, path = cache_entry(cache_dir, "groups", settings)
    return _read_npz(path, key, lambda data: (data["coarse"], data["fine"], int(data["ground"])))


def store_groups(cache_dir: str | os.PathLike, settings: dict, coarse: np.ndarray, fine: np.ndarray, ground: int):
    key, path = cache_entry(cache_dir, "groups", settings)
    _write_npz(path, {"key": np.array(key), "coarse": coarse, "fine": fine, "ground": np.array(ground)})


def _read_cache(path: Path, key: str) -> MaskSet | None:
    def mask_set(data) -> MaskSet:
        h, w = (int(v) for v in data["size"])
        masks = np.unpackbits(data["masks"], axis=1, count=h * w).astype(bool).reshape(-1, h, w)
        return MaskSet(masks, data["scores"] if "scores" in data.files else None, str(data["source"]))

    return _read_npz(path, key, mask_set)


def _read_npz(path: Path, key: str, convert: Callable):
    """`convert(data)` of the cache file at `path` if it holds `key`; else None, to recompute."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) != key:  # a hash collision, or a file copied in by hand
                return None
            return convert(data)
    except Exception:  # missing, truncated or foreign file: recompute
        return None


def _write_cache(path: Path, key: str, result: MaskSet) -> None:
    m, h, w = result.masks.shape
    arrays = {
        "key": np.array(key),
        "source": np.array(result.source),
        "size": np.array([h, w]),
        "masks": np.packbits(result.masks.reshape(m, h * w), axis=1),
    }  # (M, ceil(HW/8)) uint8
    if result.scores is not None:
        arrays["scores"] = np.asarray(result.scores, np.float32)
    _write_npz(path, arrays)


def _write_npz(path: Path, arrays: dict) -> None:
    """A compressed .npz written whole or not at all (a temporary file, then renamed)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"mask cache folder {path.parent}: cannot be created ({error})") from error
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    try:
        write_atomic(path, [buffer.getvalue()])
    except OSError as error:
        raise UserError(f"mask cache {path}: cannot be written ({error})") from error
