"""Which torch device the backend computes on: the one resolver that training, masks and the CLI share.

`auto` takes the fastest the machine's torch can use: an NVIDIA GPU (cuda), then an Apple GPU
(mps), then the CPU. Everything of one run (masks, the views' weights, the training loop, the
clustering's mask features) stays on that device; numpy sees results only after `.cpu()`.
"""

from __future__ import annotations

from .device_defaults import DEVICES
from .errors import UserError


def resolve_device(name: str = "auto") -> str:
    """ "cuda", "mps" or "cpu" for a device name of DEVICES; an error when the machine lacks the one asked for."""
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
