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

from ..errors import SplatFileError
from ..files import input_size, read_file_bytes, write_file
from .ply import FORMATS, MAX_HEADER_BYTES, Element, Header, parse_header
from .splat import SH_C0, Splat, alphas_of, rest_columns, sh_degree_for_rest_count

CHUNK_SIZE = 256
CHUNK_COLUMNS = (
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
            path,
            f"compressed PLY: column(s) {', '.join(wrong)} of the {what} have the wrong type "
            f"(expected {'float' if 'f4' in codes else 'uint' if 'u4' in codes else 'uchar'})",
        )


def _element_rows(path: Path, header: Header) -> dict[str, np.ndarray]:
    """Each element's rows as a structured array, read only once the file is known to hold them all."""
    endian = FORMATS[header.format]
    assert endian is not None  # ASCII is refused before
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
                path,
                f"truncated: element '{name}' needs {count * record.itemsize} bytes of data, "
                f"the file has {max(size - start, 0)} left",
            )
    data = read_file_bytes(path, offset)
    return {
        name: np.frombuffer(data, dtype=record, count=count, offset=start)
        for name, (record, count, start) in records.items()
    }


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
            path,
            "not a compressed splat PLY (expected a 'chunk' element and packed_position, packed_rotation, "
            "packed_scale, packed_color vertex columns)",
        )
    if FORMATS[header.format] is None:
        raise SplatFileError(path, "compressed PLY: ASCII data is not supported (the format is binary)")
    chunk, vertex, sh = _element(header, "chunk"), _element(header, "vertex"), _element(header, "sh")
    assert chunk is not None and vertex is not None  # is_compressed_ply found both
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
            path,
            f"compressed PLY: {vertex.count} points need {expected_chunks} chunks of {CHUNK_SIZE}, "
            f"the file has {chunk.count}",
        )
    rest_count = 0
    if sh is not None:
        rest_count = sum(1 for name, _ in sh.properties if name.startswith("f_rest_"))
        rest_names = [f"f_rest_{i}" for i in range(rest_count)]
        if rest_count == 0 or sh_degree_for_rest_count(rest_count) is None:
            raise SplatFileError(
                path,
                f"compressed PLY: the 'sh' element's {rest_count} f_rest columns do not form spherical "
                "harmonics of degree 1-3 (expected 9, 24 or 45)",
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
        return _lerp(table[owner, first : first + 3], table[owner, first + 3 : first + 6], t)

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


# --- writing -------------------------------------------------------------------------------------
SCALE_LIMIT = 20.0  # chunk log-scale bounds are clamped here (as splat-transform): some files hold infinities
FLAT_RANGE = 1e-5  # a chunk range narrower than this stores every value at its minimum


def _spread_bits(values: np.ndarray) -> np.ndarray:
    """(N,) 10-bit integers with two zero bits after each bit, for a 30-bit Morton code."""
    v = values.astype(np.uint32)
    for shift, mask in ((16, 0x030000FF), (8, 0x0300F00F), (4, 0x030C30C3), (2, 0x09249249)):
        v = (v | (v << np.uint32(shift))) & np.uint32(mask)
    return v


def morton_order(positions: np.ndarray) -> np.ndarray:
    """(N,) indices sorting (N, 3) positions along a Z-order curve over their bounding box, 10 bits an
    axis, as splat-transform sorts: each chunk of 256 then holds neighbours and its ranges stay small.
    A run of more than 256 points sharing one code is sorted again within its own bounding box."""
    order = np.arange(len(positions))
    pending = [order]
    while pending:
        indices = pending.pop()
        points = positions[indices].astype(np.float64)
        low, length = points.min(axis=0), np.ptp(points, axis=0)
        if not np.isfinite(length).all() or not length.any():
            continue  # every point the same (or not finite): any order
        scale = np.where(length == 0, 0.0, 1024.0 / np.where(length == 0, 1.0, length))
        cells = np.minimum(1023.0, (points - low) * scale).astype(np.uint32)
        code = (
            _spread_bits(cells[:, 0])
            | _spread_bits(cells[:, 1]) << np.uint32(1)
            | _spread_bits(cells[:, 2]) << np.uint32(2)
        )
        sort = np.argsort(code, kind="stable")
        indices[:] = indices[sort]
        starts = np.flatnonzero(np.diff(code[sort], prepend=np.int64(-1)))
        ends = np.append(starts[1:], len(indices))
        pending += [indices[start:end] for start, end in zip(starts, ends) if end - start > CHUNK_SIZE]
    return order


def _chunk_ranges(values: np.ndarray, limit: float | None = None):
    """Per chunk min and max (chunks, 3) of (chunks, 256, 3) values, and the values as 0..1 within them."""
    low, high = values.min(axis=1), values.max(axis=1)
    if limit is not None:
        low, high = np.clip(low, -limit, limit), np.clip(high, -limit, limit)
    span = high - low
    t = np.where(
        span[:, None] < FLAT_RANGE, 0.0, (values - low[:, None]) / np.where(span < FLAT_RANGE, 1.0, span)[:, None]
    )
    return low, high, np.clip(t, 0.0, 1.0)


def _pack_unorm(t: np.ndarray, bits: int) -> np.ndarray:
    top = (1 << bits) - 1
    return np.clip(np.floor(t * top + 0.5), 0, top).astype(np.uint32)


def _pack_111011(t: np.ndarray) -> np.ndarray:  # (..., 3) in 0..1 -> (...,) uint32
    return (
        _pack_unorm(t[..., 0], 11) << np.uint32(21)
        | _pack_unorm(t[..., 1], 10) << np.uint32(11)
        | _pack_unorm(t[..., 2], 11)
    )


def pack_rotations(wxyz: np.ndarray) -> np.ndarray:
    """(N, 4) quaternions w x y z (any length) -> (N,) uint32 smallest-three words; inverts `unpack_rotations`."""
    rows = np.arange(len(wxyz))
    q = wxyz / np.maximum(np.linalg.norm(wxyz, axis=1, keepdims=True), 1e-30)
    largest = np.argmax(np.abs(q), axis=1)
    q = q * np.where(q[rows, largest] < 0, -1.0, 1.0)[:, None]
    others = _OTHERS[largest]
    word = largest.astype(np.uint32)
    for slot in range(3):
        word = word << np.uint32(10) | _pack_unorm(q[rows, others[:, slot]] * (np.sqrt(2.0) / 2.0) + 0.5, 10)
    return word


def compressed_ply_bytes(splat: Splat) -> list[bytes]:
    """A PlayCanvas compressed .ply of `splat` (header, chunk table, packed points, SH), in Morton order.

    Steps, per chunk of 256 neighbours: positions 1/2047 (x, z) and 1/1023 (y) of the chunk's extent,
    log scales the same of their extent, base colour 1/255 of the chunk's colour extent, alpha 1/255,
    rotation components 1/1023 * sqrt(2); SH coefficients 1/32 (8 bits over -4..4), everywhere.
    """
    order = morton_order(splat.positions)
    count, degree = splat.count, splat.sh_degree
    chunks = -(-count // CHUNK_SIZE)
    padded = np.concatenate([order, np.full(chunks * CHUNK_SIZE - count, order[-1])])  # the last repeats

    def per_chunk(values: np.ndarray) -> np.ndarray:  # (N, 3) -> (chunks, 256, 3), sorted and padded
        return values.astype(np.float64)[padded].reshape(chunks, CHUNK_SIZE, -1)

    position_low, position_high, position_t = _chunk_ranges(per_chunk(splat.positions))
    scale_low, scale_high, scale_t = _chunk_ranges(per_chunk(splat.scales), SCALE_LIMIT)
    colour_low, colour_high, colour_t = _chunk_ranges(per_chunk(0.5 + SH_C0 * splat.sh_dc.astype(np.float64)))
    alpha = per_chunk(alphas_of(splat.opacities.astype(np.float64))[:, None])[..., 0]
    colour_word = (
        _pack_unorm(colour_t[..., 0], 8) << np.uint32(24)
        | _pack_unorm(colour_t[..., 1], 8) << np.uint32(16)
        | _pack_unorm(colour_t[..., 2], 8) << np.uint32(8)
        | _pack_unorm(alpha, 8)
    )
    table = np.concatenate([position_low, position_high, scale_low, scale_high, colour_low, colour_high], axis=1)
    points = np.stack(
        [
            _pack_111011(position_t),
            pack_rotations(splat.rotations.astype(np.float64)[padded]).reshape(chunks, -1),
            _pack_111011(scale_t),
            colour_word,
        ],
        axis=-1,
    ).reshape(-1, 4)[:count]

    names = CHUNK_COLUMNS + CHUNK_COLOUR_COLUMNS
    lines = ["ply", "format binary_little_endian 1.0", f"element chunk {chunks}"]
    lines += [f"property float {name}" for name in names]
    lines += [f"element vertex {count}"] + [f"property uint {name}" for name in PACKED_COLUMNS]
    parts = [table.astype("<f4").tobytes(), points.astype("<u4").tobytes()]
    if degree:
        rest = splat.stack(rest_columns(degree))[order].astype(np.float64)  # channel-major, like the file
        lines += [f"element sh {count}"] + [f"property uchar f_rest_{i}" for i in range(rest.shape[1])]
        parts.append(np.clip(np.trunc((rest / 8.0 + 0.5) * 256.0), 0, 255).astype(np.uint8).tobytes())
    lines.append("end_header")
    return [("\n".join(lines) + "\n").encode("ascii")] + parts


def write_compressed_ply(path, splat: Splat) -> None:
    """Write `splat` as a PlayCanvas compressed .ply (see `compressed_ply_bytes`), atomically."""
    write_file(Path(path), compressed_ply_bytes(splat))
