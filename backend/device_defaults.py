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
    checkpoint_every: int  # steps between intermediate fields the add-on can click with


# A GPU gets the paper's full settings (all negative pairs); the CPU half resolution, 512 negative anchors (an
# unbiased estimate: README, Training) and a checkpoint every 250 steps: on the 2-core CPU and the statue about
# 50 s of masks and precompute and under 125 ms a step before GFL (bench/bench_train.py, CHANGELOG 2026-12-02), so
# the first clickable field comes ~80 s after Train.
DEVICE_DEFAULTS = {
    "cuda": DeviceDefaults(downscale=1, pixels=10_000, negative_anchors=10_000, checkpoint_every=500),
    "mps": DeviceDefaults(downscale=1, pixels=10_000, negative_anchors=2048, checkpoint_every=500),
    "cpu": DeviceDefaults(downscale=2, pixels=10_000, negative_anchors=512, checkpoint_every=250),
}
