"""Views from the splat alone on the real statue: planning and rendering time, and with --train one click's selection.

Run: python3 build.py bench views   (or .venv/bin/python bench/bench_views.py [--train] [--compare])

Plans --views cameras from ../shared/data/statue/splat.ply alone (the photos and their cameras unused) and renders
them in colour: the seconds for each are the issue's "adds <= 60 s". With --train it segments the renders (the
weight-free fallback, or SAM with --sam-checkpoint), trains on them, clicks the statue once in a real photo's
camera and writes the selection's rendered mask over a few real photos to --pictures; --compare trains from the
photos the same way and says how far the two selections agree in every photo (IoU of their rendered masks).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import ROOT, STATUE, machine, peak_rss_gb, statue_or_skip

CLICK_VIEW, CLICK = "IMG_2714.jpg", (520, 300)  # full-resolution pixel on the statue's body
SHOWN = ("IMG_2707.jpg", "IMG_2714.jpg", "IMG_2722.jpg", "IMG_2736.jpg")


def labels_of(images, cameras, args):
    from backend.scene.masks import view_labels

    if args.sam_checkpoint:
        return [
            view_labels(i, c.name, "sam", checkpoint=args.sam_checkpoint, cache_dir=args.cache / "masks")
            for i, c in zip(images, cameras)
        ]
    return [view_labels(i, c.name, "felzenszwalb", cache_dir=args.cache / "masks") for i, c in zip(images, cameras)]


def selection(splat, field, camera, pixel):
    """The Gaussians one coarse click at `pixel` of `camera` selects, at the default threshold."""
    import numpy as np

    from backend.field.click import DEFAULT_THRESHOLDS, Click
    from backend.field.click_features import unit_features
    from backend.field.click_index import ClickIndex, compose
    from backend.field.click_pixels import Geometry

    index = ClickIndex(Geometry.of(splat), lambda level: unit_features(field.features, level), indexed=False)
    click = Click(camera, pixel[0] + 0.5, pixel[1] + 0.5)
    return compose(index, [click], "coarse", DEFAULT_THRESHOLDS["coarse"], np.zeros(splat.count, bool))[0]


def masks_in(splat, cameras, selected):
    """(H, W) bool per camera: where more than half of a pixel's colour comes from the selection."""
    import numpy as np
    import torch

    from backend.field.render import apply_weights
    from backend.field.views import camera_weights, splat_tensors

    tensors = splat_tensors(splat)
    share = torch.from_numpy(selected.astype(np.float32))[:, None]
    return [
        (apply_weights(camera_weights(splat, c, tensors=tensors), share) > 0.5).reshape(c.height, c.width).numpy()
        for c in cameras
    ]


def overlay(image, mask):
    """The photo, dimmed outside the mask and tinted red inside it."""
    import numpy as np

    out = image.astype(np.float32) * 0.35
    out[mask] = image[mask] * 0.55 + np.array([255, 40, 40]) * 0.45
    return out.astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, default=24)
    parser.add_argument("--view-size", type=int, default=512)
    parser.add_argument("--train", action="store_true", help="also train on the renders and click the statue")
    parser.add_argument("--compare", action="store_true", help="with --train: also train from the photos")
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument(
        "--photo-downscale", type=int, default=2, help="with --compare: train on the photos this much smaller"
    )
    parser.add_argument("--sam-checkpoint", type=Path)
    parser.add_argument("--cache", type=Path, default=ROOT / "out" / "views")
    parser.add_argument("--pictures", type=Path, default=ROOT / "out" / "views" / "pictures")
    args = parser.parse_args()
    print(machine())
    splat, photo_cameras = statue_or_skip()

    from backend.field.rendered_views import render_views
    from backend.field.views import camera_weights, splat_tensors
    from backend.scene.view_planning import plan_splat_views

    photo_view = next(c for c in photo_cameras if c.name == CLICK_VIEW).scaled(0.5)
    started = time.perf_counter()
    camera_weights(splat, photo_view, tensors=splat_tensors(splat))
    baseline = time.perf_counter() - started
    print(
        f"baseline: a photo's view at half resolution ({photo_view.width}x{photo_view.height}) takes {baseline:.1f} s "
        f"to composite (README, quiet machine: 1.25 s)",
        flush=True,
    )
    started, cpu = time.perf_counter(), time.process_time()
    plan = plan_splat_views(splat, args.views, args.view_size)
    planning, planning_cpu = time.perf_counter() - started, time.process_time() - cpu
    started, cpu = time.perf_counter(), time.process_time()
    images, _ = render_views(splat, plan.cameras, None)
    rendering, rendering_cpu = time.perf_counter() - started, time.process_time() - cpu
    print(
        f"statue, {splat.count:,} Gaussians: {len(plan.cameras)} views of {plan.cameras[0].width}x"
        f"{plan.cameras[0].height} planned in {planning:.1f} s (layout {plan.extent.layout}, {plan.dropped} candidates "
        f"dropped), rendered in {rendering:.1f} s ({rendering / len(plan.cameras):.2f} s per view): "
        f"{planning + rendering:.1f} s in all (target 60 s); CPU time {planning_cpu:.1f} + {rendering_cpu:.1f} s "
        f"(over all threads: under other load, wall time can exceed it); peak memory {peak_rss_gb():.1f} GB",
        flush=True,
    )
    print(
        f"a planned view costs {rendering / len(plan.cameras) / baseline:.2f}x a photo's view at half resolution "
        f"(same run): at the README's quiet 1.25 s, planning and rendering would take about "
        f"{planning + 1.25 * rendering / baseline:.0f} s",
        flush=True,
    )
    if not args.train:
        return

    import numpy as np
    from PIL import Image

    from backend.field.train import TrainConfig, train_features
    from backend.scene.images import load_images

    config = TrainConfig(iterations=args.iterations)
    args.pictures.mkdir(parents=True, exist_ok=True)
    original_cameras = photo_cameras
    photo_cameras, photos = load_images(
        STATUE / "images", original_cameras, downscale=2
    )  # clicked and shown at half size
    click_camera = next(c for c in photo_cameras if c.name == CLICK_VIEW)
    click = (CLICK[0] // 2, CLICK[1] // 2)
    runs = {"rendered views": (plan.cameras, images)}
    if args.compare:
        runs["photos"] = load_images(STATUE / "images", original_cameras, downscale=args.photo_downscale)
    masks = {}
    for name, (cameras, pictures) in runs.items():
        started = time.perf_counter()
        labels = labels_of(pictures, cameras, args)
        field = train_features(splat, cameras, labels, config, "felzenszwalb").field
        selected = selection(splat, field, click_camera, click)
        masks[name] = masks_in(splat, photo_cameras, selected)
        print(
            f"trained from the {name} in {time.perf_counter() - started:.0f} s; one click on the statue in "
            f"{CLICK_VIEW} selects {int(selected.sum()):,} Gaussians",
            flush=True,
        )
        tag = name.replace(" ", "_")
        for camera, photo, mask in zip(photo_cameras, photos, masks[name]):
            if camera.name in SHOWN:
                Image.fromarray(overlay(photo, mask)).save(args.pictures / f"{tag}_{Path(camera.name).stem}.png")
    if args.compare:
        ious = [(a & b).sum() / max((a | b).sum(), 1) for a, b in zip(masks["rendered views"], masks["photos"])]
        print(
            f"agreement of the two selections' masks in the {len(ious)} photos: IoU median {np.median(ious):.3f}, "
            f"min {min(ious):.3f}"
        )
    print(f"pictures in {args.pictures}")


if __name__ == "__main__":
    main()
