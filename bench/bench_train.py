"""Training the feature field on the real statue (798,811 Gaussians, 29 views): seconds per phase, peak memory.

Targets: CPU (2 cores) 3000 iterations at half resolution <= 15 min, peak memory <= 8 GB;
GPU (H100 class) <= 60 s. Masks come from the weight-free felzenszwalb fallback here (no SAM
weights can be downloaded), cached under out/ so a second run times training alone.
Run: python3 build.py bench train   (or .venv/bin/python bench/bench_train.py --iterations 300)
"""

from __future__ import annotations

import argparse
import time

from common import ROOT, STATUE, machine, peak_rss_gb, statue_or_skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--downscale", type=int, default=2, help="image size divisor (default 2: half resolution)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    splat, cameras = statue_or_skip()

    from backend.cameras import load_images
    from backend.cli import pick_device
    from backend.masks import mask_source_description, view_labels
    from backend.train import TrainConfig, train_features

    print(machine())
    device = pick_device(args.device)
    started = time.perf_counter()
    cameras, images = load_images(STATUE / "images", cameras, downscale=args.downscale)
    load_s = time.perf_counter() - started
    cache = ROOT / "out" / "bench_train_masks"
    started = time.perf_counter()
    labels = [view_labels(image, c.name, "felzenszwalb", cache_dir=cache) for c, image in zip(cameras, images)]
    masks_s = time.perf_counter() - started
    config = TrainConfig(iterations=args.iterations)
    result = train_features(splat, cameras, labels, config, mask_source_description("felzenszwalb", cache_dir=cache), device)
    seconds = {"images": load_s, "masks": masks_s, **result.seconds}
    total = sum(seconds.values())
    print(f"statue: {splat.count:,} Gaussians, {len(cameras)} views at {cameras[0].width}x{cameras[0].height}, "
          f"{args.iterations} iterations of {config.pixels:,} pixels on {device}")
    print("seconds per phase: " + ", ".join(f"{name} {value:.1f}" for name, value in seconds.items())
          + f"; total {total:.1f} s ({total / 60:.1f} min)")
    print(f"per iteration: {result.seconds['iterations'] / args.iterations * 1e3:.0f} ms; "
          f"clusters found: " + ", ".join(f"{k} {len(v)}" for k, v in result.field.centers.items()))
    print(f"peak memory (RSS): {peak_rss_gb():.2f} GB")


if __name__ == "__main__":
    main()
