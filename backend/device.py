"""Which torch device the backend computes on: the one resolver that training, masks and the CLI share.

`auto` takes the fastest the machine's torch can use: an NVIDIA GPU (cuda), then an Apple GPU
(mps), then the CPU. Everything of one run (masks, the views' weights, the training loop, the
clustering's mask features) stays on that device; numpy sees results only after `.cpu()`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from .device_defaults import DEVICES
from .errors import UserError


@dataclass(frozen=True)
class Traits:
    """What a kind of device can do, where the computation takes another path: the one place that says so."""

    sparse: bool  # sparse CSR products (torch has them on the CPU and CUDA, not MPS): else gathers and dense ops
    float64: bool  # MPS has no float64: the rasterizer's alpha test then widens its margin instead
    whole_blocks: bool  # a GPU takes a loss's pair similarities in one block; a CPU in cache-sized blocks
    fused_adam: bool  # torch's fused Adam step (CPU, CUDA)
    gsplat: bool  # gsplat's CUDA kernels can rasterize here
    host_memory: bool  # tensors live in this process's heap (freed blocks are worth handing back to the system)


TRAITS = {
    "cpu": Traits(sparse=True, float64=True, whole_blocks=False, fused_adam=True, gsplat=False, host_memory=True),
    "cuda": Traits(sparse=True, float64=True, whole_blocks=True, fused_adam=True, gsplat=True, host_memory=False),
    "mps": Traits(sparse=False, float64=False, whole_blocks=True, fused_adam=False, gsplat=False, host_memory=False),
}
_standing_in: dict[str, str] = {}  # a torch device type -> the kind whose traits it has (tests' pretend accelerator)


def traits(device) -> Traits:
    """The traits of `device` (a torch.device, or its name) or of the kind it stands in for."""
    kind = device if isinstance(device, str) else device.type
    kind = _standing_in.get(kind.split(":")[0], kind.split(":")[0])
    if kind not in TRAITS:
        raise UserError(f"device {kind}: the backend runs on {', '.join(TRAITS)} only")
    return TRAITS[kind]


@contextlib.contextmanager
def standing_in(device_type: str, kind: str):
    """Inside, devices of `device_type` take the traits of `kind`: a CPU-only test runs CUDA's paths on a pretend
    accelerator."""
    before = _standing_in.get(device_type)
    _standing_in[device_type] = kind
    try:
        yield
    finally:
        if before is None:
            del _standing_in[device_type]
        else:
            _standing_in[device_type] = before


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
