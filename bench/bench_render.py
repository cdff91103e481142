"""The torch rasterizer on the real statue (798,811 Gaussians): per-view weights, RGB, 24-D features.

Run: python3 build.py bench render   (or .venv/bin/python bench/bench_render.py --views 0 14 28 --scale 0.5)
"""

from __future__ import annotations

import argparse
import time

from common import machine, peak_rss_gb, statue_or_skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, nargs="+", default=[0, 14, 28])
    parser.add_argument("--scale", type=float, default=0.5, help="image size factor (default half resolution)")
    parser.add_argument("--png", default="out/statue_view.png", help="where to save the first view's RGB")
    args = parser.parse_args()
    splat, cameras = statue_or_skip()

    import numpy as np
    import torch
    from PIL import Image

    from backend.field.render import apply_weights
    from backend.field.views import camera_weights, splat_tensors

    print(machine())
    tensors = splat_tensors(splat)
    colors = torch.from_numpy(splat.colors.astype(np.float32))
    features = torch.nn.functional.normalize(torch.randn(splat.count, 24), dim=1)
    for i, view in enumerate(args.views):
        camera = cameras[view].scaled(args.scale)
        started = time.perf_counter()
        weights = camera_weights(splat, camera, tensors=tensors)
        weights_s = time.perf_counter() - started
        started = time.perf_counter()
        rgb = apply_weights(weights, colors).reshape(camera.height, camera.width, 3)
        rgb_s = time.perf_counter() - started
        started = time.perf_counter()
        apply_weights(weights, features)
        features_s = time.perf_counter() - started
        pixels = torch.randint(0, camera.width * camera.height, (10_000,))
        started = time.perf_counter()
        apply_weights(weights, features, pixels)
        sampled_s = time.perf_counter() - started
        nnz = weights._nnz()
        print(
            f"view {view:2d} {camera.width}x{camera.height}: weights {weights_s:.2f} s, {nnz:,} entries "
            f"({nnz / (camera.width * camera.height):.1f}/px, {nnz * 8 / 2**20:.0f} MiB); "
            f"from them: RGB {rgb_s * 1e3:.0f} ms, "
            f"24-D features {features_s * 1e3:.0f} ms, 10k sampled pixels {sampled_s * 1e3:.1f} ms; "
            f"peak RSS {peak_rss_gb():.2f} GB"
        )
        if i == 0:
            Image.fromarray((rgb.clamp(0, 1) * 255).round().to(torch.uint8).numpy()).save(args.png)
            print(f"saved view {view} to {args.png}")


if __name__ == "__main__":
    main()
