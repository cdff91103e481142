"""Training the feature field on the real statue (798,811 Gaussians, 29 views) the way the add-on runs it.

The backend's `train` command in a child process with the add-on's settings (the device's defaults from
backend/device.py, JSON progress), timed from its start, as a person pressing Train waits: when the first
checkpoint (the first field Click can use: the field lifted from the 3D groups, backend/field/lifted.py) is
written (`first clickable: <s> s`), and when the run ends (`total: <s> s`); seconds per phase; the child's
peak memory. Each twice by default: with the masks not cached (a fresh folder) and cached (the run before drew
them). Targets on the 2-core CPU: first clickable <= 15 s from the photos, masks not cached; total <= 120 s;
peak memory <= 6 GB; a GPU (only when lent): 3000 steps at full resolution <= 20 s.
Masks are what Auto gives without a SAM checkpoint (none can be downloaded here): the geometric masks.
Run: python3 build.py bench train   (or .venv/bin/python bench/bench_train.py --iterations 300: steps refining
the lifted field)

`--synthetic N` times a generated scene of N Gaussians with as many views at the statue's size instead, with
simulated SAM-like masks: for a machine without ../shared, such as a lent GPU machine.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, STATUE, machine, statue_or_skip

from backend.cli.protocol import read_progress
from backend.progress import Checkpoint, Done, Iterations

MASK_CACHE = ROOT / "out" / "bench_train_masks"  # the statue's geometric masks, drawn by the first run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--iterations", type=int, help="training steps (default: the product's: none with the statue's geometric masks)"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--synthetic",
        type=int,
        default=0,
        metavar="N",
        help="a generated scene of N Gaussians with 29 views at the statue's size instead of the statue",
    )
    parser.add_argument("--keep", type=Path, metavar="FILE", help="copy the trained features to FILE")
    parser.add_argument(
        "--keep-first", type=Path, metavar="FILE", help="copy the first clickable field to FILE (to score its clicks)"
    )
    parser.add_argument(
        "--masks",
        choices=("both", "fresh", "cached"),
        default="both",
        help="time the run with the masks not cached, cached, or both (default: fresh, then cached)",
    )
    parser.add_argument(
        "train_options",
        nargs=argparse.REMAINDER,
        help="more `train` options after --, e.g. -- --downscale 1 --pixels 5000",
    )
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory(prefix="clickgauss-bench-train-") as folder:
        folder = Path(folder)
        extra = [option for option in args.train_options if option != "--"]
        states = ["fresh", "cached"] if args.masks == "both" else [args.masks]
        for state in states:
            cache = folder / "masks" if state == "fresh" or args.masks == "both" else MASK_CACHE
            scene = generated_scene(folder, args.synthetic) if args.synthetic else statue_scene(cache)
            command = [
                sys.executable,
                "-m",
                "backend",
                "train",
                *scene,
                "--out",
                str(folder / "features.npz"),
                "--progress",
                "json",
                "--device",
                args.device,
                *(["--iterations", str(args.iterations)] if args.iterations else []),
                *extra,
            ]
            if not args.synthetic:  # the generated scene's masks are files
                cached = any(cache.glob("groups_*.npz"))
                print(f"\nmasks: {'cached by an earlier run' if cached else 'not cached: this run draws them'}")
            run_and_report(command, args.keep_first)
        if args.keep:
            shutil.copyfile(folder / "features.npz", args.keep)


def statue_scene(mask_cache: Path) -> list[str]:
    statue_or_skip()
    return [
        "--splat",
        str(STATUE / "splat.ply"),
        "--images",
        str(STATUE / "images"),
        "--cameras",
        str(STATUE / "poses_bounds.npy"),
        "--masks",
        "geometric",
        "--mask-cache",
        str(mask_cache),
    ]


def generated_scene(folder: Path, count: int) -> list[str]:
    """A generated scene of the statue's size written to `folder` in the real-data layout."""
    from backend.benchmark.mask_simulator import REALISTIC
    from backend.benchmark.synthetic import make_scene, orbit_cameras, random_layout, write_scene

    scene = make_scene(count, seed=0, parts=random_layout(6, 0))
    write_scene(folder, scene, orbit_cameras(29, 1008, 756, radius=4.2), REALISTIC)
    return [
        "--splat",
        str(folder / "splat.ply"),
        "--images",
        str(folder / "images"),
        "--cameras",
        str(folder / "sparse" / "0"),
        "--masks",
        "folder",
        "--mask-dir",
        str(folder / "masks"),
    ]


def run_and_report(command: list[str], keep_first: Path | None = None) -> None:
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reached: dict[str, float] = {}  # seconds from the start to each phase's first event
    first_checkpoint: tuple[float, int] | None = None
    done: Done | None = None
    last: Iterations | None = None
    for line in child.stdout:
        event = read_progress(line)
        if event is None:
            continue  # a stray print
        now = time.perf_counter() - started
        reached.setdefault(event.phase, now)
        if isinstance(event, Checkpoint) and first_checkpoint is None:
            first_checkpoint = now, event.iteration
            if keep_first:  # before the run replaces it with the next
                shutil.copyfile(event.path, keep_first)
        elif isinstance(event, Iterations):
            last = event
        elif isinstance(event, Done):
            done = event
    error = child.stderr.read()
    child.wait()
    total = time.perf_counter() - started
    if child.returncode != 0:
        sys.exit(f"train failed ({child.returncode}): {error.strip()[-500:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / (
        (1 << 30) if sys.platform == "darwin" else (1 << 20)
    )
    if done is None:
        sys.exit("train ended well but sent no done event")
    seconds = done.seconds
    print(" ".join(command[2:]))
    per_step = f"; per step {seconds['iterations'] / last.iteration * 1e3:.0f} ms" if last else "; no step taken"
    print(
        f"seconds per phase: start, loading and the first field {reached['masks']:.1f}, "
        + ", ".join(f"{phase} {value:.1f}" for phase, value in seconds.items())
        + per_step
    )
    if first_checkpoint is not None:
        print(f"first checkpoint at step {first_checkpoint[1]} (0: the field lifted from the 3D groups)")
        print(f"first clickable: {first_checkpoint[0]:.1f} s")
    else:
        print("no checkpoint: the run ended before the first, so its final field is the first that clicks")
        print(f"first clickable: {total:.1f} s")
    print(f"total: {total:.1f} s")
    print(f"peak memory (RSS): {peak:.2f} GB")


if __name__ == "__main__":
    main()
