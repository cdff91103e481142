"""The preferences' Install in real Blender: a venv filled by pip, here with a tiny local wheel in place of the
backend's packages (torch from PyPI is too slow to test with)."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.blender


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    """A folder holding one tiny pure-Python wheel, cg_tiny 1.0, for pip's --find-links."""
    folder = tmp_path_factory.mktemp("wheels")
    info = "cg_tiny-1.0.dist-info"
    with zipfile.ZipFile(folder / "cg_tiny-1.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr("cg_tiny/__init__.py", "VALUE = 42\n")
        wheel.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: cg-tiny\nVersion: 1.0\n")
        wheel.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        wheel.writestr(f"{info}/RECORD", "")
    return folder


def stand_in_wheel(folder: Path, project: str, module: str, source: str) -> None:
    """A tiny wheel, version 0.1 (below any cap on the real ones), named as one of the backend's packages, whose
    module is `source`."""
    info = f"{module}-0.1.dist-info"
    with zipfile.ZipFile(folder / f"{module}-0.1-py3-none-any.whl", "w") as wheel:
        wheel.writestr(f"{module}/__init__.py", source)
        wheel.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {project}\nVersion: 0.1\n")
        wheel.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        wheel.writestr(f"{info}/RECORD", "")


@pytest.fixture(scope="module")
def mismatched_wheels(tmp_path_factory):
    """Stand-ins for torch and hdbscan that import, and a torchvision built for another torch, as PyPI's is beside
    a local torch build: it installs, and its import fails (and segment-anything's with it)."""
    folder = tmp_path_factory.mktemp("mismatched")
    stand_in_wheel(folder, "torch", "torch", "__version__ = '0.1'\n")
    stand_in_wheel(folder, "hdbscan", "hdbscan", "")
    stand_in_wheel(
        folder, "torchvision", "torchvision", "raise RuntimeError('operator torchvision::nms does not exist')\n"
    )
    stand_in_wheel(folder, "segment-anything", "segment_anything", "import torchvision\n")
    return folder


def install(addon, folder, wheels, requirement="cg-tiny==1.0", cancel_in_step=None, requirements=None):
    """Run an install to its end as the Install operator's timer does; returns the job and its progress."""
    prefs = addon.addon_preferences.preferences()
    prefs.install_folder = str(folder)
    job = addon.preferences.start_install(
        prefs, requirements or [requirement], ["--no-index", "--find-links", str(wheels)]
    )
    events, deadline = [], time.time() + 60
    while job.state == "running" and time.time() < deadline:
        events += addon.preferences.follow_install(prefs, job)
        if job.step == cancel_in_step:
            job.cancel()
        time.sleep(0.05)
    return job, events


def test_install_makes_a_python_that_becomes_the_backend_python(addon, wheels, tmp_path):
    prefs = addon.addon_preferences.preferences()
    prefs.python_path = ""
    job, events = install(addon, tmp_path / "env", wheels)
    assert job.state == "done", job.message
    python = prefs.python_path
    assert python == str(tmp_path / "env" / "bin" / "python") and addon.backend_install.installed(tmp_path / "env")
    assert (
        subprocess.run([python, "-c", "import cg_tiny; print(cg_tiny.VALUE)"], capture_output=True, text=True).stdout
        == "42\n"
    )
    percents = [event.percent for event in events]
    assert percents == sorted(percents) and percents[-1] == 100
    assert list(dict.fromkeys(event.phase for event in events)) == ["installing the packages", "done"]
    assert any(event.line.startswith("Successfully installed cg-tiny") for event in events)
    report = addon.preferences.check_python(python)  # what the Check button runs
    assert report["torch"] is None and report["device"] is None

    again, _ = install(addon, tmp_path / "env", wheels, requirement="cg-missing==2.0")  # a failed reinstall
    assert again.state == "failed" and prefs.python_path == python
    assert addon.backend_install.installed(tmp_path / "env") and not (tmp_path / "env.previous").exists()
    assert subprocess.run([python, "-c", "import cg_tiny"]).returncode == 0


def test_an_install_whose_sam_does_not_import_says_so_and_why(addon, mismatched_wheels, tmp_path):
    prefs = addon.addon_preferences.preferences()
    prefs.python_path = ""
    everything = ["torch==0.1", "hdbscan==0.1", "torchvision==0.1", "segment-anything==0.1"]
    job, events = install(addon, tmp_path / "env", mismatched_wheels, requirements=everything)
    assert job.state == "done", job.message  # the backend runs, with geometric masks
    assert "SAM cannot run (torchvision does not import: operator torchvision::nms does not exist" in job.message
    assert "segment_anything does not import: operator torchvision::nms does not exist" in job.message
    assert "checking the packages import" in {event.phase for event in events}
    assert addon.preferences.sam_status(prefs).startswith("torchvision does not import: operator torchvision::nms")
    report = addon.preferences.check_python(prefs.python_path)  # the Check button says the same
    assert addon.preferences.sam_unavailable(report) == (
        "segment_anything does not import: operator torchvision::nms does not exist"
    )

    broken = ["torch==0.1", "hdbscan==0.1", "torchvision==0.1"]  # torch itself must import: else the install fails
    stand_in_wheel(mismatched_wheels, "torch", "torch", "raise ImportError('libtorch_cpu.so: cannot open')\n")
    again, _ = install(addon, tmp_path / "other", mismatched_wheels, requirements=broken)
    assert again.state == "failed" and "installed, but torch does not import: libtorch_cpu.so" in again.message
    assert not (tmp_path / "other").exists()


def test_a_failing_package_is_named_and_leaves_nothing(addon, wheels, tmp_path):
    prefs = addon.addon_preferences.preferences()
    prefs.python_path = "unchanged"
    job, _ = install(addon, tmp_path / "env", wheels, requirement="cg-missing==2.0")
    assert job.state == "failed"
    assert (
        "installing the packages failed (exit code 1): No matching distribution found for cg-missing==2.0"
        in job.message
    )
    assert prefs.python_path == "unchanged" and not (tmp_path / "env").exists()


def test_cancel_puts_the_folder_back(addon, wheels, tmp_path):
    prefs = addon.addon_preferences.preferences()
    prefs.python_path = "unchanged"
    (tmp_path / "empty").mkdir()
    job, _ = install(addon, tmp_path / "empty", wheels, cancel_in_step=1)  # just as pip starts
    assert job.state == "cancelled" and job.child.process.returncode != 0
    assert prefs.python_path == "unchanged" and list((tmp_path / "empty").iterdir()) == []


def test_a_folder_with_other_things_is_refused(addon, wheels, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(
        addon.backend.errors.UserError, match="not empty and holds no environment this add-on installed"
    ):
        install(addon, tmp_path, wheels)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_the_real_install_asks_for_online_access_first(addon, blender, tmp_path):
    prefs = addon.addon_preferences.preferences()
    prefs.install_folder, prefs.install_torch = str(tmp_path / "env"), "CPU"
    assert not blender.app.online_access  # as Blender starts from the bpy module
    with pytest.raises(addon.backend.errors.UserError, match="allow online access"):
        addon.preferences.start_install(prefs)
    assert not (tmp_path / "env").exists()


def test_the_installer_asks_for_every_package_the_backend_imports_with_torch_from_the_build_chosen(addon):
    install_module = addon.backend_install
    packages, options = install_module.backend_requirements("cu128", "linux")
    names = {re.split(r"[=<>;]", p)[0].lower() for p in packages}
    distribution = {
        "PIL": "pillow",
        "sklearn": "scikit-learn",
        "skimage": "scikit-image",
        "segment_anything": "segment-anything",
    }
    shipped = Path(install_module.__file__).parent / "backend"
    imported = {
        node.names[0].name.split(".")[0] if isinstance(node, ast.Import) else node.module.split(".")[0]
        for path in shipped.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Import) or (isinstance(node, ast.ImportFrom) and node.level == 0)
    }
    third_party = imported - set(sys.stdlib_module_names) - {"gsplat", "compression"}  # gsplat optional; 3.14's zstd
    assert {distribution.get(name, name) for name in third_party} <= names
    assert options == ["--extra-index-url", "https://download.pytorch.org/whl/cu128"]
    assert not any(p.startswith("gsplat") for p in packages)  # it compiles on first use: needs the CUDA toolkit
    torch_version = next(p for p in packages if p.startswith("torch=="))
    assert torch_version == "torch==2.13.0" and "torchvision==0.28.0" in packages  # the torchvision built for it (SAM)
    packages, options = install_module.backend_requirements("cpu", "win32")
    assert "torchvision==0.28.0" in packages and options == [
        "--extra-index-url",
        "https://download.pytorch.org/whl/cpu",
    ]
    assert install_module.backend_requirements("cpu", "darwin")[1] == []
    with pytest.raises(addon.backend.errors.UserError, match="choose CPU"):
        install_module.torch_build("CUDA", "darwin")


def test_automatic_torch_is_the_cuda_build_exactly_where_an_nvidia_driver_is(addon, tmp_path, monkeypatch):
    driver = tmp_path / "driver"
    driver.mkdir()
    smi = driver / "nvidia-smi"
    smi.write_text("#!/bin/sh\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", str(driver))
    assert addon.backend_install.torch_build("AUTO", "linux") == "cu128"
    monkeypatch.setenv("PATH", str(tmp_path))  # no driver on the PATH
    assert addon.backend_install.torch_build("AUTO", "linux") == "cpu"


def test_download_sam_asks_for_online_access_then_fills_in_the_checkpoint_that_auto_masks_use(addon, blender, tmp_path):
    from download_server import PAYLOAD, Server

    download = addon.sam_download
    assert not blender.app.online_access
    with pytest.raises(addon.backend.errors.UserError, match=r"needs online access: allow it first"):
        download.start("vit_b")
    prefs = addon.addon_preferences.preferences()
    prefs.sam_checkpoint, prefs.sam_model = "", "vit_h"
    server = Server()  # on this machine: no online access needed
    try:
        job = download.start("vit_l", server.checkpoint(), tmp_path)  # a child process: no thread beside Blender's
        job.process.wait(60)
        download.follow(prefs)  # what the timer does
    finally:
        download.stop()
        server.shutdown()
    assert job.state == "done" and (tmp_path / "sam_vit_b_test.pth").read_bytes() == PAYLOAD
    assert prefs.sam_checkpoint == str(tmp_path / "sam_vit_b_test.pth") and prefs.sam_model == "vit_l"
    settings = blender.context.scene.clickgauss
    settings.mask_source, settings.mask_dir = "AUTO", ""  # no mask folder: Auto takes SAM
    arguments = addon.training.mask_arguments(settings, prefs)
    cache = Path(arguments[3])  # among the user data, which outlives each run's folder: a second Train segments nothing
    assert (
        arguments[2] == "--mask-cache" and cache.is_dir() and cache.is_relative_to(os.environ["BLENDER_USER_RESOURCES"])
    )
    assert arguments[4:] == [
        "--sam-checkpoint",
        prefs.sam_checkpoint,
        "--sam-model",
        "vit_l",
    ]
    prefs.sam_checkpoint = ""
