"""Preferences > Download SAM checkpoint: Meta's model file into the extension's user folder.

The download itself (URLs, SHA-256, .part and resume) is `backend.scene.downloads`, which knows no bpy; it runs in
a child process of Blender's own Python (no thread beside Blender's: child_process). A Blender timer
follows it, so it goes on when the Preferences window closes; progress shows in the preferences and the status
bar. When the file is whole and checked it becomes the SAM checkpoint, and Automatic masks use SAM.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urlparse

import bpy

from .addon_preferences import ADDON_DIR, preferences, user_data_folder
from .backend.for_blender import SAM_CHECKPOINTS, Checkpoint, UserError
from .child_process import ChildProcess

MODEL_ITEMS = [
    (model, "ViT-" + model[-1].upper(), f"{checkpoint.name}, {checkpoint.size / 1e9:.2f} GB")
    for model, checkpoint in SAM_CHECKPOINTS.items()
]


class DownloadJob(ChildProcess):
    """`downloads.download` in a child process; `follow()` from a timer updates `done`/`total` bytes, `state`
    (running, done, failed) and `message`."""

    def __init__(self, checkpoint: Checkpoint, destination: Path):
        self.checkpoint, self.destination = checkpoint, Path(destination)
        self.done, self.total = 0, checkpoint.size
        self.state, self.message = "running", f"downloading {checkpoint.name}"
        command = [sys.executable, "-m", "backend.scene.downloads", checkpoint.url, checkpoint.sha256]
        super().__init__(
            [*command, str(checkpoint.size), str(self.destination)],
            env=dict(os.environ, PYTHONPATH=str(ADDON_DIR), PYTHONUNBUFFERED="1"),
        )

    @property
    def percent(self) -> float:
        return 100.0 * self.done / max(self.total, 1)

    def follow(self) -> None:
        ended = not self.running  # first: once it has ended, every line it wrote is in
        for line in self.poll():
            self.done, self.total = map(int, line.split())
        if not ended or self.state != "running":
            return
        part = self.destination.with_name(self.destination.name + ".part")
        kept = part.stat().st_size if part.is_file() else 0
        if self.process.returncode == 0:
            self.state, self.message = "done", f"downloaded {self.destination}"
        elif self.process.returncode == 1 and self.stderr:  # the backend's message
            self.state, self.message = "failed", self.stderr[-1].strip()
        else:  # cancelled, or ended by the system
            self.state, self.message = (
                "failed",
                (
                    f"download of {self.checkpoint.name} stopped ({kept:,} of {self.checkpoint.size:,} bytes kept; "
                    "the next try resumes)"
                ),
            )


job: DownloadJob | None = None
job_model = ""  # the SAM model type of the file `job` fetches


def downloading() -> bool:
    return job is not None and job.state == "running"


def start(model: str, checkpoint: Checkpoint | None = None, folder: Path | None = None) -> DownloadJob:
    """A download of `model`'s checkpoint (`checkpoint` and `folder` replace Meta's file and the user folder in
    the tests); refused while Blender's online access is off, unless the file comes from this machine."""
    global job, job_model
    checkpoint = checkpoint or SAM_CHECKPOINTS[model]
    local = urlparse(checkpoint.url).hostname in ("127.0.0.1", "localhost")
    if not local and not bpy.app.online_access:
        raise UserError(
            f"downloading the SAM checkpoint ({checkpoint.size / 1e9:.1f} GB from {checkpoint.url}) needs "
            "online access: allow it first (Edit > Preferences > System > Network)"
        )
    job, job_model = DownloadJob(checkpoint, (folder or user_data_folder("sam")) / checkpoint.name), model
    bpy.app.timers.register(tick, first_interval=0.25)
    return job


def follow(prefs) -> None:
    """One look at the download: when it has ended well, its file is the SAM checkpoint."""
    if job is not None:
        job.follow()
    if job is not None and job.state == "done" and prefs.sam_checkpoint != str(job.destination):
        prefs.sam_checkpoint, prefs.sam_model = str(job.destination), job_model


def tick() -> float | None:
    assert job is not None  # the timer runs for a started download only
    follow(preferences())
    wm = bpy.context.window_manager
    text = (
        f"Click-Gaussian: downloading {job.checkpoint.name}: {job.percent:.0f}% "
        f"({job.done / 1e6:,.0f} of {job.total / 1e6:,.0f} MB)"
        if downloading()
        else None
    )
    for window in wm.windows:
        window.workspace.status_text_set(text)  # the status bar; None gives it back to Blender
        for area in window.screen.areas:
            area.tag_redraw()
    if downloading():
        return 0.25
    print(f"Click-Gaussian: SAM checkpoint download {job.state}: {job.message}")
    return None


def stop() -> None:
    """Cancel (the .part stays for the next try) and stop following; on unregister too."""
    if job is not None and downloading():
        job.cancel()
        job.follow()
    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
        for window in bpy.context.window_manager.windows:
            window.workspace.status_text_set(None)


def draw(prefs, layout) -> None:
    box = layout.box()
    row = box.row(align=True)
    row.prop(prefs, "sam_download_model", text="SAM Model")
    if job is not None and downloading():
        row = box.row()
        row.progress(factor=job.percent / 100, text=f"{job.checkpoint.name} {job.percent:.0f}%")
        row.operator(CLICKGAUSS_OT_cancel_sam_download.bl_idname, text="", icon="CANCEL")
        return
    box.operator(CLICKGAUSS_OT_download_sam.bl_idname, icon="IMPORT")
    if job is not None:
        box.label(text=job.message, icon={"done": "CHECKMARK", "failed": "ERROR"}.get(job.state, "INFO"))


class CLICKGAUSS_OT_download_sam(bpy.types.Operator):
    """Download Meta's Segment Anything checkpoint of the chosen model into the extension's user folder (checked
    against its published SHA-256); Automatic masks then use SAM"""

    bl_idname = "clickgauss.download_sam"
    bl_label = "Download SAM Checkpoint"

    @classmethod
    def poll(cls, context):
        return not downloading()

    def execute(self, context):
        try:
            started = start(preferences(context).sam_download_model)
        except UserError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Downloading {started.checkpoint.name} into {started.destination.parent}")
        return {"FINISHED"}


class CLICKGAUSS_OT_cancel_sam_download(bpy.types.Operator):
    """Stop the download; what arrived is kept apart (.part) and the next download resumes it"""

    bl_idname = "clickgauss.cancel_sam_download"
    bl_label = "Cancel Download"

    @classmethod
    def poll(cls, context):
        return downloading()

    def execute(self, context):
        assert job is not None  # poll: a download runs
        job.cancel()
        return {"FINISHED"}


classes = (CLICKGAUSS_OT_download_sam, CLICKGAUSS_OT_cancel_sam_download)
