"""Everything that differs between the Blender versions the add-on supports (4.2 LTS to 5.3), in one place.

Each function does one thing the same way on every supported version, so the rest of the add-on
never asks which Blender it runs in. Tested on 4.2, 4.5, 5.0, 5.2 and 5.3 (`python3 build.py matrix`).
The same in all four, so not here: FileHandler (drag and drop), bpy.utils.extension_path_user,
and numpy (1.x up to 4.5, 2.x in 5.2: the add-on and its backend run on both).
"""

from __future__ import annotations

import bpy
import gpu
import numpy as np

from .backend.for_blender import UserError

# Point-cloud edit mode (drawing the point selection; separate and delete operators) exists from Blender 4.5 on.
HAS_POINT_CLOUD_EDIT_MODE = "separate" in dir(bpy.ops.pointcloud)  # bpy.ops makes any name, so hasattr is always true
# Blender draws Gaussian splats itself from 5.3 on: a point cloud of type 'GAUSSIAN_SPLAT' (native_splat.py).
HAS_NATIVE_SPLATS = "type" in bpy.types.PointCloud.bl_rna.properties


def new_point_cloud(name: str, count: int, collection):
    """A new point-cloud object of `count` points (positions 0), linked into `collection`; returns the object.

    Blender 5.2 resizes a point cloud directly (5.0 cannot). Before, a point cloud's size is set only
    by geometry: a Geometry Nodes "Points" modifier, applied (mesh-to-point-cloud conversion needs an
    experimental option on 4.2 and a full UI context).
    """
    cloud = bpy.data.pointclouds.new(name)
    obj = None
    try:
        if hasattr(cloud, "resize"):
            cloud.resize(count)
        obj = bpy.data.objects.new(name, cloud)
        collection.objects.link(obj)
        if not hasattr(cloud, "resize"):
            apply_points_modifier(obj, count)
        return obj
    except BaseException:
        if obj is not None:
            bpy.data.objects.remove(obj)
        bpy.data.pointclouds.remove(cloud)
        raise


def apply_points_modifier(obj, count: int) -> None:
    """Give `obj`'s empty point cloud `count` points by applying a one-node Geometry Nodes modifier."""
    tree = bpy.data.node_groups.new("Click-Gaussian points", "GeometryNodeTree")
    try:
        if hasattr(tree, "interface"):
            tree.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
        else:
            tree.outputs.new("NodeSocketGeometry", "Geometry")
        points = tree.nodes.new("GeometryNodePoints")
        points.inputs["Count"].default_value = count
        tree.links.new(points.outputs["Geometry"], tree.nodes.new("NodeGroupOutput").inputs[0])
        modifier = obj.modifiers.new("Click-Gaussian points", "NODES")
        modifier.node_group = tree
        with bpy.context.temp_override(object=obj, active_object=obj):
            bpy.ops.object.modifier_apply(modifier=modifier.name)
    finally:
        bpy.data.node_groups.remove(tree)
    if len(obj.data.points) != count:
        raise RuntimeError(f"Blender made {len(obj.data.points)} points instead of {count}")


def shader_node_tree(material):
    """The material's shader node tree: new materials have none before Blender 5.0 until nodes are switched on."""
    if material.node_tree is None:
        material.use_nodes = True  # deprecated from 5.0 on, where every material has its tree already
    return material.node_tree


def point_shader():
    """The built-in shader that draws points in one colour, sized by gpu.state.point_size_set.

    Blender 4.2 has no POINT_UNIFORM_COLOR; its UNIFORM_COLOR draws points at that size.
    """
    try:
        return gpu.shader.from_builtin("POINT_UNIFORM_COLOR")
    except ValueError:
        return gpu.shader.from_builtin("UNIFORM_COLOR")


def enter_point_edit_mode(obj) -> None:
    """Show `obj`'s point selection: Blender's edit mode draws it; before 4.5 the add-on's overlay alone does."""
    if HAS_POINT_CLOUD_EDIT_MODE and obj.mode != "EDIT":
        bpy.ops.object.mode_set(mode="EDIT")


def shows_point_selection(obj) -> bool:
    """Whether the overlay draws `obj`'s selected points: in edit mode, or always where there is none (4.2)."""
    return obj.mode == "EDIT" or not HAS_POINT_CLOUD_EDIT_MODE


def edit_selected_points(obj, operation: str, selected: np.ndarray) -> None:
    """Blender's point-cloud `operation` ("separate" or "delete") on `obj`'s `selected` (N,) bool points, `obj` active.

    Blender 4.2 has no point-cloud edit mode: there the same is done with copies of the points' attributes.
    """
    if HAS_POINT_CLOUD_EDIT_MODE:
        was_editing = obj.mode == "EDIT"
        if not was_editing:
            bpy.ops.object.mode_set(mode="EDIT")
        getattr(bpy.ops.pointcloud, operation)()
        if not was_editing:
            bpy.ops.object.mode_set(mode="OBJECT")
        return
    cloud = obj.data
    if operation == "separate":
        copy_points(obj, selected, f"{obj.name}.001")
    rest = copy_points(obj, ~selected, obj.name)
    obj.data = rest.data
    bpy.data.objects.remove(rest)
    name = cloud.name
    bpy.data.pointclouds.remove(cloud)
    obj.data.name = name


def copy_points(obj, keep: np.ndarray, name: str):
    """A new object of the points `keep` (N,) bool of `obj`'s point cloud: every point attribute, custom property
    and material carried, in `obj`'s first collection at its place."""
    from .point_attributes import ATTRIBUTE_ARRAYS, read_array, write_array

    source = obj.data
    part = new_point_cloud(name, int(keep.sum()), obj.users_collection[0])
    try:
        for attribute in source.attributes:
            if attribute.domain != "POINT":
                continue
            if attribute.data_type not in ATTRIBUTE_ARRAYS:
                raise UserError(
                    f"'{obj.name}' has the attribute '{attribute.name}' of type {attribute.data_type}, "
                    f"which the add-on cannot split in Blender {bpy.app.version_string}"
                )
            write_array(part.data, attribute.name, attribute.data_type, read_array(source, attribute.name)[keep])
        for key in source.keys():
            part.data[key] = source[key]
        for material in source.materials:
            part.data.materials.append(material)
        part.matrix_world = obj.matrix_world
    except BaseException:
        cloud = part.data
        bpy.data.objects.remove(part)
        bpy.data.pointclouds.remove(cloud)
        raise
    return part
