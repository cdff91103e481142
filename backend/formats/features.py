"""The learned feature field on disk: features.npz beside the splat, tied to that splat's geometry.

Features are stored as float16. They are unit directions compared by cosine similarity against
thresholds of about 0.5-0.95; float16's 11-bit mantissa moves a cosine by under 1e-3, far inside
those margins, and halves the file and the add-on's memory (48 MB per million Gaussians).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from ..errors import InputFileError, UserError
from ..files import check_inflation, read_file_bytes, read_npz_array, write_atomic
from .splat import Splat

FEATURE_DIM = 24  # per Gaussian: the coarse part is the first 12 channels, the fine feature all 24
COARSE_DIM = 12
Level = Literal["coarse", "fine"]  # whole objects, or their parts
LEVEL_DIMS: dict[Level, int] = {"coarse": COARSE_DIM, "fine": FEATURE_DIM}
MAX_META_BYTES = 1 << 20
NPY_HEADER_BYTES = 1 << 12


def geometry_fingerprint(splat: Splat) -> str:
    """A hash of what decides the rendering weights (positions, scales, rotations, opacities), '.', and one of the
    positions alone: features also fit a splat whose positions match where another tool stored its Gaussians'
    shapes otherwise (Blender's own import keeps alphas, linear scales and unit quaternions, not the file's
    logits, logs and quaternions as stored). Older files hold the first hash only."""
    digests = hashlib.sha256(), hashlib.sha256()
    for values in (splat.positions, splat.scales, splat.rotations, splat.opacities):
        digests[0].update(np.ascontiguousarray(values, dtype=np.float32).tobytes())
    digests[1].update(np.ascontiguousarray(splat.positions, dtype=np.float32).tobytes())
    return ".".join(digest.hexdigest()[:16] for digest in digests)


def fits(fingerprint: str, splat: Splat) -> bool:
    """Whether features of `fingerprint` belong to `splat`: the same geometry, or the same positions."""
    stored, mine = fingerprint.split("."), geometry_fingerprint(splat).split(".")
    return stored[0] == mine[0] or (len(stored) > 1 and stored[1] == mine[1])


@dataclass
class FeatureField:
    features: np.ndarray  # (N, 24) float16
    fingerprint: str
    config: dict = field(default_factory=dict)  # the training settings
    mask_source: str = ""
    centers: dict = field(default_factory=dict)  # level -> (K, dim) float32 unit global cluster centres
    step: int | None = None  # a checkpoint of a run still training: the steps done; None: the finished field

    @property
    def count(self) -> int:
        return len(self.features)

    @property
    def granularity_prior(self) -> bool:
        """Whether it was trained with the granularity prior, which its clicks then apply (older files were)."""
        return bool(self.config.get("use_granularity_prior", True))


def features_file_bytes(field_: FeatureField, compress: bool = True) -> bytes:
    """The .npz file of a field: float16 features, float32 centres, and `meta` as JSON text (with `step` for a
    checkpoint); `compress` False for checkpoints, written often while training runs."""
    buffer = io.BytesIO()
    arrays = {f"centers_{level}": c.astype(np.float32) for level, c in field_.centers.items()}
    meta = {
        "count": field_.count,
        "fingerprint": field_.fingerprint,
        "config": field_.config,
        "mask_source": field_.mask_source,
    }
    if field_.step is not None:
        meta["step"] = field_.step
    (np.savez_compressed if compress else np.savez)(
        buffer, features=field_.features.astype(np.float16), meta=json.dumps(meta), **arrays
    )
    return buffer.getvalue()


def save_features(path, field_: FeatureField, compress: bool = True) -> None:
    write_atomic(path, [features_file_bytes(field_, compress)])


def load_features(path, splat: Splat | None = None) -> FeatureField:
    """The features in `path`; with `splat`, an error unless they were trained for exactly that splat.

    Whatever the file holds (truncated, foreign, a plain .npy, crafted to inflate), the outcome is
    the field or one InputFileError naming the file: each array is bounded before it is inflated
    by the point count its `meta` gives, and that count by the file's size.
    """
    path = Path(path)
    data = read_file_bytes(path)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            meta = read_meta(path, read_npz_array(path, archive, "meta", MAX_META_BYTES))
            count = meta["count"]
            check_inflation(path, len(data), count * FEATURE_DIM * 2, f"features for {count:,} Gaussians")
            if splat is not None and count != splat.count:
                raise_other_splat(path, count, meta["fingerprint"], splat)
            features = read_npz_array(path, archive, "features", count * FEATURE_DIM * 2 + NPY_HEADER_BYTES)
            centers = {
                name[8:-4]: read_npz_array(path, archive, name[:-4], count * FEATURE_DIM * 4 + NPY_HEADER_BYTES)
                for name in archive.namelist()
                if name.startswith("centers_") and name.endswith(".npy")
            }
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError, RuntimeError) as error:
        # RuntimeError: zipfile's word for an encrypted member
        raise InputFileError(path, f"not a features file written by 'python -m backend train' ({error})") from None
    if features.dtype.kind != "f" or features.shape != (count, FEATURE_DIM):
        raise InputFileError(
            path,
            f"features are {features.dtype} of shape {features.shape}; "
            f"float16 of shape ({count}, {FEATURE_DIM}) are expected",
        )
    for level, center in centers.items():
        if (
            level not in LEVEL_DIMS
            or center.dtype.kind != "f"
            or center.ndim != 2
            or center.shape[1] != LEVEL_DIMS[level]
        ):
            raise InputFileError(
                path, f"centers_{level} are {center.dtype} of shape {center.shape}, not a level's cluster centres"
            )
    loaded = FeatureField(features, meta["fingerprint"], meta["config"], meta["mask_source"], centers, meta["step"])
    if splat is not None and not fits(loaded.fingerprint, splat):
        raise_other_splat(path, count, loaded.fingerprint, splat)
    return loaded


def read_meta(path: Path, stored: np.ndarray) -> dict:
    """The checked `meta` record: count (a positive integer), fingerprint, config, mask_source."""
    try:
        meta = json.loads(str(stored)) if stored.dtype.kind == "U" and stored.ndim == 0 else None
    except json.JSONDecodeError:
        meta = None
    if not isinstance(meta, dict):
        raise InputFileError(path, "its 'meta' is not the JSON record 'python -m backend train' writes")
    count, fingerprint = meta.get("count"), meta.get("fingerprint")
    if type(count) is not int or count < 1 or not isinstance(fingerprint, str):
        raise InputFileError(path, "its 'meta' lacks a point count or a geometry fingerprint")
    config, source = meta.get("config", {}), meta.get("mask_source", "")
    step = meta.get("step")  # a checkpoint's
    return {
        "count": count,
        "fingerprint": fingerprint,
        "config": config if isinstance(config, dict) else {},
        "mask_source": source if isinstance(source, str) else "",
        "step": step if type(step) is int else None,
    }


def raise_other_splat(path: Path, count: int, fingerprint: str, splat: Splat):
    raise UserError(
        f"{path}: these features belong to another splat ({count:,} Gaussians, geometry "
        f"{fingerprint}), not this one ({splat.count:,} Gaussians, geometry {geometry_fingerprint(splat)})"
    )
