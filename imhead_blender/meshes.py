"""Meshes from the model's surfaces, written in bulk (never one vertex at a time), in either topology."""
import bpy
import numpy as np

from ..model.runtime.artist_mesh import head_artist_mesh
from ..model.runtime.frame import model_to_blender

# Head topologies (the `topology` of a head's state and of the operators): the implicit surface meshed by
# marching cubes, or the ICT artist mesh conformed to it (model/runtime/artist_mesh.py).
IMPLICIT, ARTIST = 'IMPLICIT', 'ARTIST'
UV_LAYER_NAME = "UVMap"


def head_surface(model, identity, topology, resolution, local_offsets=None, progress=None, remember=False):
    """The head's neutral surface in the model frame: a meshing.SurfaceMesh (IMPLICIT, at `resolution`)
    or an artist_mesh.ArtistMesh (ARTIST: same vertices and UVs for every head, resolution unused).
    Model code only: safe in a worker thread. remember: see HeadModel.extract_mesh."""
    if topology == ARTIST:
        mesh = head_artist_mesh(model, identity, local_offsets)
        if progress is not None:
            progress(1.0)
        return mesh
    return model.extract_mesh(identity, resolution=resolution, progress=progress, local_offsets=local_offsets,
                              remember=remember)


def mesh_from_surface(name, surface):
    """A new smooth-shaded mesh datablock from a head surface (head_surface) in head-object space, with
    the UV layer UV_LAYER_NAME when the surface has UVs (the artist mesh)."""
    mesh = mesh_from_arrays(name, model_to_blender(surface.vertices), surface.faces)
    corner_uv = getattr(surface, "corner_uv", None)  # marching cubes gives no UVs
    if corner_uv is not None:
        layer = mesh.uv_layers.new(name=UV_LAYER_NAME)
        layer.uv.foreach_set("vector", np.ascontiguousarray(corner_uv, np.float32).ravel())
    return mesh


def mesh_from_arrays(name, vertices, faces):
    """A new smooth-shaded mesh datablock from vertices (V, 3) in metres and faces (F, n) of up to n
    corners each (a face of fewer ends in -1s)."""
    faces = np.asarray(faces)
    corners = np.ascontiguousarray(faces[faces >= 0], dtype=np.int32)
    sizes = (faces >= 0).sum(1)
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(vertices))
    mesh.vertices.foreach_set("co", np.ascontiguousarray(vertices, dtype=np.float32).ravel())
    mesh.loops.add(len(corners))
    mesh.loops.foreach_set("vertex_index", corners)
    mesh.polygons.add(len(faces))
    mesh.polygons.foreach_set("loop_start", (np.cumsum(sizes) - sizes).astype(np.int32))
    mesh.update(calc_edges=True)
    mesh.shade_smooth()
    return mesh
