"""The backend as Blender sees it: everything the add-on may call, and the only backend module it imports.

It runs inside Blender's own Python, which has numpy and nothing heavy: every name here comes from a module that
imports numpy only (checked by the import rules in pyproject.toml: torch, scipy, PIL and the rest stay out of
Blender's process; training and view rendering run in the backend's own Python, a child process). A name the
add-on needs is added here, not imported from its module.
"""

from __future__ import annotations

from . import progress
from .cli.protocol import read_progress, user_error
from .device_defaults import DEVICE_DEFAULTS
from .errors import UserError
from .field.click import DEFAULT_THRESHOLDS, Click, Mode, combine
from .field.click_features import level_columns, unit_features
from .field.click_index import ClickIndex, compose
from .field.click_pixels import Geometry
from .field.floaters import DEFAULT_STRENGTH, floater_scores, floaters
from .field.segments import SEGMENT_COLUMNS, UNASSIGNED, segment_file_names, segment_labels
from .field.select_by import ATTRIBUTES, attribute_values, grow, in_range, shrink
from .formats import SPLAT_EXTENSIONS, WRITE_FORMATS, left_out, read_splat, write_splat, write_splats
from .formats.features import COARSE_DIM, FEATURE_DIM, LEVEL_DIMS, FeatureField, Level, load_features
from .formats.ply import column_copies, contiguous_columns, grouped_columns, write_ply
from .formats.splat import (
    DC_COLUMNS,
    POSITION_COLUMNS,
    REQUIRED_COLUMNS,
    ROTATION_COLUMNS,
    SCALE_COLUMNS,
    Splat,
    alphas_of,
    join_splats,
    rest_columns,
    sh_degree_for_rest_count,
)
from .formats.transform import transform_splat
from .ranges import SETTINGS
from .scene.camera import OPENGL_TO_OPENCV, Camera, rigid_inverse
from .scene.colmap import write_colmap_text
from .scene.downloads import SAM_CHECKPOINTS, Checkpoint
from .scene.view_planning import plan_splat_views

__all__ = [
    "ATTRIBUTES",
    "COARSE_DIM",
    "DC_COLUMNS",
    "DEFAULT_STRENGTH",
    "DEFAULT_THRESHOLDS",
    "DEVICE_DEFAULTS",
    "FEATURE_DIM",
    "LEVEL_DIMS",
    "OPENGL_TO_OPENCV",
    "POSITION_COLUMNS",
    "REQUIRED_COLUMNS",
    "ROTATION_COLUMNS",
    "SAM_CHECKPOINTS",
    "SCALE_COLUMNS",
    "SEGMENT_COLUMNS",
    "SETTINGS",
    "SPLAT_EXTENSIONS",
    "UNASSIGNED",
    "WRITE_FORMATS",
    "Camera",
    "Checkpoint",
    "Click",
    "ClickIndex",
    "FeatureField",
    "Geometry",
    "Level",
    "Mode",
    "Splat",
    "UserError",
    "alphas_of",
    "attribute_values",
    "column_copies",
    "combine",
    "compose",
    "contiguous_columns",
    "floater_scores",
    "floaters",
    "grouped_columns",
    "grow",
    "in_range",
    "join_splats",
    "left_out",
    "level_columns",
    "load_features",
    "plan_splat_views",
    "progress",
    "read_progress",
    "read_splat",
    "rest_columns",
    "rigid_inverse",
    "segment_file_names",
    "segment_labels",
    "sh_degree_for_rest_count",
    "shrink",
    "transform_splat",
    "unit_features",
    "user_error",
    "write_colmap_text",
    "write_ply",
    "write_splat",
    "write_splats",
]
