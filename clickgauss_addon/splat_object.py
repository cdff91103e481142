"""Conversion between the backend's Splat and a Blender point-cloud object.

Every file column becomes a point attribute holding the raw stored value (x y z become the
built-in `position`), and the column order, types and header comments are kept on the data
block, so an unedited object exports exactly what was imported. The display attributes
(`radius`, `cg_color`, and while Gaussians are hidden `cg_hidden` and `cg_shown_radius`) are
derived or viewport state, never exported.
"""

from __future__ import annotations

import hashlib
import json

import bpy
import numpy as np

from .backend.errors import UserError
from .backend.formats.ply import contiguous_columns
from .backend.formats.splat import POSITION_COLUMNS, REQUIRED_COLUMNS, ROTATION_COLUMNS, SCALE_COLUMNS, Splat
from .compat import new_point_cloud, shader_node_tree
from .point_attributes import get_attribute, read_positions, set_attribute

LAYOUT_KEY = "cg_ply_columns"  # JSON [column, type code, attribute] per column, in file order (older: "name:code,...")
COMMENTS_KEY = "cg_ply_comments"
COLOR_ATTRIBUTE = "cg_color"
HIDDEN_ATTRIBUTE = "cg_hidden"  # BOOLEAN: hidden Gaussians, drawn at radius 0 and ignored by clicks
SHOWN_RADIUS_ATTRIBUTE = "cg_shown_radius"  # the display radii to restore when the hidden Gaussians are revealed
DISPLAY_ATTRIBUTES = {"position", "radius", COLOR_ATTRIBUTE, HIDDEN_ATTRIBUTE, SHOWN_RADIUS_ATTRIBUTE}
GEOMETRY_COLUMNS = POSITION_COLUMNS + ("opacity",) + SCALE_COLUMNS + ROTATION_COLUMNS  # what a footprint depends on
RESERVED_PREFIX = "ply_"  # a file column whose name Blender or display uses is stored under this prefix
MAX_ATTRIBUTE_BYTES = (
    63  # Blender's attribute names are at most 63 bytes (67 from 4.x on: the lower bound holds for all)
)


def attribute_name(column: str) -> str:
    """The attribute a file column is stored in when Blender takes it: its own name, unless display uses it."""
    return fitted(RESERVED_PREFIX + column if column in DISPLAY_ATTRIBUTES or column.startswith(".") else column)


def fitted(name: str) -> str:
    """`name`, or when longer than Blender allows, its start and a hash of the whole (still one name per column)."""
    if len(name.encode()) <= MAX_ATTRIBUTE_BYTES:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return name.encode()[: MAX_ATTRIBUTE_BYTES - 9].decode(errors="ignore") + "~" + digest


def store_column(mesh, column: str, values: np.ndarray) -> str:
    """Store a file column as a point attribute; the attribute's name, which the layout records for export.

    A PLY allows any column name; Blender refuses some (longer than its limit, its built-in mesh
    attributes such as material_index or sharp_face, which have their own domain and type) and
    renames others. Such a column is stored under the reserved prefix instead, its name kept in the layout.
    """
    kind, stored = storage(values)
    for name in dict.fromkeys((attribute_name(column), fitted(RESERVED_PREFIX + column))):
        if name in mesh.attributes:
            continue
        try:
            attribute = mesh.attributes.new(name, kind, "POINT")
        except RuntimeError:
            attribute = None
        if attribute is not None and (attribute.name, attribute.domain, attribute.data_type) == (name, "POINT", kind):
            attribute.data.foreach_set("value", np.ascontiguousarray(stored).ravel())
            return name
        if attribute is not None:
            mesh.attributes.remove(attribute)
    raise UserError(f"column '{column}' cannot be stored as a Blender attribute (its names are taken)")


def is_splat(obj) -> bool:
    return obj is not None and obj.type == "POINTCLOUD" and LAYOUT_KEY in obj.data


def storage(values: np.ndarray) -> tuple[str, np.ndarray]:
    """Blender attribute type and the array to store, lossless for every PLY type but double."""
    if values.dtype.kind == "f":
        return "FLOAT", values.astype(np.float32, copy=False)
    if values.dtype == np.uint32:
        return "INT", values.view(np.int32)  # the bits, so values above 2^31 survive
    return "INT", values.astype(np.int32)


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def display_radius(splat: Splat, point_size: float) -> np.ndarray:  # (N,)
    """Twice the middle axis's standard deviation: a disc's size, a needle's width."""
    middle = np.sort(splat.scales, axis=1)[:, 1]
    return (2.0 * point_size * np.exp(np.clip(middle, -30.0, 30.0))).astype(np.float32)


def display_colors(splat: Splat) -> np.ndarray:  # (N, 4) linear RGB and alpha
    return np.concatenate([srgb_to_linear(splat.colors), splat.alphas[:, None]], axis=1).astype(np.float32)


def fill_splat_material(material, mean_color) -> None:
    """Unlit colour from the SH DC term, transparent by opacity: splats carry baked lighting."""
    material.diffuse_color = (*mean_color, 1.0)  # what Solid mode shows: Workbench ignores point attributes
    tree = shader_node_tree(material)
    nodes, links = tree.nodes, tree.links
    nodes.clear()
    attribute = nodes.new("ShaderNodeAttribute")
    attribute.attribute_name = COLOR_ATTRIBUTE
    emission = nodes.new("ShaderNodeEmission")
    transparent = nodes.new("ShaderNodeBsdfTransparent")
    mix = nodes.new("ShaderNodeMixShader")
    output = nodes.new("ShaderNodeOutputMaterial")
    links.new(attribute.outputs["Color"], emission.inputs["Color"])
    links.new(attribute.outputs["Alpha"], mix.inputs["Fac"])
    links.new(transparent.outputs[0], mix.inputs[1])
    links.new(emission.outputs[0], mix.inputs[2])
    links.new(mix.outputs[0], output.inputs["Surface"])
    for i, node in enumerate((attribute, transparent, emission, mix, output)):
        node.location = (220 * i - 600, 0)


def splat_to_object(splat: Splat, name: str, collection, matrix=None, point_size: float = 1.0):
    """A new point-cloud object holding `splat`, linked into `collection`. Nothing is left behind on failure."""
    splat = contiguous_columns(splat)  # Blender takes each attribute from one contiguous array
    obj = new_point_cloud(name, splat.count, collection)
    cloud, material = obj.data, None
    try:
        cloud.attributes["position"].data.foreach_set("vector", splat.positions.ravel())
        stored_as = {
            column: store_column(cloud, column, values)
            for column, values in splat.columns.items()
            if column not in POSITION_COLUMNS
        }
        set_attribute(cloud, "radius", "FLOAT", display_radius(splat, point_size))
        set_attribute(cloud, COLOR_ATTRIBUTE, "FLOAT_COLOR", display_colors(splat), "color")
        cloud[LAYOUT_KEY] = json.dumps(
            [[column, values.dtype.str[1:], stored_as.get(column, column)] for column, values in splat.columns.items()]
        )
        cloud[COMMENTS_KEY] = json.dumps(splat.comments)
        mean = srgb_to_linear(np.median(splat.colors, axis=0))
        material = bpy.data.materials.new(name)
        fill_splat_material(material, [float(c) for c in mean])
        cloud.materials.append(material)
        if matrix is not None:
            obj.matrix_world = matrix
        return obj
    except BaseException:
        bpy.data.objects.remove(obj)  # users first, so removing the data it used cannot free it twice
        bpy.data.pointclouds.remove(cloud)
        if material is not None:
            bpy.data.materials.remove(material)
        raise


def column_layout(cloud) -> list[tuple[str, str, str]]:
    """(column, numpy type code, attribute) in file order: as imported, or the canonical order for others."""
    if LAYOUT_KEY in cloud:
        layout = cloud[LAYOUT_KEY]
        if layout.startswith("["):
            return [tuple(item) for item in json.loads(layout)]
        return [
            (*item.rsplit(":", 1), attribute_name(item.rsplit(":", 1)[0])) for item in layout.split(",")
        ]  # older files
    names = [a.name for a in cloud.attributes if a.name not in DISPLAY_ATTRIBUTES and not a.name.startswith(".")]
    return [(column, "f4", column) for column in POSITION_COLUMNS] + [(name, "f4", name) for name in names]


def object_to_splat(obj, columns=None) -> Splat:
    """The splat an object holds, from its point attributes (object transforms are not applied).

    `columns`: only these are read (a click needs GEOMETRY_COLUMNS, not 45 SH columns); all when None.
    """
    cloud = obj.data
    if obj.type != "POINTCLOUD":
        raise UserError(f"'{obj.name}' is a {obj.type.lower()}, not a point cloud imported as a splat")
    count = len(cloud.points)
    if count == 0:
        raise UserError(f"'{obj.name}' has no points left to export")
    wanted = REQUIRED_COLUMNS if columns is None else columns
    layout = [item for item in column_layout(cloud) if columns is None or item[0] in columns]
    missing = [c for c, _, name in layout if c not in POSITION_COLUMNS and name not in cloud.attributes]
    missing += [
        c for c in REQUIRED_COLUMNS if c in wanted and c not in POSITION_COLUMNS and c not in {i[0] for i in layout}
    ]
    if missing:
        raise UserError(f"'{obj.name}' is missing the splat attribute(s) {', '.join(sorted(set(missing)))}")
    positions = read_positions(cloud)
    read = {}
    for column, code, name in layout:
        if column in POSITION_COLUMNS:
            read[column] = positions[:, POSITION_COLUMNS.index(column)].astype(code)
            continue
        attribute = cloud.attributes[name]
        stored = get_attribute(cloud, attribute.name, np.float32 if attribute.data_type == "FLOAT" else np.int32)
        read[column] = stored.view(np.uint32) if code == "u4" else stored.astype(code)
    comments = json.loads(cloud.get(COMMENTS_KEY, "[]"))
    return Splat(read, comments)
