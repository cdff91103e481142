"""Add-on preferences: which Python runs the backend (torch never loads into Blender), installing one, device, SAM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import bpy
from bpy.props import EnumProperty, StringProperty

from . import backend_install, sam_download
from .addon_preferences import ADDON_DIR, preferences, user_data_folder
from .backend.for_blender import UserError

CHECK_SCRIPT = """
import json, importlib
report, errors = {}, {}
for name in ("torch", "gsplat", "hdbscan", "torchvision", "segment_anything", "scipy", "skimage", "PIL"):
    try:
        module = importlib.import_module(name)
        report[name] = getattr(module, "__version__", "yes")
    except Exception as error:
        report[name] = None
        errors[name] = (str(error).strip().splitlines() or [type(error).__name__])[-1]
report["errors"] = errors
try:
    from backend.device import resolve_device
    report["device"] = resolve_device("auto")
except Exception:
    report["device"] = None
print(json.dumps(report))
"""


def backend_python(prefs) -> str:
    """The Python that runs the backend, checked to exist: a clear message beats a failed process."""
    path = bpy.path.abspath(prefs.python_path) if prefs.python_path else ""
    if not path:
        raise UserError(
            "set the backend's Python in Edit > Preferences > Add-ons > Click-Gaussian "
            "(an environment with torch, e.g. the project's .venv/bin/python)"
        )
    if not Path(path).is_file():
        raise UserError(f"the backend Python {path} does not exist (Preferences > Add-ons > Click-Gaussian)")
    return path


def check_python(python: str) -> dict:
    """What that Python has: versions of the backend's packages (None where missing) and its torch device."""
    try:
        result = subprocess.run(
            [python, "-c", CHECK_SCRIPT],
            capture_output=True,
            text=True,
            timeout=120,
            env=dict(os.environ, PYTHONPATH=str(ADDON_DIR)),
        )
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
        summary = ", ".join(f"{k} {v}" for k, v in report.items() if v and k not in ("device", "errors"))
        level = {"ERROR"} if missing else {"INFO"}
        self.report(
            level,
            f"device {report.get('device')}; {summary}"
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + (f"; SAM unavailable: {why}" if (why := sam_unavailable(report)) else ""),
        )
        return {"CANCELLED"} if missing else {"FINISHED"}


def sam_status(prefs) -> str:
    """Why SAM cannot run in the Backend Python, where that is the install's and its import check found out; ''."""
    folder = Path(bpy.path.abspath(prefs.install_folder)) if prefs.install_folder else None
    if folder is None or not prefs.python_path or Path(prefs.python_path) != backend_install.env_python(folder):
        return ""
    return backend_install.sam_problem(folder)


def sam_unavailable(report: dict) -> str:
    """Why a Check report's Python cannot run SAM ('' if it can): the module that does not import, and its error."""
    errors = report.get("errors", {})
    for name in ("segment_anything", "torchvision"):
        if report.get(name) is None:
            return f"{name} does not import: {errors.get(name, 'not installed')}"
    return ""


install_job: backend_install.InstallJob | None = None  # the latest install: its progress, then how it ended


def installing() -> bool:
    return install_job is not None and install_job.state == "running"


def start_install(prefs, requirements=None, pip_options=()) -> backend_install.InstallJob:
    """An install into the chosen folder, from Blender's own Python; `requirements` and `pip_options` replace the
    backend's packages and index (the tests install a tiny local wheel)."""
    if requirements is None:
        build = backend_install.torch_build(prefs.install_torch)
        requirements, pip_options = backend_install.backend_requirements(build)
    if "--no-index" not in pip_options and not bpy.app.online_access:
        raise UserError(
            "installing downloads the packages from PyPI: allow online access first "
            "(Edit > Preferences > System > Network)"
        )
    if not prefs.install_folder:
        raise UserError("choose the Install Folder for the backend's Python")
    folder = Path(bpy.path.abspath(prefs.install_folder))
    return backend_install.InstallJob(folder, sys.executable, requirements, pip_options)


def follow_install(prefs, job) -> list[backend_install.Progress]:
    """One timer tick of an install: the progress that arrived; when it ends well, its Python is the Backend Python."""
    arrived = job.poll()
    if arrived and job.state == "done":
        prefs.python_path = str(job.python)
    return arrived


def install_tick() -> float | None:
    """A Blender timer, not a window's modal handler: the install goes on when the Preferences window is closed."""
    assert install_job is not None  # the timer runs for a started install only
    wm = bpy.context.window_manager
    follow_install(preferences(), install_job)
    wm.progress_update(install_job.progress.percent)
    for window in wm.windows:
        for area in window.screen.areas:
            area.tag_redraw()
    if installing():
        return 0.25
    wm.progress_end()
    print(f"Click-Gaussian: backend install {install_job.state}: {install_job.message}")
    return None


class CLICKGAUSS_OT_install_backend(bpy.types.Operator):
    """Create a Python environment in the Install Folder and install the backend's packages there with pip (torch and
    the rest: about 1 GB for the CPU, a few GB for CUDA); when it ends well it becomes the Backend Python"""

    bl_idname = "clickgauss.install_backend"
    bl_label = "Install"

    @classmethod
    def poll(cls, context):
        return not installing()

    def execute(self, context):
        global install_job
        try:
            install_job = start_install(preferences(context))
        except UserError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        context.window_manager.progress_begin(0, 100)
        bpy.app.timers.register(install_tick, first_interval=0.25)
        self.report({"INFO"}, f"Installing the backend into {install_job.folder}: progress in the preferences")
        return {"FINISHED"}


def cancel_running_install() -> None:
    """On unregister: no pip left running, the folder put back."""
    if install_job is not None and installing():
        install_job.cancel()
    if bpy.app.timers.is_registered(install_tick):
        bpy.app.timers.unregister(install_tick)  # its last tick, which ends the progress bar, will not come
        bpy.context.window_manager.progress_end()


class CLICKGAUSS_OT_cancel_install(bpy.types.Operator):
    """Stop the install; the Install Folder is put back as it was"""

    bl_idname = "clickgauss.cancel_install"
    bl_label = "Cancel Install"

    @classmethod
    def poll(cls, context):
        return installing()

    def execute(self, context):
        install_job.cancel()  # the install's timer sees it on its next tick
        return {"FINISHED"}


class ClickGaussPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    python_path: StringProperty(
        name="Backend Python",
        description="A Python with the backend's packages (torch, hdbscan, scipy, scikit-image, pillow; "
        "segment-anything and torchvision for SAM), e.g. a conda or venv interpreter",
        subtype="FILE_PATH",
    )
    install_folder: StringProperty(
        name="Install Folder",
        description="Where Install puts a Python environment with the backend's packages: an empty or new folder, "
        "or one that Install filled before (replaced once the new install ends well)",
        subtype="DIR_PATH",
        default=str(user_data_folder("backend", create=False)),
    )
    install_torch: EnumProperty(
        name="Torch",
        description="Which build of torch Install gets",
        items=[
            ("AUTO", "Automatic", "CUDA 12.8 where an NVIDIA driver is installed (nvidia-smi is found), else CPU"),
            (
                "CUDA",
                "CUDA 12.8",
                "torch for NVIDIA GPUs from PyTorch's CUDA 12.8 index "
                f"({backend_install.TORCH_INDEX}cu128); "
                "needs a recent NVIDIA driver",
            ),
            (
                "CPU",
                "CPU",
                f"torch without CUDA from PyTorch's CPU index ({backend_install.TORCH_INDEX}cpu), "
                "a much smaller download; on macOS PyPI's torch, which uses Apple's MPS",
            ),
        ],
        default="AUTO",
    )
    device: EnumProperty(
        name="Device",
        items=[
            ("auto", "Automatic", "An NVIDIA GPU (CUDA), else an Apple GPU (MPS), else the CPU"),
            ("cuda", "CUDA", ""),
            ("mps", "Apple MPS", ""),
            ("cpu", "CPU", ""),
        ],
        default="auto",
    )
    sam_checkpoint: StringProperty(
        name="SAM Checkpoint",
        description="A segment-anything .pth file (Download fills it in); Automatic masks use SAM when it is set",
        subtype="FILE_PATH",
    )
    sam_model: EnumProperty(name="SAM Model", items=[(m, m, "") for m in ("vit_h", "vit_l", "vit_b")], default="vit_h")
    sam_download_model: EnumProperty(
        name="Download",
        description="Which of Meta's SAM checkpoints Download gets",
        items=sam_download.MODEL_ITEMS,
        default="vit_b",
    )

    def draw(self, context):
        layout = self.layout
        row = layout.row(align=True)
        row.prop(self, "python_path")
        row.operator(CLICKGAUSS_OT_check_python.bl_idname, icon="CHECKMARK")
        self.draw_install(layout.box())
        layout.prop(self, "device")
        layout.prop(self, "sam_checkpoint")
        layout.prop(self, "sam_model")
        sam_download.draw(self, layout)

    def draw_install(self, box):
        box.prop(self, "install_folder")
        box.prop(self, "install_torch")
        if installing():
            progress = install_job.progress
            row = box.row()
            row.progress(factor=progress.percent / 100, text=f"{progress.phase} {progress.percent:.0f}%")
            row.operator(CLICKGAUSS_OT_cancel_install.bl_idname, text="", icon="CANCEL")
            box.label(text=progress.line)
            return
        again = backend_install.installed(Path(bpy.path.abspath(self.install_folder)))
        box.operator(CLICKGAUSS_OT_install_backend.bl_idname, text="Reinstall" if again else "Install", icon="IMPORT")
        if install_job:
            box.label(
                text=install_job.message, icon={"done": "CHECKMARK", "failed": "ERROR"}.get(install_job.state, "INFO")
            )


classes = (
    CLICKGAUSS_OT_check_python,
    CLICKGAUSS_OT_install_backend,
    CLICKGAUSS_OT_cancel_install,
    *sam_download.classes,
    ClickGaussPreferences,
)
