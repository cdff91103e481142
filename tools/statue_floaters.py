"""A picture of Select Floaters on the real statue (docs/): the splat, what the strength takes, and the rest.

Each column is rendered from one of the statue's cameras with the backend's rasterizer; the middle column draws
the floaters alone on black. Run:
  .venv/bin/python tools/statue_floaters.py --strength 0.5 --out docs/statue_floaters.png
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
    import torch
    from PIL import Image

    from backend.field.floaters import DEFAULT_STRENGTH, floater_scores, floaters
    from backend.field.render import apply_weights
    from backend.field.views import camera_weights

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strength", type=float, default=DEFAULT_STRENGTH)
    parser.add_argument("--downscale", type=int, default=6)
    parser.add_argument("--views", nargs="+", default=["IMG_2707.jpg", "IMG_2720.jpg"])
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    splat, cameras, _ = load_statue(args.downscale)
    taken = floaters(floater_scores(splat.positions, np.exp(splat.scales), splat.alphas), args.strength)
    rows = []
    for camera in (c for c in cameras if Path(c.name).name in args.views):
        row = []
        for part in (splat, splat.subset(taken), splat.subset(~taken)):
            weights = camera_weights(part, camera)
            rgb = apply_weights(weights, torch.from_numpy(part.colors.astype(np.float32)))
            row.append((rgb.reshape(camera.height, camera.width, 3).clamp(0, 1) * 255).to(torch.uint8).numpy())
        rows.append(np.concatenate(row, axis=1))
    Image.fromarray(np.concatenate(rows, axis=0)).save(args.out)
    print(f"{args.out}: {int(taken.sum()):,} of {splat.count:,} Gaussians taken at strength {args.strength:g}")


if __name__ == "__main__":
    main()
