"""Any bytes into every splat reader and the features loader: a result or the product's UserError, in bounded memory
and time.

Property-based (hypothesis, derandomized so CI sees the same cases every run): arbitrary bytes, and
real small files of every format with bytes flipped, cut, inserted and header numbers inflated.
"""

from __future__ import annotations

import io
import json
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sog_bundles import bundle, pack_sog
from splat_files import pack_spz, random_splat, write_compressed_ply

from backend.benchmark.synthetic import make_scene
from backend.errors import UserError
from backend.formats import read_splat
from backend.formats.antimatter_splat import read_antimatter_splat, write_antimatter_splat
from backend.formats.compressed_ply import read_compressed_ply
from backend.formats.features import FeatureField, features_file_bytes, load_features
from backend.formats.ply import ply_header, read_ply, write_ply
from backend.formats.sog import read_sog
from backend.formats.spz import read_spz

MEMORY_BOUND = 64 << 20  # bytes a reader may allocate for a file of at most a few kB
TIME_BOUND = 2.0  # seconds per file
FUZZ = settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def small_files(folder: Path) -> dict[str, bytes]:
    """One real file of each format the readers take, a few kB each."""
    splat = make_scene(40, seed=5).splat
    ascii_rows = "\n".join(" ".join(f"{v:g}" for v in row) for row in np.stack(list(splat.columns.values()), axis=1))
    ascii_header = ply_header(splat).decode().replace("binary_little_endian", "ascii")
    write_ply(folder / "s.ply", splat)
    write_compressed_ply(folder / "c.ply", random_splat(300, 1), sh_degree=1)
    write_antimatter_splat(folder / "a.splat", splat)
    features = FeatureField(
        np.random.default_rng(0).normal(size=(40, 24)).astype(np.float16),
        "0123456789abcdef",
        {"iterations": 1},
        "test",
        {"coarse": np.ones((2, 12), np.float32)},
    )
    return {
        "ply": (folder / "s.ply").read_bytes(),
        "ascii.ply": (ascii_header + ascii_rows + "\n").encode(),
        "compressed.ply": (folder / "c.ply").read_bytes(),
        "v3.spz": pack_spz(random_splat(30, 1), 3, "gzip"),
        "v4.spz": pack_spz(random_splat(30, 1), 4, "ngsp"),
        "antimatter.splat": (folder / "a.splat").read_bytes(),
        "sog": bundle(folder / "s.sog", pack_sog(random_splat(40, 1), 1)).read_bytes(),
        "features.npz": features_file_bytes(features),
    }


READERS = {
    "ply": read_ply,
    "ascii.ply": read_ply,
    "compressed.ply": read_compressed_ply,
    "v3.spz": read_spz,
    "v4.spz": read_spz,
    "antimatter.splat": read_antimatter_splat,
    "sog": read_sog,
    "features.npz": load_features,
}


class Seeds(dict):
    def __repr__(self):  # hypothesis prints the arguments of a failing case: the names say enough
        return f"Seeds({', '.join(self)})"


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return Seeds(small_files(tmp_path_factory.mktemp("seeds")))


def mutate(data: bytes, edits) -> bytes:
    """Apply (kind, position, value) edits: flip a byte, cut the file, insert bytes, or blow up a number."""
    data = bytearray(data)
    for kind, position, value in edits:
        at = position % (len(data) + 1)
        if kind == "flip" and data:
            data[at % len(data)] ^= value or 1
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = bytes([value]) * (1 + value % 7)
        elif kind == "number":  # a header count or size made huge: 4 bytes of 0xff, or a decimal count's digits
            digits = next((i for i in range(at, len(data)) if chr(data[i]).isdigit()), None)
            if digits is not None and value % 2:
                data[digits:digits] = b"99999999"
            else:
                data[at : at + 4] = b"\xff\xff\xff\x7f"
    return bytes(data)


def outcome_within_bounds(path: Path, reader) -> None:
    """The reader returns or raises UserError, allocating under MEMORY_BOUND and within TIME_BOUND."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        reader(path)
    except UserError:
        pass
    finally:
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < MEMORY_BOUND, f"{path.name}: {peak / 1e6:.0f} MB"
    assert seconds < TIME_BOUND, f"{path.name}: {seconds:.1f} s"


EDITS = st.lists(
    st.tuples(st.sampled_from(["flip", "cut", "insert", "number"]), st.integers(0, 1 << 16), st.integers(0, 255)),
    min_size=1,
    max_size=4,
)


@pytest.mark.parametrize("kind", list(READERS))
@FUZZ
@given(edits=EDITS)
def test_mutated_real_files_are_read_or_refused_in_bounded_memory(seeds, tmp_path, kind, edits):
    path = tmp_path / f"mutated.{kind}"
    path.write_bytes(mutate(seeds[kind], edits))
    outcome_within_bounds(path, READERS[kind])
    if not kind.startswith("features"):
        outcome_within_bounds(path, read_splat)  # the routing entry point, which the add-on and the CLI call


@FUZZ
@given(
    data=st.binary(max_size=4096), start=st.sampled_from([b"", b"ply\n", b"NGSP", b"\x1f\x8b\x08\x00", b"PK\x03\x04"])
)
def test_arbitrary_bytes_are_read_or_refused_in_bounded_memory(tmp_path, data, start):
    for name, reader in (
        ("a.ply", read_splat),
        ("a.spz", read_splat),
        ("a.splat", read_splat),
        ("a.sog", read_splat),
        ("a.npz", load_features),
    ):
        path = tmp_path / name
        path.write_bytes(start + data)
        outcome_within_bounds(path, reader)


def test_every_format_read_is_fuzzed():
    """A new reader inherits these properties: each file ending the product reads has a seed here."""
    from backend.formats import SPLAT_EXTENSIONS

    assert {ending for ending in SPLAT_EXTENSIONS} <= {"." + kind.rsplit(".", 1)[-1] for kind in READERS}


def test_unmutated_seeds_are_read(seeds, tmp_path):
    """The property above must be able to fail: every seed file reads as what it is."""
    for kind, data in seeds.items():
        path = tmp_path / f"seed.{kind}"
        path.write_bytes(data)
        assert READERS[kind](path).count in (30, 40, 300)


def test_a_features_file_claiming_a_huge_count_is_refused_before_inflating(tmp_path):
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        features=np.zeros((4_000_000, 24), np.float16),
        meta=json.dumps({"count": 4_000_000, "fingerprint": "x"}),
    )
    path = tmp_path / "bomb.npz"
    path.write_bytes(buffer.getvalue())  # 0.2 MB that inflates to 192 MB
    outcome_within_bounds(path, load_features)
    with pytest.raises(UserError, match="decompression bomb"):
        load_features(path)
