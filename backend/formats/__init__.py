"""One entry point that reads any splat file the product knows, chosen by content and extension, and one that
writes any of them, chosen by the file name."""

from __future__ import annotations

from pathlib import Path

from ..errors import SplatFileError
from .antimatter_splat import read_antimatter_splat, write_antimatter_splat
from .compressed_ply import is_compressed_ply, read_compressed_ply, write_compressed_ply
from .files import read_file_bytes
from .ply import parse_header, read_ply, write_ply
from .sog import read_sog
from .splat import REQUIRED_COLUMNS, Splat
from .spz import read_spz, write_spz

SPLAT_EXTENSIONS = (".ply", ".spz", ".splat", ".sog")  # read; SOG is not written
# What a written file's name ends with -> (format, whether it loses precision). Longest first.
WRITE_FORMATS = {
    ".compressed.ply": ("PlayCanvas compressed PLY", True),
    ".ply": ("3DGS PLY", False),
    ".spz": ("Niantic SPZ", True),
    ".splat": ("antimatter15 .splat (no view-dependent colour)", True),
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


def write_splat(path, splat: Splat) -> None:
    """Write `splat` in the format its name ends with (see WRITE_FORMATS), atomically."""
    writers = {
        ".compressed.ply": write_compressed_ply,
        ".ply": write_ply,
        ".spz": write_spz,
        ".splat": write_antimatter_splat,
    }
    writers[write_format(path)](path, splat)


def left_out(splat: Splat, path) -> list[str]:
    """What of `splat` the format `path` names cannot hold: its SH rest (.splat) and columns beyond the
    standard ones (normals, features, extras), for the one-line report an export gives."""
    ending = write_format(path)
    if ending == ".ply":
        return []
    standard = set(REQUIRED_COLUMNS) | (
        {name for name in splat.columns if name.startswith("f_rest_")} if ending != ".splat" else set()
    )
    lost = [f"SH degree {splat.sh_degree} (view-dependent colour)"] if ending == ".splat" and splat.sh_degree else []
    extra = [name for name in splat.columns if name not in standard and not name.startswith("f_rest_")]
    return lost + ([f"column(s) {', '.join(extra)}"] if extra else [])
