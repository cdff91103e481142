"""Reading and writing 3DGS .ply files with numpy.

Reads binary little- and big-endian and ASCII, columns in any order, any extra columns; writes
binary little-endian in the column order it was given, so an unedited canonical file comes back
byte for byte. Every problem with a file is a SplatFileError naming the file.

Binary rows are read once into one array and each column is a view of its field there (strided, not
copied), and a splat whose columns are still those views is written as that array in one piece: the
two cost what moving the bytes costs. Work that computes on many columns takes contiguous_columns first,
which turns the rows into columns a cache-sized block at a time (a strided column read alone pulls the
whole file through the cache).
"""

from __future__ import annotations

import itertools
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.recfunctions import structured_to_unstructured

from ..errors import SplatFileError
from ..files import input_size, open_input, read_file_bytes, write_file
from .splat import REQUIRED_COLUMNS, Splat, sh_degree_for_rest_count

# PLY type name -> numpy type code; the first name of each code is the one we write.
PLY_TYPES = {
    "float": "f4",
    "float32": "f4",
    "double": "f8",
    "float64": "f8",
    "uchar": "u1",
    "uint8": "u1",
    "char": "i1",
    "int8": "i1",
    "ushort": "u2",
    "uint16": "u2",
    "short": "i2",
    "int16": "i2",
    "uint": "u4",
    "uint32": "u4",
    "int": "i4",
    "int32": "i4",
}
TYPE_NAMES = {code: name for name, code in reversed(PLY_TYPES.items())}
FORMATS = {"ascii": None, "binary_little_endian": "<", "binary_big_endian": ">"}
MAX_HEADER_BYTES = 1 << 20
END_HEADER = re.compile(rb"^end_header[ \t\r]*$", re.MULTILINE)
BLOCK_ROWS = 1 << 15  # points read and checked, or interleaved, at a time: a block of rows stays in the CPU cache
TRANSPOSE_ROWS = 1 << 11  # rows turned into columns at a time: the block and its columns stay in the core's cache
READERS = 4  # threads that read a large file, each its own run of blocks (fewer on fewer cores)


@dataclass
class Element:
    name: str
    count: int
    properties: list[tuple[str, str]]  # (name, numpy type code) of the scalar properties
    has_list: bool


@dataclass
class Header:
    format: str
    elements: list[Element]
    comments: list[str]
    size: int  # bytes up to and including end_header's newline


def parse_header(path: Path, data: bytes) -> Header:
    if not data.startswith(b"ply"):
        raise SplatFileError(path, "not a PLY file (it does not start with 'ply')")
    ending = END_HEADER.search(data)  # a line of its own: a comment may say 'end_header' too
    end = ending.start() if ending else -1
    if end < 0:
        raise SplatFileError(path, "the PLY header has no 'end_header' line (truncated or not a PLY file)")
    newline = data.find(b"\n", end)
    if newline < 0:
        raise SplatFileError(path, "the file ends right after its header: no point data")
    try:
        lines = data[:end].decode("ascii").splitlines()
    except UnicodeDecodeError:
        raise SplatFileError(path, "the PLY header is not ASCII text") from None

    fmt, elements, comments = None, [], []
    for number, line in enumerate(lines[1:], start=2):
        words = line.split()
        if not words or words[0] == "obj_info":
            continue
        if words[0] == "comment":
            comments.append(line.strip()[len("comment ") :])
        elif words[0] == "format" and len(words) == 3 and words[1] in FORMATS:
            fmt = words[1]
        elif words[0] == "element" and len(words) == 3 and words[2].isdigit():
            elements.append(Element(words[1], int(words[2]), [], False))
        elif words[0] == "property" and elements and len(words) == 5 and words[1] == "list":
            elements[-1].has_list = True
            elements[-1].properties.append((words[4], "list"))
        elif words[0] == "property" and elements and len(words) == 3 and words[1] in PLY_TYPES:
            elements[-1].properties.append((words[2], PLY_TYPES[words[1]]))
        else:
            raise SplatFileError(path, f"PLY header line {number} is not understood: {line.strip()!r}")
    if fmt is None:
        raise SplatFileError(path, "the PLY header has no valid 'format' line")
    return Header(fmt, elements, comments, newline + 1)


def check_vertex_columns(path: Path, vertex: Element) -> None:
    names = [name for name, _ in vertex.properties]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise SplatFileError(path, f"column(s) {', '.join(duplicated)} appear more than once")
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        raise SplatFileError(path, f"not a Gaussian splat: required column(s) missing: {', '.join(missing)}")
    types = dict(vertex.properties)
    for name in REQUIRED_COLUMNS:
        if types[name] not in ("f4", "f8"):
            kind = "a list" if types[name] == "list" else TYPE_NAMES[types[name]]
            raise SplatFileError(path, f"column '{name}' is {kind}; a float or double is expected")
    if vertex.has_list:
        listed = [name for name, code in vertex.properties if code == "list"]
        raise SplatFileError(path, f"column(s) {', '.join(listed)} are lists; splat columns must be numbers")
    rest = sorted(int(name[7:]) for name in names if name.startswith("f_rest_") and name[7:].isdigit())
    if rest != list(range(len(rest))) or sh_degree_for_rest_count(len(rest)) is None:
        raise SplatFileError(
            path,
            f"{len(rest)} f_rest columns do not form spherical harmonics of degree 0-4 "
            "(expected 0, 9, 24, 45 or 72 columns named f_rest_0, f_rest_1, ...)",
        )


class InvalidPoints:
    """The points with a NaN or an infinity, and the columns holding them, found a block of rows at a time.

    A block's values are checked together, as one 2-D array where every column has one type: a pass
    per column would stride over the whole file once per column. The common case, no bad value, costs
    one BLAS pass: a NaN or an infinity makes the sum of squares NaN or infinite, so a finite sum rules
    both out (an overflowing sum only sends the block to the exact test). An infinite opacity logit is
    a saturated alpha (exported so by some tools), not damage. Blocks may be checked from several threads.
    """

    def __init__(self, record: np.dtype, count: int):
        names = record.names or ()
        self.floats = [name for name in names if record[name].kind == "f"]
        types = {record[name] for name in names}
        self.table_type = types.pop() if len(types) == 1 else None  # every column one float type: rows are a table
        self.opacity = self.floats.index("opacity")
        self.count = count
        self.points: np.ndarray | None = None  # (N,) bool, made at the first bad value: headers can claim billions
        self.in_column = np.zeros(len(self.floats), dtype=bool)
        self.lock = threading.Lock()

    def check(self, start: int, rows: np.ndarray) -> None:
        """Check `rows`, the points from `start` on (contiguous)."""
        if self.table_type is None:
            values = structured_to_unstructured(rows[self.floats])  # (B, float columns)
        else:
            values = rows.view(self.table_type).reshape(len(rows), -1)
        flat = values.reshape(-1)
        if np.isfinite(np.dot(flat, flat)):
            return
        bad = ~np.isfinite(values)
        bad[:, self.opacity] = np.isnan(values[:, self.opacity])
        if bad.any():
            with self.lock:
                if self.points is None:
                    self.points = np.zeros(self.count, dtype=bool)
                self.points[start : start + len(rows)] = bad.any(axis=1)
                self.in_column |= bad.any(axis=0)

    @property
    def columns(self) -> list[str]:
        return [name for name, bad in zip(self.floats, self.in_column) if bad]


def read_binary(path, header, vertex, record: np.dtype, check_block) -> np.ndarray:
    """(N,) rows of `record` (the vertex's, in the file's byte order), in native byte order.

    Read once the file is known to hold them, block by block straight into the array the columns
    will be views of; `check_block(start, rows)` sees each block while it is still in the CPU cache.
    Up to READERS threads each read and check their own run of blocks (file reads and numpy release
    the GIL): filling fresh pages and copying them costs the CPU, not the disk, when the file is cached.
    """
    offset = header.size
    for element in header.elements:
        if element is vertex:
            break
        if element.has_list:
            raise SplatFileError(
                path, f"element '{element.name}' before the points has list properties; cannot skip it"
            )
        offset += element.count * sum(np.dtype(code).itemsize for _, code in element.properties)
    expected = vertex.count * record.itemsize
    size = input_size(path)
    if size - offset < expected:
        raise SplatFileError(
            path,
            f"truncated: {vertex.count} points need {expected} bytes of data, the file has {max(size - offset, 0)}",
        )
    rows = np.empty(vertex.count, dtype=record)

    def read_run(start: int, stop: int) -> None:
        with open_input(path) as (file, _):
            file.seek(offset + start * record.itemsize)
            for first in range(start, stop, BLOCK_ROWS):
                block = rows[first : min(first + BLOCK_ROWS, stop)]
                if file.readinto(block.view(np.uint8)) != block.nbytes:
                    raise SplatFileError(path, "truncated: the file became shorter while it was read")
                check_block(first, block)

    blocks = -(-vertex.count // BLOCK_ROWS)
    readers = min(READERS, os.cpu_count() or 1, blocks)
    bounds = [BLOCK_ROWS * (blocks * i // readers) for i in range(readers)] + [vertex.count]
    if readers == 1:
        read_run(0, vertex.count)
    else:
        with ThreadPoolExecutor(readers) as pool:
            for run in [pool.submit(read_run, start, stop) for start, stop in itertools.pairwise(bounds)]:
                run.result()
    return rows if record.isnative else rows.astype(record.newbyteorder("="))


def read_ascii(path, data, header, vertex, record: np.dtype) -> np.ndarray:
    """(N,) rows of `record`, the vertex's in native byte order."""
    lines = data[header.size :].split(b"\n")
    start = 0
    for element in header.elements:
        if element is vertex:
            break
        start += element.count
    lines = lines[start : start + vertex.count]
    width = len(vertex.properties)
    try:
        values = np.array(b" ".join(lines).split(), dtype=np.float64)
    except ValueError:
        raise SplatFileError(path, "the ASCII point data holds something that is not a number") from None
    if len(lines) < vertex.count or values.size != vertex.count * width:
        raise SplatFileError(
            path,
            f"truncated or malformed: {vertex.count} points of {width} values expected, found {values.size} values",
        )
    values = values.reshape(vertex.count, width)
    rows = np.empty(vertex.count, dtype=record)
    for i, (name, _) in enumerate(vertex.properties):
        rows[name] = values[:, i]
    return rows


def read_ply(path, drop_invalid: bool = False) -> Splat:
    """The splat in `path`. Points with NaN or infinite values are an error unless `drop_invalid`.

    The columns are views of one array of rows laid out as in the file (strided, writable): reading
    copies nothing, and an unedited splat (or one edited in place) writes back as that array whole.
    """
    path = Path(path)
    header = parse_header(path, read_file_bytes(path, MAX_HEADER_BYTES))
    vertex = next((element for element in header.elements if element.name == "vertex"), None)
    if vertex is None:
        raise SplatFileError(path, "the PLY file has no 'vertex' element, so it holds no points")
    if vertex.count == 0:
        raise SplatFileError(path, "the file holds zero points")
    check_vertex_columns(path, vertex)
    endian = FORMATS[header.format]
    record = np.dtype([(name, (endian or "=") + code) for name, code in vertex.properties])
    invalid = InvalidPoints(record, vertex.count)
    if endian is None:
        rows = read_ascii(path, read_file_bytes(path), header, vertex, record)
        for start in range(0, vertex.count, BLOCK_ROWS):
            invalid.check(start, rows[start : start + BLOCK_ROWS])
    else:
        rows = read_binary(path, header, vertex, record, invalid.check)

    splat = Splat({name: rows[name] for name in rows.dtype.names}, header.comments)
    if invalid.points is not None and invalid.points.any():
        if not drop_invalid:
            raise SplatFileError(
                path,
                f"{int(invalid.points.sum())} of {vertex.count} points have NaN or infinite values "
                f"(in {', '.join(invalid.columns)}); import them with 'drop invalid points' to skip them",
            )
        if invalid.points.all():
            raise SplatFileError(path, "every point has NaN or infinite values: nothing is left to import")
        splat = splat.subset(~invalid.points)
    return splat


def contiguous_columns(splat: Splat) -> Splat:
    """`splat` with each column in an array of its own, for work that computes on columns (a transform, filling
    Blender's attributes): on a read splat's strided views every column would pull the whole file through the
    cache. The rows are turned into columns a block at a time, the block in cache; a splat whose columns are
    contiguous already is given back as it is."""
    columns = splat.columns
    if all(values.flags.c_contiguous for values in columns.values()):
        return splat
    types = {values.dtype for values in columns.values()}
    record = np.dtype([(name, values.dtype) for name, values in columns.items()])
    rows = file_rows(splat, record)
    if rows is not None and len(types) == 1:  # one table of one type: transposed a block at a time
        table = rows.view(types.pop()).reshape(splat.count, -1)  # (N, columns)
        turned = np.empty(table.shape[::-1], dtype=table.dtype)  # (columns, N)
        for start in range(0, splat.count, TRANSPOSE_ROWS):
            turned[:, start : start + TRANSPOSE_ROWS] = table[start : start + TRANSPOSE_ROWS].T
        return Splat(dict(zip(columns, turned)), list(splat.comments))
    return Splat(column_copies(splat, list(columns)), list(splat.comments))


def grouped_columns(splat: Splat, groups) -> list[np.ndarray]:
    """Per group of column names, an (N, len(group)) array of those columns side by side in their common type:
    what Blender's attributes take (a vector attribute's components, or one column). Copied a block of rows at a
    time, so a read splat's strided views pull the file through the cache once for all groups, and nothing but
    the arrays given back is allocated."""
    columns = splat.columns
    arrays = [np.empty((splat.count, len(group)), np.result_type(*(columns[c] for c in group))) for group in groups]
    for start in range(0, splat.count, TRANSPOSE_ROWS):
        stop = start + TRANSPOSE_ROWS
        for array, group in zip(arrays, groups):
            for i, name in enumerate(group):
                array[start:stop, i] = columns[name][start:stop]
    return arrays


def column_copies(splat: Splat, names) -> dict[str, np.ndarray]:
    """A contiguous copy of each column of `names`, in its own type, made a block of rows at a time."""
    return {name: copy[:, 0] for name, copy in zip(names, grouped_columns(splat, [(name,) for name in names]))}


def ply_header(splat: Splat) -> bytes:
    lines = ["ply", "format binary_little_endian 1.0"]
    lines += [f"comment {comment}" for comment in splat.comments]
    lines.append(f"element vertex {splat.count}")
    lines += [f"property {TYPE_NAMES[values.dtype.str[1:]]} {name}" for name, values in splat.columns.items()]
    lines.append("end_header")
    return ("\n".join(lines) + "\n").encode("ascii")


def file_rows(splat: Splat, record: np.dtype) -> np.ndarray | None:
    """The bytes of the one array `splat`'s columns are views into, when it holds exactly their rows laid out
    as `record` (a splat as read_ply gave it, edited in place or not); None otherwise."""
    owner = splat.columns["x"].base
    if (
        not isinstance(owner, np.ndarray)
        or not owner.flags.c_contiguous
        or owner.nbytes != splat.count * record.itemsize
    ):
        return None
    address = owner.__array_interface__["data"][0]  # of the next column's first value
    for name, values in splat.columns.items():
        if (
            values.base is not owner
            or values.shape != (splat.count,)
            or values.dtype != record[name]
            or values.strides != (record.itemsize,)
            or values.__array_interface__["data"][0] != address
        ):
            return None
        address += values.dtype.itemsize
    return owner.reshape(-1).view(np.uint8)


def ply_rows(splat: Splat):
    """The binary rows: the array they already lie in, or else built in blocks of BLOCK_ROWS points in one
    reused buffer (a fresh 236 MB buffer costs more in page faults than the interleaving itself)."""
    record = np.dtype([(name, "<" + values.dtype.str[1:]) for name, values in splat.columns.items()])
    stored = file_rows(splat, record)
    if stored is not None:
        yield stored
        return
    buffer = np.empty(min(BLOCK_ROWS, splat.count), dtype=record)
    for start in range(0, splat.count, BLOCK_ROWS):
        rows = buffer[: min(BLOCK_ROWS, splat.count - start)]
        for name, values in splat.columns.items():
            rows[name] = values[start : start + len(rows)]
        yield rows.view(np.uint8)


def ply_chunks(splat: Splat):
    """The file's bytes as chunks: the header, then the rows block by block (for write_atomic or StagedOutputs)."""
    return itertools.chain([ply_header(splat)], ply_rows(splat))


def write_ply(path, splat: Splat) -> None:
    """Write `splat` as binary little-endian PLY, its columns in their order, atomically."""
    write_file(Path(path), ply_chunks(splat))
