"""One entry point that reads any splat file the product knows, chosen by content and extension, and one that
writes any of them, chosen by the file name."""

from __future__ import annotations

from pathlib import Path

from ..errors import SplatFileError
from ..files import read_file_bytes, write_file, write_files
from .antimatter_splat import antimatter_splat_bytes, read_antimatter_splat
from .compressed_ply import compressed_ply_bytes, is_compressed_ply, read_compressed_ply
from .ply import parse_header, ply_chunks, read_ply
from .sog import read_sog
from .splat import REQUIRED_COLUMNS, Splat, rest_columns
from .spz import pack_spz, read_spz

SPLAT_EXTENSIONS = (".ply", ".spz", ".splat", ".sog")  # read; SOG is not written
# What a written file's name ends with -> (format, whether it loses precision, the highest SH degree it holds).
# Longest first.
WRITE_FORMATS = {
    ".compressed.ply": ("PlayCanvas compressed PLY", True, 3),
    ".ply": ("3DGS PLY", False, 4),
    ".spz": ("Niantic SPZ", True, 3),  # the format has a band 4; the product reads and writes up to 3
    ".splat": ("antimatter15 .splat (no view-dependent colour)", True, 0),
}


def read_splat(path, drop_invalid: bool = False) -> Splat:
    """3DGS .ply (any layout), PlayCanvas compressed .ply or SOG (.sog, or its meta.json), Niantic .spz, or
    antimatter15 .splat."""
    path = Path(path)
    head = read_file_bytes(path, 1 << 16)  # refuses what is not a regular file before anything waits on it
    if head.startswith(b"ply") and b"end_header" in head and is_compressed_ply(parse_header(path, head)):
        return read_compressed_ply(path)
    if path.suffix.lower() == ".spz" or head[:4] == b"NGSP" or head[:2] == b"\x1f\x8b":
        return read_spz(path)
    if path.suffix.lower() == ".splat":
        return read_antimatter_splat(path)
    if path.suffix.lower() == ".sog" or path.name.lower() == "meta.json":
        return read_sog(path)
    return read_ply(path, drop_invalid=drop_invalid)


def write_format(path) -> str:
    """The key of WRITE_FORMATS that `path`'s name ends with; a SplatFileError naming the choices otherwise."""
    name = Path(path).name.lower()
    for ending in WRITE_FORMATS:
        if name.endswith(ending):
            return ending
    raise SplatFileError(path, "the file name says no splat format: end it with " + ", ".join(WRITE_FORMATS))


def splat_chunks(path, splat: Splat):
    """The bytes of `splat` in the format `path`'s name ends with (see WRITE_FORMATS), as chunks: for
    write_splat, or StagedOutputs where several files are written all or none."""
    ending = write_format(path)
    splat = held_by_format(splat, ending)
    if ending == ".ply":
        return ply_chunks(splat)
    if ending == ".compressed.ply":
        return compressed_ply_bytes(splat)
    if ending == ".spz":
        return [pack_spz(splat, path=Path(path))]
    return [antimatter_splat_bytes(splat)]


def write_splat(path, splat: Splat) -> None:
    """Write `splat` in the format its name ends with (see WRITE_FORMATS), atomically."""
    write_file(Path(path), splat_chunks(path, splat))


def write_splats(files) -> None:
    """Write each splat of `files`, (path, Splat) pairs made as they are written, all of them or, after an
    error, none (Export Segments: a failure part way leaves no half set of segments)."""
    write_files((path, splat_chunks(path, splat)) for path, splat in files)


def held_by_format(splat: Splat, ending: str) -> Splat:
    """`splat` with its SH cut to the highest degree the format of `ending` holds: every writer writes what its
    format can, and left_out says what that left out."""
    highest = WRITE_FORMATS[ending][2]
    if splat.sh_degree <= highest:
        return splat
    dropped = set(rest_columns(splat.sh_degree))
    per_channel = len(dropped) // 3
    kept = highest and (highest + 1) ** 2 - 1  # coefficients per channel kept
    columns = {}
    for name, values in splat.columns.items():
        if name not in dropped:
            columns[name] = values
        elif int(name[7:]) % per_channel < kept:  # f_rest_i: channel i // per_channel, coefficient i % per_channel
            channel, coefficient = divmod(int(name[7:]), per_channel)
            columns[f"f_rest_{channel * kept + coefficient}"] = values
    return Splat(columns, list(splat.comments))


def left_out(splat: Splat, path) -> list[str]:
    """What of `splat` the format `path` names cannot hold: SH above its degree (all of them in .splat) and columns
    beyond the standard ones (normals, features, extras), for the one-line report an export gives."""
    ending = write_format(path)
    highest = WRITE_FORMATS[ending][2]
    lost = []
    if splat.sh_degree > highest:
        lost.append(
            f"SH degree {splat.sh_degree} (view-dependent colour"
            + (f" above degree {highest}" if highest else "")
            + ")"
        )
    if ending == ".ply":
        return lost
    standard = set(REQUIRED_COLUMNS)
    extra = [name for name in splat.columns if name not in standard and not name.startswith("f_rest_")]
    return lost + ([f"column(s) {', '.join(extra)}"] if extra else [])
