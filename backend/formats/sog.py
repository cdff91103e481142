"""Reading PlayCanvas SOG ("super-compressed" splats: WebP images and codebooks), version 2, with numpy and Pillow.

A .sog file is a zip holding ``meta.json`` and lossless WebP images; the same files may also lie
loose beside a ``meta.json``. Each image holds one texel per Gaussian, row by row (layout after
splat-transform's ``write-sog.ts`` / ``read-sog.ts``):

- ``means_l`` / ``means_u``: the low and high bytes of 16-bit x y z, lerped between
  ``means.mins`` and ``means.maxs`` of ``sign(v) * ln(|v| + 1)``, which is then undone;
- ``quats``: smallest three of the w x y z quaternion times sqrt(2), each ``255 * (q / 2 + 0.5)``,
  and in alpha ``252 +`` the index of the largest (made positive) component;
- ``scales``: three indices into the 256 log scales of ``scales.codebook``;
- ``sh0``: three indices into ``sh0.codebook`` (f_dc values) and alpha = sigmoid(opacity) * 255;
- ``shN`` (optional): per Gaussian a 16-bit palette label (``shN_labels``, red low byte, green
  high), per palette entry ``(degree+1)^2 - 1`` texels of three indices into ``shN.codebook``
  (64 entries a row of ``shN_centroids``).

Decoding needs Pillow (with WebP support), which the backend's environment has; Blender's own
Python does not, so the add-on says so. Version 1 (per-channel ranges, no ``version`` key) is refused.
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import SplatFileError
from ..files import check_inflation, input_size, read_file_bytes, whole_number
from .splat import Splat

QUAT_SLOTS = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])  # the stored components, by the largest one
PALETTE_ROW = 64  # palette entries a row of shN_centroids holds
PALETTE_SIZE = 1 << 16  # entries a palette may have: each Gaussian's label is 16 bits


def _files(path: Path):
    """meta.json parsed, and a function giving the bytes of a file it names."""
    input_size(path)  # a regular file, before anything opens it
    try:
        bundled = zipfile.is_zipfile(path)
        if bundled:
            bundle = zipfile.ZipFile(path)
            names = set(bundle.namelist())

            def load(name: str) -> bytes:
                if name not in names:
                    raise SplatFileError(path, f"the SOG bundle lacks '{name}'")
                check_inflation(path, input_size(path), bundle.getinfo(name).file_size, f"SOG '{name}'")
                try:
                    return bundle.read(name)  # at most the size just checked
                except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError) as error:
                    # RuntimeError: zipfile's word for an encrypted member
                    raise SplatFileError(path, f"the SOG bundle's '{name}' cannot be read ({error})") from None
        else:

            def load(name: str) -> bytes:
                try:
                    return read_file_bytes(path.parent / name)  # a regular file: never a pipe or a device
                except OSError:
                    raise SplatFileError(path, f"the SOG image '{name}' beside it cannot be read") from None

        meta = json.loads(load("meta.json") if bundled else read_file_bytes(path))
    except FileNotFoundError:
        raise SplatFileError(path, "no such file") from None
    except (OSError, zipfile.BadZipFile) as error:
        raise SplatFileError(path, f"cannot be read ({error})") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise SplatFileError(path, "the SOG meta.json is not JSON") from None
    return meta, load


def _image(path: Path, load, name: str, least: int, most: int) -> np.ndarray:
    """(texels, 4) uint8 RGBA, row by row. The size its header declares is checked before decoding: from `least`
    to `most` texels."""
    try:
        from PIL import Image
    except ImportError:
        raise SplatFileError(path, "reading SOG needs the Pillow package (pip install pillow)") from None
    try:
        with Image.open(io.BytesIO(load(name))) as picture:
            declared = picture.width * picture.height
            if not least <= declared <= most:
                raise SplatFileError(
                    path,
                    f"the SOG image '{name}' is {picture.width}x{picture.height} ({declared:,} texels) where "
                    f"{least:,} to {most:,} are expected: refused before decoding",
                )
            texels = np.asarray(picture.convert("RGBA")).reshape(-1, 4)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise SplatFileError(path, f"the SOG image '{name}' cannot be decoded ({error})") from None
    if len(texels) < least:
        raise SplatFileError(path, f"the SOG image '{name}' holds {len(texels)} texels; {least} are expected")
    return texels


def _codebook(path: Path, meta: dict, key: str) -> np.ndarray:
    book = np.asarray(meta[key]["codebook"], dtype=np.float64)
    if book.shape != (256,):
        raise SplatFileError(path, f"the SOG '{key}' codebook holds {book.size} values; 256 are expected")
    return book


def read_sog(path) -> Splat:
    """The splat in a .sog bundle (or a loose SOG meta.json), decoded to the canonical 3DGS columns."""
    path = Path(path)
    meta, load = _files(path)
    if not isinstance(meta, dict) or "means" not in meta:
        raise SplatFileError(path, "not a SOG file (its meta.json has no 'means')")
    if meta.get("version") != 2:
        raise SplatFileError(path, f"SOG version {meta.get('version', 1)} is not supported (version 2 is)")
    try:
        count = whole_number(path, meta["count"], "SOG count", 1)
        files = {key: meta[key]["files"] for key in ("means", "quats", "scales", "sh0")}
        low, high = np.asarray(meta["means"]["mins"], np.float64), np.asarray(meta["means"]["maxs"], np.float64)
        scale_book, colour_book = _codebook(path, meta, "scales"), _codebook(path, meta, "sh0")
    except (KeyError, TypeError, ValueError):
        raise SplatFileError(path, "the SOG meta.json lacks count, means, scales, quats or sh0 entries") from None

    def image(name):  # one texel a Gaussian; an image may pad its last rows
        return _image(path, load, name, count, 4 * count + (1 << 16))[:count]

    means_low, means_high = image(files["means"][0]), image(files["means"][1])
    stored = (means_low[:, :3].astype(np.int64) | means_high[:, :3].astype(np.int64) << 8) / 65535.0
    logged = low + (high - low) * stored
    positions = np.sign(logged) * np.expm1(np.abs(logged))

    quats = image(files["quats"][0])
    largest = quats[:, 3].astype(np.int64) - 252
    valid = (largest >= 0) & (largest <= 3)
    largest = np.where(valid, largest, 0)
    smallest = (quats[:, :3] / 255.0 * 2.0 - 1.0) / np.sqrt(2.0)
    rows = np.arange(count)
    rotations = np.zeros((count, 4))
    for slot in range(3):
        rotations[rows, QUAT_SLOTS[largest, slot]] = smallest[:, slot]
    rotations[rows, largest] = np.sqrt(np.maximum(0.0, 1.0 - np.sum(smallest * smallest, axis=1)))
    rotations[~valid] = (1.0, 0.0, 0.0, 0.0)

    scales = scale_book[image(files["scales"][0])[:, :3]]
    colours = image(files["sh0"][0])
    alphas = np.clip(colours[:, 3] / 255.0, 1e-6, 1 - 1e-6)
    sh_rest = None
    if meta.get("shN"):
        sh_rest = _sh_rest(path, meta["shN"], image, load, count)
    return Splat.from_arrays(
        positions, colour_book[colours[:, :3]], np.log(alphas / (1.0 - alphas)), scales, rotations, sh_rest
    )


def _sh_rest(path: Path, entry: dict, image, load, count: int) -> np.ndarray:
    """(N, K-1, 3) SH rest from the palette: each Gaussian's label picks a row of codebook indices."""
    try:
        degree = whole_number(path, entry["bands"], "SOG shN bands", 1, 3)
        palette_count = whole_number(path, entry["count"], "SOG shN count", 1, PALETTE_SIZE)
        book = np.asarray(entry["codebook"], dtype=np.float64)
        centroid_file, label_file = entry["files"]
    except (KeyError, TypeError, ValueError):
        raise SplatFileError(path, "the SOG meta.json's shN entry lacks bands, count, codebook or files") from None
    if degree not in (1, 2, 3) or book.shape != (256,):
        raise SplatFileError(
            path,
            f"the SOG shN entry gives {degree} bands and {book.size} codebook values "
            "(1-3 bands and 256 values are expected)",
        )
    coefficients = (degree + 1) ** 2 - 1
    labels = image(label_file)
    labels = labels[:, 0].astype(np.int64) | labels[:, 1].astype(np.int64) << 8
    row_width = PALETTE_ROW * coefficients
    centroids = _image(path, load, centroid_file, row_width, PALETTE_SIZE // PALETTE_ROW * row_width)
    if len(centroids) % row_width:
        raise SplatFileError(path, f"the SOG image '{centroid_file}' is not {row_width} texels wide")
    table = centroids.reshape(-1, row_width, 4)  # (palette rows, 64 entries x coefficients, RGBA)
    known = labels < min(palette_count, len(table) * PALETTE_ROW)
    labels = np.where(known, labels, 0)
    columns = (labels % PALETTE_ROW)[:, None] * coefficients + np.arange(coefficients)  # (N, K-1)
    indices = table[(labels // PALETTE_ROW)[:, None], columns, :3]  # (N, K-1, 3): one index per channel
    return np.where(known[:, None, None], book[indices], 0.0)
