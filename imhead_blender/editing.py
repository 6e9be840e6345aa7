"""Region edits of head objects: the edit state on the object, re-meshing, and keypoint empties.

A head's edits live in its `imhead` PropertyGroup as two custom-property groups, both keyed by region name:
- "slider_values": slider values (standard deviations along the region's principal directions),
- "region_codes": local codes (P * L values) of regions replaced by "randomize" or "copy from".
What they mean, and what each edit does to them, is model/runtime/head_state.HeadState's (the command line
edits the same way); here they are read from and written to the object. "mesh_edits" records the edits the
current mesh shows (a digest), so that a stale mesh can be told from a current one.
"""
from contextlib import contextmanager
from dataclasses import dataclass

import bpy
import numpy as np

from ..model import ImHeadError
from ..model.runtime import editing
from ..model.runtime.frame import model_to_blender
from ..model.runtime.head_state import EDIT_GROUPS
from . import shape_keys
from .heads import is_head, read_identity, read_state, replace_mesh, write_edits
from .meshes import head_surface, mesh_from_surface
from .models import load_model
from .parts import install_parts

REGION_SLIDERS = editing.REGION_SLIDERS
KEYPOINT_TAG = "imhead_keypoint"  # custom property of keypoint empties: the keypoint's name


def head_model(head, model_path):
    """The loaded model that made `head`; ImHeadError when the model file holds another model."""
    if not is_head(head):
        raise ImHeadError(f"{getattr(head, 'name', head)!r} is not an imHead head")
    model = load_model(model_path)
    if model.hash != head.imhead.model_hash:
        raise ImHeadError(f"{head.name} was made with another model (hash {head.imhead.model_hash[:12]}); "
                          f"choose that model file in the add-on preferences (now {model.path})")
    return model


def region_names(model):
    return list(model.regions)


def region_slider_count(model, region):
    """How many sliders of `region` do something (the region's principal directions, at most REGION_SLIDERS)."""
    return min(REGION_SLIDERS, len(editing.region_basis(model, region).axes))


# --- the edit state ----------------------------------------------------------------------------------
def _group(head, key):
    state = head.imhead
    if key not in state:
        state[key] = {}
    return state[key]


def read_sliders(head, region):
    values = head.imhead.get("slider_values", {}).get(region)
    return [0.0] * REGION_SLIDERS if values is None else list(values)


def write_sliders(head, region, values):
    _group(head, "slider_values")[region] = [float(v) for v in values]


def edit_offsets(head, model):
    """The head's local-code offsets (K, L)."""
    return read_state(head).local_offsets(model)


def edits_digest(head):
    """A digest of what the head's mesh should show: identity and edits."""
    return read_state(head).edits_digest()


def mesh_is_current(head):
    """Whether the mesh shows the head's current edits (a generated head's mesh shows no edits)."""
    shown = head.imhead.get("mesh_edits")
    if shown is None:
        return not read_state(head).has_edits
    return shown == edits_digest(head)


@contextmanager
def _changing_edits(head, model, resolution, progress):
    """Change the head's edits inside the block, then re-mesh; on any error the edits are put back
    (the mesh is only replaced once the new surface exists)."""
    state = head.imhead
    saved = {key: state[key].to_dict() for key in EDIT_GROUPS if key in state}
    try:
        yield
        remesh_head(head, model, resolution, progress)
    except BaseException:
        for key in EDIT_GROUPS:
            if key in state:
                del state[key]
        for key, values in saved.items():
            state[key] = values
        raise


def randomize_region(head, model, region, seed, scale, resolution, progress=None):
    """Replace `region` by a random plausible one (sliders back to zero), and re-mesh."""
    state = read_state(head)
    state.randomize_region(model, region, seed, scale)
    with _changing_edits(head, model, resolution, progress):
        write_edits(head, state)


def copy_region(head, model, region, source, resolution, progress=None):
    """Give `head` the region of another head `source` as edited there (sliders back to zero), and re-mesh."""
    if source == head:
        raise ImHeadError("choose another head to copy the region from")
    if not is_head(source) or source.imhead.model_hash != model.hash:
        raise ImHeadError(f"{source.name} is not a head of this model: a region can only come from one")
    state = read_state(head)
    state.copy_region(model, region, read_state(source))
    with _changing_edits(head, model, resolution, progress):
        write_edits(head, state)


def reset_region(head, model, region, resolution, progress=None):
    """Back to the head's own region, and re-mesh."""
    state = read_state(head)
    state.reset_region(model, region)  # an unknown region fails before anything changes
    with _changing_edits(head, model, resolution, progress):
        write_edits(head, state)


# --- meshes ------------------------------------------------------------------------------------------
@dataclass
class Remesh:
    """Re-meshing a head with its edits, in three steps: read from the scene (Remesh.of, main thread), the
    surface (model code only: it may run in a worker thread), installed (main thread)."""
    head_name: str
    model: object
    identity: np.ndarray
    offsets: np.ndarray
    digest: str
    topology: str
    resolution: int

    @classmethod
    def of(cls, head, model, resolution, topology=None):
        """The re-mesh of `head` as it is now, in `topology` (default: the head's own)."""
        return cls(head.name, model, read_identity(head), edit_offsets(head, model), edits_digest(head),
                   topology or head.imhead.topology, resolution)

    def surface(self, progress=None, remember=False):
        """The edited head's surface in the topology (meshes.head_surface, model frame); touches no scene data."""
        surface = head_surface(self.model, self.identity, self.topology, self.resolution,
                               local_offsets=self.offsets, progress=progress, remember=remember)
        if len(surface.faces) == 0:
            raise ImHeadError(f"the model gives no surface for {self.head_name} with these edits")
        return surface

    def install(self, head, surface):
        """Give `head` a mesh of `surface`, recording the topology and which edits it shows; baked expression
        keys cannot follow the new topology: they are set aside (shape_keys.set_aside_expressions) to bake
        again."""
        shape_keys.set_aside_expressions(head, self.model)
        replace_mesh(head, mesh_from_surface(head.data.name, surface))
        install_parts(head, surface)
        state = head.imhead
        state.topology, state.resolution, state["mesh_edits"] = self.topology, self.resolution, self.digest
        update_keypoint_empties(head, self.model)


def remesh_head(head, model, resolution, progress=None, topology=None):
    """Re-mesh `head` with its edits at `resolution` now (in `topology`, default the head's own)."""
    remesh = Remesh.of(head, model, resolution, topology)
    remesh.install(head, remesh.surface(progress))


# --- keypoints ---------------------------------------------------------------------------------------
def keypoint_empties(head):
    return [child for child in head.children if KEYPOINT_TAG in child]


def show_keypoints(head, model, region):
    """Empties at the keypoints of `region` (all regions for None), parented to the head; returns them."""
    parts = editing.region_basis(model, region).parts if region else range(len(model.keypoint_names))
    hide_keypoints(head)
    keypoints = model_to_blender(model.keypoints(read_identity(head), edit_offsets(head, model)))
    empties = []
    for part in parts:
        name = model.keypoint_names[part]
        empty = bpy.data.objects.new(f"{head.name} {name}", None)
        empty.empty_display_type = 'SPHERE'
        empty.empty_display_size = 0.004
        empty[KEYPOINT_TAG] = name
        empty.parent = head
        empty.location = keypoints[part]
        for collection in head.users_collection:
            collection.objects.link(empty)
        empties.append(empty)
    return empties


def hide_keypoints(head):
    for empty in keypoint_empties(head):
        bpy.data.objects.remove(empty)


def update_keypoint_empties(head, model):
    """Move the head's keypoint empties to the edited head's keypoints."""
    empties = keypoint_empties(head)
    if not empties:
        return
    keypoints = model_to_blender(model.keypoints(read_identity(head), edit_offsets(head, model)))
    index = {name: i for i, name in enumerate(model.keypoint_names)}
    for empty in empties:
        if empty[KEYPOINT_TAG] in index:
            empty.location = keypoints[index[empty[KEYPOINT_TAG]]]
