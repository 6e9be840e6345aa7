"""Generating heads through the installed extension's operators, in a real (module) Blender."""
import os
import shutil
import sys

import numpy as np
import pytest

from model import HeadModel

RESOLUTION = 48  # the Preview preset, lowered so that the tiny model meshes in a few seconds


@pytest.fixture
def bpy(blender, preferences):
    preferences.preview_resolution = RESOLUTION
    return blender


@pytest.fixture(scope="module")
def tiny(tiny_model):
    return HeadModel.load(tiny_model)


def scene_contents(bpy):
    return sorted(bpy.data.objects.keys()), sorted(bpy.data.meshes.keys())


def edge_face_counts(mesh):
    """How many faces use each edge."""
    loop_edges = np.empty(len(mesh.loops), dtype=np.int32)
    mesh.loops.foreach_get("edge_index", loop_edges)
    return np.bincount(loop_edges, minlength=len(mesh.edges))


def active_head_panel(installed_extension):
    return sys.modules[f"{installed_extension}.panels"].IMHEAD_PT_active_head


def test_generate_adds_a_valid_closed_head_at_the_cursor(bpy, tiny, installed_extension):
    bpy.context.scene.cursor.location = (0.5, -1.0, 0.25)
    assert bpy.ops.imhead.generate(seed=7, variation=1.0) == {'FINISHED'}

    head = bpy.context.active_object
    assert head.type == 'MESH' and head.select_get()
    assert tuple(head.location) == pytest.approx((0.5, -1.0, 0.25))
    mesh = head.data
    assert len(mesh.polygons) > 1000
    assert mesh.validate() is False  # nothing had to be corrected
    assert np.all(edge_face_counts(mesh) == 2)  # closed: every edge between exactly two faces
    assert all(polygon.use_smooth for polygon in mesh.polygons[:10])

    size = np.array(head.dimensions)
    assert np.all((0.1 < size) & (size < 0.5))  # a head in metres

    state = head.imhead
    assert state.model_hash == tiny.hash
    assert (state.seed, state.resolution) == (7, RESOLUTION)
    assert state.variation == pytest.approx(1.0)
    np.testing.assert_allclose(np.array(head.imhead["identity"]), tiny.sample_identity(7, 1.0), rtol=1e-6)
    assert active_head_panel(installed_extension).poll(bpy.context)


def test_the_same_seed_gives_the_same_head(bpy):
    bpy.ops.imhead.generate(seed=3, variation=1.0)
    bpy.ops.imhead.generate(seed=3, variation=1.0)
    first, second = (head.data for head in bpy.data.objects)
    assert first != second and len(first.vertices) == len(second.vertices)
    coordinates = [np.empty(3 * len(mesh.vertices), dtype=np.float32) for mesh in (first, second)]
    for mesh, array in zip((first, second), coordinates):
        mesh.vertices.foreach_get("co", array)
    np.testing.assert_array_equal(*coordinates)


def test_random_head_draws_a_seed_and_shows_it_in_the_sidebar(bpy):
    assert bpy.ops.imhead.random_head(variation=0.5) == {'FINISHED'}
    head = bpy.context.active_object
    assert head.imhead.seed == bpy.context.scene.imhead.seed
    assert head.imhead.variation == pytest.approx(0.5)


def test_replace_gives_the_active_head_the_mean_shape_in_place(bpy, tiny):
    bpy.ops.imhead.generate(seed=1)
    head = bpy.context.active_object
    head.location = (1.0, 2.0, 3.0)
    old_mesh = head.data.name

    bpy.ops.imhead.generate(variation=0.0, replace=True)
    assert bpy.context.active_object == head and len(bpy.data.objects) == 1
    assert tuple(head.location) == (1.0, 2.0, 3.0)
    assert old_mesh not in bpy.data.meshes and len(bpy.data.meshes) == 1
    np.testing.assert_allclose(np.array(head.imhead["identity"]), tiny.mean_identity(), atol=1e-6)


@pytest.mark.parametrize("content", [None, b"not a model file", b"PK\x03\x04 truncated"])
def test_a_missing_or_broken_model_file_is_reported_and_changes_nothing(bpy, preferences, tmp_path, content):
    bpy.ops.mesh.primitive_cube_add()
    before = scene_contents(bpy)
    model_file = tmp_path / "model.npz"
    if content is not None:
        model_file.write_bytes(content)
    preferences.model_path = str(model_file)

    with pytest.raises(RuntimeError) as raised:
        bpy.ops.imhead.generate(seed=2)
    message = str(raised.value)
    assert str(model_file) in message and "Traceback" not in message
    assert scene_contents(bpy) == before


def test_a_missing_bundled_model_is_reported(bpy, extension_dir):
    bundled = extension_dir / "weights" / "imhead.npz"
    bundled.rename(bundled.with_suffix(".moved"))
    try:
        with pytest.raises(RuntimeError) as raised:
            bpy.ops.imhead.generate(seed=2)
    finally:
        bundled.with_suffix(".moved").rename(bundled)
    assert str(bundled) in str(raised.value) and "Traceback" not in str(raised.value)
    assert scene_contents(bpy) == ([], [])


def test_a_model_file_is_loaded_once_until_it_changes(bpy, installed_extension, tiny_model, tmp_path):
    bridge = sys.modules[f"{installed_extension}.imhead_blender"]
    model_file = tmp_path / "model.npz"
    shutil.copyfile(tiny_model, model_file)
    loaded = bridge.load_model(str(model_file))
    assert bridge.load_model(str(model_file)) is loaded

    modified = model_file.stat().st_mtime_ns + 10**9
    os.utime(model_file, ns=(modified, modified))
    reloaded = bridge.load_model(str(model_file))
    assert reloaded is not loaded and reloaded.hash == loaded.hash


def test_generate_is_unavailable_outside_object_mode(bpy, installed_extension):
    bpy.ops.mesh.primitive_cube_add()
    assert not active_head_panel(installed_extension).poll(bpy.context)  # a cube is no head
    bpy.ops.object.mode_set(mode='EDIT')
    assert not bpy.ops.imhead.generate.poll()
    with pytest.raises(RuntimeError, match="Object Mode"):
        bpy.ops.imhead.generate(seed=2)
    bpy.ops.object.mode_set(mode='OBJECT')


def test_undo_removes_the_generated_head(bpy):
    # Background Blender starts without an undo stack; an explicit push creates it, and operators
    # called from Python push their own step only when asked to (the second positional argument).
    bpy.ops.ed.undo_push(message="before generate")
    assert bpy.ops.imhead.generate('EXEC_DEFAULT', True, seed=4) == {'FINISHED'}
    assert len(bpy.data.objects) == 1

    bpy.ops.ed.undo()
    assert scene_contents(bpy) == ([], [])
    bpy.ops.ed.redo()
    assert len(bpy.context.scene.objects) == 1
