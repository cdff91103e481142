"""Each lossy format's round-trip error against its quantisation step, on the real splats and a generated SH-3 one.

For every file: write it as .spz, .compressed.ply and .splat, read it back, and print the largest
error of each attribute beside the step the format stores it with (the table in docs/formats.md).
Run: python3 build.py bench formats
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.benchmark.synthetic import make_scene  # noqa: E402
from backend.formats import read_splat, write_splat  # noqa: E402
from backend.formats.compressed_ply import morton_order  # noqa: E402
from backend.formats.splat import Splat  # noqa: E402

SPLATS = Path(__file__).resolve().parents[2] / "shared" / "data" / "splats"
# What each format promises, as a bound on the error (half a step unless said).
STEPS = {
    ".spz": "position 2^-13 (12 fraction bits); log scale 1/32 within [-10, 5.94], clamped outside; colour 0.5/255 of "
    "the 0.15-scaled DC (0.0037 in colour); alpha 0.5/255; rotation 9 bits (< 0.3 deg); SH 4.5/128 (degree 1, "
    "5 bits), 8.5/128 (degrees 2-3, 4 bits), SH clamped to [-1, 127/128]",
    ".compressed.ply": "position and log scale half a step of the chunk's range (11/10/11 bits); colour 0.5/255 of "
    "the chunk's colour range; alpha 0.5/255; rotation 10 bits (< 0.3 deg); SH 1/64 (8 bits over -4..4)",
    ".splat": "position and scale exact (float32); colour and alpha 0.5/255; rotation 8 bits (< 1 deg); no SH",
}


def angles_deg(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float(np.degrees(2 * np.arccos(np.clip(np.abs(np.sum(a * b, axis=1)), 0, 1))).max())


def errors(source: Splat, back: Splat) -> str:
    inside = (source.alphas >= 1 / 255) & (source.alphas <= 254 / 255)  # the readers keep logits finite
    worst = {
        "position": np.abs(back.positions - source.positions).max(),
        "log scale": np.abs(back.scales - source.scales).max(),
        "colour": np.abs(back.colors - source.colors).max(),
        "alpha": np.abs(back.alphas - source.alphas)[inside].max(initial=0),
        "rotation deg": angles_deg(back.rotations, source.rotations),
    }
    if back.sh_degree and source.sh_degree:
        rest = np.abs(back.sh_rest - source.sh_rest)
        worst["SH 1"], worst["SH 2-3"] = rest[:, :3].max(), rest[:, 3:].max(initial=0)
    return ", ".join(f"{name} {value:.2g}" for name, value in worst.items())


def main() -> None:
    generated = make_scene(50_000, sh_degree=3).splat
    rng = np.random.default_rng(0)
    for name in generated.columns:
        if name.startswith("f_rest_"):  # view-dependent colour of the size trained scenes hold
            generated.columns[name] = rng.normal(0, 0.15, generated.count).astype(np.float32)
    sources = {"generated (50k, SH 3)": generated}
    for name in ("guitar.ply", "donut.ply", "biker.ply"):
        if (SPLATS / name).is_file():
            sources[name] = read_splat(SPLATS / name)
        else:
            print(f"{name}: absent ({SPLATS}), skipped")
    folder = Path(tempfile.mkdtemp(prefix="clickgauss-bench-formats-"))
    for ending, steps in STEPS.items():
        print(f"\n{ending}: steps {steps}")
        for name, source in sources.items():
            write_splat(folder / f"out{ending}", source)
            back = read_splat(folder / f"out{ending}")
            if ending == ".compressed.ply":
                source = source.subset(morton_order(source.positions))  # the writer sorts
            extent = np.ptp(source.positions, axis=0).max()
            print(f"  {name} (extent {extent:.2f}): {errors(source, back)}")


if __name__ == "__main__":
    main()
