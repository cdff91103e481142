"""One device through the whole training path, checked on a CPU-only machine by a pretend accelerator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.benchmark.synthetic import make_scene, orbit_cameras, render_views
from backend.field.train import TrainConfig, train_features
from tests.pretend_device import DeviceMixing, pretend_device


def test_the_pretend_device_refuses_what_cuda_refuses():
    with pretend_device() as device:
        on_device = torch.ones(4, device=device)
        assert (on_device * 2).device == device and torch.zeros(2).to(device).device == device
        with pytest.raises(DeviceMixing):
            on_device + torch.arange(4)
        with pytest.raises(DeviceMixing):
            torch.multinomial(on_device, 2, generator=torch.Generator())
        with pytest.raises(DeviceMixing):
            on_device.numpy()
        assert on_device.cpu().numpy().tolist() == [1, 1, 1, 1]


@pytest.fixture(scope="module")
def small_scene():
    scene = make_scene(1500, seed=2)
    cameras = orbit_cameras(4, 64, 48)
    labels = [(objects, parts) for _, objects, parts in render_views(scene, cameras)]
    return scene, cameras, labels


@pytest.mark.parametrize("kind", ["cuda", "mps"])
def test_training_runs_on_one_device_and_gives_the_cpu_result(small_scene, kind):
    """Masks in, features out: every tensor op of precompute, the loop, GFL clustering and the output on the device,
    along the paths of each kind of accelerator (CUDA: sparse products, whole blocks; MPS: dense ops)."""
    scene, cameras, labels = small_scene
    config = TrainConfig(iterations=30, pixels=300, gfl_start=10, gfl_refresh=10, gaussian_subset=500)
    on_cpu = train_features(scene.splat, cameras, labels, config, device="cpu").field
    with pretend_device(kind) as device:
        on_device = train_features(scene.splat, cameras, labels, config, device=device).field
    assert isinstance(on_device.features, np.ndarray) and on_device.features.shape == (1500, 24)
    np.testing.assert_allclose(on_device.features.astype(np.float32), on_cpu.features.astype(np.float32), atol=2e-3)


@pytest.mark.parametrize("cuda, mps, expected", [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")])
def test_auto_takes_cuda_then_mps_then_the_cpu(monkeypatch, cuda, mps, expected):
    from backend.device import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert resolve_device("auto") == expected


def test_asking_for_a_device_the_machine_lacks_is_one_clear_error(tmp_path):
    import subprocess
    import sys

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    (tmp_path / "cameras").mkdir()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "backend",
            "train",
            "--splat",
            str(tmp_path / "s.ply"),
            "--images",
            str(tmp_path),
            "--cameras",
            str(tmp_path / "cameras"),
            "--out",
            str(tmp_path / "f.npz"),
            "--device",
            "cuda",
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and run.stderr.strip() == "error: --device cuda: this machine's torch sees no CUDA GPU"


@pytest.mark.parametrize("kind", ["cuda", "mps", "cpu"])
def test_a_run_takes_its_devices_settings_where_none_are_given(kind):
    from backend.device_defaults import DEVICE_DEFAULTS

    defaults = DEVICE_DEFAULTS[kind]
    config = TrainConfig.for_device(kind, iterations=10, pixels=None)
    assert (config.pixels, config.negative_anchors, config.gaussian_subset, config.gfl_share) == (
        defaults.pixels,
        defaults.negative_anchors,
        defaults.gaussian_subset,
        defaults.gfl_share,
    )
    assert config.iterations == 10 and TrainConfig.for_device(kind, pixels=777).pixels == 777


def test_a_device_the_backend_does_not_know_is_one_clear_error():
    from backend.device import traits
    from backend.errors import UserError

    with pytest.raises(UserError, match="device meta: the backend runs on cpu, cuda, mps only"):
        traits(torch.device("meta"))
