"""A pretend accelerator for CPU-only machines: catches tensors of two devices meeting in one op.

Real CUDA refuses `cuda_tensor + cpu_tensor`, a CPU index into a CUDA tensor's `index_select`, a CPU
generator for a CUDA `multinomial`, `.numpy()` of a CUDA tensor. This file makes the same refusals
while the real computation runs on the CPU, so a test can drive training "on a device" without one.

How: tensors that would live on the device are `OnDevice` wrappers around real CPU tensors whose
`.device` says `meta`; a dispatch mode unwraps every op's tensors, refuses a mix of wrapped and plain
CPU tensors (0-dim CPU scalars excepted, as on CUDA), runs the op on the CPU and wraps the results.
Why `meta` and not a fake `cuda`: with a CPU-only torch, autograd looks up a device guard for each
tensor's device and aborts the process for `cuda`; `meta` has one. torch's FakeTensorMode cannot serve
here: it has no data, so `nonzero`, `unique`, `multinomial` and `int(t)` (which training uses) fail.
"""

from __future__ import annotations

import contextlib

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves, tree_map

DEVICE = torch.device("meta")


class DeviceMixing(RuntimeError):
    pass


class OnDevice(torch.Tensor):
    """A CPU tensor `elem` that everything outside this file sees as a tensor on `DEVICE`."""

    elem: torch.Tensor

    @staticmethod
    def __new__(cls, elem: torch.Tensor):
        # Always a strided wrapper: torch has no wrapper subclass of sparse layout. The sparse CSR weights
        # keep their layout in `elem`, and every op on them (crow_indices, @, ...) reaches the mode below.
        wrapper = torch.Tensor._make_wrapper_subclass(
            cls,
            elem.size(),
            strides=elem.stride() if elem.layout == torch.strided else None,
            dtype=elem.dtype,
            device=DEVICE,
            requires_grad=elem.requires_grad,
        )
        wrapper.elem = elem
        return wrapper

    __torch_function__ = torch._C._disabled_torch_function_impl

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        raise RuntimeError(f"{func}: a pretend-device tensor used outside pretend_device()")

    def __repr__(self):
        return f"OnDevice({self.elem!r})"


def _is_device(device) -> bool:
    return device is not None and torch.device(device).type == DEVICE.type


class _Dispatch(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        on_device, on_cpu = [], []
        for leaf in tree_leaves((args, kwargs)):
            if isinstance(leaf, OnDevice):
                on_device.append(leaf)
            elif isinstance(leaf, torch.Tensor):
                if leaf.device.type == DEVICE.type:
                    raise DeviceMixing(f"{func}: a device tensor without data (made outside pretend_device?)")
                if leaf.dim() > 0:
                    on_cpu.append(leaf)
            elif isinstance(leaf, torch.Generator) and leaf.device.type == "cpu":
                on_cpu.append(leaf)
        if on_device and on_cpu:
            raise DeviceMixing(
                f"{func} mixes device tensors {[tuple(t.shape) for t in on_device]} with CPU "
                f"{[tuple(t.shape) if isinstance(t, torch.Tensor) else 'generator' for t in on_cpu]}"
            )
        wrap = bool(on_device)
        if "device" in kwargs and kwargs["device"] is not None:  # factories and .to(): the target decides
            wrap = _is_device(kwargs["device"])
            kwargs = dict(kwargs, device=torch.device("cpu")) if wrap else kwargs
        args, kwargs = tree_map(lambda x: x.elem if isinstance(x, OnDevice) else x, (args, kwargs))
        out = func(*args, **kwargs)
        return tree_map(lambda x: OnDevice(x) if wrap and isinstance(x, torch.Tensor) else x, out)


class _Functions(TorchFunctionMode):
    """What bypasses dispatch: torch.tensor(..., device=...) builds on the device directly; tolist and numpy."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.tensor, torch.as_tensor, torch.asarray) and _is_device(kwargs.get("device")):
            return func(*args, **{k: v for k, v in kwargs.items() if k != "device"}).to(DEVICE)
        if func is torch.Tensor.tolist and isinstance(args[0], OnDevice):
            return args[0].elem.tolist()  # CUDA copies to the host here
        if func is torch.Tensor.numpy and isinstance(args[0], OnDevice):
            raise DeviceMixing("numpy() of a device tensor (CUDA refuses it: .cpu() first)")
        return func(*args, **kwargs)


@contextlib.contextmanager
def pretend_device(kind: str = "cuda"):
    """Inside, `DEVICE` ("meta") behaves as an accelerator whose tensors hold real data, with the traits of `kind`
    (backend/device.py: CUDA's sparse products and whole blocks, or MPS's dense paths); yields the device."""
    import importlib
    from unittest import mock

    from backend.device import standing_in

    optimizer = importlib.import_module("torch.optim.optimizer")  # `torch.optim` does not keep the name
    fused_on = optimizer._get_fused_kernels_supported_devices() + [DEVICE.type]  # Adam's fused step, as on CUDA
    with (
        standing_in(DEVICE.type, kind),
        mock.patch.object(optimizer, "_get_fused_kernels_supported_devices", lambda: list(fused_on)),
        _Functions(),
        _Dispatch(),
    ):
        yield DEVICE
