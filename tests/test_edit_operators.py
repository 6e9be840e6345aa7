"""Editing regions and expressions through the installed extension's operators, in a real (module) Blender."""
import sys

import numpy as np
import pytest

from conftest import blender_edges
from model import HeadModel
from model.runtime import expressions
from model.runtime.frame import blender_to_model

RESOLUTION = 32  # Preview and Final, lowered so that the tiny model meshes in well under a second
LIVE_LINK_HEADER = "Timecode,BlendShapeCount,EyeBlinkLeft,EyeBlinkRight,JawOpen,BrowInnerUp,TongueOut,HeadYaw"


@pytest.fixture
def bpy(blender, preferences):
    preferences.preview_resolution = RESOLUTION
    preferences.final_resolution = RESOLUTION
    return blender


@pytest.fixture(scope="module")
def tiny(tiny_model):
    return HeadModel.load(tiny_model)


@pytest.fixture
def bridge(installed_extension):
    return sys.modules[f"{installed_extension}.imhead_blender"]


@pytest.fixture
def head(bpy):
    assert bpy.ops.imhead.generate(seed=1) == {'FINISHED'}
    return bpy.context.active_object


def coordinates(mesh):
    array = np.empty(3 * len(mesh.vertices), dtype=np.float32)
    mesh.vertices.foreach_get("co", array)
    return array.reshape(-1, 3)


def key_coordinates(key_block):
    array = np.empty(3 * len(key_block.data), dtype=np.float32)
    key_block.data.foreach_get("co", array)
    return array.reshape(-1, 3)


def expression_fcurves(obj):
    from bpy_extras import anim_utils
    animation = obj.data.shape_keys.animation_data
    return anim_utils.action_get_channelbag_for_slot(animation.action, animation.action_slot).fcurves


def test_a_region_slider_previews_the_edit_and_records_it_per_region(bpy, bridge, head):
    state = head.imhead
    neutral = coordinates(head.data)
    state.region = "nose"
    state.region_sliders = (2.5, -1.0, 0, 0, 0, 0)
    # The slider only schedules the preview (a timer, which background Blender does not run).
    assert head.name in bridge.live.pending() and not bridge.mesh_is_current(head)
    bridge.finish_previews()
    assert bridge.mesh_is_current(head) and not bridge.live.pending()
    assert not np.array_equal(coordinates(head.data), neutral)

    state.region = "ears"
    assert tuple(state.region_sliders) == (0.0,) * 6
    state.region = "nose"
    assert tuple(state.region_sliders)[:2] == (2.5, -1.0)


def finish_preview_job(bpy, live):
    """Run the finishing timer until the job is installed, as Blender's event loop would."""
    bpy.app.timers.unregister(live._install_finished)
    while live._install_finished() is not None:
        pass


def run_preview_timers(bpy, live):
    """Run the waiting request's timers, as Blender's event loop would: start its job, install it."""
    bpy.app.timers.unregister(live._start_next)
    live._start_next()
    finish_preview_job(bpy, live)


def start_preview_job(bpy, live, head):
    """Move a slider and start meshing it in the worker, as the debounce timer would."""
    head.imhead.region = "nose"
    head.imhead.region_sliders = (2.0, 0, 0, 0, 0, 0)
    bpy.app.timers.unregister(live._start_next)
    live._start_next()
    assert live._running is not None


def test_the_timers_mesh_in_a_worker_thread_and_install_on_the_main_thread(bpy, bridge, head):
    # Background Blender runs no timers: call them as Blender's event loop would.
    live = bridge.live
    head.imhead.region = "brows"
    head.imhead.region_sliders = (2.0, 0, 0, 0, 0, 0)
    assert bpy.app.timers.is_registered(live._start_next)
    bpy.app.timers.unregister(live._start_next)
    assert live._start_next() is None
    assert live._running is not None and bpy.app.timers.is_registered(live._install_finished)
    bpy.app.timers.unregister(live._install_finished)
    head.imhead.region_sliders = (2.5, 0, 0, 0, 0, 0)  # moved again while the worker meshes
    bpy.app.timers.unregister(live._start_next)
    while live._install_finished() is not None:
        pass
    # The finished mesh showed 2.0, no longer wanted: it is dropped and the newer request is next.
    assert not bridge.mesh_is_current(head) and head.name in live.pending()
    assert bpy.app.timers.is_registered(live._start_next)
    run_preview_timers(bpy, live)
    assert bridge.mesh_is_current(head) and not live.pending()


def test_randomize_then_reset_gives_back_the_generated_mesh(bpy, head):
    generated = coordinates(head.data)
    assert bpy.ops.imhead.randomize_region(region="chin", seed=4, scale=2.0) == {'FINISHED'}
    assert "chin" in head.imhead["region_codes"]
    assert not np.array_equal(coordinates(head.data), generated)

    assert bpy.ops.imhead.reset_region(region="chin") == {'FINISHED'}
    assert "chin" not in head.imhead["region_codes"]
    np.testing.assert_array_equal(coordinates(head.data), generated)


def test_copy_region_takes_the_region_as_edited_on_the_other_head(bpy, tiny, head):
    bpy.ops.imhead.generate(seed=2)
    source = bpy.context.active_object
    source.imhead.region = "lips"
    source.imhead.region_sliders = (1.0, 0, 0, 0, 0, 0)
    bpy.context.view_layer.objects.active = head

    assert bpy.ops.imhead.copy_region(region="lips", source=source.name) == {'FINISHED'}
    lips = tiny.regions["lips"]
    from model.runtime import editing
    expected = editing.edited_region_codes(tiny, "lips", np.array(source.imhead["identity"], np.float32),
                                           editing.slider_offsets(tiny, {"lips": [1.0]}))
    np.testing.assert_allclose(np.array(head.imhead["region_codes"]["lips"]), expected.ravel(), atol=1e-6)
    assert len(lips) * tiny.config.local_dim == len(head.imhead["region_codes"]["lips"])


@pytest.mark.parametrize("source, message", [("imHead", "another head"), ("Cube", "not a head of this model"),
                                             ("Nothing", "no object 'Nothing'")])
def test_copy_region_from_a_wrong_object_is_reported_and_changes_nothing(bpy, head, source, message):
    bpy.ops.mesh.primitive_cube_add()
    bpy.context.view_layer.objects.active = head
    before = coordinates(head.data)
    with pytest.raises(RuntimeError, match=message) as raised:
        bpy.ops.imhead.copy_region(region="lips", source=source)
    assert "Traceback" not in str(raised.value)
    assert "region_codes" not in head.imhead
    np.testing.assert_array_equal(coordinates(head.data), before)


def test_keypoint_empties_sit_on_the_regions_keypoints_and_toggle(bpy, tiny, head):
    assert bpy.ops.imhead.show_keypoints(region="eyes") == {'FINISHED'}
    empties = [child for child in head.children if child.type == 'EMPTY']
    assert len(empties) == len(tiny.regions["eyes"])
    keypoints = tiny.keypoints(np.array(head.imhead["identity"], np.float32))
    for empty in empties:
        expected = keypoints[tiny.keypoint_names.index(empty["imhead_keypoint"])]
        offset = np.array(empty.matrix_world.translation) - np.array(head.location)
        np.testing.assert_allclose(blender_to_model(offset), expected, atol=1e-5)
    assert bpy.ops.imhead.show_keypoints() == {'FINISHED'}
    assert not head.children


def test_bake_expressions_adds_one_exact_key_per_expression(bpy, tiny, head):
    assert bpy.ops.imhead.bake_expressions() == {'FINISHED'}
    keys = head.data.shape_keys.key_blocks
    assert [k.name for k in keys] == ["Basis"] + tiny.expression_names
    assert all(k.value == 0.0 for k in keys[1:])
    neutral = blender_to_model(coordinates(head.data))
    jaw = tiny.expression_names.index("jawOpen")
    solved = expressions.inverse_warp(tiny, np.array(head.imhead["identity"], np.float32), neutral,
                                      blender_edges(head.data), np.eye(len(tiny.expression_names))[[jaw]])
    np.testing.assert_allclose(blender_to_model(key_coordinates(keys["jawOpen"])), solved.positions[0], atol=1e-5)
    assert 0 < head.imhead.bake_residual_mm < 1.0


def start_modal_bake(bpy, installed_extension, head, tiny):
    """The modal bake's session on `head`, as the operator's invoke() starts it in a window (background
    Blender's operators get no window, but bpy.context has one; the test sends the events)."""
    return sys.modules[f"{installed_extension}.operators.expressions"].bake_session(bpy.context, head, tiny)


def finish(bpy, session):
    session.job.thread.join(300)
    return session.handle(bpy.context, 'TIMER')


def test_the_modal_bake_writes_the_keys_when_its_worker_is_done_and_lets_only_navigation_through(
        bpy, installed_extension, tiny, head):
    session = start_modal_bake(bpy, installed_extension, head, tiny)
    assert session.handle(bpy.context, 'WHEELUPMOUSE') == {'PASS_THROUGH'}  # zooming
    assert session.handle(bpy.context, 'G') == {'RUNNING_MODAL'}            # moving is held back
    assert finish(bpy, session) == {'FINISHED'}, session.reports
    assert session.timer is None and not session.job.thread.is_alive()
    [(level, message)] = session.reports
    assert level == {'INFO'} and message.startswith(f"Baked 53 expression keys on {head.name}")
    modal_keys = {k.name: key_coordinates(k) for k in head.data.shape_keys.key_blocks}
    assert list(modal_keys) == ["Basis"] + tiny.expression_names
    head.shape_key_clear()
    assert bpy.ops.imhead.bake_expressions() == {'FINISHED'}  # the same keys as a script's bake
    for key in head.data.shape_keys.key_blocks:
        np.testing.assert_array_equal(key_coordinates(key), modal_keys[key.name])


def test_esc_mid_bake_writes_nothing_and_a_head_gone_mid_bake_is_reported(bpy, installed_extension, tiny, head):
    session = start_modal_bake(bpy, installed_extension, head, tiny)
    assert session.handle(bpy.context, 'ESC') == {'CANCELLED'}
    assert not session.job.thread.is_alive() and session.timer is None
    assert session.reports == [({'INFO'}, "Baking cancelled")]
    assert head.data.shape_keys is None
    assert session.handle(bpy.context, 'TIMER') == {'CANCELLED'} and head.data.shape_keys is None  # a late event

    session = start_modal_bake(bpy, installed_extension, head, tiny)
    name = head.name
    bpy.data.objects.remove(head)
    assert finish(bpy, session) == {'CANCELLED'}
    assert session.reports == [({'ERROR'}, f"the head {name} is no longer in the scene")]

    assert bpy.ops.imhead.generate(seed=1) == {'FINISHED'}
    head = bpy.context.active_object
    session = start_modal_bake(bpy, installed_extension, head, tiny)
    assert bpy.ops.imhead.randomize_region(region="nose", seed=2) == {'FINISHED'}  # a new mesh meanwhile
    assert finish(bpy, session) == {'CANCELLED'} and head.data.shape_keys is None
    assert session.reports == [({'ERROR'}, f"{head.name}'s mesh changed while its expressions were baked: "
                                           "bake again")]


def operators_module(installed_extension, name):
    return sys.modules[f"{installed_extension}.operators.{name}"]


def test_generate_runs_modal_and_esc_adds_no_head(bpy, installed_extension):
    generate = operators_module(installed_extension, "generate")
    settings = {"model_path": "", "seed": 5, "variation": 1.0, "topology": "IMPLICIT", "resolution": RESOLUTION,
                "replace": False}
    objects = set(bpy.data.objects.keys())
    session = generate.generate_session(bpy.context, settings)
    assert session.handle(bpy.context, 'ESC') == {'CANCELLED'} and set(bpy.data.objects.keys()) == objects
    session = generate.generate_session(bpy.context, settings)
    assert finish(bpy, session) == {'FINISHED'}, session.reports
    head = bpy.context.active_object
    assert session.reports == [({'INFO'}, f"Made {head.name} (seed 5, variation 1.00)")]
    assert bpy.ops.imhead.generate(seed=5) == {'FINISHED'}  # a script's Generate: the same head
    np.testing.assert_array_equal(coordinates(bpy.context.active_object.data), coordinates(head.data))


def test_update_mesh_runs_modal_meshing_then_baking_and_esc_while_baking_keeps_the_new_mesh(
        bpy, installed_extension, bridge, tiny, head):
    regions = operators_module(installed_extension, "regions")
    assert bpy.ops.imhead.bake_expressions() == {'FINISHED'}
    vertices = len(head.data.vertices)
    session = regions.update_session(bpy.context, tiny, bridge.Remesh.of(head, tiny, 40), True)
    assert finish(bpy, session) == {'RUNNING_MODAL'}  # meshed and installed; now baking
    assert len(head.data.vertices) != vertices and head.imhead.resolution == 40 and head.imhead.expressions_stale
    assert session.handle(bpy.context, 'ESC') == {'FINISHED'} and session.timer is None
    assert session.reports == [({'WARNING'}, f"Meshed {head.name} at resolution 40; the expressions were not "
                                             "baked again (Esc): Bake Expressions bakes them")]
    assert head.data.shape_keys is None and head.imhead.expressions_stale

    session = regions.update_session(bpy.context, tiny, bridge.Remesh.of(head, tiny, 36), True)
    assert finish(bpy, session) == {'RUNNING_MODAL'} and finish(bpy, session) == {'FINISHED'}, session.reports
    [(level, message)] = session.reports
    assert level == {'INFO'} and message.startswith(f"Meshed {head.name} at resolution 36; expressions baked again")
    assert [k.name for k in head.data.shape_keys.key_blocks] == ["Basis"] + tiny.expression_names
    assert not head.imhead.expressions_stale


def test_presets_reset_and_the_exact_current_expression(bpy, tiny, head):
    assert not bpy.ops.imhead.expression_preset.poll()  # nothing baked yet
    bpy.ops.imhead.bake_expressions()
    assert bpy.ops.imhead.expression_preset(preset="smile") == {'FINISHED'}
    keys = head.data.shape_keys.key_blocks
    assert keys["mouthSmile_L"].value == pytest.approx(expressions.PRESETS["smile"]["mouthSmile_L"])
    assert keys["jawOpen"].value == 0.0

    assert bpy.ops.imhead.bake_current_expression(name="Smile") == {'FINISHED'}
    smile = expressions.preset_weights(tiny.expression_names, "smile")
    solved = expressions.inverse_warp(tiny, np.array(head.imhead["identity"], np.float32),
                                      blender_to_model(coordinates(head.data)), blender_edges(head.data), smile[None])
    np.testing.assert_allclose(blender_to_model(key_coordinates(keys["Smile"])), solved.positions[0], atol=1e-5)
    assert keys["Smile"].value == 0.0

    assert bpy.ops.imhead.reset_expressions() == {'FINISHED'}
    assert all(k.value == 0.0 for k in keys[1:])
    with pytest.raises(RuntimeError, match="neutral"):
        bpy.ops.imhead.bake_current_expression(name="Nothing")
    with pytest.raises(RuntimeError, match="baked expression key"):
        bpy.ops.imhead.bake_current_expression(name="jawOpen")


def test_a_face_capture_csv_keyframes_the_expression_keys(bpy, head, tmp_path):
    bpy.ops.imhead.bake_expressions()
    bpy.context.scene.render.fps = 30
    rows = [f"10:00:00:{i:02d}.000,61,{0.1 * i:.2f},0.5,{0.05 * i:.2f},0.25,0.9,0.3" for i in range(7)]
    path = tmp_path / "capture.csv"
    path.write_text("\n".join([LIVE_LINK_HEADER] + rows) + "\n")

    result = bpy.ops.imhead.import_expression_animation(filepath=str(path), capture_fps=60, frame_start=10)
    assert result == {'FINISHED'}
    curves = {c.data_path: c for c in expression_fcurves(head)}
    assert set(curves) == {f'key_blocks["{n}"].value' for n in
                           ("eyeBlink_L", "eyeBlink_R", "jawOpen", "browInnerUp_L", "browInnerUp_R")}
    blink = curves['key_blocks["eyeBlink_L"].value']
    frames = [tuple(k.co) for k in blink.keyframe_points]
    np.testing.assert_allclose(frames, [(10, 0.0), (11, 0.2), (12, 0.4), (13, 0.6)], atol=1e-5)  # 60 -> 30 fps
    bpy.context.scene.frame_set(12)
    assert head.data.shape_keys.key_blocks["eyeBlink_L"].value == pytest.approx(0.4)


def test_a_broken_animation_file_is_reported_and_keys_nothing(bpy, head, tmp_path):
    bpy.ops.imhead.bake_expressions()
    path = tmp_path / "capture.csv"
    path.write_text("Timecode,HeadYaw\n00:00,0.1\n")
    with pytest.raises(RuntimeError, match="no expression names"):
        bpy.ops.imhead.import_expression_animation(filepath=str(path))
    assert head.data.shape_keys.animation_data is None


def test_editing_after_baking_removes_the_keys_visibly_and_update_bakes_them_again(bpy, tiny, head, tmp_path):
    bpy.ops.imhead.bake_expressions()
    head.data.shape_keys.key_blocks["jawOpen"].value = 0.7
    path = tmp_path / "blinks.npy"
    np.save(path, np.eye(len(tiny.expression_names), dtype=np.float32)[[10, 10, 0]])
    bpy.ops.imhead.import_expression_animation(filepath=str(path), capture_fps=24)
    action = head.data.shape_keys.animation_data.action

    assert bpy.ops.imhead.randomize_region(region="nose", seed=1) == {'FINISHED'}
    assert head.data.shape_keys is None  # the new topology has no keys: none are left stale
    assert head.imhead.expressions_stale and head.imhead.expression_action == action
    assert not bpy.ops.imhead.expression_preset.poll()

    assert bpy.ops.imhead.update_head() == {'FINISHED'}
    assert not head.imhead.expressions_stale
    keys = head.data.shape_keys.key_blocks
    assert len(keys) == 1 + len(tiny.expression_names)
    assert head.data.shape_keys.animation_data.action == action
    bpy.context.scene.frame_set(1)
    assert keys["eyeBlink_L"].value == pytest.approx(1.0)
    assert keys["jawOpen"].value == pytest.approx(0.7)  # not animated: the value set before is kept


def test_a_saved_file_reloads_with_everything_editable(bpy, bridge, head, tmp_path):
    head.imhead.region = "jaw"
    head.imhead.region_sliders = (1.0, 0.5, 0, 0, 0, 0)
    bridge.finish_previews()
    bpy.ops.imhead.randomize_region(region="ears", seed=3)
    bpy.ops.imhead.bake_expressions()
    bpy.ops.imhead.expression_preset(preset="anger")
    bpy.ops.imhead.bake_current_expression(name="Anger")
    saved = coordinates(head.data)
    path = tmp_path / "head.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))

    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    bpy.ops.wm.open_mainfile(filepath=str(path))
    head = bpy.data.objects["imHead"]
    assert bridge.mesh_is_current(head) and not bridge.live.pending()
    np.testing.assert_array_equal(coordinates(head.data), saved)
    head.imhead.region = "jaw"
    assert tuple(head.imhead.region_sliders)[:2] == (1.0, 0.5)
    assert "ears" in head.imhead["region_codes"]
    assert head.data.shape_keys.key_blocks["browDown_L"].value == pytest.approx(0.8)

    bpy.context.view_layer.objects.active = head
    assert bpy.ops.imhead.reset_region(region="ears") == {'FINISHED'}
    assert bpy.ops.imhead.update_head() == {'FINISHED'}
    keys = head.data.shape_keys.key_blocks
    assert "Anger" in keys and keys["browDown_L"].value == pytest.approx(0.8)  # baked again, values kept


def _scene_state(bpy):
    heads = [o for o in bpy.data.objects if o.type == 'MESH']
    return [(o.name, coordinates(o.data).tobytes(), sorted(o.imhead.get("region_codes", {}).keys()),
             [(k.name, k.value) for k in o.data.shape_keys.key_blocks] if o.data.shape_keys else None,
             sorted(c.name for c in o.children)) for o in heads]


UNDOABLE = [
    ("randomize_region", dict(region="nose", seed=2)),
    ("reset_region", dict(region="ears")),
    ("copy_region", dict(region="ears", source="imHead.001")),
    ("update_head", dict()),
    ("show_keypoints", dict(region="nose")),
    ("bake_expressions", dict()),
    ("expression_preset", dict(preset="surprise")),
    ("reset_expressions", dict()),
    ("bake_current_expression", dict(name="Now")),
]


@pytest.mark.parametrize("operator, arguments", UNDOABLE, ids=[name for name, _ in UNDOABLE])
def test_undo_restores_the_state_before_each_operator(bpy, preferences, bridge, head, operator, arguments):
    preferences.final_resolution = RESOLUTION + 4  # Update Mesh meshes at Final: another mesh
    bpy.ops.imhead.generate(seed=5)
    bpy.context.view_layer.objects.active = head
    bpy.ops.imhead.randomize_region(region="ears", seed=1)
    if operator in ("expression_preset", "reset_expressions", "bake_current_expression"):
        bpy.ops.imhead.bake_expressions()
        bpy.ops.imhead.expression_preset(preset="blink")
    # Background Blender has no undo stack until a push; operators push their step when asked (True).
    bpy.ops.ed.undo_push(message="before")
    before = _scene_state(bpy)
    assert getattr(bpy.ops.imhead, operator)('EXEC_DEFAULT', True, **arguments) == {'FINISHED'}
    assert _scene_state(bpy) != before

    bpy.ops.ed.undo()
    assert _scene_state(bpy) == before
    assert not bridge.live.pending()  # mesh and edits came back together


def test_redo_of_a_slider_step_stored_before_its_preview_meshes_again(bpy, bridge, head):
    bpy.ops.ed.undo_push(message="before")
    head.imhead.region = "jaw"
    head.imhead.region_sliders = (1.5, 0, 0, 0, 0, 0)
    bpy.ops.ed.undo_push(message="slider")  # the UI pushes when the slider is released, before the preview
    bridge.finish_previews()
    bpy.ops.ed.undo()
    bpy.ops.ed.redo()
    head = bpy.data.objects["imHead"]
    assert not bridge.mesh_is_current(head) and head.name in bridge.live.pending()
    bridge.finish_previews()
    assert bridge.mesh_is_current(head)


def test_operators_need_a_head_and_its_model(bpy, preferences, head, tmp_path):
    bpy.ops.mesh.primitive_cube_add()
    assert not bpy.ops.imhead.randomize_region.poll()
    with pytest.raises(RuntimeError, match="Select a head made by imHead"):
        bpy.ops.imhead.bake_expressions()

    bpy.context.view_layer.objects.active = head
    head.imhead.model_hash = "0" * 64
    with pytest.raises(RuntimeError, match="made with another model"):
        bpy.ops.imhead.bake_expressions()
    assert head.data.shape_keys is None


def test_replacing_a_heads_identity_drops_its_region_edits_and_sets_its_keys_aside(bpy, head):
    assert bpy.ops.imhead.randomize_region(region="chin", seed=4, scale=2.0) == {'FINISHED'}
    assert bpy.ops.imhead.bake_expressions() == {'FINISHED'}
    assert bpy.ops.imhead.generate(seed=7, replace=True) == {'FINISHED'}
    assert bpy.context.active_object == head
    assert "region_codes" not in head.imhead and "slider_values" not in head.imhead
    assert head.data.shape_keys is None and head.imhead.expressions_stale


def test_previews_go_on_after_a_file_is_loaded_while_one_is_meshed(bpy, bridge, head, tmp_path):
    live = bridge.live
    path = tmp_path / "other.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path), copy=True)
    start_preview_job(bpy, live, head)
    bpy.ops.wm.open_mainfile(filepath=str(path))
    # The job's finishing timer survived the load; it ends the job without touching the loaded head.
    assert bpy.app.timers.is_registered(live._install_finished)
    finish_preview_job(bpy, live)
    assert not live.pending()
    loaded = bpy.data.objects["imHead"]
    assert bridge.mesh_is_current(loaded)
    loaded.imhead.region = "jaw"
    loaded.imhead.region_sliders = (1.5, 0, 0, 0, 0, 0)
    run_preview_timers(bpy, live)
    assert bridge.mesh_is_current(loaded) and not live.pending()


def test_an_edit_whose_preview_was_dropped_by_disabling_is_meshed_after_enabling(bpy, bridge, head, installed_extension):
    start_preview_job(bpy, bridge.live, head)
    bpy.ops.preferences.addon_disable(module=installed_extension)
    bpy.ops.preferences.addon_enable(module=installed_extension)
    bridge = sys.modules[f"{installed_extension}.imhead_blender"]
    head = bpy.data.objects["imHead"]
    assert tuple(head.imhead.region_sliders)[0] == 2.0  # the edit is kept...
    bridge.live.finish_previews()
    assert bridge.mesh_is_current(head) and not bridge.live.pending()  # ...and its mesh follows


def test_disabling_mid_preview_drops_the_job_and_ends_the_worker(bpy, bridge, head, installed_extension):
    import threading

    start_preview_job(bpy, bridge.live, head)
    bpy.ops.preferences.addon_disable(module=installed_extension)
    try:
        assert not any(thread.name.startswith("imhead-preview") for thread in threading.enumerate())
        assert not bpy.app.timers.is_registered(bridge.live._install_finished)
        assert not bridge.live.pending()
    finally:
        bpy.ops.preferences.addon_enable(module=installed_extension)
    live = sys.modules[f"{installed_extension}.imhead_blender"].live
    head = bpy.data.objects["imHead"]
    head.imhead.region = "nose"
    head.imhead.region_sliders = (1.0, 0, 0, 0, 0, 0)
    live.finish_previews()
    assert sys.modules[f"{installed_extension}.imhead_blender"].mesh_is_current(head) and not live.pending()
