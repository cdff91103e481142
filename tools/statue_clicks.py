"""Pictures of single clicks on the real statue: each click's selection drawn over the photo (docs/).

Trains nothing: give it a features file trained on the statue. The statue's pixels, where the clicks
land, are its geometric group (`geometric_masks.gaussian_groups`) under --statue-pixel in the first
picked view; in every picked view CLICKS random pixels well inside that group are clicked alone at the
coarse level, and each selection's rendered mask is drawn over the photo (red: selected; a white
cross: the click). Run:
  .venv/bin/python tools/statue_clicks.py --features out/statue/features.npz --downscale 4 --out docs/statue_clicks.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from statue import load_statue

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", required=True, type=Path)
    parser.add_argument("--downscale", type=int, default=4)
    parser.add_argument("--views", nargs="+", default=["IMG_2707.jpg", "IMG_2714.jpg", "IMG_2720.jpg", "IMG_2731.jpg"])
    parser.add_argument(
        "--statue-pixel",
        nargs=2,
        type=float,
        default=(0.6, 0.62),
        help="a point on the statue in the first view, as fractions of width and height",
    )
    parser.add_argument("--clicks", type=int, default=3)
    parser.add_argument("--level", default="coarse", choices=("coarse", "fine"))
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()

    import torch
    from PIL import Image
    from scipy.ndimage import binary_erosion

    from backend.field.click import DEFAULT_THRESHOLDS, Click
    from backend.field.click_features import unit_features
    from backend.field.click_index import ClickIndex, compose
    from backend.field.click_pixels import Geometry
    from backend.field.geometric_masks import gaussian_groups
    from backend.field.views import camera_weights, drawn_masks, majority_labels, splat_tensors
    from backend.formats.features import load_features

    splat, cameras, images = load_statue(args.downscale)
    picked = [next(i for i, c in enumerate(cameras) if c.name == name) for name in args.views]
    field = load_features(args.features, splat)
    prior = field.granularity_prior
    groups = torch.from_numpy(gaussian_groups(splat, cameras).coarse.astype(np.int64))
    index = ClickIndex(Geometry.of(splat), lambda level: unit_features(field.features, level, prior), indexed=False)
    tensors = splat_tensors(splat)
    rng = np.random.default_rng(0)
    statue, rows = None, []
    for view in picked:
        camera, photo = cameras[view], images[view].astype(np.float32) / 255
        weights = camera_weights(splat, camera, tensors=tensors)
        labels = majority_labels(weights, groups).reshape(camera.height, camera.width).numpy()
        if statue is None:
            statue = labels[int(args.statue_pixel[1] * camera.height), int(args.statue_pixel[0] * camera.width)]
        inside = binary_erosion(labels == statue, iterations=3)
        ys, xs = np.nonzero(inside)
        pictures = []
        for pick in rng.choice(len(xs), size=min(args.clicks, len(xs)), replace=False):
            x, y = int(xs[pick]), int(ys[pick])
            selected, _ = compose(
                index,
                [Click(camera, x + 0.5, y + 0.5)],
                args.level,
                DEFAULT_THRESHOLDS[args.level],
                np.zeros(splat.count, bool),
            )
            share = torch.from_numpy(selected.astype(np.float32))[:, None]
            mask = drawn_masks(weights, share).reshape(camera.height, camera.width).numpy()
            picture = photo.copy()
            picture[mask] = 0.45 * picture[mask] + 0.55 * np.array([1.0, 0.1, 0.1])
            picture[max(0, y - 6) : y + 7, x] = picture[y, max(0, x - 6) : x + 7] = 1.0
            pictures.append(picture)
            print(
                f"{camera.name} click ({x}, {y}): {int(selected.sum()):,} Gaussians, "
                f"{100 * (mask & (labels == statue)).sum() / max((mask | (labels == statue)).sum(), 1):.0f} % IoU "
                "with the statue's geometric group"
            )
        rows.append(np.concatenate(pictures, axis=1))
    width = max(row.shape[1] for row in rows)
    rows = [np.pad(row, ((0, 0), (0, width - row.shape[1]), (0, 0))) for row in rows]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.concatenate(rows, axis=0) * 255).astype(np.uint8)).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
