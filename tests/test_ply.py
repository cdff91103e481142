"""The .ply format core: every layout found in the wild reads, writes back losslessly, and bad files say why."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_file
from plyfile import PlyData, PlyElement
from splat_checks import assert_same_values
from splat_files import write_with_plyfile

from backend.benchmark.synthetic import make_scene
from backend.errors import SplatFileError
from backend.formats import ply
from backend.formats.ply import read_ply, write_ply
from backend.formats.splat import REQUIRED_COLUMNS, Splat


def scene(count=500, sh_degree=0, seed=1) -> Splat:
    return make_scene(count, sh_degree=sh_degree, seed=seed).splat


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_sh_degrees_round_trip_byte_for_byte(tmp_path, degree):
    original = scene(sh_degree=degree)
    write_ply(tmp_path / "a.ply", original)
    loaded = read_ply(tmp_path / "a.ply")
    assert loaded.sh_degree == degree and loaded.count == original.count
    assert_same_values(loaded, original.columns)
    write_ply(tmp_path / "b.ply", loaded)
    assert (tmp_path / "a.ply").read_bytes() == (tmp_path / "b.ply").read_bytes()


def test_our_files_open_in_an_independent_reader(tmp_path):
    original = scene(sh_degree=3)
    write_ply(tmp_path / "a.ply", original)
    vertex = PlyData.read(str(tmp_path / "a.ply"))["vertex"]
    assert [p.name for p in vertex.properties] == list(original.columns)
    np.testing.assert_array_equal(vertex["f_rest_44"], original.columns["f_rest_44"])


def test_sh_rest_is_channel_major(tmp_path):
    splat = scene(sh_degree=1)
    rest = splat.sh_rest  # (N, 3 coefficients, 3 channels)
    np.testing.assert_array_equal(rest[:, 0, 1], splat.columns["f_rest_3"])  # green's first coefficient
    np.testing.assert_array_equal(rest[:, 2, 2], splat.columns["f_rest_8"])


@pytest.mark.parametrize(
    "layout",
    ["permuted", "no_normals_rot_before_scale", "big_endian", "ascii", "extra_columns", "element_before_vertex"],
)
def test_layouts_in_the_wild_read_and_write_back_value_identical(tmp_path, layout):
    columns = dict(scene(sh_degree=1).columns)
    options = {}
    if layout == "permuted":
        columns = dict(reversed(list(columns.items())))
    elif layout == "no_normals_rot_before_scale":
        order = [c for c in columns if not c.startswith(("scale", "rot"))]
        order += [f"rot_{i}" for i in range(4)] + [f"scale_{i}" for i in range(3)]
        columns = {c: columns[c] for c in order}
    elif layout == "big_endian":
        options["byte_order"] = ">"
    elif layout == "ascii":
        options["text"] = True
    elif layout == "extra_columns":
        n = len(columns["x"])
        columns["nx"], columns["ny"], columns["nz"] = (np.zeros(n, np.float32),) * 3
        columns["red"] = np.arange(n, dtype=np.uint8)
        columns["segment"] = np.arange(n, dtype=np.int32) - 7
        columns["tag"] = np.full(n, 4_000_000_000, dtype=np.uint32)
        columns["weight"] = np.linspace(0, 1, n)  # float64
    elif layout == "element_before_vertex":
        options["before"] = PlyElement.describe(np.zeros(3, dtype=[("a", "f4"), ("b", "u1")]), "chunk")
    write_with_plyfile(tmp_path / "in.ply", columns, comments=["made by a test"], **options)
    loaded = read_ply(tmp_path / "in.ply")
    assert_same_values(loaded, columns)
    assert loaded.comments == ["made by a test"]
    write_ply(tmp_path / "out.ply", loaded)
    assert_same_values(read_ply(tmp_path / "out.ply"), columns)


def test_infinite_opacity_is_a_saturated_alpha_not_damage(tmp_path):
    splat = scene()
    splat.columns["opacity"][:3] = np.inf
    write_ply(tmp_path / "a.ply", splat)
    loaded = read_ply(tmp_path / "a.ply")
    assert loaded.count == splat.count and np.all(loaded.alphas[:3] == 1.0)


@pytest.mark.parametrize("layout", ["canonical", "big_endian", "ascii", "extra_columns"])
def test_nan_and_inf_are_counted_and_dropped_only_on_request(tmp_path, layout):
    columns = dict(scene().columns)
    columns["x"][5] = np.nan
    columns["scale_1"][[7, 9]] = -np.inf
    columns["opacity"][11] = np.nan
    columns["opacity"][12] = np.inf  # a saturated alpha, kept
    if layout == "extra_columns":  # columns of other types: the rows are no longer one table of floats
        columns["red"] = np.arange(500, dtype=np.uint8)
        columns["weight"] = np.linspace(0, 1, 500)  # float64
        columns["weight"][13] = np.inf
    if layout == "canonical":
        write_ply(tmp_path / "a.ply", Splat(columns))
    else:
        write_with_plyfile(
            tmp_path / "a.ply", columns, text=layout == "ascii", byte_order=">" if layout == "big_endian" else "<"
        )
    count, named = (5, "x, opacity, scale_1, weight") if layout == "extra_columns" else (4, "x, opacity, scale_1")
    with pytest.raises(
        SplatFileError, match=rf"a\.ply: {count} of 500 points have NaN or infinite values \(in {named}\)"
    ):
        read_ply(tmp_path / "a.ply")
    kept = read_ply(tmp_path / "a.ply", drop_invalid=True)
    assert kept.count == 500 - count and np.isfinite(kept.positions).all()
    dropped = [5, 7, 9, 11] + ([13] if layout == "extra_columns" else [])
    assert_same_values(kept, {name: np.delete(values, dropped) for name, values in columns.items()})


def test_a_read_splat_edited_in_place_writes_its_edits(tmp_path):
    """Read columns are writable views of the rows as read; writing writes what they hold now."""
    write_ply(tmp_path / "a.ply", scene(sh_degree=2))
    splat = read_ply(tmp_path / "a.ply")
    splat.columns["x"][0] += 1.0
    splat.columns["f_rest_23"][-3:] = 7.5
    write_ply(tmp_path / "b.ply", splat)
    edited, original = read_ply(tmp_path / "b.ply"), read_ply(tmp_path / "a.ply")
    assert edited.columns["x"][0] != original.columns["x"][0]
    original.columns["x"][0] += 1.0  # the same edits on a fresh read: every other value as in the file
    original.columns["f_rest_23"][-3:] = 7.5
    assert_same_values(edited, original.columns)


@pytest.mark.parametrize("change", ["reordered", "one_replaced", "subset", "shortened"])
def test_a_read_splat_changed_writes_what_it_holds_not_the_rows_read(tmp_path, change):
    write_ply(tmp_path / "a.ply", scene(sh_degree=1))
    splat = read_ply(tmp_path / "a.ply")
    if change == "reordered":
        splat = Splat(dict(reversed(list(splat.columns.items()))))
    elif change == "one_replaced":
        splat.columns["opacity"] = np.full(splat.count, 0.25, dtype=np.float32)
    elif change == "subset":
        splat = splat.subset(np.arange(splat.count) % 3 == 0)
    else:
        splat = Splat({name: values[:100] for name, values in splat.columns.items()})
    expected = {name: values.copy() for name, values in splat.columns.items()}
    write_ply(tmp_path / "b.ply", splat)
    assert_same_values(read_ply(tmp_path / "b.ply"), expected)


def bad_file(tmp_path, content: bytes):
    path = tmp_path / "bad.ply"
    path.write_bytes(content)
    return path


HEADER = "ply\nformat binary_little_endian 1.0\nelement vertex {n}\n{props}end_header\n"


def header(n=2, columns=REQUIRED_COLUMNS, kind="float"):
    return HEADER.format(n=n, props="".join(f"property {kind} {c}\n" for c in columns)).encode()


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x89PNG\r\n\x1a\n....", "not a PLY file"),
        (b"ply\nformat binary_little_endian 1.0\nelement vertex 2\nproperty float x\n", "no 'end_header'"),
        (b"ply\nformat binary_little_endian 1.0\nelement face 0\nend_header\n", "no 'vertex' element"),
        (
            header(columns=[c for c in REQUIRED_COLUMNS if c not in ("opacity", "rot_2")]) + bytes(96),
            "required column\\(s\\) missing: opacity, rot_2",
        ),
        (header() + bytes(4 * 14 * 2 - 10), "truncated: 2 points need 112 bytes of data, the file has 102"),
        (header(n=0), "zero points"),
        (
            header(columns=["opacity"] + [c for c in REQUIRED_COLUMNS if c != "opacity"], kind="uchar") + bytes(28),
            "column 'x' is uchar; a float or double is expected",
        ),
        (header().replace(b"property float rot_3\n", b"property list uchar float rot_3\n"), "column 'rot_3' is a list"),
        (header(columns=REQUIRED_COLUMNS + ("f_rest_0", "f_rest_1")) + bytes(200), "2 f_rest columns do not form"),
        (b"ply\nformat binary_middle_endian 1.0\nend_header\n", "line 2 is not understood"),
        (
            b"ply\nformat ascii 1.0\nelement vertex 2\n"
            + b"".join(f"property float {c}\n".encode() for c in REQUIRED_COLUMNS)
            + b"end_header\n"
            + b"1 " * 14
            + b"\n1 2 3\n",
            "truncated or malformed: 2 points of 14 values expected, found 17",
        ),
    ],
    ids=[
        "png",
        "no_end_header",
        "no_vertex",
        "missing_columns",
        "truncated",
        "zero_points",
        "wrong_type",
        "list_column",
        "bad_rest_count",
        "bad_format",
        "ascii_truncated",
    ],
)
def test_bad_files_get_one_clear_message_naming_the_file(tmp_path, content, message):
    with pytest.raises(SplatFileError, match=message) as caught:
        read_ply(bad_file(tmp_path, content))
    assert str(caught.value).startswith(str(tmp_path / "bad.ply") + ": ")


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(SplatFileError, match="no such file"):
        read_ply(tmp_path / "nothing.ply")
    with pytest.raises(SplatFileError, match="is a folder"):
        read_ply(tmp_path)
    with pytest.raises(SplatFileError, match="folder to write into does not exist"):
        write_ply(tmp_path / "missing" / "out.ply", scene())


def test_writing_replaces_a_file_whole_and_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "out.ply"
    target.write_bytes(b"old")
    write_ply(target, scene())
    assert read_ply(target).count == 500
    assert [p.name for p in tmp_path.iterdir()] == ["out.ply"]


@pytest.mark.parametrize("name", ["statue/splat.ply", "splats/donut.ply", "splats/guitar.ply", "splats/biker.ply"])
def test_real_splats_round_trip_byte_for_byte(tmp_path, name):
    source = shared_file(f"data/{name}")
    before = source.stat().st_mtime_ns
    splat = read_ply(source)
    write_ply(tmp_path / "out.ply", splat)
    assert (tmp_path / "out.ply").read_bytes() == source.read_bytes()
    assert source.stat().st_mtime_ns == before


def test_a_large_file_read_in_many_blocks_finds_every_bad_point_and_keeps_the_rest(tmp_path):
    """Past one block of rows the file is read in runs of blocks (by several threads where there are cores):
    bad points in the first, a middle and the last block are all found, the rest read as written."""
    count = 3 * ply.BLOCK_ROWS + 123
    columns = dict(scene(count=count).columns)
    bad = [0, ply.BLOCK_ROWS + 5, count - 1]
    columns["rot_2"][bad[0]] = np.nan
    columns["y"][bad[1]] = np.inf
    columns["f_dc_0"][bad[2]] = -np.inf
    columns["opacity"][2 * ply.BLOCK_ROWS] = -np.inf  # a saturated alpha, kept
    write_ply(tmp_path / "big.ply", Splat(columns))
    with pytest.raises(
        SplatFileError, match=rf"3 of {count} points have NaN or infinite values \(in y, f_dc_0, rot_2\)"
    ):
        read_ply(tmp_path / "big.ply")
    kept = read_ply(tmp_path / "big.ply", drop_invalid=True)
    assert_same_values(kept, {name: np.delete(values, bad) for name, values in columns.items()})


@pytest.mark.parametrize("layout", ["one_type", "mixed_types"])
def test_a_read_splat_made_contiguous_holds_and_writes_the_same(tmp_path, layout):
    """The contiguous copy a transform or Blender computes on: every value, type and byte as read."""
    columns = dict(scene(count=ply.TRANSPOSE_ROWS * 2 + 7, sh_degree=1).columns)
    if layout == "mixed_types":
        columns["red"] = np.arange(len(columns["x"]), dtype=np.uint8)
        columns["weight"] = np.linspace(0, 1, len(columns["x"]))  # float64
    write_ply(tmp_path / "a.ply", Splat(columns))
    splat = ply.contiguous_columns(read_ply(tmp_path / "a.ply"))
    assert all(values.flags.c_contiguous for values in splat.columns.values())
    assert_same_values(splat, columns)
    write_ply(tmp_path / "b.ply", splat)
    assert (tmp_path / "a.ply").read_bytes() == (tmp_path / "b.ply").read_bytes()


def test_a_comment_that_says_end_header_is_a_comment(tmp_path):
    """Comments are free text: the header ends at the line that is 'end_header' alone."""
    splat = make_scene(50, seed=1).splat
    splat.comments = ["exported by a tool; its end_header comes later", "end_header is a word here"]
    write_ply(tmp_path / "c.ply", splat)
    back = read_ply(tmp_path / "c.ply")
    assert back.comments == splat.comments and back.count == 50
    write_ply(tmp_path / "again.ply", back)
    assert (tmp_path / "again.ply").read_bytes() == (tmp_path / "c.ply").read_bytes()
