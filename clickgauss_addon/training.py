"""Training from the panel: the backend runs as a child process, so Blender stays responsive.

The child gets the object's splat as it is now (written to a temporary folder), reports progress
as JSON lines, and writes the features there. Every few hundred steps it writes the field so far
(a checkpoint): it goes onto the object at once, so clicks work long before the run ends, and the
panel and the click header say which step they use. A cancelled or failed run puts the object's
features back as they were before Train.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import bpy

from . import click_cache, feature_store, view_cameras
from .addon_preferences import ADDON_DIR, preferences, user_data_folder
from .backend.for_blender import (
    FeatureField,
    UserError,
    load_features,
    progress,
    read_progress,
    user_error,
    write_colmap_text,
    write_ply,
)
from .child_process import ChildProcess
from .preferences import backend_python
from .splat_object import is_splat, object_to_splat


class TrainingJob(ChildProcess):
    """One backend `train` process for one object; `poll()` from a timer, then `features()` or `error()`."""

    def __init__(self, obj, settings, prefs, views=None):
        """`views`: backend cameras to render from the splat instead of reading photos (view_cameras.training_views)."""
        self.object_name = obj.name
        self.python = backend_python(prefs)
        if views is None:
            images, cameras = bpy.path.abspath(settings.images_dir), bpy.path.abspath(settings.cameras_path)
            if not images or not Path(images).is_dir():
                raise UserError(
                    f"Photos: choose the folder of photos the splat was trained from (now {images or 'empty'})"
                )
            if not cameras or not Path(cameras).exists():
                raise UserError(
                    f"Cameras: choose a COLMAP folder, transforms.json or poses_bounds.npy (now {cameras or 'empty'})"
                )
            scene = [
                "--images",
                images,
                "--cameras",
                cameras,
                *(["--downscale", str(settings.downscale)] if settings.downscale else []),
            ]  # 0: the device's
        elif not views:
            raise UserError("no cameras to render views from: press Plan Views, or add a camera")
        self.splat = object_to_splat(obj)
        self.folder = Path(tempfile.mkdtemp(prefix="clickgauss-train-"))
        write_ply(self.folder / "splat.ply", self.splat)
        if views is not None:  # rendered by the backend from the splat at their own size, cached in features.npz.views/
            write_colmap_text(self.folder / "views", views)
            scene = ["--cameras", str(self.folder / "views"), "--downscale", "1"]
        command = [
            self.python,
            "-m",
            "backend",
            "train",
            "--splat",
            str(self.folder / "splat.ply"),
            *scene,
            "--out",
            str(self.folder / "features.npz"),
            "--progress",
            "json",
            "--device",
            prefs.device,
            *(["--iterations", str(settings.iterations)] if settings.iterations else []),
            *(["--checkpoint-every", str(settings.checkpoint_every)] if settings.checkpoint_every else []),
            "--parent-link",
            str(self.folder),
            *mask_arguments(settings, prefs),
        ]
        self.before = None  # FeaturesBefore, once a checkpoint has changed the object
        environment = dict(os.environ, PYTHONPATH=str(ADDON_DIR), PYTHONUNBUFFERED="1")
        try:
            # stdin stays open while Blender runs: the child ends, and removes the folder, when it closes
            super().__init__(command, env=environment, cwd=self.folder, stdin=subprocess.PIPE)
        except OSError as error:
            self.cleanup()
            raise UserError(f"the backend Python {self.python} cannot run ({error.strerror})") from None

    def events(self) -> list[progress.ProgressEvent]:
        """The progress events that arrived since the last call."""
        return [event for event in map(read_progress, super().poll()) if event is not None]

    def features(self, path: str | None = None) -> FeatureField:
        """The finished run's FeatureField, or the checkpoint at `path`, checked against the splat it was given."""
        return load_features(path or self.folder / "features.npz", self.splat)

    def follow(self, settings) -> None:
        """What arrived since the last call: progress onto the panel, each checkpoint onto the object."""
        for event in self.events():
            if isinstance(event, progress.Checkpoint):
                self.use_checkpoint(settings, event.path)
            else:
                describe(settings, event)

    def use_checkpoint(self, settings, path: str) -> None:
        """The field so far onto the object (its features before Train kept, for a cancel), clickable at once."""
        obj = bpy.data.objects.get(self.object_name)
        try:
            field = self.features(path)
        except UserError:
            return  # already replaced by the next one: that one, or the result, will do
        if obj is None or len(obj.data.points) != field.count:
            return  # the end says what is wrong
        if self.before is None:
            self.before = FeaturesBefore(obj)
        click_cache.store_features(obj, field.features, field.centers, field.step, field.granularity_prior)
        settings.checkpoint_step = field.step

    def restore(self) -> bool:
        """After a cancel or failure: the object's features as before Train; whether checkpoints had changed them."""
        obj = bpy.data.objects.get(self.object_name)
        if self.before is None or obj is None:
            return False
        self.before.restore(obj)
        return True

    def error(self) -> str:
        message = user_error(self.stderr)
        if message:
            return message
        lines = [line.strip() for line in self.stderr if line.strip()]
        return f"training stopped (exit code {self.process.returncode}): {lines[-1] if lines else 'no message'}"

    def cleanup(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class FeaturesBefore:
    """The object's features as they were before Train, put back when a run that stored checkpoints fails."""

    def __init__(self, obj):
        self.features = feature_store.read_features(obj) if feature_store.has_features(obj) else None
        self.centers = {key: obj.data.get(key) for key in feature_store.CENTERS_KEYS.values()}
        self.prior = feature_store.granularity_prior(obj)

    def restore(self, obj) -> None:
        if self.features is None:
            click_cache.remove_features(obj)
            return
        click_cache.store_features(obj, self.features, prior=self.prior)
        for key, centers in self.centers.items():
            if centers is not None:
                obj.data[key] = centers


def mask_arguments(settings, prefs) -> list[str]:
    """The masks' options; their cache lives among the user data, so a second Train of a splat segments nothing."""
    source = settings.mask_source.lower()
    arguments = ["--masks", source, "--mask-cache", str(user_data_folder("masks"))]
    if prefs.sam_checkpoint and source in ("auto", "sam"):
        arguments += ["--sam-checkpoint", bpy.path.abspath(prefs.sam_checkpoint), "--sam-model", prefs.sam_model]
    if settings.mask_dir and source in ("auto", "folder"):
        arguments += ["--mask-dir", bpy.path.abspath(settings.mask_dir)]
    return arguments


class CLICKGAUSS_OT_train(bpy.types.Operator):
    """Learn the Click-Gaussian features of the active splat from its photos (in a separate process; Esc cancels)"""

    bl_idname = "clickgauss.train"
    bl_label = "Train Features"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return is_splat(context.active_object) and not context.scene.clickgauss.training

    def execute(self, context):
        settings = context.scene.clickgauss
        try:
            self.job = TrainingJob(context.active_object, settings, preferences(context), rendered_views(context))
        except UserError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        settings.training, settings.progress, settings.status, settings.checkpoint_step = True, 0.0, "starting", -1
        self.timer = context.window_manager.event_timer_add(0.25, window=context.window)
        context.window_manager.modal_handler_add(self)
        context.window_manager.progress_begin(0, 100)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        settings = context.scene.clickgauss
        if event.type == "ESC" or not settings.training:  # Esc, or the panel's Cancel
            self.job.cancel()
            return self.end(context, "Training cancelled", {"WARNING"}, {"CANCELLED"})
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        self.job.follow(settings)
        context.window_manager.progress_update(settings.progress)
        for area in context.screen.areas:
            area.tag_redraw()
        if self.job.running:
            return {"PASS_THROUGH"}
        if self.job.process.returncode != 0:
            return self.end(context, f"Training failed: {self.job.error()}", {"ERROR"}, {"CANCELLED"})
        return self.use_result(context)

    def use_result(self, context):
        obj = bpy.data.objects.get(self.job.object_name)
        try:
            field = self.job.features()
            if obj is None:
                raise UserError(f"the object '{self.job.object_name}' is gone")
            if object_to_splat(obj).count != field.count:
                raise UserError(f"'{obj.name}' changed while training ran; train it again")
            click_cache.store_features(obj, field.features, field.centers, prior=field.granularity_prior)
        except UserError as error:
            return self.end(context, f"Training failed: {error}", {"ERROR"}, {"CANCELLED"})
        return self.end(
            context, f"Trained features for {field.count:,} Gaussians of '{obj.name}'", {"INFO"}, {"FINISHED"}
        )

    def end(self, context, message, level, result):
        context.window_manager.event_timer_remove(self.timer)
        context.window_manager.progress_end()
        settings = context.scene.clickgauss
        if result != {"FINISHED"} and self.job.restore():
            message += (
                f"; clicks used the field ({feature_store.field_name(settings.checkpoint_step)}) meanwhile, "
                "the object's features are back as before Train"
            )
        elif result != {"FINISHED"}:
            message += ("; " if message.startswith("Training failed") else ": ") + "the object is unchanged"
        settings.training, settings.status, settings.checkpoint_step = False, message, -1
        self.job.cleanup()
        self.report(level, message)
        return result


def rendered_views(context):
    """None when there are photos to train from; else the cameras whose views the backend renders from the splat:
    the scene's camera objects (planned first, and shown, when there are none) and the viewport if asked."""
    settings = context.scene.clickgauss
    if settings.images_dir:
        return None
    if not view_cameras.scene_cameras(context):
        view_cameras.show_planned_views(context, context.active_object, settings.view_count, settings.view_size)
    return view_cameras.training_views(context, context.active_object, settings.view_size, settings.use_viewport)


def describe(settings, event: progress.ProgressEvent) -> None:
    """A progress event as the panel's bar and status line."""
    if isinstance(event, progress.Iterations):
        settings.progress = 100.0 * event.iteration / event.of
        settings.status = f"{event.iteration}/{event.of} · loss {event.loss:.3f} · {event.remaining_s:.0f} s left"
    elif isinstance(event, progress.Rendering):
        settings.status = f"rendering view {event.view}/{event.of}"
    else:
        settings.status = event.phase + (f": {event.source}" if isinstance(event, progress.Masks) else "")


class CLICKGAUSS_OT_cancel_training(bpy.types.Operator):
    """Stop the running training; the object stays as it was"""

    bl_idname = "clickgauss.cancel_training"
    bl_label = "Cancel Training"

    def execute(self, context):
        context.scene.clickgauss.training = False  # the training operator sees it on its next timer tick
        return {"FINISHED"}


classes = (CLICKGAUSS_OT_train, CLICKGAUSS_OT_cancel_training)
