"""Views rendered from the splat: planned cameras shown as Blender camera objects, and camera objects as backend
cameras.

When no photos sit beside a splat, training renders its own views. "Plan Views" puts the cameras the
backend plans (backend/scene/view_planning.py, numpy only) into a collection of their own, where the person
moves, deletes or adds cameras; training then renders every camera object of the scene (and, if asked,
the viewport). Conversion only: Blender cameras look down -Z with +Y up; the backend's are OpenCV
(x right, y down, z forward) in the splat's own (file) frame, so the object's transform is undone.
"""

from __future__ import annotations

import re

import bpy
import numpy as np
from mathutils import Matrix

from .backend.for_blender import OPENGL_TO_OPENCV, Camera, UserError, plan_splat_views, rigid_inverse
from .splat_object import is_splat, object_to_splat
from .viewport import view_camera

COLLECTION = "Click-Gaussian Views"
SENSOR_WIDTH = 36.0  # mm, Blender's default


def rigid_part(matrix: np.ndarray, what: str) -> np.ndarray:
    """(4, 4) `matrix` with any uniform scale taken out of its rotation; a UserError for a skewed or uneven one."""
    matrix = np.array(matrix, dtype=np.float64)
    scales = np.linalg.norm(matrix[:3, :3], axis=0)
    rotation = matrix[:3, :3] / scales
    if np.abs(rotation.T @ rotation - np.eye(3)).max() > 1e-4 or np.ptp(scales) > 1e-4 * scales.max():
        raise UserError(f"{what} is scaled unevenly or skewed; apply its scale (Ctrl+A) to render views from it")
    matrix[:3, :3] = rotation
    return matrix


def render_size(scene, long_side: int) -> tuple[int, int]:
    """(width, height) of a rendered view: `long_side` px wide, at the scene's render aspect (the camera's frame)."""
    aspect = (scene.render.resolution_y * scene.render.pixel_aspect_y) / (
        scene.render.resolution_x * scene.render.pixel_aspect_x
    )
    return int(long_side), max(1, round(long_side * aspect))


def camera_from_object(camera_object, splat_object, width: int, height: int, name: str) -> Camera:
    """The backend camera of a Blender camera object, in the splat object's file frame, for a width x height image."""
    data = camera_object.data
    if data.type != "PERSP":
        raise UserError(f"camera '{camera_object.name}' is not a perspective camera; views are rendered with a pinhole")
    local = np.linalg.inv(np.array(splat_object.matrix_world, dtype=np.float64)) @ np.array(
        camera_object.matrix_world, dtype=np.float64
    )
    camera_to_world = rigid_part(local, f"camera '{camera_object.name}' (or '{splat_object.name}')") @ OPENGL_TO_OPENCV
    fit = data.sensor_fit
    if fit == "AUTO":
        fit = "HORIZONTAL" if width >= height else "VERTICAL"
    sensor = data.sensor_width if fit == "HORIZONTAL" or data.sensor_fit == "AUTO" else data.sensor_height
    focal = data.lens / sensor * (width if fit == "HORIZONTAL" else height)
    longest = max(width, height)
    return Camera(
        name,
        width,
        height,
        focal,
        focal,
        width / 2 - data.shift_x * longest,
        height / 2 + data.shift_y * longest,
        rigid_inverse(camera_to_world),
    )


def object_matrix_of(camera: Camera, splat_object) -> np.ndarray:
    """The matrix_world of a Blender camera object that sees what `camera` (file frame) sees."""
    return np.array(splat_object.matrix_world, dtype=np.float64) @ camera.camera_to_world @ OPENGL_TO_OPENCV


def file_up(splat_object) -> np.ndarray:
    """Blender's up (+Z) in the splat's file frame: the planned views stand upright in the viewport."""
    rotation = rigid_part(np.array(splat_object.matrix_world), f"'{splat_object.name}'")[:3, :3]
    return rotation.T @ np.array([0.0, 0.0, 1.0])


def views_collection(context, create: bool = True):
    collection = bpy.data.collections.get(COLLECTION)
    if collection is None and create:
        collection = bpy.data.collections.new(COLLECTION)
        context.scene.collection.children.link(collection)
    return collection


def show_planned_views(context, splat_object, count: int, long_side: int) -> tuple[int, str]:
    """Plan views of `splat_object` and put them as camera objects into the views collection (replacing
    the cameras there); returns the number of views and the layout the planner chose."""
    width, _ = render_size(context.scene, long_side)
    plan = plan_splat_views(
        object_to_splat(splat_object), count, width, up=file_up(splat_object), name=f"'{splat_object.name}'"
    )
    collection = views_collection(context)
    for old in list(collection.objects):
        if old.type == "CAMERA":
            data = old.data
            bpy.data.objects.remove(old)
            if data.users == 0:
                bpy.data.cameras.remove(data)
    for number, camera in enumerate(plan.cameras):
        data = bpy.data.cameras.new(f"View {number:03d}")
        data.sensor_fit, data.sensor_width = "AUTO", SENSOR_WIDTH
        data.lens = camera.fx / camera.width * SENSOR_WIDTH
        data.display_size = 0.25 * plan.extent.radius
        view = bpy.data.objects.new(f"View {number:03d}", data)
        view.matrix_world = Matrix(object_matrix_of(camera, splat_object).tolist())
        collection.objects.link(view)
    return len(plan.cameras), plan.extent.layout


def scene_cameras(context) -> list:
    """The camera objects of the scene that training renders: every visible one, by name."""
    return sorted((o for o in context.scene.objects if o.type == "CAMERA" and o.visible_get()), key=lambda o: o.name)


def file_name(number: int, object_name: str) -> str:
    """A safe, unique image name for a view: masks and the COLMAP model refer to views by it."""
    return f"{number:03d}_{re.sub(r'[^A-Za-z0-9_-]+', '_', object_name)}.png"


def training_views(context, splat_object, long_side: int, use_viewport: bool) -> list[Camera]:
    """The backend cameras of the scene's camera objects, and of the 3D viewport when asked."""
    width, height = render_size(context.scene, long_side)
    cameras = [
        camera_from_object(o, splat_object, width, height, file_name(i, o.name))
        for i, o in enumerate(scene_cameras(context))
    ]
    if use_viewport:
        cameras.append(viewport_view(context, splat_object, long_side, len(cameras)))
    return cameras


def viewport_view(context, splat_object, long_side: int, number: int) -> Camera:
    """The first 3D viewport's view as a backend camera, `long_side` px wide at the viewport's aspect."""
    for area in context.screen.areas if context.screen else ():
        if area.type == "VIEW_3D":
            region = next(r for r in area.regions if r.type == "WINDOW")
            view = area.spaces.active.region_3d
            camera = view_camera(
                region.width, region.height, view.view_matrix, view.window_matrix, splat_object.matrix_world
            )
            camera = camera.resized(long_side, max(1, round(long_side * region.height / region.width)))
            return Camera(
                file_name(number, "viewport"),
                camera.width,
                camera.height,
                camera.fx,
                camera.fy,
                camera.cx,
                camera.cy,
                camera.world_to_camera,
            )
    raise UserError("Include Viewport: no 3D viewport is open")


class CLICKGAUSS_OT_plan_views(bpy.types.Operator):
    """Place cameras around (or inside) the splat from its Gaussians alone, as camera objects in the collection
    'Click-Gaussian Views'; move, delete or add cameras, then Train renders every camera of the scene"""

    bl_idname = "clickgauss.plan_views"
    bl_label = "Plan Views"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return is_splat(context.active_object)

    def execute(self, context):
        settings = context.scene.clickgauss
        try:
            count, layout = show_planned_views(context, context.active_object, settings.view_count, settings.view_size)
        except UserError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        where = "around the scene" if layout == "object" else "inside the scene"
        self.report(
            {"INFO"}, f"Planned {count} views {where} in '{COLLECTION}': move, delete or add cameras, then Train"
        )
        return {"FINISHED"}


classes = (CLICKGAUSS_OT_plan_views,)
