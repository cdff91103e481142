"""Reading and writing 3DGS .ply files with numpy.

Reads binary little- and big-endian and ASCII, columns in any order, any extra columns; writes
binary little-endian in the column order it was given, so an unedited canonical file comes back
byte for byte. Every problem with a file is a SplatFileError naming the file.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SplatFileError
from .files import input_size, read_file_bytes, write_atomic
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
BLOCK_ROWS = 1 << 15  # points interleaved or split at a time: a block of rows stays in the CPU cache


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
    end = data.find(b"end_header")
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
            f"{len(rest)} f_rest columns do not form spherical harmonics of degree 0-3 "
            "(expected 0, 9, 24 or 45 columns named f_rest_0, f_rest_1, ...)",
        )


def read_binary(path, header, vertex, endian) -> dict[str, np.ndarray]:
    """The vertex columns, reading only the bytes up to their end, once the file is known to hold them."""
    offset = header.size
    for element in header.elements:
        if element is vertex:
            break
        if element.has_list:
            raise SplatFileError(
                path, f"element '{element.name}' before the points has list properties; cannot skip it"
            )
        offset += element.count * np.dtype([(n, endian + c) for n, c in element.properties]).itemsize
    record = np.dtype([(name, endian + code) for name, code in vertex.properties])
    expected = vertex.count * record.itemsize
    size = input_size(path)
    if size - offset < expected:
        raise SplatFileError(
            path,
            f"truncated: {vertex.count} points need {expected} bytes of data, the file has {max(size - offset, 0)}",
        )
    data = read_file_bytes(path, offset + expected)
    rows = np.frombuffer(data, dtype=record, count=vertex.count, offset=offset)
    columns = {name: np.empty(vertex.count, dtype=code) for name, code in vertex.properties}
    for start in range(0, vertex.count, BLOCK_ROWS):  # block by block: each row's bytes are read while in cache
        block = rows[start : start + BLOCK_ROWS]
        for name, values in columns.items():
            values[start : start + len(block)] = block[name]
    return columns


def read_ascii(path, data, header, vertex) -> dict[str, np.ndarray]:
    lines = data[header.size :].split(b"\n")
    start = 0
    for element in header.elements:
        if element is vertex:
            break
        start += element.count
    rows = lines[start : start + vertex.count]
    width = len(vertex.properties)
    try:
        values = np.array(b" ".join(rows).split(), dtype=np.float64)
    except ValueError:
        raise SplatFileError(path, "the ASCII point data holds something that is not a number") from None
    if len(rows) < vertex.count or values.size != vertex.count * width:
        raise SplatFileError(
            path,
            f"truncated or malformed: {vertex.count} points of {width} values expected, found {values.size} values",
        )
    values = values.reshape(vertex.count, width)
    return {name: values[:, i].astype(code) for i, (name, code) in enumerate(vertex.properties)}


def read_ply(path, drop_invalid: bool = False) -> Splat:
    """The splat in `path`. Points with NaN or infinite values are an error unless `drop_invalid`."""
    path = Path(path)
    header = parse_header(path, read_file_bytes(path, MAX_HEADER_BYTES))
    vertex = next((element for element in header.elements if element.name == "vertex"), None)
    if vertex is None:
        raise SplatFileError(path, "the PLY file has no 'vertex' element, so it holds no points")
    if vertex.count == 0:
        raise SplatFileError(path, "the file holds zero points")
    check_vertex_columns(path, vertex)
    endian = FORMATS[header.format]
    if endian is None:
        columns = read_ascii(path, read_file_bytes(path), header, vertex)
    else:
        columns = read_binary(path, header, vertex, endian)

    invalid = np.zeros(vertex.count, dtype=bool)
    bad_columns = []
    for name, values in columns.items():
        if values.dtype.kind == "f":
            # An infinite opacity logit is a saturated alpha (exported so by some tools), not damage.
            bad = np.isnan(values) if name == "opacity" else ~np.isfinite(values)
            if bad.any():
                invalid |= bad
                bad_columns.append(name)
    splat = Splat(columns, header.comments)
    if invalid.any():
        if not drop_invalid:
            raise SplatFileError(
                path,
                f"{int(invalid.sum())} of {vertex.count} points have NaN or infinite values "
                f"(in {', '.join(bad_columns)}); import them with 'drop invalid points' to skip them",
            )
        if invalid.all():
            raise SplatFileError(path, "every point has NaN or infinite values: nothing is left to import")
        splat = splat.subset(~invalid)
    return splat


def ply_header(splat: Splat) -> bytes:
    lines = ["ply", "format binary_little_endian 1.0"]
    lines += [f"comment {comment}" for comment in splat.comments]
    lines.append(f"element vertex {splat.count}")
    lines += [f"property {TYPE_NAMES[values.dtype.str[1:]]} {name}" for name, values in splat.columns.items()]
    lines.append("end_header")
    return ("\n".join(lines) + "\n").encode("ascii")


def write_file(path: Path, chunks) -> None:
    """Write a splat file's byte chunks atomically; a missing folder or a failed write is a SplatFileError."""
    if not path.parent.is_dir():
        raise SplatFileError(path, "the folder to write into does not exist")
    try:
        write_atomic(path, chunks)
    except OSError as error:
        raise SplatFileError(path, f"cannot be written ({error.strerror})") from None


def ply_rows(splat: Splat):
    """The binary rows in blocks of BLOCK_ROWS points, one reused buffer: no copy of the whole file is
    ever made (a fresh 236 MB buffer costs more in page faults than the interleaving itself)."""
    record = np.dtype([(name, "<" + values.dtype.str[1:]) for name, values in splat.columns.items()])
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
