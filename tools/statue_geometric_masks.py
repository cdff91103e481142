"""Pictures of the statue's geometric masks: each view's coarse (left) and fine (right) groups over the photo.

Each group has its own colour, blended over the photo; dark: no group. The statue's coarse group (the group
under --statue-pixel in the first view) is outlined in white in every picture, and its share of the view is
printed, with the grouping's time. Trains nothing. Run:
  .venv/bin/python tools/statue_geometric_masks.py --downscale 4 --out docs/statue_geometric_masks.png
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from statue import load_statue

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--downscale", type=int, default=4)
    parser.add_argument("--views", nargs="+", default=["IMG_2707.jpg", "IMG_2720.jpg"])
    parser.add_argument("--statue-pixel", nargs=2, type=float, default=(0.6, 0.62), help="fractions of width, height")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()

    import torch
    from PIL import Image
    from scipy.ndimage import binary_erosion

    from backend.field.geometric_masks import gaussian_groups
    from backend.field.views import camera_weights, majority_labels, splat_tensors

    splat, cameras, images = load_statue(args.downscale)
    started = time.process_time()
    groups = gaussian_groups(splat, cameras)
    print(f"grouping: {time.process_time() - started:.1f} s of CPU, {int(groups.coarse.max()) + 1} coarse ids")
    palette = np.random.default_rng(1).uniform(0.15, 1.0, (int(max(groups.coarse.max(), groups.fine.max())) + 2, 3))
    tensors, statue, rows = splat_tensors(splat), None, []
    for name in args.views:
        camera = next(c for c in cameras if c.name == name)
        photo = images[cameras.index(camera)].astype(np.float32) / 255
        weights = camera_weights(splat, camera, tensors=tensors)
        maps = [
            majority_labels(weights, torch.from_numpy(ids.astype(np.int64)))
            .reshape(camera.height, camera.width)
            .numpy()
            for ids in (groups.coarse, groups.fine)
        ]
        if statue is None:
            statue = maps[0][int(args.statue_pixel[1] * camera.height), int(args.statue_pixel[0] * camera.width)]
        outline = (maps[0] == statue) & ~binary_erosion(maps[0] == statue, iterations=1)
        pictures = []
        for labels in maps:
            picture = np.where(labels[..., None] >= 0, 0.4 * photo + 0.6 * palette[labels], 0.3 * photo)
            picture[outline] = 1.0
            pictures.append(picture)
        print(f"{name}: the statue's group (id {statue}) covers {100 * (maps[0] == statue).mean():.1f} % of the view")
        rows.append(np.concatenate(pictures, axis=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.concatenate(rows, axis=0) * 255).astype(np.uint8)).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
