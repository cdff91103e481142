"""Mask generation for the statue's 29 views without SAM: geometric masks against the felzenszwalb fallback.

Target: the geometric masks of the 29 views at half resolution (what `train` uses by default) in <= 30 s on
the 2-core CPU. They are drawn from the views' compositing weights, which training computes with any mask source
(`train.view_weights`, its precompute): that is timed apart, and the masks' cost is the grouping plus the drawing.
The baseline, measured in the same run: the felzenszwalb fallback on the same photos (no cache).
Wall and CPU seconds are both printed: on a shared machine the CPU seconds say more.
Run: python3 build.py bench masks   (or .venv/bin/python bench/bench_masks.py [--downscale 2])
"""

from __future__ import annotations

import argparse
import resource
import time

from common import STATUE, machine, peak_rss_gb, statue_or_skip


def timed(work):
    """(result, wall seconds, CPU seconds of this process) of work()."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    result = work()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    return result, wall, (after.ru_utime + after.ru_stime) - (usage.ru_utime + usage.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--downscale", type=int, default=2, help="image size divisor (default 2: half resolution)")
    args = parser.parse_args()

    from backend.field.geometric_masks import gaussian_groups, geometric_labels
    from backend.field.view_weights import view_weights
    from backend.scene.images import load_images
    from backend.scene.masks import view_labels

    print(machine())
    splat, cameras = statue_or_skip()
    cameras, images = load_images(STATUE / "images", cameras, downscale=args.downscale)
    print(f"statue: {splat.count:,} Gaussians, {len(cameras)} views {cameras[0].width}x{cameras[0].height}")
    weights, wall, cpu = timed(lambda: view_weights(splat, cameras))
    print(f"training's precompute (any mask source): the views' weights {wall:.1f} s wall ({cpu:.1f} s CPU)")
    groups, wall, cpu = timed(lambda: gaussian_groups(splat, cameras))
    print(
        f"geometric: grouping {wall:.1f} s wall ({cpu:.1f} s CPU): {int(groups.coarse.max()) + 1} objects, "
        f"{int(groups.fine.max()) + 1} ids at the fine level, ground {'found' if groups.ground >= 0 else 'not found'}"
    )
    _, draw_wall, draw_cpu = timed(lambda: geometric_labels(splat, cameras, groups=groups, weights=weights))
    print(
        f"geometric: drawing {len(cameras)} views from the weights {draw_wall:.1f} s wall ({draw_cpu:.1f} s CPU); "
        f"in all {wall + draw_wall:.1f} s wall ({cpu + draw_cpu:.1f} s CPU) (target <= 30 s)"
    )
    _, wall, cpu = timed(lambda: [view_labels(image, c.name, "felzenszwalb") for c, image in zip(cameras, images)])
    print(f"felzenszwalb (baseline): {wall:.1f} s wall ({cpu:.1f} s CPU); peak memory {peak_rss_gb():.1f} GB")


if __name__ == "__main__":
    main()
