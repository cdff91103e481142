"""What the product refuses, through the command line as a user runs it: one `error:` line, exit 2,
every input byte as it was, no partial output, and memory bounded whatever a file claims."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from command_line import assert_user_error, backend
from conftest import ROOT
from splat_files import pack_spz, random_splat

from backend.benchmark.synthetic import make_scene, orbit_cameras, write_scene
from backend.cli.main import main
from backend.cli.protocol import read_progress
from backend.errors import UserError
from backend.formats import read_splat
from backend.formats.features import FeatureField, geometry_fingerprint, load_features, save_features
from backend.formats.ply import read_ply
from backend.progress import Masks

MEMORY_BOUND = 64 << 20


def write_scene_with_features(folder: Path, gaussians: int, views: int, size=(48, 36)) -> Path:
    """A generated scene on disk with a features file for its splat (random unit features: no training needed)."""
    scene = make_scene(gaussians, seed=2)
    write_scene(folder, scene, orbit_cameras(views, width=size[0], height=size[1]))
    features = np.random.default_rng(0).normal(size=(scene.splat.count, 24)).astype(np.float16)
    save_features(folder / "features.npz", FeatureField(features, geometry_fingerprint(scene.splat), {}, "test"))
    return folder


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return write_scene_with_features(tmp_path_factory.mktemp("guarded"), 800, 3)


@pytest.fixture
def restore_signals():
    """main() turns SIGTERM into an exception for the run; put pytest's handlers back afterwards."""
    saved = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    yield
    for number, handler in saved.items():
        signal.signal(number, handler)


def fingerprint_tree(folder: Path) -> dict[str, str]:
    """Every file under `folder` (links followed) and the hash of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def run_main(capsys, *argv) -> tuple[int, str]:
    """main() in this process (the same entry point as `python -m backend`): exit code and stderr."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


def assert_one_error(code: int, err: str, *fragments) -> None:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], err


def scene_args(folder: Path) -> list:
    return ["--splat", folder / "splat.ply", "--cameras", folder / "sparse" / "0"]


def segment_args(folder: Path, click=(24, 18)) -> list:
    """A segment command line clicking `click` (the centre of the 48x36 views, where the scene is)."""
    return [
        "segment",
        *scene_args(folder),
        "--features",
        folder / "features.npz",
        "--view",
        "view_000",
        "--click",
        *click,
    ]


# ---------------------------------------------------------------------------------------------
# 1. Outputs never overwrite inputs


def test_outputs_naming_an_input_are_refused_and_the_inputs_stay_byte_for_byte(scene, tmp_path):
    before = fingerprint_tree(scene)
    (tmp_path / "link.ply").symlink_to(scene / "splat.ply")
    os.link(scene / "images" / "view_001.png", tmp_path / "photo.npz")  # a hard link to a photo
    assert_user_error(backend(*segment_args(scene), "--out", scene / "splat.ply"), "--out", "is the input --splat")
    assert_user_error(
        backend(*segment_args(scene), "--out", tmp_path / "a.ply", "--rest", tmp_path / "link.ply"),
        "--rest",
        "is the input --splat",
    )
    assert_user_error(
        backend(
            "train",
            *scene_args(scene),
            "--images",
            scene / "images",
            "--mask-dir",
            scene / "masks",
            "--out",
            tmp_path / "photo.npz",
        ),
        "inside the input folder --images",
    )
    assert fingerprint_tree(scene) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.ply", "photo.npz"]


def with_option(args: list, option: str, value) -> list:
    """`args` with `option` set to `value`, replaced where it is given already."""
    args = list(args)
    if option in args:
        args[args.index(option) + 1] = value
        return args
    return args + [option, value]


def command_line(scene: Path, command: str) -> list:
    """A valid command line of each subcommand on the scene, its outputs beside the scene folder."""
    images = ["--images", scene / "images"]
    return {
        "segment": [*segment_args(scene), *images, "--out", scene.parent / "s.ply"],
        "render": ["render", *scene_args(scene), *images, "--view", "view_000", "--out", scene.parent / "pics"],
        "eval": ["eval", *scene_args(scene), *images, "--features", scene / "features.npz", "--gt", scene / "gt"],
        "train": ["train", *scene_args(scene), *images, "--mask-dir", scene / "masks", "--out", scene.parent / "f.npz"],
    }[command]


@pytest.mark.parametrize(
    "command, option, target, message",
    [
        ("segment", "--mask-dir", "images", "lies in the input folder --images"),
        ("segment", "--out", "features.npz", "is the input --features"),
        ("segment", "--out", "images/view_000.png", "would replace a file inside the input folder --images"),
        ("render", "--out", "images", "lies in the input folder --images"),
        ("eval", "--json", "features.npz", "is the input --features"),
        ("train", "--out", "images", "is a folder"),
        ("train", "--out", "missing/f.npz", "does not exist"),
        ("train", "--mask-cache", "splat.ply", "is a file; a folder is expected"),
    ],
)
def test_every_subcommand_checks_its_outputs_before_any_work(
    scene, capsys, restore_signals, command, option, target, message
):
    before = fingerprint_tree(scene)
    code, err = run_main(capsys, *with_option(command_line(scene, command), option, scene / target))
    assert_one_error(code, err, option, message)
    assert fingerprint_tree(scene) == before


def test_two_outputs_naming_one_file_are_refused(scene, tmp_path, capsys, restore_signals):
    code, err = run_main(capsys, *segment_args(scene), "--out", tmp_path / "a.ply", "--rest", tmp_path / "a.ply")
    assert_one_error(code, err, "--rest", "names the same place")


# ---------------------------------------------------------------------------------------------
# 2. Memory and time bounded whatever a file claims


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_devices_and_pipes_are_refused_without_reading(scene, tmp_path):
    fifo = tmp_path / "pipe.ply"
    os.mkfifo(fifo)
    for source in (fifo, Path("/dev/zero")):
        result = backend(*with_option(segment_args(scene), "--splat", source), "--out", tmp_path / "o.ply")
        assert_user_error(result, str(source), "not a regular file")
    assert [p.name for p in tmp_path.iterdir()] == ["pipe.ply"]


def bounded(reader, path):
    """Run `reader(path)`; its UserError message and the peak memory it allocated (bytes)."""
    tracemalloc.start()
    try:
        reader(path)
        message = None
    except UserError as error:
        message = str(error)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return message, peak


def zstd_frame_claiming(size: int) -> bytes:
    """A small zstd frame whose header says it holds `size` bytes (zeros, so it is about size / 30000 bytes)."""
    import zstandard

    return zstandard.ZstdCompressor(write_content_size=True).compress(bytes(size))


def test_decompression_bombs_and_huge_files_are_refused_in_bounded_memory(tmp_path):
    inner = gzip.decompress(pack_spz(random_splat(50, 0), 3, "gzip"))
    (tmp_path / "gzip-bomb.spz").write_bytes(gzip.compress(inner + bytes(100 << 20), 9))  # 0.1 MB -> 100 MB
    claim = bytearray(inner)
    claim[8:12] = struct.pack("<I", 50_000_000)  # 50 M points in a 1 kB file
    (tmp_path / "count-bomb.spz").write_bytes(gzip.compress(bytes(claim)))
    v4 = bytearray(pack_spz(random_splat(50, 0), 4, "ngsp"))
    toc = struct.unpack_from("<I", v4, 16)[0]
    packed = struct.unpack_from("<Q", v4, toc)[0]
    frame = zstd_frame_claiming(200 << 20)  # 200 MB in 6 kB, where 150 bytes belong
    body = v4[toc + 16 * v4[15] :]
    struct.pack_into("<Q", v4, toc, len(frame))
    (tmp_path / "zstd-bomb.spz").write_bytes(bytes(v4[: toc + 16 * v4[15]]) + frame + bytes(body[packed:]))
    with open(tmp_path / "huge.ply", "wb") as file:  # 1 GB, sparse on disk: not a splat past its first bytes
        file.write(b"ply\nformat binary_little_endian 1.0\nelement vertex 10\nproperty float x\nend_header\n")
        file.truncate(1 << 30)
    with open(tmp_path / "huge-claim.ply", "wb") as file:
        file.write(
            b"ply\nformat binary_little_endian 1.0\nelement vertex 4000000000\n"
            + b"".join(
                f"property float {c}\n".encode()
                for c in (
                    "x",
                    "y",
                    "z",
                    "f_dc_0",
                    "f_dc_1",
                    "f_dc_2",
                    "opacity",
                    "scale_0",
                    "scale_1",
                    "scale_2",
                    "rot_0",
                    "rot_1",
                    "rot_2",
                    "rot_3",
                )
            )
            + b"end_header\n"
            + bytes(1000)
        )
    for name, expected in [
        ("gzip-bomb.spz", "more than the"),
        ("count-bomb.spz", "decompression bomb"),
        ("zstd-bomb.spz", "SPZ stream 0"),
        ("huge.ply", "required column(s) missing"),
        ("huge-claim.ply", "truncated"),
    ]:
        started = time.perf_counter()
        message, peak = bounded(read_splat, tmp_path / name)
        assert message is not None and expected in message, (name, message)
        assert peak < MEMORY_BOUND, (name, peak / 1e6)
        assert time.perf_counter() - started < 5, name


def test_mask_and_ground_truth_npz_bombs_are_refused_before_they_inflate(tmp_path):
    """A mask stack whose header claims 2 GB, and a label map claiming a 100x larger view."""
    import io
    import zipfile

    from backend.field.evaluate import load_ground_truth
    from backend.scene.camera import Camera
    from backend.scene.masks import read_mask_file

    def npz(path, name, header):
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(name + ".npy", header + bytes(1 << 20))  # the header's promise, not its data

    def header(shape, dtype):
        stream = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            stream, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape}
        )
        return stream.getvalue()

    npz(tmp_path / "view.npz", "masks", header((2048, 1024, 1024), "|b1"))
    (tmp_path / "gt").mkdir()
    npz(tmp_path / "gt" / "view.npz", "objects", header((1200, 1600), "<i8"))
    camera = Camera("view.png", 160, 120, 100.0, 100.0, 80.0, 60.0, np.eye(4))
    for read in (
        lambda: read_mask_file(tmp_path / "view.npz", (120, 160)),
        lambda: load_ground_truth(tmp_path / "gt", [camera]),
    ):
        message, peak = bounded(lambda _: read(), None)
        assert message is not None and "does not fit" in message and "view.npz" in message, message
        assert peak < MEMORY_BOUND, peak / 1e6


# ---------------------------------------------------------------------------------------------
# 3. A finished training is never lost


def test_a_training_whose_output_folder_vanishes_keeps_its_result(scene, tmp_path):
    out_folder = tmp_path / "out"
    out_folder.mkdir()
    command = [
        sys.executable,
        "-m",
        "backend",
        "train",
        *map(str, scene_args(scene)),
        "--images",
        str(scene / "images"),
        "--mask-dir",
        str(scene / "masks"),
        "--out",
        str(out_folder / "f.npz"),
        "--iterations",
        "5",
        "--pixels",
        "300",
        "--no-gfl",
        "--progress",
        "json",
    ]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert isinstance(read_progress(process.stdout.readline()), Masks)  # checked and started: now the folder goes
    out_folder.rmdir()
    _, err = process.communicate(timeout=300)
    assert process.returncode == 2, err
    message = err.strip().splitlines()[-1]
    assert message.startswith("error: ") and "kept in" in message, err
    kept = Path(message.split("kept in ")[1].split(": move")[0])
    try:
        assert load_features(kept).count == read_splat(scene / "splat.ply").count
    finally:
        kept.unlink()


# ---------------------------------------------------------------------------------------------
# 4. One message for every mistake, at parse time for settings


@pytest.mark.parametrize(
    "command, setting, value",
    [
        ("train", "--iterations", "0"),
        ("train", "--iterations", "-5"),
        ("train", "--pixels", "0"),
        ("train", "--gfl-refresh", "0"),
        ("train", "--learning-rate", "nan"),
        ("train", "--learning-rate", "0"),
        ("train", "--mask-balance", "1.5"),
        ("train", "--gfl-share", "0"),
        ("train", "--tau-fine", "inf"),
        ("train", "--lambda-gfl", "-1"),
        ("train", "--downscale", "0"),
        ("train", "--seed", "x"),
        ("segment", "--downscale", "0"),
        ("segment", "--threshold", "2"),
        ("render", "--downscale", "-1"),
        ("eval", "--clicks", "0"),
        ("eval", "--threshold-fine", "nan"),
    ],
)
def test_settings_out_of_range_are_refused_when_parsed(
    scene, tmp_path, capsys, restore_signals, command, setting, value
):
    args = {
        "train": ["--images", scene / "images", "--out", tmp_path / "f.npz"],
        "segment": segment_args(scene)[5:] + ["--out", tmp_path / "s.ply"],
        "render": ["--view", "view_000", "--out", tmp_path / "pics"],
        "eval": ["--features", scene / "features.npz", "--gt", scene / "gt"],
    }[command]
    code, err = run_main(capsys, command, *scene_args(scene), *args, setting, value)
    assert_one_error(code, err, f"{setting} {value}")
    assert list(tmp_path.iterdir()) == []


def test_a_zero_iteration_training_is_refused_before_any_work(scene, tmp_path):
    result = backend(
        "train", *scene_args(scene), "--images", scene / "images", "--out", tmp_path / "f.npz", "--iterations", 0
    )
    assert_user_error(result, "--iterations 0: must be a whole number from 1 to 10,000,000")
    assert result.stderr.count("\n") == 1 and list(tmp_path.iterdir()) == []


def features_variants(folder: Path, good: Path) -> dict[str, Path]:
    """Broken and foreign features files, each as a user might hand one over."""
    data = good.read_bytes()
    count = load_features(good).count
    meta = json.dumps({"count": count, "fingerprint": "x"})
    variants = {
        "truncated": data[: len(data) // 2],
        "empty": b"",
        "no meta": {"features": np.zeros((count, 24), np.float16)},
        "meta not JSON": {"features": np.zeros((count, 24), np.float16), "meta": "{"},
        "meta without a count": {
            "features": np.zeros((count, 24), np.float16),
            "meta": json.dumps({"fingerprint": "x"}),
        },
        "meta a number": {"features": np.zeros((count, 24), np.float16), "meta": np.float32(3)},
        "text features": {"features": np.full((count, 24), "a"), "meta": meta},
        "wrong shape": {"features": np.zeros((count, 7), np.float16), "meta": meta},
        "no features": {"meta": meta},
        "pickled": {"features": np.array([{}] * count, dtype=object), "meta": meta},
    }
    paths = {}
    for name, content in variants.items():
        path = folder / (name.replace(" ", "_") + ".npz")
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            np.savez(path, **content)
        paths[name] = path
    np.save(folder / "plain.npy", np.zeros((count, 24), np.float16))
    paths["a plain .npy"] = folder / "plain.npy"
    return paths


def test_every_corrupt_or_foreign_features_file_is_one_message(scene, tmp_path, capsys, restore_signals):
    splat = read_splat(scene / "splat.ply")
    for name, path in features_variants(tmp_path, scene / "features.npz").items():
        with pytest.raises(UserError, match=str(path)) as caught:
            load_features(path, splat)
        assert "Traceback" not in str(caught.value), name
    result = backend(
        *with_option(segment_args(scene), "--features", tmp_path / "truncated.npz"), "--out", tmp_path / "s.ply"
    )
    assert_user_error(result, "truncated.npz")
    assert not (tmp_path / "s.ply").exists()


@pytest.mark.parametrize(
    "frame, message",
    [
        ({"fl_x": "abc", "w": 48, "h": 36}, "malformed camera data"),
        ({"fl_x": 40.0, "w": 0, "h": 0}, "not at least 1x1 pixel"),
        ({"fl_x": -1.0, "w": 48, "h": 36}, "not a positive number"),
        ({"camera_angle_x": [1], "w": 48, "h": 36}, "malformed camera data"),
    ],
)
def test_a_bad_transforms_json_is_one_message(scene, tmp_path, capsys, restore_signals, frame, message):
    transforms = {"frames": [{"file_path": "images/view_000", "transform_matrix": np.eye(4).tolist(), **frame}]}
    (tmp_path / "transforms.json").write_text(json.dumps(transforms))
    code, err = run_main(
        capsys,
        "render",
        "--splat",
        scene / "splat.ply",
        "--cameras",
        tmp_path / "transforms.json",
        "--view",
        "view_000",
        "--out",
        tmp_path / "pics",
    )
    assert_one_error(code, err, "transforms.json", message)
    assert not (tmp_path / "pics").exists()


# ---------------------------------------------------------------------------------------------
# 6. A stop leaves nothing


def test_sigterm_during_segment_leaves_no_partial_output(tmp_path_factory, tmp_path):
    folder = write_scene_with_features(tmp_path_factory.mktemp("many-views"), 2000, 12, size=(96, 72))
    out = tmp_path / "out"
    out.mkdir()
    command = [
        sys.executable,
        "-m",
        "backend",
        *map(str, segment_args(folder, (48, 36))),
        "--out",
        str(out / "sel.ply"),
        "--rest",
        str(out / "rest.ply"),
        "--mask-dir",
        str(out / "masks"),
    ]
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(out.glob(".sel.ply.*")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)  # the first staged file: the selection is written, the masks are rendering
    assert process.poll() is None and list(out.glob(".sel.ply.*")), "the run ended before its selection was staged"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "cancelled: nothing was written" in err
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("moment", ["starting", "renamed"])
def test_a_stop_at_any_moment_ends_done_or_stopped_never_between(tmp_path_factory, tmp_path, number, moment):
    """Done: every output complete, exit 0. Stopped: 130 / 143, no output, one line. Never a traceback between:
    a stop while Python imports, or once the outputs are renamed into place and the run prints its summary."""
    folder = write_scene_with_features(tmp_path_factory.mktemp("stop-scene"), 2000, 4, size=(96, 72))
    out = tmp_path / "out"
    out.mkdir()
    command = [sys.executable, "-m", "backend", *map(str, segment_args(folder, (48, 36)))]
    command += ["--out", str(out / "sel.ply"), "--rest", str(out / "rest.ply")]
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    if moment == "starting":
        time.sleep(0.05)
    else:
        deadline = time.monotonic() + 120
        while not (out / "rest.ply").exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        assert (out / "rest.ply").exists(), "the outputs were never renamed into place"
    process.send_signal(number)
    _, err = process.communicate(timeout=60)
    assert "Traceback" not in err, err
    if process.returncode == 0:
        assert read_ply(out / "sel.ply").count + read_ply(out / "rest.ply").count == 2000
    else:
        assert process.returncode == 128 + number and "cancelled: nothing was written" in err, err
        assert list(out.iterdir()) == []
    assert process.returncode == (0 if moment == "renamed" else 128 + number)


@pytest.mark.parametrize("cache", ["views", "masks"])
def test_a_cache_folder_that_cannot_be_written_is_refused_before_any_work(
    scene, tmp_path, capsys, restore_signals, cache
):
    """The folders a run writes without being told (<out>.views/, <out>.masks/) are checked with its outputs."""
    (tmp_path / f"f.npz.{cache}").write_bytes(b"a file where the cache folder goes")
    started = time.perf_counter()
    code, err = run_main(capsys, "train", "--splat", scene / "splat.ply", "--out", tmp_path / "f.npz", "--views", 4)
    assert_one_error(code, err, f"f.npz.{cache}", "is a file; a folder is expected")
    assert time.perf_counter() - started < 5 and not (tmp_path / "f.npz").exists()
