"""One entry point that reads any splat file the product knows, chosen by content and extension."""

from __future__ import annotations

from pathlib import Path

from .ply import read_ply
from .splat import Splat


def read_splat(path, drop_invalid: bool = False) -> Splat:
    return read_ply(Path(path), drop_invalid=drop_invalid)
