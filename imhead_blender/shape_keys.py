"""Expressions on head meshes: baked shape keys (one per expression, named as the model names them),
their values, and their animation.

The keys' values are the expression sliders, so they can be keyframed, driven and exported. A head
remembers in its `imhead` state what a re-mesh must not lose: the key values ("expression_values"),
the action animating them (expression_action) and the exact combinations baked as keys of their own
("exact_expressions"); expressions_stale says the keys were set aside and must be baked again.

An artist head's parts (parts.py) get keys of the same names, each driven by the head's key of its
name (a SUM driver, which needs no Python: it runs in files opened without scripts), so that one slider,
keyframe or import moves skin and parts. Their shapes are ICT's expression shapes of the parts
(artist_mesh.part_expression_offsets). They are baked with the head's keys and go when the parts get
new vertices (parts.install_parts), which is when the head's keys go with its old mesh.
"""
import bpy
import numpy as np
from bpy_extras import anim_utils

from ..model import ImHeadError
from ..model.runtime import expressions
from ..model.runtime.animation import read_expression_track, resample
from ..model.runtime.artist_mesh import part_expression_offsets
from ..model.runtime.frame import blender_to_model, model_to_blender
from .heads import read_identity
from .parts import PART_TAG, part_objects

BASIS_NAME = "Basis"
# Keyframe interpolation 'LINEAR' as the integer foreach_set takes.
_LINEAR = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value


def _vertices(mesh):
    """The mesh's vertex positions (N, 3), head-object space."""
    co = np.empty(3 * len(mesh.vertices), np.float32)
    mesh.vertices.foreach_get("co", co)
    return co.reshape(-1, 3)


def _edges(mesh):
    """The mesh's edges (M, 2) as vertex index pairs."""
    edges = np.empty(2 * len(mesh.edges), np.int32)
    mesh.edges.foreach_get("vertices", edges)
    return edges.reshape(-1, 2)


def expression_keys(head, model):
    """{expression name: key block} of the baked keys on the head's mesh."""
    key = head.data.shape_keys
    if key is None:
        return {}
    return {name: key.key_blocks[name] for name in model.expression_names if name in key.key_blocks}


def expression_values(head, model):
    """(E,) current expression values: the keys' values, or those set aside with the keys."""
    keys = expression_keys(head, model)
    if keys:
        return np.array([keys[n].value if n in keys else 0.0 for n in model.expression_names], np.float32)
    saved = head.imhead.get("expression_values", {})
    return np.array([saved.get(n, 0.0) for n in model.expression_names], np.float32)


def set_expression_values(head, model, values):
    """Set the baked keys' values (E,); ImHeadError when the expressions are not baked."""
    keys = expression_keys(head, model)
    if not keys:
        raise ImHeadError(f"{head.name} has no expression shape keys: bake the expressions first")
    for name, value in zip(model.expression_names, np.asarray(values, np.float32)):
        if name in keys:
            keys[name].value = float(value)


def preset_weights(model, preset):
    """(E,) expression values of a named preset (EXPRESSION_PRESETS)."""
    return expressions.preset_weights(model.expression_names, preset)


class ExpressionBake:
    """Baking a head's expressions as shape keys, in three steps: read what it needs from the scene
    (made on the main thread), solve (model code only: it may run in a worker thread), write the keys
    (main thread). One key per expression, and again each exact combination the head had."""

    def __init__(self, head, model):
        self.model, self.head_name, self.mesh_name = model, head.name, head.data.name
        self.vertices, self.edges = blender_to_model(_vertices(head.data)), _edges(head.data)
        self.identity = read_identity(head)
        self.expression_names = list(model.expression_names)
        exact = {name: np.asarray(w, np.float32) for name, w in head.imhead.get("exact_expressions", {}).items()}
        self.key_names = self.expression_names + list(exact)
        self.weights = np.concatenate([np.eye(len(self.expression_names), dtype=np.float32),
                                       *[w[None] for w in exact.values()]])

    def solve(self, progress=None):
        """The inverse warp at every vertex (an expressions.InverseWarp); progress(fraction) after each key."""
        return expressions.inverse_warp(self.model, self.identity, self.vertices, self.edges, self.weights,
                                        progress=progress)

    def write(self, head, solved):
        """The keys into the head's mesh, its values and animation set aside by a re-mesh restored. Returns
        the residual summary (mm); ImHeadError if the head got another mesh since the bake was read."""
        if head.data.name != self.mesh_name or len(head.data.vertices) != len(self.vertices):
            raise ImHeadError(f"{head.name}'s mesh changed while its expressions were baked: bake again")
        values = expression_values(head, self.model)
        extra = len(self.key_names) - len(self.expression_names)
        for name, positions, value in zip(self.key_names, solved.positions, list(values) + [0.0] * extra):
            _write_key(head, name, model_to_blender(positions), value)
        _write_part_keys(head, self.key_names, self.expression_names, self.weights)
        _restore_animation(head)
        state = head.imhead
        state.expressions_stale = False
        summary = solved.residual_summary_mm()
        state.bake_residual_mm = summary["max"]
        return summary


def bake_expressions(head, model, progress=None):
    """Bake the head's expressions at once (ExpressionBake's three steps). Returns the residual summary (mm)."""
    bake = ExpressionBake(head, model)
    return bake.write(head, bake.solve(progress))


def bake_exact_expression(head, model, name, weights):
    """One shape key `name` for the expression combination `weights` (E,), exact (no linear mix); value 0.
    Returns the residual summary (mm)."""
    if not name.strip():
        raise ImHeadError("give the expression key a name")
    if name in model.expression_names or name == BASIS_NAME:
        raise ImHeadError(f"{name!r} is the name of a baked expression key; choose another")
    weights = np.asarray(weights, np.float32)
    if not weights.any():
        raise ImHeadError("the current expression is neutral: set some expression values first")
    vertices = blender_to_model(_vertices(head.data))
    solved = expressions.inverse_warp(model, read_identity(head), vertices, _edges(head.data), weights[None])
    _write_key(head, name, model_to_blender(solved.positions[0]), 0.0)
    _write_part_keys(head, [name], model.expression_names, weights[None])
    state = head.imhead
    if "exact_expressions" not in state:
        state["exact_expressions"] = {}
    state["exact_expressions"][name] = weights.tolist()
    return solved.residual_summary_mm()


def _write_key(obj, name, positions, value):
    """The shape key `name` of the mesh object `obj` (made, after a basis, if missing) at positions (V, 3)."""
    if obj.data.shape_keys is None:
        obj.shape_key_add(name=BASIS_NAME, from_mix=False)
    key = obj.data.shape_keys.key_blocks.get(name) or obj.shape_key_add(name=name, from_mix=False)
    key.data.foreach_set("co", np.ascontiguousarray(positions, np.float32).ravel())
    key.value = float(value)  # Blender 5.0 creates keys at 1.0
    key.slider_min, key.slider_max = 0.0, 1.0
    return key


def _write_part_keys(head, key_names, expression_names, weights):
    """Give each of the head's parts the keys key_names, of the expression combinations weights
    (len(key_names), len(expression_names)), each driven by the head's key of its name."""
    for part in part_objects(head):
        neutral = _vertices(part.data)
        offsets = part_expression_offsets(part[PART_TAG], blender_to_model(neutral), expression_names, weights)
        for name, offset in zip(key_names, offsets):
            _drive_by_head(_write_key(part, name, neutral + model_to_blender(offset), 0.0), head)


def _drive_by_head(key, head):
    """Drive the key block `key`'s value by the head's key of its name (replacing an earlier driver)."""
    key.driver_remove("value")
    driver = key.driver_add("value").driver
    driver.type = 'SUM'
    variable = driver.variables.new()
    variable.type = 'SINGLE_PROP'
    target = variable.targets[0]
    target.id_type = 'KEY'
    target.id = head.data.shape_keys
    target.data_path = f'key_blocks["{bpy.utils.escape_identifier(key.name)}"].value'


def set_aside_expressions(head, model):
    """Before the mesh is replaced: remember the key values and the action, and mark the expressions
    as needing a bake (the keys go with the old mesh: they cannot follow a new topology)."""
    key = head.data.shape_keys
    if key is None or not expression_keys(head, model):
        return
    state = head.imhead
    state["expression_values"] = {name: kb.value for name, kb in expression_keys(head, model).items()}
    if key.animation_data and key.animation_data.action:
        state.expression_action = key.animation_data.action
    state.expressions_stale = True


def _restore_animation(head):
    action = head.imhead.expression_action
    key = head.data.shape_keys
    if action is None or key is None or (key.animation_data and key.animation_data.action == action):
        return
    animation = key.animation_data or key.animation_data_create()
    animation.action = action
    if animation.action_slot is None:
        animation.action_slot = anim_utils.action_get_first_suitable_slot(action, 'KEY')


def keyframe_expressions(head, model, values, frame_start):
    """Keyframe the expression keys: values (F, E), one row per scene frame from frame_start. Replaces
    the keys' earlier animation of the expressions the values drive."""
    keys = expression_keys(head, model)
    if not keys:
        raise ImHeadError(f"{head.name} has no expression shape keys: bake the expressions first")
    key = head.data.shape_keys
    animation = key.animation_data or key.animation_data_create()
    if animation.action is None:
        animation.action = bpy.data.actions.new(f"{head.name} expressions")
    if animation.action_slot is None:
        animation.action_slot = animation.action.slots.new(id_type='KEY', name=key.name)
    channels = anim_utils.action_ensure_channelbag_for_slot(animation.action, animation.action_slot)
    values = np.asarray(values, np.float32)
    frames = frame_start + np.arange(len(values), dtype=np.float32)
    for column, name in enumerate(model.expression_names):
        if name not in keys or not values[:, column].any():
            continue
        data_path = f'key_blocks["{name}"].value'
        old = channels.fcurves.find(data_path)
        if old is not None:
            channels.fcurves.remove(old)
        curve = channels.fcurves.new(data_path)
        curve.keyframe_points.add(len(values))
        curve.keyframe_points.foreach_set("co", np.stack([frames, values[:, column]], 1).ravel())
        curve.keyframe_points.foreach_set("interpolation", np.full(len(values), _LINEAR, np.int32))
        curve.update()
    head.imhead.expression_action = animation.action




def import_expression_animation(head, model, path, capture_fps, frame_start, scene_fps):
    """Keyframe the expression keys from a .csv, .json or .npy file (model/runtime/animation.py), resampled from
    the file's frame rate (or capture_fps when it does not say) to the scene's. Returns (frames keyed,
    names in the file that drive no expression)."""
    track = read_expression_track(path, model.expression_names)
    values = resample(track.values, track.fps or capture_fps, scene_fps)
    keyframe_expressions(head, model, values, frame_start)
    return len(values), track.unused
