"""One entry point that reads any splat file the product knows, chosen by content and extension."""

from __future__ import annotations

from pathlib import Path

from .compressed_ply import is_compressed_ply, read_compressed_ply
from .files import read_file_bytes
from .ply import parse_header, read_ply
from .splat import Splat
from .spz import read_spz

SPLAT_EXTENSIONS = (".ply", ".spz")


def read_splat(path, drop_invalid: bool = False) -> Splat:
    """3DGS .ply (any layout), PlayCanvas compressed .ply, or Niantic .spz."""
    path = Path(path)
    head = read_file_bytes(path, 1 << 16)  # refuses what is not a regular file before anything waits on it
    if head.startswith(b"ply") and b"end_header" in head and is_compressed_ply(parse_header(path, head)):
        return read_compressed_ply(path)
    if path.suffix.lower() == ".spz" or head[:4] == b"NGSP" or head[:2] == b"\x1f\x8b":
        return read_spz(path)
    return read_ply(path, drop_invalid=drop_invalid)
