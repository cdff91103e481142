"""Conversion between the backend's Splat and a Blender point-cloud object.

Where Blender draws Gaussian splats itself (5.3 on), an import is a native splat (native_splat.py):
Blender's own attributes hold the Gaussians, and the columns its activations lose are kept raw
beside them. Before, every file column becomes a point attribute holding the raw stored value (x y
z become the built-in `position`), drawn as discs by the display attributes (`radius`,
`cg_color`). Either way the column order, types and header comments are kept on the data block, so
an unedited object exports exactly what was imported; display state (`radius`, `cg_color`, and
while Gaussians are hidden `cg_hidden`, `cg_shown_radius` or `cg_shown_alpha`) is never exported.
A native splat from anywhere else (Blender's PLY or SPZ import, Geometry Nodes) is a splat too.
"""

from __future__ import annotations

import hashlib
import json

import bpy
import numpy as np

from .backend.for_blender import (
    DC_COLUMNS,
    POSITION_COLUMNS,
    REQUIRED_COLUMNS,
    ROTATION_COLUMNS,
    SCALE_COLUMNS,
    Splat,
    UserError,
    column_copies,
    contiguous_columns,
    rest_columns,
    sh_degree_for_rest_count,
)
from .compat import HAS_NATIVE_SPLATS, new_point_cloud, shader_node_tree
from .native_splat import (
    BASE,
    NATIVE_TYPES,
    RAW_COLUMNS,
    SH_PREFIX,
    SH_TYPE,
    SHOWN_ALPHA,
    held_columns,
    is_native_attribute,
    native_arrays,
    native_columns,
    native_sources,
    sh_count,
)
from .point_attributes import get_attribute, read_array, read_positions, set_attribute, write_array

LAYOUT_KEY = "cg_ply_columns"  # JSON [column, type code, attribute] per column, in file order (older: "name:code,...")
COMMENTS_KEY = "cg_ply_comments"
AXES = ("X", "Y", "Z", "-X", "-Y", "-Z")
FILE_AXES_KEY = "cg_file_axes"  # [forward, up]: the file's axes the import turned into Blender's, which export undoes
COLOR_ATTRIBUTE = "cg_color"
HIDDEN_ATTRIBUTE = "cg_hidden"  # BOOLEAN: hidden Gaussians, drawn at radius 0 and ignored by clicks
SHOWN_RADIUS_ATTRIBUTE = "cg_shown_radius"  # the display radii to restore when the hidden Gaussians are revealed
DISPLAY_ATTRIBUTES = {"position", "radius", COLOR_ATTRIBUTE, HIDDEN_ATTRIBUTE, SHOWN_RADIUS_ATTRIBUTE, SHOWN_ALPHA}
GEOMETRY_COLUMNS = POSITION_COLUMNS + ("opacity",) + SCALE_COLUMNS + ROTATION_COLUMNS  # what a footprint depends on
RESERVED_PREFIX = "ply_"  # a file column whose name Blender or display uses is stored under this prefix
MAX_ATTRIBUTE_BYTES = (
    63  # Blender's attribute names are at most 63 bytes (67 from 4.x on: the lower bound holds for all)
)


def attribute_name(column: str) -> str:
    """The attribute a file column is stored in when Blender takes it: its own name, unless display uses it."""
    reserved = column in DISPLAY_ATTRIBUTES or is_native_attribute(column) or column.startswith(".")
    return fitted(RESERVED_PREFIX + column if reserved else column)


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
    return obj is not None and obj.type == "POINTCLOUD" and (LAYOUT_KEY in obj.data or is_native(obj.data))


def source_axes(cloud) -> tuple[str, str] | None:
    """(forward, up) of the file the cloud's splat came from, in Blender's axis names: as our import recorded
    them, Blender's own for a splat Blender made; None for one imported before they were recorded."""
    if FILE_AXES_KEY in cloud:
        stored = cloud[FILE_AXES_KEY]
        axes = [str(axis) for axis in stored] if hasattr(stored, "__len__") and len(stored) == 2 else []
        if len(axes) == 2 and set(axes) <= set(AXES) and axes[0].lstrip("-") != axes[1].lstrip("-"):
            return axes[0], axes[1]
        return None  # edited by hand into something that is no pair of axes: the export's own
    return None if LAYOUT_KEY in cloud else ("Y", "Z")


def is_native(cloud) -> bool:
    """Whether Blender draws the point cloud as Gaussian splats itself (5.3 on)."""
    return getattr(cloud, "type", "POINTS") == "GAUSSIAN_SPLAT"


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
    scales = splat.scales
    middle = scales.sum(axis=1) - scales.max(axis=1) - scales.min(axis=1)  # np.sort's middle, 5x faster
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
    """A new point-cloud object holding `splat`, linked into `collection`: a native splat where Blender has them,
    drawn as discs of `point_size` before. Nothing is left behind on failure."""
    obj = new_point_cloud(name, splat.count, collection)
    cloud, material = obj.data, None
    try:
        if HAS_NATIVE_SPLATS:  # each attribute gathered straight from the file's rows
            cloud.type = "GAUSSIAN_SPLAT"
            write_native(cloud, native_arrays(splat))
            held = {column: home for column in splat.columns if (home := native_home(column))}
            kept = [column for column in splat.columns if column not in held]
            values = column_copies(splat, kept)
        else:
            splat = contiguous_columns(splat)  # Blender takes each attribute from one contiguous array
            cloud.attributes["position"].data.foreach_set("vector", splat.positions.ravel())
            held, kept = {}, [column for column in splat.columns if column not in POSITION_COLUMNS]
            values = splat.columns
        stored_as = held | {column: store_column(cloud, column, values[column]) for column in kept}
        if not HAS_NATIVE_SPLATS:
            set_attribute(cloud, "radius", "FLOAT", display_radius(splat, point_size))
            set_attribute(cloud, COLOR_ATTRIBUTE, "FLOAT_COLOR", display_colors(splat), "color")
        cloud[LAYOUT_KEY] = json.dumps(
            [[column, values.dtype.str[1:], stored_as.get(column, column)] for column, values in splat.columns.items()]
        )
        cloud[COMMENTS_KEY] = json.dumps(splat.comments)
        if not HAS_NATIVE_SPLATS:  # a native splat is drawn by Blender, as its own import is: no material
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


def native_home(column: str) -> str | None:
    """The native attribute that holds a file column exactly (positions, f_dc, f_rest); None for the others."""
    if column in POSITION_COLUMNS:
        return "position"
    if column.startswith("f_dc_"):
        return BASE
    if column.startswith("f_rest_"):
        return SH_PREFIX + "*"
    return None


def draw_hidden(cloud, hidden: np.ndarray | None) -> None:
    """Draw the `hidden` (N,) bool Gaussians invisible (at radius 0, or alpha 0 where native) and record them;
    None shows every Gaussian again as it was. Only the Gaussians hidden now take their size from the shown copy:
    the others are as drawn (Blender's own Join may bring points whose copy is 0)."""
    drawn, shown_name = (BASE, SHOWN_ALPHA) if is_native(cloud) else ("radius", SHOWN_RADIUS_ATTRIBUTE)
    kind = cloud.attributes[drawn].data_type
    values = read_array(cloud, drawn)  # (N, 4) or (N, 1): the alpha or the radius last
    was_hidden = get_attribute(cloud, HIDDEN_ATTRIBUTE, bool)
    shown = np.where(was_hidden, get_attribute(cloud, shown_name, np.float32), values[:, -1])
    if hidden is None:
        values[:, -1] = shown
        write_array(cloud, drawn, kind, values)
        for name in (HIDDEN_ATTRIBUTE, shown_name):
            if name in cloud.attributes:
                cloud.attributes.remove(cloud.attributes[name])
        return
    values[:, -1] = np.where(hidden, np.float32(0), shown)
    write_array(cloud, drawn, kind, values)
    set_attribute(cloud, shown_name, "FLOAT", shown)
    set_attribute(cloud, HIDDEN_ATTRIBUTE, "BOOLEAN", hidden)


def write_columns(cloud, splat: Splat, changed) -> None:
    """Store the `changed` file columns of `splat` in the cloud's attributes, native ones included; positions too
    when named."""
    stored_as = {column: attribute for column, _, attribute in column_layout(cloud)}
    native = is_native(cloud)
    for name in changed:
        if name not in POSITION_COLUMNS and not (native and native_home(name)):
            set_attribute(cloud, stored_as.get(name, attribute_name(name)), *storage(splat.columns[name]))
    if native:
        write_native(cloud, native_arrays(splat, changed))
    elif any(name in POSITION_COLUMNS for name in changed):
        cloud.attributes["position"].data.foreach_set("vector", splat.positions.ravel())


def write_native(cloud, arrays: dict[str, np.ndarray]) -> None:
    """Store native attributes (name -> (N, width) float32); a hidden Gaussian's alpha goes to its shown copy."""
    if BASE in arrays and SHOWN_ALPHA in cloud.attributes:
        set_attribute(cloud, SHOWN_ALPHA, "FLOAT", arrays[BASE][:, 3])
        arrays[BASE][get_attribute(cloud, HIDDEN_ATTRIBUTE, bool), 3] = 0.0
    for name, values in arrays.items():
        write_array(cloud, name, NATIVE_TYPES.get(name, SH_TYPE), values)


def read_native(cloud, names) -> dict[str, np.ndarray]:
    """Native attributes (name -> (N, width) float32) of those in `names` that exist; a hidden Gaussian's alpha
    from its shown copy."""
    arrays = {}
    for name in names:
        attribute = cloud.attributes.get(name)
        if attribute is None:
            continue
        kind = NATIVE_TYPES.get(name, SH_TYPE)
        if attribute.data_type != kind:
            raise UserError(f"the splat attribute '{name}' is {attribute.data_type}, where Blender draws {kind}")
        arrays[name] = read_array(cloud, name)
    if BASE in arrays and SHOWN_ALPHA in cloud.attributes:  # hidden ones are drawn at 0: their own alpha
        hidden = get_attribute(cloud, HIDDEN_ATTRIBUTE, bool)
        arrays[BASE][hidden, 3] = get_attribute(cloud, SHOWN_ALPHA, np.float32)[hidden]
    return arrays


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
    if not is_native(cloud):
        return [(column, "f4", column) for column in POSITION_COLUMNS] + [(name, "f4", name) for name in names]
    rest = rest_columns(sh_degree_for_rest_count(3 * sh_count(cloud.attributes)) or 0)
    native = [*POSITION_COLUMNS, *DC_COLUMNS, *rest, *RAW_COLUMNS]
    extra = [
        (name, "f4" if cloud.attributes[name].data_type == "FLOAT" else "i4", name)
        for name in names
        if cloud.attributes[name].domain == "POINT"
        and cloud.attributes[name].data_type in ("FLOAT", "INT")
        and not is_native_attribute(name)
        and not name.startswith("cg_")
    ]
    return [(column, "f4", native_home(column) or column) for column in native] + extra


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
    native = read_native(cloud, native_sources(column for column, _, _ in layout)) if is_native(cloud) else {}
    held = set(held_columns(native)) if native else set(POSITION_COLUMNS)
    missing = [c for c, _, name in layout if c not in held and name not in cloud.attributes]
    missing += [c for c in REQUIRED_COLUMNS if c in wanted and c not in held | {item[0] for item in layout}]
    if missing:
        raise UserError(f"'{obj.name}' is missing the splat attribute(s) {', '.join(sorted(set(missing)))}")
    raw = {}
    for column, code, name in layout:
        if (column not in held or column in RAW_COLUMNS) and name in cloud.attributes:
            attribute = cloud.attributes[name]
            stored = get_attribute(cloud, name, np.float32 if attribute.data_type == "FLOAT" else np.int32)
            raw[column] = stored.view(np.uint32) if code == "u4" else stored
    values = native_columns(native, raw) if native else dict(zip(POSITION_COLUMNS, read_positions(cloud).T))
    read = {}
    for column, code, _ in layout:
        if column in values:
            read[column] = np.ascontiguousarray(values[column]).astype(code, copy=False)
        else:
            read[column] = raw[column].astype(code, copy=False)
    comments = json.loads(cloud.get(COMMENTS_KEY, "[]"))
    return Splat(read, comments)
