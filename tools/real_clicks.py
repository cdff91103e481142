"""Pictures of single clicks on the real splats of ../shared/data/splats, trained from their .ply alone (docs/).

For each labelled splat (backend/benchmark/real_splats.py) with a features file `<features>/<name>.npz`
(`python -m backend train --splat S --out <features>/<name>.npz`): per object (coarse) and part (fine), one click at
a random pixel well inside its ground truth in the planned view where it is largest, at the product's threshold.
Each row: the click's view with the selection in red (a white cross: the click), and the view opposite it. Run:
  .venv/bin/python tools/real_clicks.py --features out/real --out docs/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", required=True, type=Path, help="a folder of <name>.npz features")
    parser.add_argument("--splats", type=Path, default=ROOT.parent / "shared" / "data" / "splats")
    parser.add_argument("--view-size", type=int, default=256)
    parser.add_argument("--out", required=True, type=Path, help="a folder: real_clicks_<name>.png are written there")
    args = parser.parse_args()

    import torch
    from PIL import Image

    from backend.benchmark.real_splats import ground_truth, labels_of, real_splats
    from backend.field.click import DEFAULT_THRESHOLDS, Click
    from backend.field.click_features import unit_features
    from backend.field.click_index import ClickIndex, compose
    from backend.field.click_pixels import Geometry
    from backend.field.evaluate import click_points
    from backend.field.rendered_views import render_rgb
    from backend.field.views import camera_weights, drawn_masks, splat_tensors
    from backend.formats import read_splat
    from backend.formats.features import load_features
    from backend.scene.view_planning import plan_splat_views

    rng = np.random.default_rng(0)
    for path in real_splats(args.splats):
        features = args.features / f"{path.stem}.npz"
        if not features.exists():
            print(f"{path.name}: no {features}, skipped")
            continue
        splat = read_splat(path)
        cameras = plan_splat_views(splat, long_side=args.view_size).cameras
        tensors = splat_tensors(splat)
        weights = [camera_weights(splat, camera, tensors=tensors) for camera in cameras]
        truth = ground_truth(splat, cameras, labels_of(path, splat), weights)
        field_ = load_features(features, splat).features.astype(np.float32)
        index = ClickIndex(Geometry.of(splat), lambda level: unit_features(field_, level, True))
        rows = []
        for level, maps in truth.maps.items():
            for label, name in truth.names[level].items():
                areas = [int((labels == label).sum()) for labels in maps]
                view = int(np.argmax(areas))
                x, y = click_points(maps[view] == label, 1, rng)[0]
                threshold = np.array([DEFAULT_THRESHOLDS[level]], np.float32)
                start = np.zeros((1, splat.count), bool)
                selected = compose(index, [Click(cameras[view], x + 0.5, y + 0.5, "ADD")], level, threshold, start)[0]
                share = torch.from_numpy(selected.T.astype(np.float32))
                pictures = []
                for shown in (view, (view + len(cameras) // 2) % len(cameras)):
                    camera = cameras[shown]
                    rgb = render_rgb(splat, camera, weights[shown]).astype(np.float32)
                    rgb = rgb / 255 if rgb.max() > 1.5 else rgb
                    mask = drawn_masks(weights[shown], share).numpy()[:, 0].reshape(camera.height, camera.width)
                    picture = np.where(mask[..., None], 0.45 * rgb + 0.55 * np.array([1.0, 0.1, 0.1]), 0.6 * rgb)
                    if shown == view:
                        picture[max(0, y - 4) : y + 5, x] = picture[y, max(0, x - 4) : x + 5] = 1.0
                    pictures.append(picture)
                rows.append(np.concatenate(pictures, axis=1))
                print(f"{path.name} {level} {name}: {int(selected.sum()):,} Gaussians selected")
        args.out.mkdir(parents=True, exist_ok=True)
        target = args.out / f"real_clicks_{path.stem}.png"
        Image.fromarray((np.clip(np.concatenate(rows, axis=0), 0, 1) * 255).astype(np.uint8)).save(target)
        print(f"wrote {target}")


if __name__ == "__main__":
    main()
