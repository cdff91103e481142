"""Training the feature field on the real statue (798,811 Gaussians, 29 views): seconds per phase, peak memory.

Targets: CPU (2 cores) 3000 iterations at half resolution <= 15 min, peak memory <= 8 GB;
GPU (H100 class) <= 60 s. Masks come from the weight-free felzenszwalb fallback here (no SAM
weights can be downloaded), cached under out/ so a second run times training alone.
Run: python3 build.py bench train   (or .venv/bin/python bench/bench_train.py --iterations 300)

`--synthetic N` times a generated scene of N Gaussians with as many views at the statue's size
instead, with simulated SAM-like masks: for a machine without ../shared, such as a lent GPU
machine, where the statue (64 MB) does not fit the files that travel beside the wheels it needs.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import ROOT, STATUE, machine, peak_rss_gb, statue_or_skip, write_generated_scene


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--downscale", type=int, default=2, help="image size divisor (default 2: half resolution)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--synthetic", type=int, default=0, metavar="N",
                        help="a generated scene of N Gaussians with 29 views at the statue's size instead of the statue")
    args = parser.parse_args()

    from backend.cli import pick_device

    print(machine())
    device = pick_device(args.device)
    if args.synthetic:
        with tempfile.TemporaryDirectory(prefix="clickgauss-bench-train-") as folder:
            scene = generated_scene(Path(folder), args.synthetic, args.downscale)
            train_and_report(*scene, args, device)
    else:
        train_and_report(*statue_scene(args.downscale), args, device)


def statue_scene(downscale: int):
    """(name, splat, cameras, label maps, mask source, seconds per loading phase) of the statue."""
    from backend.cameras import load_images
    from backend.masks import mask_source_description, view_labels

    splat, cameras = statue_or_skip()
    started = time.perf_counter()
    cameras, images = load_images(STATUE / "images", cameras, downscale=downscale)
    load_s = time.perf_counter() - started
    cache = ROOT / "out" / "bench_train_masks"
    started = time.perf_counter()
    labels = [view_labels(image, c.name, "felzenszwalb", cache_dir=cache) for c, image in zip(cameras, images)]
    masks_s = time.perf_counter() - started
    return ("statue", splat, cameras, labels, mask_source_description("felzenszwalb", cache_dir=cache),
            {"images": load_s, "masks": masks_s})


def generated_scene(folder: Path, count: int, downscale: int):
    """The same for a generated scene written to `folder` and read back the way real data is read."""
    from backend.mask_simulator import REALISTIC
    from backend.masks import mask_source_description
    from backend.synthetic import make_scene, orbit_cameras, random_layout

    started = time.perf_counter()
    scene = make_scene(count, seed=0, parts=random_layout(6, 0))
    cameras = orbit_cameras(29, 1008 // downscale, 756 // downscale, radius=4.2)
    labels = write_generated_scene(folder, scene, cameras, REALISTIC)
    return ("generated scene", scene.splat, cameras, labels, mask_source_description("folder", mask_dir=folder / "masks"),
            {"generating and reading back": time.perf_counter() - started})


def train_and_report(name, splat, cameras, labels, mask_source, seconds, args, device) -> None:
    from backend.train import TrainConfig, train_features

    config = TrainConfig(iterations=args.iterations)
    result = train_features(splat, cameras, labels, config, mask_source, device)
    seconds = {**seconds, **result.seconds}
    total = sum(seconds.values())
    print(f"{name}: {splat.count:,} Gaussians, {len(cameras)} views at {cameras[0].width}x{cameras[0].height}, "
          f"{args.iterations} iterations of {config.pixels:,} pixels on {device}")
    print("seconds per phase: " + ", ".join(f"{phase} {value:.1f}" for phase, value in seconds.items())
          + f"; total {total:.1f} s ({total / 60:.1f} min)")
    print(f"per iteration: {result.seconds['iterations'] / args.iterations * 1e3:.0f} ms; "
          f"clusters found: " + ", ".join(f"{k} {len(v)}" for k, v in result.field.centers.items()))
    print(f"peak memory (RSS): {peak_rss_gb():.2f} GB")


if __name__ == "__main__":
    main()
