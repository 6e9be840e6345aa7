"""The artist mesh (model/runtime/artist_mesh.py): the shipped topology, the placement by keypoints, and
the conformed mesh of a bundled-model head on its implicit surface."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from model import HeadModel
from model.runtime import artist_mesh, editing, parallel
from model.runtime.frame import MM, model_to_mm
from model.runtime.numpy_gradients import sdf_and_vjp

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "weights" / "imhead.npz"


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_shipped_as_derived(path, derived):
    with np.load(path) as shipped:
        assert set(shipped.files) == set(derived)
        for name, values in derived.items():
            np.testing.assert_array_equal(shipped[name], values, err_msg=name)
            assert shipped[name].dtype == values.dtype


def test_the_shipped_topology_is_the_ict_skin_as_derived_from_the_vendored_data():
    assert_shipped_as_derived(artist_mesh.TOPOLOGY_PATH, load_script("make_artist_topology").skin_topology())
    licence = (artist_mesh.TOPOLOGY_DIR / "ICT-FACE-MODEL-LICENSE.txt").read_text()
    assert "MIT" in licence or "Permission is hereby granted" in licence


def test_the_shipped_parts_are_the_ict_eyes_teeth_gums_and_lashes_as_derived_from_the_vendored_data():
    assert_shipped_as_derived(artist_mesh.PARTS_PATH, load_script("make_artist_topology").parts_topology())
    parts = artist_mesh.load_parts()
    assert list(parts) == ["eyeball_l", "eyeball_r", "teeth", "gums_tongue", "lashes_l", "lashes_r"]
    for part in parts.values():
        corners = part.faces >= 0
        assert corners[:, :3].all() and np.array_equal(corners, part.face_uv >= 0)  # quads and triangles
        assert np.array_equal(np.unique(part.faces[corners]), np.arange(len(part.vertices)))
        assert part.corner_uv.shape == (corners.sum(), 2) and (part.uv > 0).all()
        assert part.anchors.shape == part.anchor_weights.shape == (len(part.vertices), artist_mesh.ANCHORS)
        assert 0 <= part.anchors.min() and part.anchors.max() < 14062  # skin vertices
        np.testing.assert_allclose(part.anchor_weights.astype(np.float32).sum(1), 1.0, atol=5e-3)
        assert part.expressions.shape == (53, len(part.vertices), 3)
    assert len(artist_mesh.part_expression_names()) == 53


def test_a_parts_expression_offsets_are_icts_shapes_turned_and_scaled_with_its_placement():
    teeth = artist_mesh.load_parts()["teeth"]
    names = list(artist_mesh.part_expression_names())
    jaw = teeth.expressions[names.index("jawOpen")].astype(np.float32)
    weights = np.zeros((2, len(names)), np.float32)
    weights[0, names.index("jawOpen")] = 1.0
    weights[1, names.index("jawOpen")] = 0.5
    offsets = artist_mesh.part_expression_offsets("teeth", teeth.vertices, names, weights)
    np.testing.assert_allclose(offsets, [jaw, 0.5 * jaw], atol=1e-6)
    angle = np.radians(20)
    turn = 1.1 * np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    placed = teeth.vertices @ turn.T + np.array([0.1, -0.2, 0.05])
    offsets = artist_mesh.part_expression_offsets("teeth", placed, names, weights)
    np.testing.assert_allclose(offsets[0], jaw @ turn.T, atol=1e-5)
    # Columns are matched by name; a name ICT has no shape for moves nothing.
    reordered = artist_mesh.part_expression_offsets("teeth", placed, ["noSuchShape", "jawOpen"], [[1.0, 1.0]])
    np.testing.assert_allclose(reordered[0], offsets[0], atol=1e-6)

    # eyeLookOut_L turns the left eyeball rigidly, out (+x) by EYE_TURN_DEGREES, in the head's turned frame.
    eye = artist_mesh.load_parts()["eyeball_l"].vertices
    placed = eye @ turn.T + np.array([0.1, -0.2, 0.05])
    (look,) = artist_mesh.part_expression_offsets("eyeball_l", placed, ["eyeLookOut_L", "jawOpen"], [[1.0, 1.0]])
    angle = np.radians(artist_mesh.EYE_TURN_DEGREES)
    out = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    centred = placed - placed.mean(0)
    np.testing.assert_allclose(look, centred @ (turn / 1.1) @ out.T @ (turn / 1.1).T - centred, atol=1e-5)
    assert not artist_mesh.part_expression_offsets("eyeball_r", placed, ["eyeLookOut_L"], [[1.0]]).any()


def test_the_topology_is_one_quad_surface_with_the_neck_open_and_udim_uvs():
    topology = artist_mesh.load_topology()
    assert topology.vertices.shape == (14062, 3) and topology.quads.shape == (14034, 4)
    assert np.array_equal(np.unique(topology.quads), np.arange(14062))  # every vertex in a quad
    assert len(topology.boundary_loop()) == 54  # the only open loop: the bottom of the neck
    assert topology.boundary_loop().min() >= topology.part_starts["head_neck"]
    uv = topology.uv
    assert topology.quad_uv.max() == len(uv) - 1
    assert (uv > 0).all() and (uv[:, 0] < 2).all() and (uv[:, 1] < 1).all()  # UDIM tiles 1001 and 1002
    mesh = artist_mesh.ArtistMesh(topology.vertices, topology)
    assert mesh.corner_uv.shape == (4 * 14034, 2)


def test_placing_by_an_affine_map_of_the_keypoints_moves_the_template_by_that_map():
    topology = artist_mesh.load_topology()
    rng = np.random.default_rng(0)
    matrix = np.eye(3) + 0.1 * rng.standard_normal((3, 3))
    shift = rng.standard_normal(3) * 0.05
    keypoint_vertices = rng.choice(len(topology.vertices), 39, replace=False)
    source = topology.vertices[keypoint_vertices]
    placed = artist_mesh.place_template(topology.vertices, source, source @ matrix.T + shift)
    np.testing.assert_allclose(placed, topology.vertices @ matrix.T + shift, atol=1e-4)


def test_placing_lands_every_keypoint_on_its_target():
    topology = artist_mesh.load_topology()
    rng = np.random.default_rng(1)
    keypoint_vertices = rng.choice(len(topology.vertices), 39, replace=False)
    source = topology.vertices[keypoint_vertices]
    target = source + 5 * MM * rng.standard_normal(source.shape)  # not an affine image
    placed = artist_mesh.place_template(topology.vertices, source, target)
    assert np.abs(placed[keypoint_vertices] - target).max() < 0.01 * MM


def test_a_quad_turned_over_is_flipped_and_one_squeezed_flat_degenerate():
    topology = artist_mesh.load_topology()
    soundness = artist_mesh.QuadSoundness(topology.vertices, topology)
    flipped, degenerate = soundness(topology.vertices)
    assert not flipped.any() and not degenerate.any()
    quad = topology.quads[5000]
    turned = topology.vertices.copy()
    turned[quad[0]], turned[quad[1]] = topology.vertices[quad[1]], topology.vertices[quad[0]]
    assert soundness(turned)[0][5000]
    squeezed = topology.vertices.copy()
    squeezed[quad[[1, 3]]] = 0.5 * (squeezed[quad[0]] + squeezed[quad[2]])  # no area
    assert soundness(squeezed)[1][5000]


def test_a_guarded_move_turns_no_quad_over_and_keeps_the_moves_that_break_none():
    topology = artist_mesh.load_topology()
    soundness = artist_mesh.QuadSoundness(topology.vertices, topology)
    rng = np.random.default_rng(2)
    step = (3 * MM * rng.standard_normal(topology.vertices.shape)).astype(np.float32)  # folds most of the face
    assert sum(soundness(topology.vertices + step)[0]) > 1000
    moved = soundness.move(topology.vertices, step)
    flipped, degenerate = soundness(moved)
    assert not flipped.any() and not degenerate.any()
    kept = np.isclose(moved, topology.vertices + step).all(1)
    assert 0.05 < kept.mean() < 0.95  # not all held back: the vertices whose quads stay sound moved
    small = (0.01 * MM * rng.standard_normal(topology.vertices.shape)).astype(np.float32)
    np.testing.assert_array_equal(soundness.move(topology.vertices, small), topology.vertices + small)


@pytest.fixture(scope="module")
def bundled_head():
    model = HeadModel.load(BUNDLED)
    identity = model.sample_identity(3)
    return model, identity, artist_mesh.head_artist_mesh(model, identity)


def surface_distance_mm(model, identity, points):
    values, backward = sdf_and_vjp(model.network, points[None], model._code(identity))
    gradient = backward(np.ones_like(values))[0][0]
    return model_to_mm(np.abs(values[0]) / np.linalg.norm(gradient, axis=1))


def test_a_bundled_model_head_lies_on_its_implicit_surface(bundled_head):
    model, identity, mesh = bundled_head
    topology = artist_mesh.load_topology()
    on = artist_mesh.on_surface_vertices(topology)
    assert len(on) == topology.part_starts["eye_socket_l"]
    placed_mm = surface_distance_mm(model, identity, artist_mesh.place_template(
        topology.vertices, topology.vertices[[k["vertex"] for k in model.header["keypoints"]]],
        model.keypoints(identity))[on])
    distance_mm = surface_distance_mm(model, identity, mesh.vertices[on])
    assert placed_mm.mean() > 1.0  # the placement alone is a millimetre off: the conforming does the rest
    assert distance_mm.mean() <= 0.2
    assert np.percentile(distance_mm, 99) <= 1.0
    assert mesh.vertices.shape == topology.vertices.shape and mesh.vertices.dtype == np.float32


def soundness_of(model, identity, mesh):
    """(flipped, degenerate) counts of a head's artist mesh, against its placed template."""
    topology = mesh.topology
    placed = artist_mesh.place_template(
        topology.vertices, topology.vertices[[k["vertex"] for k in model.header["keypoints"]]],
        model.keypoints(identity))
    return tuple(int(unsound.sum()) for unsound in artist_mesh.QuadSoundness(placed, topology)(mesh.vertices))


def test_bundled_model_heads_have_no_flipped_or_degenerate_quad(bundled_head):
    model, identity, mesh = bundled_head
    assert soundness_of(model, identity, mesh) == (0, 0)  # unguarded, this head had 243 folded, 51 degenerate
    for seed in (0, 7):
        identity = model.sample_identity(seed)
        assert soundness_of(model, identity, artist_mesh.head_artist_mesh(model, identity)) == (0, 0)


# Generated head 8's neck slopes (its front faces forward and up): the rings above the neck's held rings,
# stepping along the whole gradient, slid down onto them and turned quads over, so the guard held the
# held rings up to 17.4 mm off the surface. With the axis followed more ring by ring its neck (the open
# loop and the NECK_AXIS_RING rings above) lies within 1.05 mm, and its farthest vertex is 5.08 mm off
# by |f| / |grad f| (0.54 mm of field in the crease between the lips, where |grad f| is 0.1).
NECK_MAX_MM, STRAY_MAX_MM = 1.5, 6.0


def test_a_sloping_neck_lies_on_its_surface_with_every_quad_sound():
    model = HeadModel.load(BUNDLED)
    identity = model.sample_identity(8)
    mesh = artist_mesh.head_artist_mesh(model, identity)
    topology = mesh.topology
    neck = np.concatenate(artist_mesh.neck_rings(topology))
    assert surface_distance_mm(model, identity, mesh.vertices[neck]).max() <= NECK_MAX_MM
    distance_mm = surface_distance_mm(model, identity, mesh.vertices[artist_mesh.on_surface_vertices(topology)])
    assert distance_mm.max() <= STRAY_MAX_MM
    assert distance_mm.mean() <= 0.2 and np.percentile(distance_mm, 99) <= 1.0
    assert soundness_of(model, identity, mesh) == (0, 0)


def cut_below_the_chin(model, identity):
    """The head's field cut flat 35 mm below its chin keypoint, across the template's neck axis, as the
    all-ages data cut its heads (model/data/neck.py): what a model trained on them learns. And the
    cut's plane as (point, unit normal into the head)."""
    topology = artist_mesh.load_topology()
    rings = artist_mesh.neck_rings(topology)
    keypoint_vertices = [k["vertex"] for k in model.header["keypoints"]]
    placed = artist_mesh.place_template(topology.vertices, topology.vertices[keypoint_vertices],
                                        model.keypoints(identity))
    loop_centre = placed[rings[0]].mean(0)
    axis = placed[rings[artist_mesh.NECK_AXIS_RING]].mean(0) - loop_centre
    axis /= np.linalg.norm(axis)
    chin = model.keypoints(identity)[[k["name"] for k in model.header["keypoints"]].index("chin")]
    point = loop_centre + ((chin - loop_centre) @ axis - 35 * MM) * axis
    function = model.sdf_function(identity)

    def field(points):
        return np.maximum(parallel.in_batches(function, points), ((point - points) @ axis).astype(np.float32))
    return field, point, axis


@pytest.mark.parametrize("seed", [0, 1])
def test_a_neck_cut_above_the_template_ends_in_the_cut_as_a_sleeve_turned_in(seed):
    model = HeadModel.load(BUNDLED)
    identity = model.sample_identity(seed)
    field, point, axis = cut_below_the_chin(model, identity)
    keypoint_vertices = [k["vertex"] for k in model.header["keypoints"]]
    mesh = artist_mesh.conform(field, model.keypoints(identity), keypoint_vertices)
    topology = mesh.topology
    start, capped = artist_mesh.placement(field, model.keypoints(identity), keypoint_vertices)
    assert capped and mesh.capped
    on = artist_mesh.on_surface_vertices(topology)
    values = field(mesh.vertices[on])
    distance_mm = model_to_mm(np.abs(values) / np.linalg.norm(
        artist_mesh.field_gradient(field, mesh.vertices[on], values), axis=1))
    assert distance_mm.mean() <= 0.2 and np.percentile(distance_mm, 99) <= 1.0  # 0.006 and 0.04 mm
    flipped, degenerate = artist_mesh.QuadSoundness(start, topology)(mesh.vertices)
    assert not flipped.any() and not degenerate.any()
    # The skin below the cut went onto it: the open loop is a hole in it, and every quad there faces out.
    on_cut = np.abs((mesh.vertices - point) @ axis) <= 0.1 * MM
    assert on_cut[artist_mesh.neck_rings(topology)[0]].all()
    cut_quads = on_cut[topology.quads].all(1)
    assert cut_quads.sum() > 500  # 839 and 808
    normal, _, _ = artist_mesh.quad_geometry(mesh.vertices, topology.quads[cut_quads])
    assert np.all(normal @ axis < 0)
    # The bundled model's own neck ends at the loop: its head is not laid over a cap.
    function = model.sdf_function(identity)
    assert not artist_mesh.placement(lambda points: parallel.in_batches(function, points),
                                     model.keypoints(identity), keypoint_vertices)[1]


def test_the_eye_sockets_follow_the_eyelids_without_collapsing(bundled_head):
    _, _, mesh = bundled_head
    topology = artist_mesh.load_topology()
    socket = slice(topology.part_starts["eye_socket_l"], None)
    quads = topology.quads[(topology.quads >= socket.start).all(1)]

    def areas(vertices):
        corners = vertices[quads]
        return 0.5 * np.linalg.norm(np.cross(corners[:, 2] - corners[:, 0], corners[:, 3] - corners[:, 1]), axis=1)

    ratio = areas(mesh.vertices) / areas(topology.vertices)
    assert np.percentile(ratio, 1) > 0.2 and np.percentile(ratio, 99) < 5


def test_a_region_edit_moves_only_the_vertices_within_its_fade_onto_the_edited_surface(bundled_head):
    model, identity, mesh = bundled_head
    offsets = editing.slider_offsets(model, {"nose": [2.5, -2.0]})
    edited = artist_mesh.head_artist_mesh(model, identity, offsets)
    share = editing.edit_share(model, mesh.vertices, identity, offsets)
    outside = share == 0
    assert 0 < (~outside).sum() < len(outside) // 2  # the face is dense around the nose: 38 % of the vertices
    np.testing.assert_array_equal(edited.vertices[outside], mesh.vertices[outside])
    moved = model_to_mm(np.linalg.norm(edited.vertices - mesh.vertices, axis=1))
    assert moved.max() > 1.0  # the nose changed by millimetres
    flipped, degenerate = artist_mesh.QuadSoundness(mesh.vertices, mesh.topology)(edited.vertices)
    assert not flipped.any() and not degenerate.any()  # against the unedited mesh, the refit's start

    inside = np.intersect1d(np.flatnonzero(~outside), artist_mesh.on_surface_vertices(mesh.topology))
    points = edited.vertices[inside]
    values = model.sdf(points, identity, local_offsets=offsets)
    field = lambda p: model.sdf(p, identity, local_offsets=offsets)  # noqa: E731
    slope = np.linalg.norm(artist_mesh.field_gradient(field, points, values), axis=1)
    distance = model_to_mm(np.abs(values) / slope)
    assert distance.mean() <= 0.2 and np.percentile(distance, 99) <= 1.0
