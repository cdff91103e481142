"""Splat files written here as other tools write them, for the readers to read back: the PlayCanvas compressed PLY
and Niantic SPZ packed with their writers' formulas, plain PLY through the independent plyfile package; random
splats to write; the real files in ../shared."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from plyfile import PlyData, PlyElement

from backend.formats.compressed_ply import CHUNK_SIZE
from backend.formats.splat import SH_C0, Splat
from backend.formats.spz import _sh_flips

SPLATS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "splats"
needs_shared = pytest.mark.skipif(not SPLATS.is_dir(), reason="../shared/data/splats is absent")


def _has_zstd() -> bool:
    for name in ("compression.zstd", "zstandard"):
        try:
            __import__(name)
            return True
        except ImportError:
            pass
    return False


# SPZ version 4 is zstd; the tests that write it use the zstandard package.
needs_zstd = pytest.mark.skipif(not _has_zstd(), reason="no zstd decoder (pip install zstandard)")


# ---------------------------------------------------------------------------------------------
# Compressed PLY: packed with splat-transform's compressed-chunk.ts formulas


def pack_unorm(value, bits):
    top = (1 << bits) - 1
    return np.clip(np.floor(np.asarray(value, dtype=np.float64) * top + 0.5), 0, top).astype(np.uint32)


def pack_rotations_playcanvas(wxyz: np.ndarray) -> np.ndarray:
    q = wxyz / np.linalg.norm(wxyz, axis=1, keepdims=True)
    largest = np.argmax(np.abs(q), axis=1)
    q = q * np.where(q[np.arange(len(q)), largest] < 0, -1.0, 1.0)[:, None]
    words = largest.astype(np.uint32)
    for i in range(len(q)):
        for j in range(4):
            if j != largest[i]:
                words[i] = (words[i] << np.uint32(10)) | pack_unorm(q[i, j] * np.sqrt(0.5) + 0.5, 10)
    return words


def write_compressed_ply(path: Path, splat: Splat, chunk_colours=True, sh_degree=0, cut=0, chunks=None):
    n = splat.count
    num_chunks = -(-n // CHUNK_SIZE) if chunks is None else chunks
    chunk_rows, packed = [], np.zeros((n, 4), dtype=np.uint32)
    colours = 0.5 + SH_C0 * splat.sh_dc.astype(np.float64)
    for c in range(-(-n // CHUNK_SIZE)):
        sl = slice(c * CHUNK_SIZE, min(n, (c + 1) * CHUNK_SIZE))
        pos, sca, col = splat.positions[sl].astype(np.float64), splat.scales[sl].astype(np.float64), colours[sl]
        lo_p, hi_p, lo_s, hi_s, lo_c, hi_c = pos.min(0), pos.max(0), sca.min(0), sca.max(0), col.min(0), col.max(0)
        row = list(lo_p) + list(hi_p) + list(lo_s) + list(hi_s) + (list(lo_c) + list(hi_c) if chunk_colours else [])
        chunk_rows.append(row)

        def norm(x, lo, hi):
            return np.where(hi - lo < 1e-5, 0.0, (x - lo) / np.where(hi - lo < 1e-5, 1.0, hi - lo))

        def p111011(t):
            return (
                (pack_unorm(t[:, 0], 11) << np.uint32(21))
                | (pack_unorm(t[:, 1], 10) << np.uint32(11))
                | pack_unorm(t[:, 2], 11)
            )

        packed[sl, 0] = p111011(norm(pos, lo_p, hi_p))
        packed[sl, 1] = pack_rotations_playcanvas(splat.rotations[sl].astype(np.float64))
        packed[sl, 2] = p111011(norm(sca, lo_s, hi_s))
        rgb = norm(col, lo_c, hi_c) if chunk_colours else col
        packed[sl, 3] = (
            (pack_unorm(rgb[:, 0], 8) << np.uint32(24))
            | (pack_unorm(rgb[:, 1], 8) << np.uint32(16))
            | (pack_unorm(rgb[:, 2], 8) << np.uint32(8))
            | pack_unorm(splat.alphas[sl], 8)
        )
    names = [
        "min_x",
        "min_y",
        "min_z",
        "max_x",
        "max_y",
        "max_z",
        "min_scale_x",
        "min_scale_y",
        "min_scale_z",
        "max_scale_x",
        "max_scale_y",
        "max_scale_z",
    ]
    if chunk_colours:
        names += ["min_r", "min_g", "min_b", "max_r", "max_g", "max_b"]
    lines = ["ply", "format binary_little_endian 1.0", f"element chunk {num_chunks}"]
    lines += [f"property float {name}" for name in names]
    lines += [f"element vertex {n}"] + [f"property uint packed_{k}" for k in ("position", "rotation", "scale", "color")]
    body = np.asarray(chunk_rows[:num_chunks] + chunk_rows[:1] * max(0, num_chunks - len(chunk_rows)), "<f4").tobytes()
    body += packed.astype("<u4").tobytes()
    if sh_degree:
        rest = splat.stack([f"f_rest_{i}" for i in range(3 * ((sh_degree + 1) ** 2 - 1))]).astype(np.float64)
        lines += [f"element sh {n}"] + [f"property uchar f_rest_{i}" for i in range(rest.shape[1])]
        body += np.clip(np.trunc((rest / 8 + 0.5) * 256), 0, 255).astype(np.uint8).tobytes()
    data = ("\n".join(lines + ["end_header"]) + "\n").encode() + body
    path.write_bytes(data[: len(data) - cut])
    return path


def random_splat(n: int, sh_degree: int, seed: int = 0) -> Splat:
    rng = np.random.default_rng(seed)
    rest = rng.uniform(-0.9, 0.9, size=(n, (sh_degree + 1) ** 2 - 1, 3)) if sh_degree else None
    return Splat.from_arrays(
        positions=rng.normal(size=(n, 3)) * 3,
        sh_dc=rng.uniform(-1.5, 1.5, size=(n, 3)),
        opacities=rng.uniform(-5, 5, size=n),
        scales=rng.uniform(-8, 0, size=(n, 3)),
        rotations=rng.normal(size=(n, 4)),
        sh_rest=rest,
    )


# ---------------------------------------------------------------------------------------------
# SPZ: packed with the reference load-spz.cc formulas


def pack_spz(
    splat: Splat,
    version: int = 3,
    container: str = "gzip",
    to_rub: bool = True,
    flags: int = 0,
    count: int | None = None,
) -> bytes:
    n = splat.count
    degree = splat.sh_degree
    x, y, z = (1.0, -1.0, -1.0) if to_rub else (1.0, 1.0, 1.0)
    fixed = np.round(splat.positions.astype(np.float64) * np.array([x, y, z]) * 4096).astype(np.int64)
    positions = np.stack([(fixed >> s) & 0xFF for s in (0, 8, 16)], axis=-1).astype(np.uint8).tobytes()
    alphas = np.clip(np.round(splat.alphas * 255), 0, 255).astype(np.uint8).tobytes()
    colours = np.clip(np.round(splat.sh_dc * (0.15 * 255) + 127.5), 0, 255).astype(np.uint8).tobytes()
    scales = np.clip(np.round((splat.scales + 10) * 16), 0, 255).astype(np.uint8).tobytes()
    q = splat.rotations.astype(np.float64)[:, [1, 2, 3, 0]]  # x y z w
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q[:, :3] *= np.array([y * z, x * z, x * y])
    if version >= 3:
        words = np.zeros(n, dtype=np.uint32)
        for i in range(n):
            largest = int(np.argmax(np.abs(q[i])))
            negate = q[i, largest] < 0
            comp = largest
            for j in range(4):
                if j != largest:
                    mag = int(511 * abs(q[i, j]) / np.sqrt(0.5) + 0.5)
                    comp = (comp << 10) | ((int(q[i, j] < 0) ^ int(negate)) << 9) | mag
            words[i] = comp
        rotations = words.astype("<u4").tobytes()
    else:
        q = q * np.where(q[:, 3:] < 0, -1.0, 1.0)
        rotations = np.clip(np.round(q[:, :3] * 127.5 + 127.5), 0, 255).astype(np.uint8).tobytes()
    sh = b""
    if degree:
        rest = splat.sh_rest.astype(np.float64) * _sh_flips(x, y, z)[: splat.sh_rest.shape[1], None]
        sh = np.clip(np.round(rest * 128) + 128, 0, 255).astype(np.uint8).tobytes()
    n_claimed = n if count is None else count
    streams = [s for s in (positions, alphas, colours, scales, rotations, sh) if s]
    if container == "gzip":
        header = struct.pack("<IIIBBBB", 0x5053474E, version, n_claimed, degree, 12, flags, 0)
        return gzip.compress(header + b"".join(streams))
    zstandard = pytest.importorskip("zstandard")
    chunks = [zstandard.ZstdCompressor(level=3).compress(s) for s in streams]
    header = struct.pack("<IIIBBBBI12x", 0x5053474E, version, n_claimed, degree, 12, flags, len(chunks), 32)
    table = b"".join(struct.pack("<QQ", len(c), len(s)) for c, s in zip(chunks, streams))
    return header + table + b"".join(chunks)


# ---------------------------------------------------------------------------------------------
# PLY: written by plyfile


def write_with_plyfile(path, columns: dict, text=False, byte_order="<", comments=(), before=None):
    """A file written by an independent PLY implementation, in any layout."""
    rows = np.empty(len(next(iter(columns.values()))), dtype=[(n, v.dtype.str[1:]) for n, v in columns.items()])
    for name, values in columns.items():
        rows[name] = values
    elements = ([before] if before is not None else []) + [PlyElement.describe(rows, "vertex")]
    PlyData(elements, text=text, byte_order=byte_order, comments=list(comments)).write(str(path))
