"""Fitting a head to a scan through the installed extension's operator, in a real (module) Blender."""
import math
import sys
import time

import numpy as np
import pytest

RESOLUTION = 40  # the Preview preset, lowered so that the tiny model meshes in a few seconds
FAST = {"n_points": 2000, "steps": 40}  # the tiny model: a short fit is as good as a long one


@pytest.fixture
def bpy(blender, preferences):
    preferences.preview_resolution = RESOLUTION
    return blender


def world_vertices(obj):
    co = np.empty(3 * len(obj.data.vertices), np.float32)
    obj.data.vertices.foreach_get("co", co)
    matrix = np.array(obj.matrix_world)
    return co.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]


def scene_state(bpy):
    """Everything a failed fit must leave as it was: objects, meshes, transforms, selection."""
    return (sorted(bpy.data.objects.keys()), sorted(bpy.data.meshes.keys()),
            [tuple(map(tuple, obj.matrix_world)) for obj in bpy.data.objects],
            getattr(bpy.context.view_layer.objects.active, "name", None))


def make_scan(bpy, name="Scan"):
    """A scan made of a generated head: its mesh in millimetres, the object turned and moved."""
    assert bpy.ops.imhead.generate(seed=2, variation=1.0) == {'FINISHED'}
    head = bpy.context.active_object
    mesh = head.data.copy()
    mesh.transform(np.diag([1000.0, 1000.0, 1000.0, 1.0]).tolist())
    scan = bpy.data.objects.new(name, mesh)
    bpy.context.collection.objects.link(scan)
    scan.location = (0.3, -0.2, 1.1)
    scan.rotation_euler = (0.0, 0.0, math.radians(90))
    scan.scale = (0.001, 0.001, 0.001)  # a millimetre scan imported at Blender's scale
    bpy.data.objects.remove(head)
    bpy.context.view_layer.objects.active = scan
    bpy.context.view_layer.update()
    return scan


def surface_distances(points, surface):
    """Distance from each point (world space) to the surface of the mesh object `surface`."""
    from mathutils.bvhtree import BVHTree

    tree = BVHTree.FromPolygons(world_vertices(surface).tolist(), [tuple(p.vertices) for p in surface.data.polygons])
    return np.array([tree.find_nearest(point)[3] for point in points.tolist()])


def test_fit_adds_a_head_lying_on_the_scan_and_leaves_the_scan_alone(bpy):
    scan = make_scan(bpy)
    scan_vertices = world_vertices(scan)
    scan_matrix = np.array(scan.matrix_world)
    scan_mesh = scan.data.name

    assert bpy.ops.imhead.fit_scan('EXEC_DEFAULT', **FAST) == {'FINISHED'}

    head = bpy.context.active_object
    assert head != scan and head.imhead.model_hash and head.select_get()
    assert len(head.imhead["identity"]) > 0
    assert head.imhead.fitted_to == "Scan"
    assert head.type == 'MESH' and len(head.data.polygons) > 500
    assert scan.data.name == scan_mesh
    np.testing.assert_array_equal(world_vertices(scan), scan_vertices)
    np.testing.assert_array_equal(np.array(scan.matrix_world), scan_matrix)

    # The evaluated head (with the fitted expression key, if any) in world space, on the scan (metres).
    evaluated = head.evaluated_get(bpy.context.evaluated_depsgraph_get()).to_mesh()
    co = np.empty(3 * len(evaluated.vertices), np.float32)
    evaluated.vertices.foreach_get("co", co)
    head.evaluated_get(bpy.context.evaluated_depsgraph_get()).to_mesh_clear()
    matrix = np.array(head.matrix_world)
    fitted = co.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]
    sample = np.random.default_rng(0).choice(len(fitted), 1500, replace=False)
    distances = surface_distances(fitted[sample], scan)
    assert np.median(distances) < 0.003  # metres: loose, the tiny model is a rough one
    assert np.percentile(distances, 90) < 0.008
    assert np.all((0.1 < np.array(head.dimensions)) & (np.array(head.dimensions) < 0.5))  # metres, as the scan


def test_undo_removes_the_fitted_head(bpy):
    make_scan(bpy)
    before = scene_state(bpy)
    bpy.ops.ed.undo_push(message="before fit")
    assert bpy.ops.imhead.fit_scan('EXEC_DEFAULT', True, **FAST) == {'FINISHED'}
    assert len(bpy.data.objects) == 2
    bpy.ops.ed.undo()
    assert scene_state(bpy) == before  # the scan is back as it was; the fitted head is gone


def start_modal_fit(bpy, installed_extension, quality="fast"):
    """A scan and the modal fit's session on it, as the operator's invoke() starts it in a window
    (background Blender's operators get no window, but bpy.context has one: its timers and status
    text work; its events are sent by the test)."""
    fit_operators = sys.modules[f"{installed_extension}.operators.fit"]
    bridge = sys.modules[f"{installed_extension}.imhead_blender"]
    scan = make_scan(bpy)
    settings = {"neutral": False, "quality": quality, "steps": FAST["steps"] if quality == "fast" else 0,
                "n_points": FAST["n_points"], "topology": bridge.IMPLICIT, "resolution": RESOLUTION}
    before = scene_state(bpy)
    session = fit_operators.fit_session(bpy.context, bridge.load_model(), world_vertices(scan).astype(np.float64),
                                        None, settings)
    return session, before


def test_the_modal_fit_adds_the_head_when_its_worker_is_done_and_lets_only_navigation_through(
        bpy, installed_extension):
    session, _ = start_modal_fit(bpy, installed_extension)
    assert session.handle(bpy.context, 'MIDDLEMOUSE') == {'PASS_THROUGH'}  # looking around
    assert session.handle(bpy.context, 'X') == {'RUNNING_MODAL'}            # deleting is held back
    deadline = time.monotonic() + 300
    while (status := session.handle(bpy.context, 'TIMER')) == {'RUNNING_MODAL'}:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert status == {'FINISHED'}, session.reports
    assert session.timer is None and not session.job.thread.is_alive()
    head = bpy.context.active_object
    assert head.imhead.fitted_to == "Scan" and head.name in bpy.context.scene.objects
    [(level, message)] = session.reports
    assert level == {'INFO'} and message.startswith(f"Fitted {head.name} to Scan")


def test_esc_mid_fit_stops_the_worker_and_leaves_the_scene_as_it_was(bpy, installed_extension):
    session, before = start_modal_fit(bpy, installed_extension, quality="best")
    assert session.handle(bpy.context, 'TIMER') == {'RUNNING_MODAL'}
    assert session.handle(bpy.context, 'ESC') == {'CANCELLED'}
    assert not session.job.thread.is_alive() and session.job.outcome is None and session.timer is None
    assert session.reports == [({'INFO'}, "Fitting cancelled")]
    assert scene_state(bpy) == before
    time.sleep(0.3)
    assert session.handle(bpy.context, 'TIMER') == {'CANCELLED'} and scene_state(bpy) == before  # a late event


def test_a_file_loaded_mid_fit_ends_the_fit_and_the_add_on_fits_again(bpy, installed_extension, tmp_path):
    session, _ = start_modal_fit(bpy, installed_extension, quality="best")
    saved = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(saved), copy=True)
    assert session.handle(bpy.context, 'TIMER') == {'RUNNING_MODAL'}
    session.cancel(bpy.context)  # what Blender calls on a running modal operator when a file is loaded
    assert not session.job.thread.is_alive() and session.timer is None
    bpy.ops.wm.open_mainfile(filepath=str(saved))
    assert bpy.data.objects.keys() == ["Scan"]  # the file as it was saved: no half-made head
    bpy.context.view_layer.objects.active = bpy.data.objects["Scan"]
    assert bpy.ops.imhead.fit_scan('EXEC_DEFAULT', **FAST) == {'FINISHED'}


def test_a_scan_deleted_mid_fit_is_reported_and_no_head_is_added(bpy, installed_extension):
    session, _ = start_modal_fit(bpy, installed_extension)
    bpy.data.objects.remove(bpy.data.objects["Scan"])
    left = scene_state(bpy)
    session.job.thread.join(300)
    assert session.handle(bpy.context, 'TIMER') == {'CANCELLED'}
    assert session.reports == [({'ERROR'}, "the scan Scan is no longer in the scene")]
    assert scene_state(bpy) == left


def test_a_neutral_fit_has_no_expression_key(bpy):
    make_scan(bpy)
    assert bpy.ops.imhead.fit_scan('EXEC_DEFAULT', fit_expression=False, **FAST) == {'FINISHED'}
    assert bpy.context.active_object.data.shape_keys is None


def test_a_point_cloud_without_faces_is_fitted(bpy):
    scan = make_scan(bpy)
    points = world_vertices(scan)
    mesh = bpy.data.meshes.new("Cloud")
    mesh.vertices.add(len(points))
    mesh.vertices.foreach_set("co", points.astype(np.float32).ravel())
    cloud = bpy.data.objects.new("Cloud", mesh)
    bpy.context.collection.objects.link(cloud)
    bpy.context.view_layer.objects.active = cloud
    assert bpy.ops.imhead.fit_scan('EXEC_DEFAULT', **FAST) == {'FINISHED'}
    assert bpy.context.active_object.imhead.fitted_to == "Cloud"


def add_points(bpy, name, points):
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(points))
    mesh.vertices.foreach_set("co", np.asarray(points, np.float32).ravel())
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    return obj


def fails(bpy, message):
    before = scene_state(bpy)
    with pytest.raises(RuntimeError, match=message):
        bpy.ops.imhead.fit_scan('EXEC_DEFAULT', **FAST)
    assert scene_state(bpy) == before


def test_no_active_object_is_refused(bpy):
    assert not bpy.ops.imhead.fit_scan.poll()
    fails(bpy, "poll")


def test_a_camera_is_refused(bpy):
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    bpy.context.collection.objects.link(camera)
    bpy.context.view_layer.objects.active = camera
    assert not bpy.ops.imhead.fit_scan.poll()
    fails(bpy, "poll")


def test_an_empty_mesh_is_refused(bpy):
    add_points(bpy, "Empty", np.zeros((0, 3)))
    fails(bpy, "poll")


def test_fifty_vertices_are_reported(bpy):
    add_points(bpy, "Few", np.random.default_rng(0).normal(size=(50, 3)) * 0.1)
    fails(bpy, "only 50 points")


def test_a_scan_of_no_head_size_is_reported(bpy):
    add_points(bpy, "Huge", np.random.default_rng(0).normal(size=(1000, 3)) * 1e6)
    fails(bpy, "not the size of a head")


def test_nan_coordinates_are_reported(bpy):
    points = np.random.default_rng(0).normal(size=(1000, 3)) * 0.1
    points[3] = np.nan
    add_points(bpy, "Broken", points)
    fails(bpy, "NaN")


def test_a_cloud_that_no_head_explains_is_reported_and_adds_no_head(bpy):
    # Points filling a ball of a head's size: whatever the fit does, no surface lies on a volume.
    rng = np.random.default_rng(0)
    directions = rng.normal(size=(3000, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    add_points(bpy, "Ball", directions * 0.13 * rng.random((3000, 1)) ** (1 / 3))
    fails(bpy, "within 5 mm of only")
