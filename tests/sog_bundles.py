"""PlayCanvas SOG bundles packed here with splat-transform's write-sog.ts formulas (lossless WebP through Pillow:
without it, the tests that import this module are skipped)."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

Image = pytest.importorskip("PIL.Image")


def webp(texels: np.ndarray, width: int) -> bytes:
    """Lossless WebP of (n, 4) uint8 texels laid out row by row, `width` a row, padded with zeros."""
    height = -(-len(texels) // width)
    grid = np.zeros((width * height, 4), np.uint8)
    grid[: len(texels)] = texels
    out = io.BytesIO()
    Image.fromarray(grid.reshape(height, width, 4), "RGBA").save(out, "WEBP", lossless=True, exact=True)
    return out.getvalue()


def nearest(book: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.abs(values[..., None] - book).argmin(axis=-1).astype(np.uint8)


def pack_sog(splat, degree: int) -> dict[str, bytes]:
    """The files of a SOG version 2 bundle, as write-sog.ts lays them out (codebooks: even steps here)."""
    n, width = splat.count, 32
    logged = np.sign(splat.positions) * np.log1p(np.abs(splat.positions))
    low, high = logged.min(0), logged.max(0)
    fixed = (65535 * (logged - low) / (high - low)).astype(np.uint32)
    opaque = np.full((n, 1), 255, np.uint8)
    means_l = np.concatenate([(fixed & 0xFF).astype(np.uint8), opaque], 1)
    means_u = np.concatenate([(fixed >> 8).astype(np.uint8), opaque], 1)
    q = splat.rotations / np.linalg.norm(splat.rotations, axis=1, keepdims=True)
    largest = np.abs(q).argmax(1)
    q = q * np.where(q[np.arange(n), largest] < 0, -1, 1)[:, None] * np.sqrt(2)
    slots = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])[largest]
    quats = np.concatenate(
        [
            (255 * (q[np.arange(n)[:, None], slots] * 0.5 + 0.5)).astype(np.uint8),
            (252 + largest)[:, None].astype(np.uint8),
        ],
        1,
    )
    scale_book = np.linspace(-9, 1, 256)
    colour_book = np.linspace(-2, 2, 256)
    alpha = np.clip(splat.alphas * 255, 0, 255).astype(np.uint8)[:, None]
    files = {
        "means_l.webp": webp(means_l, width),
        "means_u.webp": webp(means_u, width),
        "quats.webp": webp(quats, width),
        "scales.webp": webp(np.concatenate([nearest(scale_book, splat.scales), opaque], 1), width),
        "sh0.webp": webp(np.concatenate([nearest(colour_book, splat.sh_dc), alpha], 1), width),
    }
    meta = {
        "version": 2,
        "count": n,
        "means": {"mins": low.tolist(), "maxs": high.tolist(), "files": ["means_l.webp", "means_u.webp"]},
        "scales": {"codebook": scale_book.tolist(), "files": ["scales.webp"]},
        "quats": {"files": ["quats.webp"]},
        "sh0": {"codebook": colour_book.tolist(), "files": ["sh0.webp"]},
    }
    if degree:  # the palette: every Gaussian its own entry here (the writer clusters them)
        coefficients = (degree + 1) ** 2 - 1
        sh_book = np.linspace(-1, 1, 256)
        labels = np.arange(n)
        files["shN_labels.webp"] = webp(
            np.stack([labels & 0xFF, labels >> 8, 0 * labels, 0 * labels + 255], 1).astype(np.uint8), width
        )
        entries = np.concatenate([nearest(sh_book, splat.sh_rest), np.full((n, coefficients, 1), 255, np.uint8)], 2)
        files["shN_centroids.webp"] = webp(entries.reshape(-1, 4), 64 * coefficients)
        meta["shN"] = {
            "count": n,
            "bands": degree,
            "codebook": sh_book.tolist(),
            "files": ["shN_centroids.webp", "shN_labels.webp"],
        }
    files["meta.json"] = json.dumps(meta).encode()
    return files


def bundle(path, files: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path
