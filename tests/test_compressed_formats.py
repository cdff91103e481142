"""The PlayCanvas compressed PLY and Niantic SPZ readers: real files against their uncompressed
twins (skipped without ../shared), synthetic files packed with the writers' formulas, bad files."""

from __future__ import annotations

import functools
import gzip
import struct
import sys

import numpy as np
import pytest
from splat_checks import SMALLEST_THREE_DEG, rotation_angles_deg
from splat_files import SPLATS, needs_shared, needs_zstd, pack_spz, random_splat, write_compressed_ply

from backend.errors import SplatFileError
from backend.formats.compressed_ply import is_compressed_ply, read_compressed_ply
from backend.formats.ply import parse_header, read_ply, write_ply
from backend.formats.splat import SH_C0
from backend.formats.spz import _sh_flips, read_spz

# ---------------------------------------------------------------------------------------------
# Real files


@needs_shared
def test_guitar_compressed_ply_matches_the_uncompressed_file():
    compressed = read_compressed_ply(SPLATS / "guitar.compressed.ply")
    plain = read_ply(SPLATS / "guitar.ply")
    assert compressed.count == plain.count == 90854
    assert compressed.sh_degree == plain.sh_degree == 0
    # The points come in the same order (the writer's Morton sort is already in guitar.ply).
    # Every value is a b-bit unorm lerped between its chunk's min and max, so the error is at most
    # half a step of the chunk's range, and a chunk's range is at most the whole scene's.
    extent = np.ptp(plain.positions.astype(np.float64), axis=0)
    step = extent / (2 ** np.array([11, 10, 11]) - 1)
    assert np.all(np.abs(compressed.positions - plain.positions) <= step / 2 + 1e-6)
    scale_range = np.ptp(plain.scales.astype(np.float64), axis=0)
    assert np.all(
        np.abs(compressed.scales - plain.scales) <= scale_range / (2 ** np.array([11, 10, 11]) - 1) / 2 + 1e-5
    )
    colour_range = np.ptp(plain.colors, axis=0)
    colours = 0.5 + SH_C0 * compressed.sh_dc
    assert np.all(np.abs(colours - (0.5 + SH_C0 * plain.sh_dc)) <= colour_range / 255 / 2 + 1e-6)
    # Alpha is an 8-bit unorm; 0 and 255 decode to their half-bin's centre (a finite logit).
    assert np.all(np.abs(compressed.alphas - plain.alphas) <= 0.5 / 255 + 1e-6)
    assert np.isfinite(compressed.opacities).all()
    assert rotation_angles_deg(compressed.rotations, plain.rotations).max() < SMALLEST_THREE_DEG


@needs_shared
@needs_zstd
def test_biker_spz_matches_the_ply_in_the_ply_frame():
    spz = read_spz(SPLATS / "biker.spz")  # version 4: zstd streams
    plain = read_ply(SPLATS / "biker.ply")
    assert spz.count == plain.count == 152746
    assert spz.sh_degree == 0
    # Same order; positions are 24-bit fixed point with 12 fraction bits: error <= 2^-13.
    assert np.abs(spz.positions - plain.positions).max() <= 2.0**-13 + 1e-6
    # Log scales are u8 (s + 10) * 16: error <= 1/32 inside [-10, 5.9375], clamped outside.
    scales = plain.scales
    inside = (scales >= -10) & (scales <= 255 / 16 - 10)
    assert np.all(np.abs(spz.scales - scales)[inside] <= 1 / 32 + 1e-5)
    assert np.allclose(spz.scales[~inside], np.clip(scales[~inside], -10, 255 / 16 - 10), atol=1 / 32 + 1e-5)
    # f_dc is u8 f_dc * 0.15 * 255 + 127.5: error <= half a step of 1 / (0.15 * 255).
    assert np.abs(spz.sh_dc - plain.sh_dc).max() <= 0.5 / (0.15 * 255) + 1e-5
    # Alpha is u8, decoded clamped to [1/255, 254/255] like the reference loader.
    alphas = plain.alphas
    inside = (alphas >= 1 / 255) & (alphas <= 254 / 255)
    assert np.all(np.abs(spz.alphas - alphas)[inside] <= 0.5 / 255 + 1e-6)
    assert np.allclose(spz.alphas[~inside], np.clip(alphas[~inside], 1 / 255, 254 / 255), atol=0.5 / 255 + 1e-6)
    assert rotation_angles_deg(spz.rotations, plain.rotations).max() < SMALLEST_THREE_DEG


@needs_shared
@needs_zstd
def test_biker_spz_as_stored_is_the_rub_frame():
    stored = read_spz(SPLATS / "biker.spz", from_rub=False)
    converted = read_spz(SPLATS / "biker.spz")
    assert np.array_equal(stored.positions * np.array([1, -1, -1], dtype=np.float32), converted.positions)
    flipped = stored.rotations * np.array([1, 1, -1, -1], dtype=np.float32)
    assert np.array_equal(flipped, converted.rotations)


@needs_shared
def test_routing_headers():
    for name, expected in (("guitar.compressed.ply", True), ("guitar.ply", False)):
        data = (SPLATS / name).read_bytes()[:4096]
        assert is_compressed_ply(parse_header(SPLATS / name, data)) is expected


# ---------------------------------------------------------------------------------------------
# Compressed PLY, synthetic: packed with splat-transform's compressed-chunk.ts formulas


@pytest.mark.parametrize("chunk_colours", [True, False])
def test_compressed_ply_round_trip(tmp_path, chunk_colours):
    original = random_splat(700, sh_degree=2)  # 3 chunks, the last one partial
    path = write_compressed_ply(tmp_path / "s.compressed.ply", original, chunk_colours, sh_degree=2)
    decoded = read_compressed_ply(path)
    assert decoded.count == 700 and decoded.sh_degree == 2
    assert list(decoded.columns)[:6] == ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2"]
    span = np.ptp(original.positions, axis=0)
    assert np.all(np.abs(decoded.positions - original.positions) <= span / 1023 / 2 + 1e-5)
    assert np.abs(decoded.scales - original.scales).max() <= 8 / 1023 / 2 + 1e-5
    # Colours lie inside [0, 1] here, so a chunk's colour range is under 1 and so is the step.
    assert np.abs(decoded.colors - original.colors).max() <= 0.5 / 255 + 1e-5
    assert np.abs(decoded.alphas - original.alphas).max() <= 0.5 / 255 + 1e-6
    assert rotation_angles_deg(decoded.rotations, original.rotations).max() < SMALLEST_THREE_DEG
    largest = np.argmax(np.abs(original.rotations), axis=1)
    assert set(largest) == {0, 1, 2, 3}  # every smallest-three case was exercised
    # SH: 8 units over 256 codes, decoded at the code's centre.
    assert np.abs(decoded.sh_rest - original.sh_rest).max() <= 8 / 256 / 2 + 1e-5


def test_compressed_ply_colour_without_chunk_range(tmp_path):
    original = random_splat(300, sh_degree=0, seed=1)
    inside = np.clip(original.colors, 0, 1)  # without a chunk range rgb is stored as a plain unorm
    original.columns.update({f"f_dc_{i}": ((inside[:, i] - 0.5) / SH_C0).astype(np.float32) for i in range(3)})
    decoded = read_compressed_ply(write_compressed_ply(tmp_path / "c.ply", original, chunk_colours=False))
    assert np.abs(decoded.colors - inside).max() <= 0.5 / 255 + 1e-5


def test_compressed_ply_bad_files(tmp_path):
    splat = random_splat(300, sh_degree=1)
    with pytest.raises(SplatFileError, match="truncated") as error:
        read_compressed_ply(write_compressed_ply(tmp_path / "cut.ply", splat, sh_degree=1, cut=100))
    assert "cut.ply" in str(error.value)
    with pytest.raises(SplatFileError, match="chunks"):
        read_compressed_ply(write_compressed_ply(tmp_path / "chunks.ply", splat, chunks=1))
    wrong = tmp_path / "wrong.ply"
    wrong.write_bytes(b"PK\x03\x04 not a ply at all")
    with pytest.raises(SplatFileError, match="not a PLY") as error:
        read_compressed_ply(wrong)
    assert "wrong.ply" in str(error.value)
    plain = tmp_path / "plain.ply"
    write_ply(plain, splat)
    with pytest.raises(SplatFileError, match="not a compressed"):
        read_compressed_ply(plain)
    with pytest.raises(SplatFileError, match="no such file"):
        read_compressed_ply(tmp_path / "missing.ply")


def test_is_compressed_ply(tmp_path):
    splat = random_splat(10, sh_degree=0)
    path = write_compressed_ply(tmp_path / "c.ply", splat)
    assert is_compressed_ply(parse_header(path, path.read_bytes()))
    write_ply(tmp_path / "p.ply", splat)
    assert not is_compressed_ply(parse_header(tmp_path / "p.ply", (tmp_path / "p.ply").read_bytes()))


# ---------------------------------------------------------------------------------------------
# SPZ, synthetic: packed with the reference load-spz.cc formulas


@pytest.mark.parametrize("version,container", [(2, "gzip"), (3, "gzip"), (4, "ngsp")])
@pytest.mark.parametrize("degree", [0, 3])
def test_spz_round_trip(tmp_path, version, container, degree):
    original = random_splat(500, sh_degree=degree, seed=version)
    path = tmp_path / "s.spz"
    path.write_bytes(pack_spz(original, version, container))
    decoded = read_spz(path)
    assert decoded.count == 500 and decoded.sh_degree == degree
    assert np.abs(decoded.positions - original.positions).max() <= 2.0**-13 + 1e-5
    assert np.abs(decoded.scales - original.scales).max() <= 1 / 32 + 1e-5
    assert np.abs(decoded.sh_dc - original.sh_dc).max() <= 0.5 / (0.15 * 255) + 1e-5
    inside = (original.alphas >= 1 / 255) & (original.alphas <= 254 / 255)
    assert np.abs(decoded.alphas - original.alphas)[inside].max() <= 0.5 / 255 + 1e-6
    if version >= 3:
        assert rotation_angles_deg(decoded.rotations, original.rotations).max() < SMALLEST_THREE_DEG
    else:  # x y z of the quaternion made w >= 0, each within half of the 2/255 step (w is derived)
        q = original.rotations / np.linalg.norm(original.rotations, axis=1, keepdims=True)
        q *= np.where(q[:, :1] < 0, -1.0, 1.0)
        assert np.abs(decoded.rotations[:, 1:] - q[:, 1:]).max() <= 1 / 255 + 1e-6
    if degree:
        assert np.abs(decoded.sh_rest - original.sh_rest).max() <= 0.5 / 128 + 1e-6
    raw = read_spz(path, from_rub=False)
    assert np.allclose(raw.positions, decoded.positions * np.array([1, -1, -1]))


def test_spz_antialiased_flag_is_kept_as_a_comment(tmp_path):
    path = tmp_path / "a.spz"
    path.write_bytes(pack_spz(random_splat(20, 0), flags=1))
    assert any("antialiased" in comment for comment in read_spz(path).comments)


def test_sh_flip_signs_match_the_3dgs_basis():
    """Each sign in the RUB -> RDF table is how that real SH basis function changes under the flip."""
    rng = np.random.default_rng(3)
    d = rng.normal(size=(50, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)

    def basis(v):
        x, y, z = v[:, 0], v[:, 1], v[:, 2]
        xx, yy, zz = x * x, y * y, z * z
        return np.stack(
            [
                -y,
                z,
                -x,
                x * y,
                y * z,
                2 * zz - xx - yy,
                x * z,
                xx - yy,
                y * (3 * xx - yy),
                x * y * z,
                y * (4 * zz - xx - yy),
                z * (2 * zz - 3 * xx - 3 * yy),
                x * (4 * zz - xx - yy),
                z * (xx - yy),
                x * (xx - 3 * yy),
            ],
            axis=1,
        )

    for flips in [(1, -1, -1), (-1, 1, 1), (-1, -1, 1), (1, 1, -1)]:
        signs = _sh_flips(*map(float, flips))[:15]
        assert np.allclose(basis(d * np.array(flips)), basis(d) * signs)


def check_bad_spz(tmp_path, name, data, match):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(SplatFileError, match=match) as error:
        read_spz(path)
    assert name in str(error.value)


def test_spz_bad_files(tmp_path):
    splat = random_splat(50, sh_degree=1)
    check = functools.partial(check_bad_spz, tmp_path)

    check("magic.spz", b"PLY\n" + bytes(100), "not an SPZ file")
    check("empty.spz", b"", "not an SPZ file")
    check("inner.spz", gzip.compress(b"XXXX" + bytes(100)), "does not start with 'NGSP'")
    check("version.spz", pack_spz(splat, version=9), "version 9 is not supported")
    legacy = pack_spz(splat, version=3)
    check("cutgz.spz", legacy[: len(legacy) // 2], "truncated")
    check("cutpayload.spz", gzip.compress(gzip.decompress(legacy)[:-10]), "truncated")
    check("zero.spz", pack_spz(splat, count=0), "zero points")
    check("short.spz", struct.pack("<II", 0x5053474E, 4), "truncated")
    check("ngsp3.spz", struct.pack("<IIIBBBBI12x", 0x5053474E, 3, 5, 0, 12, 0, 5, 32), "gzip")
    check("ngsp5.spz", struct.pack("<IIIBBBBI12x", 0x5053474E, 5, 5, 0, 12, 0, 5, 32), "version 5 is not supported")


def test_spz_version_4_bad_files(tmp_path, monkeypatch):
    modern = pack_spz(random_splat(50, sh_degree=1), version=4, container="ngsp")
    check = functools.partial(check_bad_spz, tmp_path)

    check("cut4.spz", modern[:-7], "truncated")
    check("cuttable.spz", modern[:40], "truncated")
    check("tail4.spz", modern + b"junk", "unexpected")
    monkeypatch.setitem(sys.modules, "zstandard", None)
    monkeypatch.setitem(sys.modules, "compression", None)
    check("nozstd.spz", modern, "zstandard")
