"""Blender's own Gaussian splats (5.3 on: `PointCloud.type == 'GAUSSIAN_SPLAT'`) and the file's columns.

Blender draws a native splat from `position`, `scale` (linear), `rotation` (unit w x y z),
`radiance:base` (f_dc r g b, then opacity after the sigmoid) and `radiance:sh_0..k` (one r g b
vector per higher SH coefficient), as its PLY importer makes them. Those hold positions and SH as
the file stores them; the sigmoid, exp and normalisation lose the file's opacity logits, log-scales
and quaternions, so objects the add-on imports keep those columns raw beside them (RAW_COLUMNS).

The native attributes are the truth, whoever edited them: a raw column is read back only where it
still gives the native value (so an unedited object exports byte for byte), and is otherwise
derived from it (an object from Blender's own importer, or one Blender's tools changed).
"""

from __future__ import annotations

import numpy as np

from .backend.for_blender import (
    DC_COLUMNS,
    POSITION_COLUMNS,
    ROTATION_COLUMNS,
    SCALE_COLUMNS,
    Splat,
    grouped_columns,
    rest_columns,
    sh_degree_for_rest_count,
)

BASE = "radiance:base"  # (N, 4) f_dc r g b, alpha
SH_PREFIX = "radiance:sh_"  # radiance:sh_k (N, 3): the (k+1)-th SH coefficient's r g b
SHOWN_ALPHA = "cg_shown_alpha"  # the alphas to restore when hidden Gaussians (drawn at alpha 0) are revealed
RAW_COLUMNS = ("opacity",) + SCALE_COLUMNS + ROTATION_COLUMNS  # what the activations lose
NATIVE_TYPES = {"position": "FLOAT_VECTOR", "scale": "FLOAT_VECTOR", "rotation": "QUATERNION", BASE: "FLOAT4"}
SH_TYPE = "FLOAT_VECTOR"  # each radiance:sh_k
SOURCES = (  # native attribute: the file columns it gives (besides SH)
    ("position", POSITION_COLUMNS),
    (BASE, DC_COLUMNS + ("opacity",)),
    ("scale", SCALE_COLUMNS),
    ("rotation", ROTATION_COLUMNS),
)
TOLERANCE = 1e-6  # a raw column still holds where its activation gives the native value to this (a few float32 ulps)


def is_native_attribute(name: str) -> bool:
    return name in NATIVE_TYPES or name.startswith(SH_PREFIX)


def unit_quaternions(rotations: np.ndarray) -> np.ndarray:  # (N, 4) w x y z -> (N, 4) float32; zero -> identity
    """As Blender's importer: times 1 / length, in float32 summed in order (so the same bits)."""
    q = rotations.astype(np.float32, copy=False)
    length = np.sqrt(q[:, 0] * q[:, 0] + q[:, 1] * q[:, 1] + q[:, 2] * q[:, 2] + q[:, 3] * q[:, 3])[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        unit = q * (np.float32(1) / length)
    unit[length[:, 0] == 0] = (1.0, 0.0, 0.0, 0.0)
    return unit


def exp(values: np.ndarray) -> np.ndarray:
    """float32 exp rounded from float64: within one float32 step of Blender's (C's expf, on any platform)."""
    with np.errstate(over="ignore"):
        return np.exp(values.astype(np.float64)).astype(np.float32)


def sigmoid(opacities: np.ndarray) -> np.ndarray:
    """Alphas of opacity logits as Blender's importer computes them: 1 / (1 + exp(-x)) in float32."""
    return np.float32(1) / (np.float32(1) + exp(-opacities.astype(np.float32, copy=False)))


def stacked(columns: dict, names) -> np.ndarray:  # (N, len(names)) float32, contiguous
    return np.stack([columns[name] for name in names], axis=1).astype(np.float32, copy=False)


def native_arrays(splat: Splat, changed=None) -> dict[str, np.ndarray]:
    """The native attributes (name -> (N, width) float32) of `splat`: those made of a column in `changed`, or all
    when None. SH only up to what the splat holds."""
    per_channel = sum(1 for name in splat.columns if name.startswith("f_rest_")) // 3
    groups = dict(SOURCES) | {
        f"{SH_PREFIX}{k}": tuple(f"f_rest_{k + c * per_channel}" for c in range(3)) for k in range(per_channel)
    }
    if changed is not None:
        groups = {name: columns for name, columns in groups.items() if not set(columns).isdisjoint(changed)}
    arrays = {
        name: values.astype(np.float32, copy=False)
        for name, values in zip(groups, grouped_columns(splat, list(groups.values())))
    }
    if "scale" in arrays:
        arrays["scale"] = exp(arrays["scale"])
    if "rotation" in arrays:
        arrays["rotation"] = unit_quaternions(arrays["rotation"])
    if BASE in arrays:
        arrays[BASE][:, 3] = sigmoid(arrays[BASE][:, 3])
    return arrays


def sh_count(names) -> int:
    """How many higher SH coefficients Blender draws: sh_0, sh_1, ... until one is missing, whole degrees only."""
    count = 0
    while f"{SH_PREFIX}{count}" in names:
        count += 1
    while count and sh_degree_for_rest_count(3 * count) is None:
        count -= 1
    return count


def held_columns(native) -> list[str]:
    """The file columns the native attributes named in `native` give."""
    held = [column for name, columns in SOURCES if name in native for column in columns]
    return held + list(rest_columns(sh_degree_for_rest_count(3 * sh_count(native)) or 0))


def native_sources(columns) -> list[str]:
    """The native attributes file `columns` are read from."""
    columns = set(columns)
    rest = sum(1 for column in columns if column.startswith("f_rest_"))
    return [name for name, held in SOURCES if columns & set(held)] + [f"{SH_PREFIX}{k}" for k in range(rest // 3)]


def native_columns(native: dict[str, np.ndarray], raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """File columns (name -> (N,)) from native attributes (name -> (N, width)) and the raw columns kept (name ->
    (N,)); only the columns the given native attributes hold."""
    columns: dict[str, np.ndarray] = {}
    if "position" in native:
        columns.update(zip(POSITION_COLUMNS, native["position"].T))
    if BASE in native:
        base = native[BASE]
        columns.update(zip(DC_COLUMNS, base[:, :3].T))
        columns["opacity"] = where_held(raw, ("opacity",), sigmoid, base[:, 3:], logits)[:, 0]
    if "scale" in native:
        columns.update(zip(SCALE_COLUMNS, where_held(raw, SCALE_COLUMNS, exp, native["scale"], log_scales).T))
    if "rotation" in native:
        unit = native["rotation"]
        columns.update(zip(ROTATION_COLUMNS, where_held(raw, ROTATION_COLUMNS, unit_quaternions, unit, None).T))
    count = sh_count(native)
    if count:
        sh = np.stack([native[f"{SH_PREFIX}{k}"] for k in range(count)], axis=2)  # (N, 3, K): channel-major
        degree = sh_degree_for_rest_count(3 * count)
        columns.update(zip(rest_columns(degree or 0), sh.reshape(len(sh), -1).T))
    return columns


def where_held(raw: dict, names, activation, native: np.ndarray, inverse) -> np.ndarray:  # (N, len(names))
    """The raw columns `names` in each row whose activation still gives `native` (N, width); the other rows (all
    where the raw columns are absent) from the native values through `inverse` (None: as they are).

    Alphas and scales are compared relatively, unit quaternions absolutely, both to TOLERANCE."""
    derived = native if inverse is None else inverse(native)
    if not all(name in raw for name in names):
        return derived
    stored = stacked(raw, names)
    activated = activation(stored)
    bound = TOLERANCE if inverse is None else TOLERANCE * np.abs(native)
    held = np.all((np.abs(activated - native) <= bound) | (activated == native), axis=1)
    return stored if held.all() else np.where(held[:, None], stored, derived)


def logits(alphas: np.ndarray) -> np.ndarray:
    """Opacity logits of alphas, kept finite: an alpha of 0 or 1 is taken a float32 step inside (0, 1)."""
    inside = np.clip(alphas, np.float32(1e-7), np.nextafter(np.float32(1), np.float32(0)))
    return (np.log(inside) - np.log1p(-inside)).astype(np.float32)


def log_scales(scales: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(scales, np.float32(1e-38))).astype(np.float32)
