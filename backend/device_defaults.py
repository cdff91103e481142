"""The devices a run can ask for, and the settings that trade quality for time on each: the command line and the
add-on both take them from here. No torch: the add-on reads it inside Blender (backend/device.py resolves them)."""

from __future__ import annotations

from dataclasses import dataclass

DEVICES = ("auto", "cuda", "mps", "cpu")


@dataclass(frozen=True)
class DeviceDefaults:
    """The settings that trade quality for time, per device (the command line and the add-on both read them)."""

    downscale: int  # photos divided by this for training
    pixels: int  # sampled per step
    negative_anchors: int  # columns of a step's negative-pair similarities
    gaussian_subset: int  # Gaussians per step for the 3D terms (GFL, 3D-norm, spatial)
    gfl_share: float  # of those, the share GFL acts on
    checkpoint_every: int  # steps between intermediate fields the add-on can click with


# A GPU gets the paper's full settings (all negative pairs). The CPU: half resolution, half the pixels and the 3D
# terms' subsets, 512 negative anchors (an unbiased estimate: README, Training) and a checkpoint every 250 steps. On
# the 2-core CPU and the statue, masks cached: 56 ms a step before GFL (97 at 10,000 pixels and 100k subsets), the
# first clickable field 71 s after Train, 3000 steps 379 s in all, and the same 12 clicks select the statue alone
# (bench/bench_train.py, CHANGELOG 2026-12-02 day).
DEVICE_DEFAULTS = {
    "cuda": DeviceDefaults(
        downscale=1,
        pixels=10_000,
        negative_anchors=10_000,
        gaussian_subset=100_000,
        gfl_share=1.0,
        checkpoint_every=500,
    ),
    "mps": DeviceDefaults(
        downscale=1, pixels=10_000, negative_anchors=2048, gaussian_subset=100_000, gfl_share=1.0, checkpoint_every=500
    ),
    "cpu": DeviceDefaults(
        downscale=2, pixels=5000, negative_anchors=512, gaussian_subset=50_000, gfl_share=0.25, checkpoint_every=250
    ),
}
