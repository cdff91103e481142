"""Reading and writing the antimatter15 ".splat" format (the first WebGL splat viewer's; many older viewers read
only it).

No header: 32 bytes per Gaussian, little-endian: position float32 x 3, scale float32 x 3
(linear, not log), colour uint8 x 4 (RGB from the SH DC term, ``(0.5 + SH_C0 * f_dc) * 255``,
and alpha ``sigmoid(opacity) * 255``), rotation uint8 x 4 (w x y z, ``q * 128 + 128`` of the
normalised quaternion). No spherical harmonics, no extra columns. Axes are the .ply's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import SplatFileError
from ..files import read_file_bytes, write_file
from .splat import SH_C0, Splat, alphas_of

RECORD = np.dtype([("position", "<f4", 3), ("scale", "<f4", 3), ("colour", "u1", 4), ("rotation", "u1", 4)])
ALPHA_FLOOR, ALPHA_CEIL = 0.25 / 255.0, 254.75 / 255.0  # alpha bytes 0 and 255 decode inside (0, 1): finite logits


def read_antimatter_splat(path) -> Splat:
    """The splat in a .splat file, as canonical 3DGS columns (SH degree 0)."""
    path = Path(path)
    data = read_file_bytes(path)
    if len(data) == 0:
        raise SplatFileError(path, "the file holds zero points")
    if len(data) % RECORD.itemsize:
        raise SplatFileError(
            path,
            f"a .splat file is 32 bytes per Gaussian; {len(data)} bytes is not a whole number of them (truncated?)",
        )
    rows = np.frombuffer(data, dtype=RECORD)
    scales = rows["scale"].astype(np.float64)
    if not (np.isfinite(rows["position"]).all() and np.isfinite(scales).all()):
        raise SplatFileError(path, "positions or scales hold NaN or infinite values")
    colour = rows["colour"].astype(np.float64) / 255.0
    alpha = np.clip(colour[:, 3], ALPHA_FLOOR, ALPHA_CEIL)
    rotations = (rows["rotation"].astype(np.float64) - 128.0) / 128.0
    rotations[np.linalg.norm(rotations, axis=1) == 0] = (1.0, 0.0, 0.0, 0.0)
    return Splat.from_arrays(
        positions=rows["position"],
        sh_dc=(colour[:, :3] - 0.5) / SH_C0,
        opacities=np.log(alpha / (1.0 - alpha)),
        scales=np.log(np.maximum(np.abs(scales), np.finfo(np.float32).tiny)),
        rotations=rotations / np.linalg.norm(rotations, axis=1, keepdims=True),
    )


def antimatter_splat_bytes(splat: Splat) -> bytes:
    """32 bytes per Gaussian. Steps: colour 1/255 (f_dc 1/(255 SH_C0)), alpha 1/255, rotation components
    1/128; positions and scales are float32 (scales through exp and log: a few float32 ulps)."""
    rows = np.empty(splat.count, dtype=RECORD)
    rows["position"] = splat.positions
    rows["scale"] = np.exp(splat.scales.astype(np.float64))
    alpha = alphas_of(splat.opacities.astype(np.float64))
    colour = np.concatenate([0.5 + SH_C0 * splat.sh_dc.astype(np.float64), alpha[:, None]], axis=1)
    rows["colour"] = np.clip(np.round(colour * 255.0), 0, 255)
    wxyz = splat.rotations.astype(np.float64)
    wxyz /= np.maximum(np.linalg.norm(wxyz, axis=1, keepdims=True), 1e-30)
    rows["rotation"] = np.clip(np.round(wxyz * 128.0 + 128.0), 0, 255)
    return rows.tobytes()


def write_antimatter_splat(path, splat: Splat) -> None:
    """Write `splat` as a .splat file, atomically; its SH rest and extra columns are not part of the format."""
    write_file(Path(path), [antimatter_splat_bytes(splat)])
