"""Apply Transform and Join for splats, and the guard that keeps Blender's own Apply (Ctrl+A) from corrupting one.

A Gaussian is more than a point: baking a transform into a splat turns and scales each
Gaussian and turns its spherical harmonics too (backend.formats.transform). Blender's Object > Apply
moves the point positions only. Its operator cannot be replaced from an add-on (the menu entry
and the Ctrl+A key reach it whatever a key map says), so the guard detects it instead: each splat
object keeps a fingerprint (its world matrix and a few of its positions, an ID property, so undo,
redo and saved files keep it in step with the data). When the matrix and the positions have both
changed yet the world positions have not, a transform D was applied to the points; the guard
then applies D to everything else. It runs after every depsgraph update and again before export,
Apply and Join, so a missed update cannot leak into a file.

Blender's own Join (Ctrl+J) merges splats as plain points too: the parts' positions move into the
active object's frame, their Gaussians and SH do not, and the active object's column layout hides
the others' extra SH. It cannot be repaired afterwards (the other objects and their transforms are
gone), so the Ctrl+J key is intercepted instead: an add-on key map item (__init__.py), which
Blender puts before its own, runs Join Splats when the active object is a splat and at least two
splats are selected; otherwise its poll fails and the key falls through to Blender's Join. The
Object > Join menu entry reaches Blender's operator directly and is not guarded; Join Splats sits
beside it.
"""

from __future__ import annotations

import bpy
import numpy as np
from bpy.app.handlers import persistent

from . import click_cache, feature_store
from .backend.for_blender import POSITION_COLUMNS, Splat, UserError, join_splats, transform_splat
from .compat import HAS_NATIVE_SPLATS
from .point_attributes import get_attribute, set_attribute
from .splat_object import (
    FILE_AXES_KEY,
    SHOWN_RADIUS_ATTRIBUTE,
    is_splat,
    object_to_splat,
    source_axes,
    splat_to_object,
    write_columns,
)

FINGERPRINT_KEY = "_cg_transform_fingerprint"  # count, matrix_world (16, by rows), SAMPLES positions; "_": not shown
SAMPLES = 8


def radius_growth(before: Splat, after: Splat) -> np.ndarray:  # (N,) float32
    """How much each display radius grows: the ratio of the middle axes (the display uses the middle one)."""
    return np.exp(np.sort(after.scales, axis=1)[:, 1] - np.sort(before.scales, axis=1)[:, 1]).astype(np.float32)


def write_back(obj, before: Splat, after: Splat, positions: bool = True) -> None:
    """Store the columns `after` changed from `before` in obj's attributes; display radii grow with the scales."""
    cloud = obj.data
    changed = [name for name, values in after.columns.items() if values is not before.columns[name]]
    write_columns(cloud, after, [name for name in changed if positions or name not in POSITION_COLUMNS])
    growth = radius_growth(before, after)
    for name in ("radius", SHOWN_RADIUS_ATTRIBUTE):
        if name in cloud.attributes:
            set_attribute(cloud, name, "FLOAT", get_attribute(cloud, name, np.float32) * growth)
    click_cache.forget(obj)


def fingerprint(obj) -> list[float]:
    cloud = obj.data
    count = len(cloud.points)
    vectors = cloud.attributes["position"].data
    sample = (
        [c for i in np.linspace(0, count - 1, SAMPLES).astype(int) for c in vectors[int(i)].vector] if count else []
    )
    return [float(count)] + [v for row in obj.matrix_world for v in row] + sample


def remember(obj) -> None:
    """Take the object's current matrix and positions as correct."""
    obj[FINGERPRINT_KEY] = fingerprint(obj)


def world_sample(values: np.ndarray) -> np.ndarray:  # (SAMPLES, 3) world positions of a fingerprint
    matrix, sample = values[1:17].reshape(4, 4), values[17:].reshape(-1, 3)
    return sample @ matrix[:3, :3].T + matrix[:3, 3]


def guard(obj) -> bool:
    """Finish a Blender Apply Transform that moved only `obj`'s positions; True when it did."""
    now = np.array(fingerprint(obj))
    stored = obj.get(FINGERPRINT_KEY)
    before = None if stored is None else np.array(stored)  # a copy: the ID property is live
    if before is not None and np.array_equal(before, now):
        return False
    obj[FINGERPRINT_KEY] = now.tolist()
    if before is None or len(before) != len(now) or before[0] != now[0] or now[0] == 0:
        return False  # new, or points added or removed: nothing to compare
    moved_matrix = not np.allclose(before[1:17], now[1:17], rtol=0, atol=1e-7)
    moved_points = not np.allclose(before[17:], now[17:], rtol=0, atol=1e-7)
    reach = max(1.0, float(np.abs(world_sample(before)).max()))
    if not (
        moved_matrix
        and moved_points
        and np.allclose(world_sample(before), world_sample(now), rtol=0, atol=1e-4 * reach)
    ):
        return False
    applied = np.linalg.inv(now[1:17].reshape(4, 4)) @ before[1:17].reshape(4, 4)  # what moved the points
    splat = object_to_splat(obj)
    write_back(obj, splat, transform_splat(splat, applied), positions=False)
    return True


@persistent
def guard_applied_transforms(scene, depsgraph) -> None:
    """After each update: finish Blender's Apply Transform on any splat it touched."""
    for update in depsgraph.updates:
        if isinstance(update.id, bpy.types.Object) and is_splat(update.id.original):
            try:
                if guard(update.id.original):
                    print(
                        f"Click-Gaussian: '{update.id.original.name}': Apply Transform turned and scaled its Gaussians "
                        "and spherical harmonics too"
                    )
            except UserError as error:  # e.g. attributes removed by hand: export will name the problem
                print(f"Click-Gaussian: {error}")


def bake_transform(obj) -> bool:
    """Bake the object's own transform (matrix_basis) into its Gaussians; its matrix becomes identity."""
    guard(obj)
    splat = object_to_splat(obj)
    baked = transform_splat(splat, np.array(obj.matrix_basis))
    if baked is splat:
        return False
    write_back(obj, splat, baked)
    obj.matrix_basis.identity()
    remember(obj)
    return True


def join_splat_objects(target, others) -> tuple[object, list[str]]:
    """One new object in `target`'s place holding every Gaussian of target and others, each baked into
    target's frame; hidden Gaussians come back shown. Returns it and what was dropped (columns,
    features) for the report."""
    objects = [target] + [obj for obj in others if obj != target]
    to_target = np.linalg.inv(np.array(target.matrix_world))
    parts, radii = [], []
    for obj in objects:
        guard(obj)
        splat = object_to_splat(obj)
        moved = transform_splat(splat, to_target @ np.array(obj.matrix_world))
        if not HAS_NATIVE_SPLATS:  # the result is drawn as discs: each part keeps its point size
            shown = SHOWN_RADIUS_ATTRIBUTE if SHOWN_RADIUS_ATTRIBUTE in obj.data.attributes else "radius"
            radii.append(get_attribute(obj.data, shown, np.float32) * radius_growth(splat, moved))
        parts.append(moved)
    joined, dropped = join_splats(parts)
    featured = [feature_store.has_features(obj) for obj in objects]
    features = np.concatenate([feature_store.read_features(obj) for obj in objects]) if all(featured) else None
    centers = {key: {obj.data.get(key) for obj in objects} for key in feature_store.CENTERS_KEYS.values()}
    if any(featured) and not all(featured):
        dropped.append(
            "features (" + ", ".join(f"'{o.name}'" for o, f in zip(objects, featured) if not f) + " has none)"
        )
    name, matrix, collection = target.name, target.matrix_world.copy(), target.users_collection[0]
    result = splat_to_object(joined, name, collection, matrix)
    axes = source_axes(target.data)
    if axes is not None:
        result.data[FILE_AXES_KEY] = list(axes)
    if radii:
        set_attribute(result.data, "radius", "FLOAT", np.concatenate(radii))
    if features is not None:
        click_cache.store_features(result, features, prior=all(feature_store.granularity_prior(o) for o in objects))
        for key, kept in centers.items():
            if len(kept) == 1 and None not in kept:  # parts of one training keep its clusters
                result.data[key] = kept.pop()
    for obj in objects:
        bpy.data.objects.remove(obj)
    result.name = result.data.name = name
    remember(result)
    return result, dropped


class CLICKGAUSS_OT_apply_transform(bpy.types.Operator):
    """Bake the splat's location, rotation and scale into its Gaussians (positions, orientations, sizes and view-dependent colour); its transform becomes identity"""  # noqa: E501  Blender's tooltip: one line

    bl_idname = "clickgauss.apply_transform"
    bl_label = "Apply Transform to Splat"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return any(is_splat(obj) for obj in context.selected_objects) or is_splat(context.active_object)

    def execute(self, context):
        objects = [obj for obj in context.selected_objects if is_splat(obj)] or [context.active_object]
        try:
            baked = [obj.name for obj in objects if bake_transform(obj)]
        except UserError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report(
            {"INFO"},
            f"Applied the transform of {', '.join(baked)}"
            if baked
            else "Nothing to apply: the transform is already identity",
        )
        return {"FINISHED"}


class CLICKGAUSS_OT_join(bpy.types.Operator):
    """Join the selected splats into the active one, each kept where it stands (SH padded to the highest degree; features kept when every part has them)"""  # noqa: E501  Blender's tooltip: one line

    bl_idname = "clickgauss.join"
    bl_label = "Join Splats"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return is_splat(context.active_object) and sum(is_splat(obj) for obj in context.selected_objects) >= 2

    def execute(self, context):
        target = context.active_object
        others = [obj for obj in context.selected_objects if is_splat(obj) and obj != target]
        if any(obj.data.users > 1 for obj in [target] + others):
            self.report(
                {"ERROR"}, "A selected splat shares its data with another object (Alt+D); make it single user first"
            )
            return {"CANCELLED"}
        try:
            result, dropped = join_splat_objects(target, others)
        except UserError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        result.select_set(True)
        context.view_layer.objects.active = result
        level = "WARNING" if dropped else "INFO"
        self.report(
            {level},
            f"Joined {len(others) + 1} splats into '{result.name}' ({len(result.data.points):,} Gaussians)"
            + (f"; dropped: {', '.join(dropped)}" if dropped else ""),
        )
        return {"FINISHED"}


def menu_apply(self, context):
    self.layout.operator(CLICKGAUSS_OT_apply_transform.bl_idname)


def menu_join(self, context):
    self.layout.operator(CLICKGAUSS_OT_join.bl_idname)


MENUS = ((bpy.types.VIEW3D_MT_object_apply, menu_apply), (bpy.types.VIEW3D_MT_object, menu_join))
classes = (CLICKGAUSS_OT_apply_transform, CLICKGAUSS_OT_join)


def register() -> None:
    for menu, entry in MENUS:
        menu.append(entry)
    bpy.app.handlers.depsgraph_update_post.append(guard_applied_transforms)


def unregister() -> None:
    if guard_applied_transforms in bpy.app.handlers.depsgraph_update_post:
        bpy.app.handlers.depsgraph_update_post.remove(guard_applied_transforms)
    for menu, entry in MENUS:
        menu.remove(entry)
