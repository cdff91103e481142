"""Reading PlayCanvas SOG: a bundle packed here with splat-transform's write-sog.ts formulas (lossless WebP
through Pillow), decoded within its steps; loose files; bad bundles named."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sog_bundles import bundle, pack_sog
from splat_checks import rotation_angles_deg
from splat_files import random_splat

from backend.errors import SplatFileError
from backend.formats import read_splat


@pytest.mark.parametrize("degree", [0, 3])
def test_a_sog_bundle_decodes_within_its_steps(tmp_path, degree):
    original = random_splat(1000, degree)
    original.columns.update({f"f_dc_{i}": np.clip(original.columns[f"f_dc_{i}"], -2, 2) for i in range(3)})
    decoded = read_splat(bundle(tmp_path / "s.sog", pack_sog(original, degree)))
    assert decoded.count == 1000 and decoded.sh_degree == degree
    logged = np.sign(original.positions) * np.log1p(np.abs(original.positions))
    step = np.ptp(logged, axis=0) / 65535  # 16 bits in the log domain, truncated: within one step there
    back = np.sign(decoded.positions) * np.log1p(np.abs(decoded.positions))
    assert np.all(np.abs(back - logged) <= step + 1e-6)
    assert np.abs(decoded.scales - original.scales).max() <= 10 / 255 / 2 + 1e-6  # nearest of 256 even entries
    assert np.abs(decoded.sh_dc - original.sh_dc).max() <= 4 / 255 / 2 + 1e-6
    assert np.abs(decoded.alphas - original.alphas).max() <= 1 / 255 + 1e-6  # truncated to 8 bits
    assert rotation_angles_deg(decoded.rotations, original.rotations).max() < 2.0  # 8 bits a component, truncated
    if degree:
        assert np.abs(decoded.sh_rest - original.sh_rest).max() <= 2 / 255 / 2 + 1e-6


def test_a_loose_meta_json_reads_its_images_beside_it(tmp_path):
    files = pack_sog(random_splat(200, 1), 1)
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    assert read_splat(tmp_path / "meta.json").count == 200


def test_bad_sog_files_are_named(tmp_path):
    files = pack_sog(random_splat(100, 0), 0)
    missing = dict(files)
    del missing["quats.webp"]
    with pytest.raises(SplatFileError, match=r"gone\.sog: the SOG bundle lacks 'quats\.webp'"):
        read_splat(bundle(tmp_path / "gone.sog", missing))
    old = dict(files, **{"meta.json": json.dumps({**json.loads(files["meta.json"]), "version": None}).encode()})
    with pytest.raises(SplatFileError, match=r"old\.sog: SOG version None is not supported"):
        read_splat(bundle(tmp_path / "old.sog", old))
    broken = dict(files, **{"sh0.webp": b"RIFF0000WEBPjunk"})
    with pytest.raises(SplatFileError, match=r"broken\.sog: the SOG image 'sh0\.webp' cannot be decoded"):
        read_splat(bundle(tmp_path / "broken.sog", broken))


def webp_declaring(width: int, height: int) -> bytes:
    """A 36-byte lossless WebP whose header declares width x height: decoding it would take width x height x 4."""
    bits = (width - 1) | (height - 1) << 14 | 1 << 28
    payload = bytes([0x2F]) + bits.to_bytes(4, "little") + bytes(11)
    chunk = b"VP8L" + len(payload).to_bytes(4, "little") + payload
    return b"RIFF" + (4 + len(chunk)).to_bytes(4, "little") + b"WEBP" + chunk


@pytest.mark.parametrize("name", ["sh0.webp", "shN_centroids.webp"])
def test_an_image_declaring_more_texels_than_its_gaussians_is_refused_before_decoding(tmp_path, name):
    files = dict(pack_sog(random_splat(100, 1), 1), **{name: webp_declaring(8192, 8192)})
    with pytest.raises(SplatFileError, match=rf"'{name}' is 8192x8192 .* refused before decoding"):
        read_splat(bundle(tmp_path / "bomb.sog", files))


@pytest.mark.parametrize("count", ["1e999", "-5", "2.5", '"100"', "true", "99999999999"])
def test_a_count_that_is_no_whole_number_in_range_is_named(tmp_path, count):
    files = pack_sog(random_splat(100, 0), 0)
    files["meta.json"] = files["meta.json"].replace(b'"count": 100', f'"count": {count}'.encode())
    with pytest.raises(SplatFileError, match=r"its SOG count is .*; a whole number from 1 to"):
        read_splat(bundle(tmp_path / "count.sog", files))


def test_a_member_with_a_bad_checksum_is_named(tmp_path):
    path = bundle(tmp_path / "crc.sog", pack_sog(random_splat(100, 0), 0))
    data = bytearray(path.read_bytes())
    member = data.find(b"RIFF", data.find(b"quats.webp"))  # stored, not deflated: its bytes lie in the zip as they are
    data[member + 40] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(SplatFileError, match=r"crc\.sog: the SOG bundle's 'quats\.webp' cannot be read \(Bad CRC"):
        read_splat(path)
