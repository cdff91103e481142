"""Select Floaters: the Gaussians that belong to no surface, with a Strength slider that updates the selection live.

The scores are computed once per splat (`backend/field/floaters.py`, seconds at 1M Gaussians) and kept while its
points stay where they were; a Strength change is then one comparison and a selection write.
"""

from __future__ import annotations

import bpy
import numpy as np

from . import click_cache, feature_store
from .backend.errors import UserError
from .backend.field.floaters import floater_scores, floaters
from .point_attributes import read_positions
from .splat_object import is_splat

_scores: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # point cloud session_uid -> (positions, scores) they are of
_live: dict[int, int] = {}  # point cloud session_uid -> the selection generation that Select Floaters last wrote


def scores_of(obj) -> np.ndarray:
    """(N,) the object's floater scores, computed again only when its points changed."""
    uid = obj.data.session_uid
    positions = read_positions(obj.data)
    kept = _scores.get(uid)
    if kept is not None and np.array_equal(kept[0], positions):
        return kept[1]
    geometry = click_cache.geometry_of(obj)
    scores = floater_scores(geometry.positions, geometry.scales, geometry.opacities)
    _scores[uid] = (positions, scores)
    return scores


def select_floaters(obj, strength: float) -> int:
    """Select the floaters a strength takes (hidden Gaussians never); returns how many."""
    selection = floaters(scores_of(obj), strength) & ~feature_store.read_hidden(obj)
    click_cache.write_selection(obj, selection)
    _live[obj.data.session_uid] = click_cache.generation(obj)
    return int(selection.sum())


def strength_changed(settings, context) -> None:
    """The slider updates the selection while it is still the one Select Floaters made."""
    obj = context.active_object
    if is_splat(obj) and _live.get(obj.data.session_uid) == click_cache.generation(obj):
        select_floaters(obj, settings.floater_strength)


class CLICKGAUSS_OT_select_floaters(bpy.types.Operator):
    """Select the Gaussians that belong to no surface: isolated from the others, or faint and far larger than the
    detail around them. The Strength slider then updates the selection; Delete cleans the capture"""

    bl_idname = "clickgauss.select_floaters"
    bl_label = "Select Floaters"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return is_splat(context.active_object)

    def execute(self, context):
        obj = context.active_object
        strength = context.scene.clickgauss.floater_strength
        try:
            if len(obj.data.points) == 0:
                raise UserError(f"'{obj.name}' has no Gaussians")
            count = select_floaters(obj, strength)
        except UserError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        total = len(obj.data.points)
        self.report({"INFO"}, f"Selected {count:,} floaters of {total:,} Gaussians (strength {strength:g})")
        return {"FINISHED"}


classes = (CLICKGAUSS_OT_select_floaters,)
