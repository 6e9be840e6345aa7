"""Head objects: placed in the scene, their meshes replaced, and their imHead state (generating one:
generate.py).

A head object's local space is the model frame scaled to metres (model/runtime/frame.py); its
`imhead` PropertyGroup (operators/properties.py) records where it came from, and the identity
code itself is an array custom property of that group, as its size depends on the model. The state
is model/runtime/head_state.HeadState, kept field by field: read_state reads it, and what the command
line writes as JSON is the same.
"""
import bpy
import numpy as np

from ..model.runtime.head_state import EDIT_GROUPS, HeadState

HEAD_NAME = "imHead"


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
    state.topology = settings["topology"]
    state.fitted_to = settings.get("fitted_to", "")
    state["identity"] = np.asarray(identity, dtype=np.float64).tolist()


def read_identity(head):
    """The identity code stored on a head object, (code_dim,) float32."""
    return np.asarray(head.imhead["identity"], dtype=np.float32)


def read_state(head):
    """The head's HeadState. Its expression values are not in it: on a head object they are the
    values of the baked shape keys (shape_keys.expression_values)."""
    state = head.imhead
    return HeadState(state.model_hash, read_identity(head), state.seed, state.variation, state.resolution,
                     state.fitted_to,
                     {region: np.asarray(codes, np.float32) for region, codes in state.get("region_codes", {}).items()},
                     {region: list(values) for region, values in state.get("slider_values", {}).items()})


def write_edits(head, state):
    """Store the region edits of the HeadState `state` on the head."""
    for key in EDIT_GROUPS:
        head.imhead[key] = {region: np.asarray(values, np.float64).tolist()
                            for region, values in getattr(state, key).items()}
