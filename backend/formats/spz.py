"""Reading Niantic's SPZ compressed splat format with numpy.

Two containers share the same packed attributes (reference: nianticlabs/spz, src/cc/load-spz.cc):

- versions 1-3 (and 4 written the old way): the whole file is gzip; inside, a 16-byte header
  ``magic "NGSP" (u32 0x5053474e), version u32, numPoints u32, shDegree u8, fractionalBits u8,
  flags u8, reserved u8`` then the attributes back to back, then any extension records.
- version 4: not gzip. A plain 32-byte header ``magic, version, numPoints, shDegree,
  fractionalBits, flags, numStreams u8, tocByteOffset u32, 12 reserved bytes``, extension records
  up to ``tocByteOffset``, a table of ``numStreams`` (compressedSize u64, uncompressedSize u64)
  pairs, then each non-empty attribute as its own zstd frame. Reading it needs a zstd decoder:
  Python 3.14's ``compression.zstd`` or the ``zstandard`` package from PyPI.

Attributes, in order: positions (3 x 24-bit signed fixed point, ``fractionalBits`` fraction bits;
float16 in version 1), alphas (u8, sigmoid * 255), colours (u8, ``f_dc * 0.15 * 255 + 127.5``),
scales (u8, ``(log scale + 10) * 16``), rotations (version 2: x y z as ``(q + 1) * 127.5`` with
w >= 0; version 3+: "smallest three" in 4 bytes: the largest x y z w component's index in the top
2 bits, then for each other component a sign bit and 9 bits of ``|q| / sqrt(1/2) * 511``, the
highest index in the lowest bits), then SH rest coefficients (u8, ``(v - 128) / 128``, colour
channel fastest).

Frames: the SPZ spec stores data right-up-back (OpenGL / three.js), where the 3DGS .ply is
right-down-front; the reference library converts between the two when given the frames
(``UnpackOptions.to = RDF``): x, -y, -z for positions, quaternion x y z times (1, -1, -1) and a sign
per SH coefficient. ``read_spz`` does that by default, and the shared biker.spz / biker.ply pair
agrees (positions match to the 2^-12 fixed-point step only with the flip). Tools that leave the
frame UNSPECIFIED (the default of Niantic's CLI converters; recent PlayCanvas splat-transform)
store the .ply's axes unchanged: ``from_rub=False`` reads those as stored. An Adobe coordinate-system
extension record (0xADBE0003), when present, names the stored frame and is honoured.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ..errors import SplatFileError
from ..files import check_inflation, inflate_gzip, inflate_zstd, read_file_bytes, write_file
from .splat import Splat

MAGIC = 0x5053474E  # b"NGSP" read as little-endian u32
GZIP_MAGIC = b"\x1f\x8b"
LEGACY_HEADER_SIZE = 16
NGSP_HEADER_SIZE = 32
LATEST_VERSION = 4
FIRST_ZSTD_VERSION = 4
FLAG_ANTIALIASED = 0x1
FLAG_HAS_EXTENSIONS = 0x2
COLOUR_SCALE = 0.15  # SPZ stores f_dc * 0.15, not * SH_C0, so base colours a little out of range survive
MAX_SH_DEGREE = 4
EXTENSIONS_ALLOWANCE = 1 << 16  # bytes of extension records a gzip container may hold after the attributes
EXTENSION_COORDINATE_SYSTEM = 0xADBE0003  # Adobe's record saying which axes the data is stored in
COORDINATE_SYSTEMS = {
    1: "LDB",
    2: "RDB",
    3: "LUB",
    4: "RUB",
    5: "LDF",
    6: "RDF",
    7: "LUF",
    8: "RUF",
}
SQRT1_2 = np.sqrt(0.5)


def _sh_dim(degree: int) -> int:
    return (degree + 1) ** 2 - 1


def _attribute_sizes(count: int, version: int, sh_degree: int) -> list[tuple[str, int]]:
    return [
        ("positions", count * 3 * (2 if version == 1 else 3)),
        ("alphas", count),
        ("colors", count * 3),
        ("scales", count * 3),
        ("rotations", count * (4 if version >= 3 else 3)),
        ("sh", count * _sh_dim(sh_degree) * 3),
    ]


def _check_header(path: Path, version: int, count: int, sh_degree: int, fractional_bits: int, size: int) -> int:
    """The bytes of attribute data the header promises, once it is known to be sane for a `size`-byte file."""
    if not 1 <= version <= LATEST_VERSION:
        raise SplatFileError(path, f"SPZ version {version} is not supported (versions 1-{LATEST_VERSION} are)")
    if count == 0:
        raise SplatFileError(path, "the file holds zero points")
    if sh_degree > MAX_SH_DEGREE:
        raise SplatFileError(path, f"SPZ header gives SH degree {sh_degree}; 0-{MAX_SH_DEGREE} are valid")
    if fractional_bits > 24:
        raise SplatFileError(path, f"SPZ header gives {fractional_bits} fractional bits for 24-bit positions")
    needed = sum(size for _, size in _attribute_sizes(count, version, sh_degree))
    check_inflation(path, size, needed, f"SPZ data for {count:,} points")
    return needed


def _read_extensions(path: Path, block: bytes) -> dict[int, bytes]:
    """Length-delimited extension records (u32 type, u32 length, payload); unknown types are kept too."""
    records, offset = {}, 0
    while offset + 8 <= len(block):
        kind, length = np.frombuffer(block, dtype="<u4", count=2, offset=offset)
        offset += 8
        if offset + int(length) > len(block):
            raise SplatFileError(path, "truncated: an SPZ extension record runs past its block")
        records[int(kind)] = block[offset : offset + int(length)]
        offset += int(length)
    return records


def _legacy_header(path: Path, head: bytes, file_size: int) -> tuple[int, int, int, int, int, int]:
    """version, count, SH degree, fractional bits, flags and attribute bytes of a gzip container's header."""
    if len(head) < LEGACY_HEADER_SIZE:
        raise SplatFileError(path, f"truncated: {len(head)} bytes after gzip, shorter than the 16-byte SPZ header")
    magic, version, count = (int(v) for v in np.frombuffer(head, dtype="<u4", count=3))
    if magic != MAGIC:
        raise SplatFileError(path, "not an SPZ file: the decompressed data does not start with 'NGSP'")
    sh_degree, fractional_bits, flags = head[12], head[13], head[14]
    needed = _check_header(path, version, count, sh_degree, fractional_bits, file_size)
    return version, count, sh_degree, fractional_bits, flags, needed


def _unpack_legacy(path: Path, data: bytes):
    def limit(head: bytes) -> int:  # what the header promises, so no more is ever inflated
        return LEGACY_HEADER_SIZE + _legacy_header(path, head, len(data))[-1] + EXTENSIONS_ALLOWANCE

    raw = inflate_gzip(path, data, LEGACY_HEADER_SIZE, limit)
    version, count, sh_degree, fractional_bits, flags, needed = _legacy_header(path, raw, len(data))
    buffers, offset = {}, LEGACY_HEADER_SIZE
    if len(raw) - offset < needed:
        raise SplatFileError(
            path, f"truncated: {count} points need {needed} bytes of data, the file has {len(raw) - offset}"
        )
    for name, size in _attribute_sizes(count, version, sh_degree):
        buffers[name] = raw[offset : offset + size]
        offset += size
    extensions = _read_extensions(path, raw[offset:]) if flags & FLAG_HAS_EXTENSIONS else {}
    return version, count, sh_degree, fractional_bits, flags, buffers, extensions


def _unpack_ngsp(path: Path, data: bytes):
    if len(data) < NGSP_HEADER_SIZE:
        raise SplatFileError(path, f"truncated: {len(data)} bytes, shorter than the 32-byte SPZ header")
    _, version, count = (int(v) for v in np.frombuffer(data, dtype="<u4", count=3))
    sh_degree, fractional_bits, flags, num_streams = data[12], data[13], data[14], data[15]
    if version < FIRST_ZSTD_VERSION:
        raise SplatFileError(
            path, f"SPZ version {version} files are gzip-compressed, but this one starts with a plain header"
        )
    _check_header(path, version, count, sh_degree, fractional_bits, len(data))
    toc = int(np.frombuffer(data, dtype="<u4", count=1, offset=16)[0])
    if toc < NGSP_HEADER_SIZE:
        raise SplatFileError(path, f"corrupt SPZ header: stream table offset {toc} lies inside the header")
    sizes = [(name, size) for name, size in _attribute_sizes(count, version, sh_degree) if size]
    if num_streams != len(sizes):
        raise SplatFileError(path, f"SPZ header lists {num_streams} streams; {len(sizes)} are expected")
    table_end = toc + 16 * num_streams
    if table_end > len(data):
        raise SplatFileError(path, f"truncated: the stream table ends at byte {table_end}, the file has {len(data)}")
    table = np.frombuffer(data, dtype="<u8", count=2 * num_streams, offset=toc).reshape(-1, 2)
    buffers, offset = {}, table_end
    for index, ((name, size), (packed, unpacked)) in enumerate(zip(sizes, table.tolist())):
        if unpacked != size:
            raise SplatFileError(path, f"SPZ stream {index} ({name}) holds {unpacked} bytes; {size} are expected")
        if offset + packed > len(data):
            raise SplatFileError(
                path, f"truncated: SPZ stream {index} ({name}) ends at byte {offset + packed}, the file has {len(data)}"
            )
        buffers[name] = inflate_zstd(path, data[offset : offset + packed], size, f"SPZ stream {index} ({name})")
        offset += packed
    if offset != len(data):
        raise SplatFileError(path, f"corrupt: {len(data) - offset} unexpected bytes after the last SPZ stream")
    buffers.setdefault("sh", b"")
    extensions = _read_extensions(path, data[NGSP_HEADER_SIZE:toc]) if flags & FLAG_HAS_EXTENSIONS else {}
    return version, count, sh_degree, fractional_bits, flags, buffers, extensions


def _positions(raw: bytes, count: int, version: int, fractional_bits: int) -> np.ndarray:
    if version == 1:
        return np.frombuffer(raw, dtype="<f2").reshape(count, 3).astype(np.float64)
    b = np.frombuffer(raw, dtype=np.uint8).reshape(count, 3, 3).astype(np.int32)
    fixed = b[..., 0] | (b[..., 1] << 8) | (b[..., 2] << 16)
    fixed = np.where(fixed & 0x800000, fixed - (1 << 24), fixed)
    return fixed.astype(np.float64) / (1 << fractional_bits)


def unpack_rotations_smallest_three(packed: np.ndarray) -> np.ndarray:
    """(N,) uint32 SPZ v3 rotation words -> (N, 4) quaternions x y z w (unit length)."""
    packed = packed.astype(np.uint32, copy=False)
    largest = (packed >> np.uint32(30)).astype(np.intp)
    rows = np.arange(len(packed))
    quaternions = np.zeros((len(packed), 4), dtype=np.float64)
    # The component with the highest index (other than the largest) sits in the lowest 10 bits.
    shift = np.zeros(len(packed), dtype=np.uint32)
    for component in (3, 2, 1, 0):
        here = largest != component
        word = packed >> shift
        magnitude = (word & np.uint32(511)).astype(np.float64) * (SQRT1_2 / 511.0)
        negative = ((word >> np.uint32(9)) & np.uint32(1)).astype(bool)
        quaternions[here, component] = np.where(negative, -magnitude, magnitude)[here]
        shift = shift + np.where(here, np.uint32(10), np.uint32(0)).astype(np.uint32)
    rest = np.sum(quaternions * quaternions, axis=1)
    quaternions[rows, largest] = np.sqrt(np.maximum(0.0, 1.0 - rest))
    return quaternions


def _rotations(raw: bytes, count: int, version: int) -> np.ndarray:
    """(N, 4) quaternions x y z w."""
    if version >= 3:
        return unpack_rotations_smallest_three(np.frombuffer(raw, dtype="<u4", count=count))
    xyz = np.frombuffer(raw, dtype=np.uint8).reshape(count, 3).astype(np.float64) / 127.5 - 1.0
    w = np.sqrt(np.maximum(0.0, 1.0 - np.sum(xyz * xyz, axis=1)))
    return np.concatenate([xyz, w[:, None]], axis=1)


def _axis_flips(source: str) -> tuple[float, float, float]:
    """Signs that take axes named like 'RUB' to the PLY's right-down-front."""
    return (1.0 if source[0] == "R" else -1.0, 1.0 if source[1] == "D" else -1.0, 1.0 if source[2] == "F" else -1.0)


def _sh_flips(x: float, y: float, z: float) -> np.ndarray:
    """Sign of each SH rest coefficient (degrees 1-4) under an axis flip (as in the reference's flipSh)."""
    return np.array(
        [
            y,
            z,
            x,
            x * y,
            y * z,
            1.0,
            x * z,
            1.0,
            y,
            x * y * z,
            y,
            z,
            x,
            z,
            x,
            x * y,
            y * z,
            x * y,
            y * z,
            1.0,
            x * z,
            1.0,
            x * z,
            y,
        ]
    )


def read_spz(path, from_rub: bool = True) -> Splat:
    """The splat in an SPZ file (versions 1-4), decoded to the canonical 3DGS columns.

    By default the data is converted from the spec's right-up-back frame (or the frame an Adobe
    coordinate-system extension names) to the PLY's right-down-front; ``from_rub=False`` keeps the
    axes as stored, for files written without the conversion. SH degree 4 (SPZ only) is cut to
    degree 3: the product turns and renders bands 1-3.
    """
    path = Path(path)
    data = read_file_bytes(path)
    if data[:2] == GZIP_MAGIC:
        unpacked = _unpack_legacy(path, data)
    elif len(data) >= 4 and int(np.frombuffer(data, dtype="<u4", count=1)[0]) == MAGIC:
        unpacked = _unpack_ngsp(path, data)
    else:
        raise SplatFileError(path, "not an SPZ file (it starts with neither gzip data nor 'NGSP')")
    version, count, sh_degree, fractional_bits, flags, buffers, extensions = unpacked

    positions = _positions(buffers["positions"], count, version, fractional_bits)
    alphas = np.frombuffer(buffers["alphas"], dtype=np.uint8).astype(np.float64) / 255.0
    alphas = np.clip(alphas, 1.0 / 255.0, 254.0 / 255.0)  # as the reference loader: keeps logits finite
    opacities = np.log(alphas / (1.0 - alphas))
    colours = np.frombuffer(buffers["colors"], dtype=np.uint8).reshape(count, 3).astype(np.float64)
    sh_dc = (colours / 255.0 - 0.5) / COLOUR_SCALE
    scales = np.frombuffer(buffers["scales"], dtype=np.uint8).reshape(count, 3).astype(np.float64) / 16.0 - 10.0
    xyzw = _rotations(buffers["rotations"], count, version)
    sh_rest = None
    if sh_degree:
        coefficients = np.frombuffer(buffers["sh"], dtype=np.uint8).astype(np.float64)
        sh_rest = (coefficients.reshape(count, _sh_dim(sh_degree), 3) - 128.0) / 128.0

    if from_rub:
        frame = "RUB"
        if EXTENSION_COORDINATE_SYSTEM in extensions:
            payload = extensions[EXTENSION_COORDINATE_SYSTEM]
            code = int(np.frombuffer(payload[:4], dtype="<u4")[0]) if len(payload) >= 4 else 0
            if code in COORDINATE_SYSTEMS:
                frame = COORDINATE_SYSTEMS[code]
            elif code != 0:
                raise SplatFileError(path, f"SPZ data is stored in coordinate system {code}, which is not supported")
        x, y, z = _axis_flips(frame)
        positions = positions * np.array([x, y, z])
        xyzw = xyzw * np.array([y * z, x * z, x * y, 1.0])
        if sh_rest is not None:
            sh_rest = sh_rest * _sh_flips(x, y, z)[: sh_rest.shape[1], None]

    if sh_rest is not None and sh_rest.shape[1] > _sh_dim(3):
        sh_rest = sh_rest[:, : _sh_dim(3)]
    rotations = xyzw[:, [3, 0, 1, 2]]  # w x y z
    splat = Splat.from_arrays(positions, sh_dc, opacities, scales, rotations, sh_rest)
    if flags & FLAG_ANTIALIASED:
        splat.comments.append("antialiased (mip-splatting): from the SPZ header")
    return splat


# --- writing -------------------------------------------------------------------------------------
WRITABLE_VERSIONS = (2, 3, 4)
DEFAULT_WRITE_VERSION = 3  # gzip: every SPZ loader reads it, and it needs no zstd package
POSITION_FRACTIONAL_BITS = 12  # as the reference writer: 1/4096 steps, positions within +-2048
SH1_BITS, SH_REST_BITS = 5, 4  # the reference writer's default SH precision (degree 1, degrees 2+)


def _round_half_away(values: np.ndarray) -> np.ndarray:  # C's round(), which the reference uses
    return np.copysign(np.floor(np.abs(values) + 0.5), values)


def _to_u8(values: np.ndarray) -> np.ndarray:
    return np.clip(_round_half_away(values), 0, 255).astype(np.uint8)


def pack_rotations_smallest_three(xyzw: np.ndarray) -> np.ndarray:
    """(N, 4) unit quaternions x y z w -> (N,) uint32 words, the inverse of `unpack_rotations_smallest_three`."""
    rows = np.arange(len(xyzw))
    largest = np.argmax(np.abs(xyzw), axis=1)
    signs = np.where(xyzw[rows, largest] < 0, -1.0, 1.0)[:, None]
    q = xyzw * signs  # the largest component positive: its sign need not be stored
    word = largest.astype(np.uint32)
    for component in range(4):  # from the lowest index up, so the highest lands in the lowest bits
        here = largest != component
        magnitude = np.minimum(
            (np.float32(511) * (np.abs(q[:, component]) / np.float32(SQRT1_2)) + np.float32(0.5)).astype(np.uint32), 511
        )
        field = (q[:, component] < 0).astype(np.uint32) << np.uint32(9) | magnitude
        word = np.where(here, (word << np.uint32(10)) | field, word)
    return word.astype("<u4")


def _quantise_sh(values: np.ndarray, bits: int) -> np.ndarray:
    bucket = 1 << (8 - bits)
    q = _round_half_away(values * np.float32(128)).astype(np.int32) + 128
    return np.clip((q + bucket // 2) // bucket * bucket, 0, 255).astype(np.uint8)


def _zstd_compress(path: Path, data: bytes) -> bytes:
    try:
        from compression import zstd  # Python 3.14+

        return zstd.compress(data)
    except ImportError:
        try:
            import zstandard
        except ImportError:
            raise SplatFileError(
                path,
                "SPZ version 4 compresses with zstd, which needs the 'zstandard' Python package "
                "(pip install zstandard); version 3 needs nothing",
            ) from None
        return zstandard.ZstdCompressor(level=3).compress(data)


def pack_spz(
    splat: Splat, version: int = DEFAULT_WRITE_VERSION, to_rub: bool = True, path: Path = Path("splat.spz")
) -> bytes:
    """The bytes of an SPZ file holding `splat`, quantised as the reference writer does.

    ``to_rub`` stores the spec's right-up-back frame (what `read_spz` undoes by default); False
    stores the .ply's axes unchanged. Steps: positions 1/4096, log scales 1/16, base colour
    1/(255 * 0.15) in f_dc, alpha 1/255, rotations 9 bits per component (version 2: 8 bits),
    SH 1/16 (degree 1) and 1/8 (degrees 2-3) as the reference's default bit counts.
    """
    if version not in WRITABLE_VERSIONS:
        raise SplatFileError(path, f"SPZ version {version} cannot be written (versions {WRITABLE_VERSIONS} can)")
    count, degree = splat.count, splat.sh_degree
    x, y, z = (1.0, -1.0, -1.0) if to_rub else (1.0, 1.0, 1.0)
    # float32 arithmetic and C rounding, as the reference: the same splat gives the same bytes
    positions = splat.positions * np.array([x, y, z], dtype=np.float32)
    fixed = _round_half_away(positions * np.float32(1 << POSITION_FRACTIONAL_BITS)).astype(np.int64)
    if np.abs(fixed).max(initial=0) >= 1 << 23:
        reach = (1 << 23) / (1 << POSITION_FRACTIONAL_BITS)
        raise SplatFileError(
            path, f"SPZ stores positions within +-{reach:g}; this splat reaches {np.abs(positions).max():g}"
        )
    position_bytes = np.stack([(fixed >> shift) & 0xFF for shift in (0, 8, 16)], axis=-1).astype(np.uint8)
    one = np.float32(1)
    alphas = _to_u8(one / (one + np.exp(-splat.opacities)) * np.float32(255))
    colours = _to_u8(splat.sh_dc * np.float32(COLOUR_SCALE * 255.0) + np.float32(127.5))
    scales = _to_u8((splat.scales + np.float32(10)) * np.float32(16))
    wxyz = splat.rotations
    xyzw = wxyz[:, [1, 2, 3, 0]] / np.maximum(np.linalg.norm(wxyz, axis=1, keepdims=True), np.float32(1e-30))
    xyzw = xyzw * np.array([y * z, x * z, x * y, 1.0], dtype=np.float32)
    if version >= 3:
        rotations = pack_rotations_smallest_three(xyzw).view(np.uint8)
    else:
        rotations = _to_u8(
            xyzw[:, :3] * np.where(xyzw[:, 3:] < 0, np.float32(-127.5), np.float32(127.5)) + np.float32(127.5)
        )
    sh = np.zeros((count, 0), dtype=np.uint8)
    if degree:
        rest = splat.sh_rest * _sh_flips(x, y, z).astype(np.float32)[: _sh_dim(degree), None]  # (N, K-1, 3)
        sh = np.concatenate(
            [
                _quantise_sh(rest[:, :3], SH1_BITS).reshape(count, -1),
                _quantise_sh(rest[:, 3:], SH_REST_BITS).reshape(count, -1),
            ],
            axis=1,
        )
    flags = FLAG_ANTIALIASED if any(comment.startswith("antialiased") for comment in splat.comments) else 0
    streams = [position_bytes, alphas, colours, scales, rotations, sh]
    head = np.array([MAGIC, version, count], dtype="<u4").tobytes() + bytes([degree, POSITION_FRACTIONAL_BITS, flags])
    if version < FIRST_ZSTD_VERSION:
        raw = head + b"\0" + b"".join(stream.tobytes() for stream in streams)
        return gzip.compress(raw, compresslevel=6, mtime=0)
    packed = [(_zstd_compress(path, stream.tobytes()), stream.nbytes) for stream in streams if stream.size]
    table = np.array([size for pair in packed for size in (len(pair[0]), pair[1])], dtype="<u8").tobytes()
    header = head + bytes([len(packed)]) + np.array([NGSP_HEADER_SIZE], dtype="<u4").tobytes() + bytes(12)
    return header + table + b"".join(data for data, _ in packed)


def write_spz(path, splat: Splat, version: int = DEFAULT_WRITE_VERSION, to_rub: bool = True) -> None:
    """Write `splat` as an SPZ file (see `pack_spz`), atomically."""
    path = Path(path)
    write_file(path, [pack_spz(splat, version, to_rub, path)])
