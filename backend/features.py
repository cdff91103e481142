"""The learned feature field on disk: features.npz beside the splat, tied to that splat's geometry.

Features are stored as float16. They are unit directions compared by cosine similarity against
thresholds of about 0.5-0.95; float16's 11-bit mantissa moves a cosine by under 1e-3, far inside
those margins, and halves the file and the add-on's memory (48 MB per million Gaussians).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import UserError
from .ply import write_atomic
from .splat import Splat

FEATURE_DIM = 24  # per Gaussian: the coarse part is the first 12 channels, the fine feature all 24
COARSE_DIM = 12
LEVEL_DIMS = {"coarse": COARSE_DIM, "fine": FEATURE_DIM}


def geometry_fingerprint(splat: Splat) -> str:
    """A hash of what decides the rendering weights: positions, scales, rotations, opacities."""
    digest = hashlib.sha256()
    for values in (splat.positions, splat.scales, splat.rotations, splat.opacities):
        digest.update(np.ascontiguousarray(values, dtype=np.float32).tobytes())
    return digest.hexdigest()[:16]


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


def save_features(path, field_: FeatureField, compress: bool = True) -> None:
    """Written atomically; `compress` False for checkpoints, written often while training runs."""
    buffer = io.BytesIO()
    arrays = {f"centers_{level}": c.astype(np.float32) for level, c in field_.centers.items()}
    meta = {"count": field_.count, "fingerprint": field_.fingerprint, "config": field_.config, "mask_source": field_.mask_source}
    if field_.step is not None:
        meta["step"] = field_.step
    (np.savez_compressed if compress else np.savez)(buffer, features=field_.features.astype(np.float16), meta=json.dumps(meta), **arrays)
    write_atomic(path, [buffer.getvalue()])


def load_features(path, splat: Splat | None = None) -> FeatureField:
    """The features in `path`; with `splat`, an error unless they were trained for exactly that splat."""
    path = Path(path)
    try:
        with np.load(path) as data:
            meta = json.loads(str(data["meta"]))
            features = data["features"]
            centers = {name[8:]: data[name] for name in data.files if name.startswith("centers_")}
    except FileNotFoundError:
        raise UserError(f"{path}: no such features file") from None
    except (OSError, ValueError, KeyError) as error:
        raise UserError(f"{path}: not a features file written by 'python -m backend train' ({error})") from None
    if features.ndim != 2 or features.shape[1] != FEATURE_DIM:
        raise UserError(f"{path}: features have shape {features.shape}, expected (N, {FEATURE_DIM})")
    loaded = FeatureField(features, meta["fingerprint"], meta.get("config", {}), meta.get("mask_source", ""), centers,
                          meta.get("step"))
    if splat is not None:
        fingerprint = geometry_fingerprint(splat)
        if loaded.count != splat.count or loaded.fingerprint != fingerprint:
            raise UserError(
                f"{path}: these features belong to another splat ({loaded.count:,} Gaussians, geometry "
                f"{loaded.fingerprint}), not this one ({splat.count:,} Gaussians, geometry {fingerprint})"
            )
    return loaded
