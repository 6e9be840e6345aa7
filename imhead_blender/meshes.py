"""Meshes from the model's surfaces, written in bulk (never one vertex at a time)."""
import bpy
import numpy as np

from ..model.runtime.frame import model_to_blender


def mesh_from_surface(name, surface):
    """A new smooth-shaded mesh datablock from a SurfaceMesh (model frame) in head-object space."""
    return mesh_from_arrays(name, model_to_blender(surface.vertices), surface.faces)


def mesh_from_arrays(name, vertices, faces):
    """A new smooth-shaded mesh datablock from vertices (V, 3) in metres and triangles (F, 3)."""
    corners = np.ascontiguousarray(faces, dtype=np.int32).ravel()
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(vertices))
    mesh.vertices.foreach_set("co", np.ascontiguousarray(vertices, dtype=np.float32).ravel())
    mesh.loops.add(len(corners))
    mesh.loops.foreach_set("vertex_index", corners)
    mesh.polygons.add(len(corners) // 3)
    mesh.polygons.foreach_set("loop_start", np.arange(0, len(corners), 3, dtype=np.int32))
    mesh.update(calc_edges=True)
    mesh.shade_smooth()
    return mesh
