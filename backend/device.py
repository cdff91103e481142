"""Which torch device the backend computes on: the one resolver that training, masks and the CLI share.

`auto` takes the fastest the machine's torch can use: an NVIDIA GPU (cuda), then an Apple GPU
(mps), then the CPU. Everything of one run (masks, the views' weights, the training loop, the
clustering's mask features) stays on that device; numpy sees results only after `.cpu()`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UserError

DEVICES = ("auto", "cuda", "mps", "cpu")


def resolve_device(name: str = "auto") -> str:
    """"cuda", "mps" or "cpu" for a device name of DEVICES; an error when the machine lacks the one asked for."""
    import torch

    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if name not in DEVICES:
        raise UserError(f"--device {name}: unknown device, use one of {', '.join(DEVICES)}")
    if name == "cuda" and not cuda:
        raise UserError("--device cuda: this machine's torch sees no CUDA GPU")
    if name == "mps" and not mps:
        raise UserError("--device mps: this machine's torch has no Apple MPS device")
    return name


def sam_device(device: str) -> str:
    """Where SAM runs for a run on `device`: the same, except MPS, where SAM's float64 ops fail (CPU then)."""
    return "cpu" if device == "mps" else device


@dataclass(frozen=True)
class DeviceDefaults:
    """The settings that trade quality for time, per device: the command line and the add-on both take them from here."""

    downscale: int  # photos divided by this for training
    pixels: int  # sampled per step
    negative_anchors: int  # columns of a step's negative-pair similarities
    checkpoint_every: int  # steps between intermediate fields the add-on can click with


# A GPU gets the paper's full settings (all negative pairs); the CPU half resolution, 512 negative anchors (an
# unbiased estimate: README, Training) and a checkpoint every 250 steps: on the 2-core CPU and the statue about
# 40 s of precompute and 150 ms a step (bench/bench_train.py), so the first clickable field comes ~80 s after Train.
DEVICE_DEFAULTS = {
    "cuda": DeviceDefaults(downscale=1, pixels=10_000, negative_anchors=10_000, checkpoint_every=500),
    "mps": DeviceDefaults(downscale=1, pixels=10_000, negative_anchors=2048, checkpoint_every=500),
    "cpu": DeviceDefaults(downscale=2, pixels=10_000, negative_anchors=512, checkpoint_every=250),
}
