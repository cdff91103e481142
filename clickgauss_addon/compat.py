"""Everything that differs between the Blender versions the add-on supports (4.2 LTS to 5.2), in one place.

Each function does one thing the same way on every supported version, so the rest of the add-on
never asks which Blender it runs in. Tested on 4.2, 4.5, 5.0 and 5.2 (`python3 build.py matrix`).
"""

from __future__ import annotations

import bpy

# Point-cloud edit mode (select, separate, delete as operators) exists from Blender 4.5 on.
HAS_POINT_CLOUD_EDIT_MODE = hasattr(bpy.ops.pointcloud, "separate")
NO_EDIT_MODE_MESSAGE = (f"Blender {bpy.app.version_string} has no point-cloud edit mode, which {{what}} needs: "
                        "use Blender 4.5 or newer")


def new_point_cloud(name: str, count: int, collection):
    """A new point-cloud object of `count` points (positions 0), linked into `collection`; returns the object.

    Blender 5.1+ resizes a point cloud directly. Before that, a point cloud's size is set only by
    geometry: a Geometry Nodes "Points" modifier, applied (mesh-to-point-cloud conversion needs an
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


def require_point_cloud_edit_mode(what: str) -> None:
    """Raise the one clear message of a feature that needs point-cloud edit mode, where Blender lacks it."""
    if not HAS_POINT_CLOUD_EDIT_MODE:
        from .backend.errors import UserError

        raise UserError(NO_EDIT_MODE_MESSAGE.format(what=what))
