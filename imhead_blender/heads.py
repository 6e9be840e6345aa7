"""Head objects: generated from the model, placed in the scene, and their imHead state.

A head object's local space is the model frame scaled to metres (model/runtime/frame.py); its
`imhead` PropertyGroup (operators/properties.py) records where it came from, and the identity
code itself is an array custom property of that group, as its size depends on the model.
"""
import bpy
import numpy as np

from ..model import ImHeadError
from .meshes import mesh_from_surface
from .models import load_model

HEAD_NAME = "imHead"


def generate_head(context, settings, progress=None):
    """Generate a head and put it in the scene; returns its object.

    settings: model_path ("" = bundled), seed, variation (0 = mean head .. 2), resolution
    (marching-cubes grid size) and replace (give the active head the new shape instead of
    adding a head at the 3D cursor). progress: optional callable(fraction).
    Raises ImHeadError before touching the scene when the model cannot be used.
    """
    model = load_model(settings["model_path"])
    identity = model.sample_identity(settings["seed"], settings["variation"])
    surface = model.extract_mesh(identity, resolution=settings["resolution"], progress=progress)
    if len(surface.faces) == 0:
        raise ImHeadError(f"The model in {model.path} gives no surface for this head: is it a trained model?")
    mesh = mesh_from_surface(HEAD_NAME, surface)
    head = context.active_object if settings["replace"] and is_head(context.active_object) else None
    if head is None:
        head = add_head_object(context, mesh)
    else:
        from .shape_keys import set_aside_expressions  # shape_keys imports this module
        set_aside_expressions(head, model)
        replace_mesh(head, mesh)
    write_state(head, model.hash, identity, settings)
    return head


def is_head(obj):
    """Whether `obj` is a head made by imHead."""
    return obj is not None and obj.type == 'MESH' and bool(obj.imhead.model_hash)


def add_head_object(context, mesh):
    """A new object for `mesh` at the 3D cursor, in the active collection, selected and active."""
    head = bpy.data.objects.new(HEAD_NAME, mesh)
    head.location = context.scene.cursor.location
    context.collection.objects.link(head)
    for obj in context.selected_objects:
        obj.select_set(False)
    head.select_set(True)
    context.view_layer.objects.active = head
    return head


def replace_mesh(head, mesh):
    """Give `head` a new mesh, keeping its object (transform, materials, modifiers)."""
    old = head.data
    mesh.materials.clear()
    for material in old.materials:
        mesh.materials.append(material)
    head.data = mesh
    if old.users == 0:
        bpy.data.meshes.remove(old)


# Region edits belong to the identity they were made on: a new identity starts without them.
REGION_EDIT_KEYS = ("region_codes", "slider_values", "mesh_edits")


def write_state(head, model_hash, identity, settings):
    state = head.imhead
    for key in REGION_EDIT_KEYS:
        if key in state:
            del state[key]
    state.model_hash = model_hash
    state.seed = settings["seed"]
    state.variation = settings["variation"]
    state.resolution = settings["resolution"]
    state.fitted_to = settings.get("fitted_to", "")
    state["identity"] = np.asarray(identity, dtype=np.float64).tolist()


def read_identity(head):
    """The identity code stored on a head object, (code_dim,) float32."""
    return np.asarray(head.imhead["identity"], dtype=np.float32)
