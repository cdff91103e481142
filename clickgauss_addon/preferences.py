"""Add-on preferences: which Python runs the backend (torch never loads into Blender), device, SAM."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import bpy
from bpy.props import EnumProperty, StringProperty

from .backend.errors import UserError

ADDON_DIR = Path(__file__).resolve().parent  # holds backend/, so `python -m backend` runs with it on PYTHONPATH
CHECK_SCRIPT = """
import json, importlib
report = {}
for name in ("torch", "gsplat", "hdbscan", "segment_anything", "scipy", "skimage", "PIL"):
    try:
        module = importlib.import_module(name)
        report[name] = getattr(module, "__version__", "yes")
    except Exception as error:
        report[name] = None
try:
    import torch
    report["device"] = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
except Exception:
    report["device"] = None
print(json.dumps(report))
"""


def preferences(context=None):
    return (context or bpy.context).preferences.addons[__package__].preferences


def backend_python(prefs) -> str:
    """The Python that runs the backend, checked to exist: a clear message beats a failed process."""
    path = bpy.path.abspath(prefs.python_path) if prefs.python_path else ""
    if not path:
        raise UserError("set the backend's Python in Edit > Preferences > Add-ons > Click-Gaussian "
                        "(an environment with torch, e.g. the project's .venv/bin/python)")
    if not Path(path).is_file():
        raise UserError(f"the backend Python {path} does not exist (Preferences > Add-ons > Click-Gaussian)")
    return path


def check_python(python: str) -> dict:
    """What that Python has: versions of the backend's packages (None where missing) and its torch device."""
    try:
        result = subprocess.run([python, "-c", CHECK_SCRIPT], capture_output=True, text=True, timeout=120)
    except OSError as error:
        raise UserError(f"the backend Python {python} cannot run ({error.strerror})") from None
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"the backend Python {python} failed: {last}")
    return json.loads(result.stdout.strip().splitlines()[-1])


class CLICKGAUSS_OT_check_python(bpy.types.Operator):
    """Report what the backend's Python has: torch and its device, gsplat, hdbscan, segment-anything"""

    bl_idname = "clickgauss.check_python"
    bl_label = "Check"

    def execute(self, context):
        try:
            report = check_python(backend_python(preferences(context)))
        except UserError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        missing = [name for name in ("torch", "hdbscan", "scipy", "skimage", "PIL") if report.get(name) is None]
        summary = ", ".join(f"{k} {v}" for k, v in report.items() if v and k != "device")
        level = {"ERROR"} if missing else {"INFO"}
        self.report(level, f"device {report.get('device')}; {summary}"
                    + (f"; missing: {', '.join(missing)}" if missing else ""))
        return {"CANCELLED"} if missing else {"FINISHED"}


class ClickGaussPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    python_path: StringProperty(
        name="Backend Python",
        description="A Python with the backend's packages (torch, hdbscan, scipy, scikit-image, pillow; "
                    "segment-anything for SAM; gsplat on NVIDIA GPUs), e.g. a conda or venv interpreter",
        subtype="FILE_PATH",
    )
    device: EnumProperty(
        name="Device", items=[("auto", "Automatic", "CUDA when present, else the CPU"), ("cuda", "CUDA", ""),
                              ("mps", "Apple MPS", ""), ("cpu", "CPU", "")],
        default="auto",
    )
    sam_checkpoint: StringProperty(name="SAM Checkpoint", description="A segment-anything .pth file", subtype="FILE_PATH")
    sam_model: EnumProperty(name="SAM Model", items=[(m, m, "") for m in ("vit_h", "vit_l", "vit_b")], default="vit_h")

    def draw(self, context):
        layout = self.layout
        row = layout.row(align=True)
        row.prop(self, "python_path")
        row.operator(CLICKGAUSS_OT_check_python.bl_idname, icon="CHECKMARK")
        layout.prop(self, "device")
        layout.prop(self, "sam_checkpoint")
        layout.prop(self, "sam_model")


classes = (CLICKGAUSS_OT_check_python, ClickGaussPreferences)
