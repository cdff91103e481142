"""Reading the PlayCanvas / SuperSplat "compressed PLY" splat format with numpy.

The layout (written by SuperSplat and PlayCanvas' splat-transform, read by the PlayCanvas engine):

- ``element chunk``: one row per 256 splats, float32 ``min_x min_y min_z max_x max_y max_z``,
  ``min_scale_x .. max_scale_z`` and optionally ``min_r min_g min_b max_r max_g max_b``.
- ``element vertex``: uint32 ``packed_position packed_rotation packed_scale packed_color``.
  Position and log-scale are 11-10-11 bit unorms (x in the top bits) lerped between the
  chunk's min and max; colour is 8-8-8-8 (r in the top byte), rgb lerped between the chunk's
  colour min/max when present, alpha always linear; rotation is "smallest three": the index of
  the largest component of the w x y z quaternion (made positive) in the top 2 bits, then the
  other three, in w x y z order, as 10-bit unorms of ``q * sqrt(2)/2 + 0.5``.
- optional ``element sh``: uchar ``f_rest_0 ..`` in the usual channel-major order, each
  ``trunc((v / 8 + 0.5) * 256)`` clamped to 0..255.

Decoding follows splat-transform's ``decompress-ply.ts``. The writers sort splats (Morton
order), so the points do not come back in the order of the uncompressed file they came from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import SplatFileError
from .files import input_size, read_file_bytes
from .ply import FORMATS, MAX_HEADER_BYTES, Element, Header, parse_header
from .splat import SH_C0, Splat, sh_degree_for_rest_count

CHUNK_SIZE = 256
CHUNK_COLUMNS = (
    "min_x", "min_y", "min_z", "max_x", "max_y", "max_z",
    "min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z",
)
CHUNK_COLOUR_COLUMNS = ("min_r", "min_g", "min_b", "max_r", "max_g", "max_b")
PACKED_COLUMNS = ("packed_position", "packed_rotation", "packed_scale", "packed_color")

# An alpha of 0 or 255 stands for a bin that reaches 0 or 1; decode it to that half-bin's centre
# so the opacity logit stays finite.
ALPHA_FLOOR = 0.25 / 255.0
ALPHA_CEIL = 254.75 / 255.0

# Smallest-three rotations: for the largest component's index k (w x y z order), the indices of
# the three stored components, in the order they sit from the high bits down.
_OTHERS = np.array([[j for j in range(4) if j != k] for k in range(4)])


def _element(header: Header, name: str) -> Element | None:
    return next((element for element in header.elements if element.name == name), None)


def is_compressed_ply(header: Header) -> bool:
    """Whether a parsed PLY header is a compressed splat (a chunk table and packed vertex columns).

    Loose on purpose, to route files: read_compressed_ply then names whatever else is wrong.
    """
    vertex = _element(header, "vertex")
    if vertex is None or _element(header, "chunk") is None:
        return False
    names = {name for name, _ in vertex.properties}
    return all(name in names for name in PACKED_COLUMNS)


def _check_columns(path: Path, element: Element, names, codes, what: str) -> None:
    types = dict(element.properties)
    missing = [name for name in names if name not in types]
    if missing:
        raise SplatFileError(path, f"compressed PLY: the {what} lacks column(s) {', '.join(missing)}")
    wrong = [name for name in names if types[name] not in codes]
    if wrong:
        raise SplatFileError(
            path, f"compressed PLY: column(s) {', '.join(wrong)} of the {what} have the wrong type "
            f"(expected {'float' if 'f4' in codes else 'uint' if 'u4' in codes else 'uchar'})"
        )


def _element_rows(path: Path, header: Header) -> dict[str, np.ndarray]:
    """Each element's rows as a structured array, read only once the file is known to hold them all."""
    endian = FORMATS[header.format]
    records, offset = {}, header.size
    for element in header.elements:
        if element.has_list:
            raise SplatFileError(path, f"compressed PLY: element '{element.name}' has list properties")
        record = np.dtype([(name, endian + code) for name, code in element.properties])
        records[element.name] = (record, element.count, offset)
        offset += element.count * record.itemsize
    size = input_size(path)
    for name, (record, count, start) in records.items():
        if size - start < count * record.itemsize:
            raise SplatFileError(
                path, f"truncated: element '{name}' needs {count * record.itemsize} bytes of data, "
                f"the file has {max(size - start, 0)} left"
            )
    data = read_file_bytes(path, offset)
    return {name: np.frombuffer(data, dtype=record, count=count, offset=start)
            for name, (record, count, start) in records.items()}


def _unorm(values: np.ndarray, shift: int, bits: int) -> np.ndarray:
    return ((values >> np.uint32(shift)) & np.uint32((1 << bits) - 1)).astype(np.float64) / ((1 << bits) - 1)


def _lerp(low: np.ndarray, high: np.ndarray, t: np.ndarray) -> np.ndarray:
    return low * (1.0 - t) + high * t


def _unpack_111011(packed: np.ndarray) -> np.ndarray:
    return np.stack([_unorm(packed, 21, 11), _unorm(packed, 11, 10), _unorm(packed, 0, 11)], axis=1)


def unpack_rotations(packed: np.ndarray) -> np.ndarray:
    """(N,) uint32 smallest-three words -> (N, 4) unit quaternions w x y z."""
    packed = packed.astype(np.uint32, copy=False)
    norm = np.sqrt(2.0)  # 1 / (sqrt(2) / 2)
    stored = np.stack([(_unorm(packed, shift, 10) - 0.5) * norm for shift in (20, 10, 0)], axis=1)
    largest = (packed >> np.uint32(30)).astype(np.intp)
    rows = np.arange(len(packed))
    quaternions = np.empty((len(packed), 4), dtype=np.float64)
    quaternions[rows, largest] = np.sqrt(np.maximum(0.0, 1.0 - np.sum(stored * stored, axis=1)))
    others = _OTHERS[largest]
    for slot in range(3):
        quaternions[rows, others[:, slot]] = stored[:, slot]
    return quaternions


def read_compressed_ply(path) -> Splat:
    """The splat in a PlayCanvas/SuperSplat compressed .ply, decoded to the canonical 3DGS columns."""
    path = Path(path)
    header = parse_header(path, read_file_bytes(path, MAX_HEADER_BYTES))
    if not is_compressed_ply(header):
        raise SplatFileError(
            path, "not a compressed splat PLY (expected a 'chunk' element and packed_position, packed_rotation, "
            "packed_scale, packed_color vertex columns)"
        )
    if FORMATS[header.format] is None:
        raise SplatFileError(path, "compressed PLY: ASCII data is not supported (the format is binary)")
    chunk, vertex, sh = _element(header, "chunk"), _element(header, "vertex"), _element(header, "sh")
    if vertex.count == 0:
        raise SplatFileError(path, "the file holds zero points")
    _check_columns(path, chunk, CHUNK_COLUMNS, ("f4",), "chunk table")
    chunk_names = {name for name, _ in chunk.properties}
    has_colour = any(name in chunk_names for name in CHUNK_COLOUR_COLUMNS)
    if has_colour:
        _check_columns(path, chunk, CHUNK_COLOUR_COLUMNS, ("f4",), "chunk table")
    _check_columns(path, vertex, PACKED_COLUMNS, ("u4", "i4"), "vertex element")
    expected_chunks = -(-vertex.count // CHUNK_SIZE)
    if chunk.count != expected_chunks:
        raise SplatFileError(
            path, f"compressed PLY: {vertex.count} points need {expected_chunks} chunks of {CHUNK_SIZE}, "
            f"the file has {chunk.count}"
        )
    rest_count = 0
    if sh is not None:
        rest_count = sum(1 for name, _ in sh.properties if name.startswith("f_rest_"))
        rest_names = [f"f_rest_{i}" for i in range(rest_count)]
        if rest_count == 0 or sh_degree_for_rest_count(rest_count) is None:
            raise SplatFileError(
                path, f"compressed PLY: the 'sh' element's {rest_count} f_rest columns do not form spherical "
                "harmonics of degree 1-3 (expected 9, 24 or 45)"
            )
        _check_columns(path, sh, rest_names, ("u1",), "'sh' element")
        if sh.count != vertex.count:
            raise SplatFileError(
                path, f"compressed PLY: the 'sh' element has {sh.count} rows for {vertex.count} points"
            )

    rows = _element_rows(path, header)
    chunks = rows["chunk"]
    chunk_names_used = CHUNK_COLUMNS + (CHUNK_COLOUR_COLUMNS if has_colour else ())
    table = np.stack([chunks[name].astype(np.float64) for name in chunk_names_used], axis=1)
    if not np.isfinite(table).all():
        raise SplatFileError(path, "compressed PLY: the chunk table holds NaN or infinite values")
    owner = np.arange(vertex.count) // CHUNK_SIZE  # each point's chunk

    def chunk_lerp(first: int, t: np.ndarray) -> np.ndarray:  # columns first..+2 are min, +3..+5 max
        return _lerp(table[owner, first:first + 3], table[owner, first + 3:first + 6], t)

    points = rows["vertex"]
    packed = {name: points[name].astype(np.uint32) for name in PACKED_COLUMNS}
    positions = chunk_lerp(0, _unpack_111011(packed["packed_position"]))
    scales = chunk_lerp(6, _unpack_111011(packed["packed_scale"]))
    rotations = unpack_rotations(packed["packed_rotation"])

    colour_word = packed["packed_color"]
    colours = np.stack([_unorm(colour_word, shift, 8) for shift in (24, 16, 8)], axis=1)
    if has_colour:
        colours = chunk_lerp(12, colours)
    alphas = np.clip(_unorm(colour_word, 0, 8), ALPHA_FLOOR, ALPHA_CEIL)
    opacities = np.log(alphas / (1.0 - alphas))
    sh_dc = (colours - 0.5) / SH_C0

    sh_rest = None
    if rest_count:
        quantised = np.stack([rows["sh"][f"f_rest_{i}"] for i in range(rest_count)], axis=1).astype(np.float64)
        unit = np.where(quantised == 0, 0.0, np.where(quantised == 255, 1.0, (quantised + 0.5) / 256.0))
        rest = (unit - 0.5) * 8.0  # (N, 3 * (K - 1)), channel-major like the uncompressed file
        sh_rest = rest.reshape(vertex.count, 3, -1).transpose(0, 2, 1)
    return Splat.from_arrays(positions, sh_dc, opacities, scales, rotations, sh_rest)
