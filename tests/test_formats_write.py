"""Writing every splat format: round trips within each format's quantisation step, the reference
writers' bytes for the same input, the real files re-encoded, and a clear error for a bad name."""

from __future__ import annotations

import numpy as np
import pytest
from splat_checks import SMALLEST_THREE_DEG, rotation_angles_deg
from splat_files import SPLATS, needs_shared, needs_zstd, random_splat
from splat_files import write_compressed_ply as reference_compressed_ply

from backend.errors import SplatFileError
from backend.formats import read_splat, write_splat, write_splats
from backend.formats.antimatter_splat import read_antimatter_splat
from backend.formats.compressed_ply import morton_order, read_compressed_ply
from backend.formats.ply import read_ply, write_ply
from backend.formats.spz import pack_spz, read_spz


def test_several_splats_are_written_all_or_none(tmp_path):
    """Export Segments: a failure part way (here the third segment cannot be made) leaves none of the files, and
    the files already in the folder as they were; else every file is written."""
    splat = random_splat(300, 1)
    (tmp_path / "segment_0.ply").write_bytes(b"the user's own file")

    def segments(fail_at: int | None):
        for index in range(4):
            if index == fail_at:
                raise SplatFileError(tmp_path / f"segment_{index}.spz", "cannot be made")
            yield tmp_path / f"segment_{index}{('.ply', '.spz')[index % 2]}", splat.subset(np.arange(index, 300, 4))

    with pytest.raises(SplatFileError, match="segment_2.spz: cannot be made"):
        write_splats(segments(fail_at=2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["segment_0.ply"]
    assert (tmp_path / "segment_0.ply").read_bytes() == b"the user's own file"
    write_splats(segments(fail_at=None))
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"segment_{i}{('.ply', '.spz')[i % 2]}" for i in range(4)]
    assert sum(read_splat(tmp_path / f"segment_{i}{('.ply', '.spz')[i % 2]}").count for i in range(4)) == 300
    with pytest.raises(SplatFileError, match="gone.ply: the folder to write into does not exist"):
        write_splats([(tmp_path / "missing" / "gone.ply", splat)])


def test_plain_ply_round_trips_byte_for_byte(tmp_path):
    write_ply(tmp_path / "a.ply", random_splat(300, 3))
    write_splat(tmp_path / "b.ply", read_splat(tmp_path / "a.ply"))
    assert (tmp_path / "b.ply").read_bytes() == (tmp_path / "a.ply").read_bytes()


@pytest.mark.parametrize("version", [2, 3, pytest.param(4, marks=needs_zstd)])
@pytest.mark.parametrize("degree", [0, 1, 3])
def test_spz_round_trip_is_within_its_steps(tmp_path, version, degree):
    original = random_splat(600, degree, seed=version)
    write_splat(tmp_path / "s.spz", original) if version == 3 else (tmp_path / "s.spz").write_bytes(
        pack_spz(original, version)
    )
    decoded = read_splat(tmp_path / "s.spz")
    assert decoded.count == 600 and decoded.sh_degree == degree
    assert np.abs(decoded.positions - original.positions).max() <= 2.0**-13 + 1e-6  # 12 fraction bits
    assert np.abs(decoded.scales - original.scales).max() <= 1 / 32 + 1e-6  # u8 of (s + 10) * 16
    assert np.abs(decoded.sh_dc - original.sh_dc).max() <= 0.5 / (0.15 * 255) + 1e-6
    inside = (original.alphas >= 1 / 255) & (original.alphas <= 254 / 255)  # the reader clamps the rest
    assert np.abs(decoded.alphas - original.alphas)[inside].max() <= 0.5 / 255 + 1e-6
    if version >= 3:
        assert rotation_angles_deg(decoded.rotations, original.rotations).max() < SMALLEST_THREE_DEG
    else:  # x y z of the quaternion made w >= 0, each within half of the 2/255 step (w is derived)
        q = original.rotations / np.linalg.norm(original.rotations, axis=1, keepdims=True)
        assert np.abs(decoded.rotations[:, 1:] - q[:, 1:] * np.sign(q[:, :1])).max() <= 1 / 255 + 1e-6
    if degree:  # the reference's default precision: 5 bits for degree 1, 4 bits above, in steps of 1/128
        error = np.abs(decoded.sh_rest - original.sh_rest)
        assert error[:, :3].max() <= 4.5 / 128 + 1e-6 and error[:, 3:].max(initial=0) <= 8.5 / 128 + 1e-6
    assert read_spz(tmp_path / "s.spz", from_rub=False).positions[:, 1] == pytest.approx(-decoded.positions[:, 1])


@needs_shared
@needs_zstd
def test_spz_of_the_real_ply_is_niantics_own_file_stream_for_stream():
    """biker.spz was written by Niantic's tools from biker.ply: ours holds the same bytes in every stream."""
    import zstandard

    def streams(data: bytes) -> list[bytes]:
        count, table = data[15], int.from_bytes(data[16:20], "little")
        sizes = np.frombuffer(data, "<u8", 2 * count, table).reshape(-1, 2)
        offset, out = table + 16 * count, []
        for packed, size in sizes.tolist():
            out.append(zstandard.ZstdDecompressor().decompress(data[offset : offset + packed], max_output_size=size))
            offset += packed
        return out

    ours = pack_spz(read_ply(SPLATS / "biker.ply"), version=4)
    theirs = (SPLATS / "biker.spz").read_bytes()
    assert ours[:32] == theirs[:32]
    assert streams(ours) == streams(theirs)


@pytest.mark.parametrize("degree", [0, 2])
def test_compressed_ply_round_trip_is_within_its_steps_in_morton_order(tmp_path, degree):
    original = random_splat(700, degree)  # 3 chunks, the last one partial
    write_splat(tmp_path / "s.compressed.ply", original)
    decoded = read_splat(tmp_path / "s.compressed.ply")
    original = original.subset(morton_order(original.positions))  # the writer sorts; the reader keeps its order
    assert decoded.count == 700 and decoded.sh_degree == degree
    span = np.ptp(original.positions, axis=0)  # a chunk's range is at most the scene's: half a step of it
    assert np.all(np.abs(decoded.positions - original.positions) <= span / np.array([2047, 1023, 2047]) / 2 + 1e-5)
    assert np.abs(decoded.scales - original.scales).max() <= 8 / 1023 / 2 + 1e-5
    colours = 0.5 + 0.28209479177387814 * original.sh_dc
    assert np.all(
        np.abs(0.5 + 0.28209479177387814 * decoded.sh_dc - colours) <= np.ptp(colours, axis=0) / 255 / 2 + 1e-5
    )
    assert np.abs(decoded.alphas - original.alphas).max() <= 0.5 / 255 + 1e-6
    assert rotation_angles_deg(decoded.rotations, original.rotations).max() < SMALLEST_THREE_DEG
    if degree:
        assert np.abs(decoded.sh_rest - original.sh_rest).max() <= 8 / 256 / 2 + 1e-5


def test_compressed_ply_bytes_are_splat_transforms_formulas(tmp_path):
    splat = random_splat(600, 2, seed=3)
    splat = splat.subset(morton_order(splat.positions))  # sorted already: the writer keeps this order
    write_splat(tmp_path / "ours.compressed.ply", splat)
    reference_compressed_ply(tmp_path / "reference.ply", splat, sh_degree=2)
    assert (tmp_path / "ours.compressed.ply").read_bytes() == (tmp_path / "reference.ply").read_bytes()


def test_antimatter_splat_round_trip_is_within_its_steps(tmp_path):
    original = random_splat(500, 2)
    write_splat(tmp_path / "s.splat", original)
    assert (tmp_path / "s.splat").stat().st_size == 500 * 32
    decoded = read_splat(tmp_path / "s.splat")
    assert decoded.sh_degree == 0 and decoded.count == 500
    np.testing.assert_array_equal(decoded.positions, original.positions)  # float32 as stored
    np.testing.assert_allclose(decoded.scales, original.scales, atol=1e-5)  # linear float32, through exp and log
    inside = (original.colors > 0) & (original.colors < 1)
    assert np.abs(decoded.colors - original.colors)[inside].max() <= 0.5 / 255 + 1e-6
    inside = (original.alphas >= 0.25 / 255) & (original.alphas <= 254.75 / 255)
    assert np.abs(decoded.alphas - original.alphas)[inside].max() <= 0.5 / 255 + 1e-6
    assert rotation_angles_deg(decoded.rotations, original.rotations).max() < 1.0  # 1/128 a component


@needs_shared
@pytest.mark.parametrize(
    "name, ending, reader",
    [
        ("guitar.compressed.ply", ".compressed.ply", read_compressed_ply),
        ("guitar.ply", ".splat", read_antimatter_splat),
        ("donut.ply", ".spz", read_spz),
    ],
)
def test_real_files_reencode_within_their_steps(tmp_path, name, ending, reader):
    source = read_splat(SPLATS / name)
    write_splat(tmp_path / f"out{ending}", source)
    again = reader(tmp_path / f"out{ending}")
    if ending == ".compressed.ply":
        source = source.subset(morton_order(source.positions))
    assert again.count == source.count
    extent = np.ptp(source.positions, axis=0).max()
    assert np.abs(again.positions - source.positions).max() <= max(extent / 1023 / 2, 2.0**-13) + 1e-5
    assert rotation_angles_deg(again.rotations, source.rotations).max() < 1.0


def test_a_name_without_a_splat_format_is_named(tmp_path):
    with pytest.raises(
        SplatFileError,
        match=r"scene\.obj: the file name says no splat format: end it with "
        r"\.compressed\.ply, \.ply, \.spz, \.splat",
    ):
        write_splat(tmp_path / "scene.obj", random_splat(10, 0))


def test_spz_refuses_positions_it_cannot_hold(tmp_path):
    far = random_splat(10, 0)
    far.columns["x"] = far.columns["x"] + np.float32(5000)
    with pytest.raises(SplatFileError, match=r"far\.spz: SPZ stores positions within \+-2048"):
        write_splat(tmp_path / "far.spz", far)
    assert not (tmp_path / "far.spz").exists()


def test_a_splat_file_of_the_wrong_size_is_named(tmp_path):
    (tmp_path / "cut.splat").write_bytes(bytes(32 * 3 + 5))
    with pytest.raises(SplatFileError, match=r"cut\.splat: a \.splat file is 32 bytes per Gaussian"):
        read_splat(tmp_path / "cut.splat")


@pytest.mark.parametrize("ending, held", [(".compressed.ply", 3), (".splat", 0), (".spz", 3), (".ply", 4)])
def test_each_writer_writes_the_sh_its_format_holds_and_says_what_it_left_out(tmp_path, ending, held):
    from backend.formats import left_out

    splat = random_splat(300, 4)  # 72 f_rest columns: degree 4
    write_splat(tmp_path / f"s{ending}", splat)
    back = read_splat(tmp_path / f"s{ending}")
    assert back.sh_degree == held
    if held:  # the lower bands, each channel's first coefficients, as they were (within the format's steps)
        order = morton_order(splat.positions) if ending == ".compressed.ply" else slice(None)  # its point order
        kept = (held + 1) ** 2 - 1
        np.testing.assert_allclose(back.sh_rest, splat.sh_rest[order, :kept], atol=0.07)
    lost = left_out(splat, tmp_path / f"s{ending}")
    assert any("SH degree 4" in item for item in lost) == (held < 4)
