"""Signed distance against analytic shapes, and the training samples of real heads."""
import igl
import numpy as np
import pytest

import model.data.build_dataset as dataset
from model.data.heads import SKIN, Head, HeadData
from model.data.samples import (MM, expression_samples, identity_samples, sample_outer_surface,
                           signed_distance, surface_points)

BOX_HALF = 0.5
SPHERE_CENTRE = np.array([0.5, 0.0, 0.0])
SPHERE_RADIUS = 0.25


def _box_mesh():
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float) * BOX_HALF
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = np.array([t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))])
    return corners, faces


def _sphere_mesh(subdivisions=4):
    t = (1 + 5 ** 0.5) / 2
    vertices = np.array([[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t],
                         [0, -1, -t], [0, 1, -t], [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]], float)
    faces = np.array([[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4],
                      [11, 10, 2], [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8],
                      [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]])
    vertices, faces = igl.upsample(vertices, faces, subdivisions)
    vertices = vertices / np.linalg.norm(vertices, axis=1, keepdims=True)
    return SPHERE_CENTRE + SPHERE_RADIUS * vertices, faces


def _box_sdf(points):
    q = np.abs(points) - BOX_HALF
    return np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(axis=1), 0)


def _sphere_sdf(points):
    return np.linalg.norm(points - SPHERE_CENTRE, axis=1) - SPHERE_RADIUS


@pytest.fixture(scope="module")
def box_and_sphere():
    """A box (as the 'skin') united with a sphere (as an 'eyeball') sticking out of its +x face,
    and how far the sphere's triangle mesh lies inside the true sphere at most."""
    box_vertices, box_faces = _box_mesh()
    sphere_vertices, sphere_faces = _sphere_mesh()
    head = Head(np.concatenate([box_vertices, sphere_vertices]).astype(np.float32),
                np.concatenate([box_faces, sphere_faces + len(box_vertices)]),
                np.r_[np.full(len(box_faces), SKIN), np.ones(len(sphere_faces))].astype(np.int8))
    corners = sphere_vertices[sphere_faces] - SPHERE_CENTRE
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    plane_distance = np.einsum("ij,ij->i", corners[:, 0], normals) / np.linalg.norm(normals, axis=1)
    return head, SPHERE_RADIUS - plane_distance.min()


def test_signed_distance_matches_analytic_box_and_sphere(box_and_sphere):
    head, sphere_mesh_error = box_and_sphere
    assert sphere_mesh_error < 0.002
    rng = np.random.default_rng(0)
    on_box = rng.uniform(-BOX_HALF, BOX_HALF, (4000, 3))
    on_box[np.arange(4000), rng.integers(0, 3, 4000)] = rng.choice([-BOX_HALF, BOX_HALF], 4000)
    points = np.concatenate([rng.uniform(-1, 1, (4000, 3)), on_box + rng.normal(0, 0.01, (4000, 3))])
    box, sphere = _box_sdf(points), _sphere_sdf(points)
    exact = np.minimum(box, sphere)
    computed = signed_distance(head, points.astype(np.float32)).astype(np.float64)
    points64 = points.astype(np.float32).astype(np.float64)
    exact_at_float32 = np.minimum(_box_sdf(points64), _sphere_sdf(points64))
    # Where the box is nearer than any part of the sphere, the box mesh is the box: exact.
    box_decides = box < sphere - sphere_mesh_error
    assert box_decides.sum() > 5000
    assert np.abs(computed - exact_at_float32)[box_decides].max() < 1e-6
    # Everywhere, within how far the sphere's mesh is from the sphere, with the right sign.
    assert np.abs(computed - exact).max() < sphere_mesh_error + 1e-6
    clear = np.abs(exact) > sphere_mesh_error + 1e-6
    assert (np.sign(computed[clear]) == np.sign(exact[clear])).all()
    assert (exact < 0).sum() > 2000 and (exact > 0).sum() > 2000


def test_surface_samples_cover_only_the_union_boundary(box_and_sphere):
    head, sphere_mesh_error = box_and_sphere
    face_index, barycentric = sample_outer_surface(head, 20000, np.random.default_rng(0))
    points = surface_points(head.vertices, head.faces, face_index, barycentric).astype(np.float64)
    # A box sample inside the sphere, or a sphere sample inside the box, would be well inside.
    assert np.abs(np.minimum(_box_sdf(points), _sphere_sdf(points))).max() < sphere_mesh_error + 1e-6
    on_sphere = head.face_component[face_index] != SKIN
    visible_sphere = 2 * np.pi * SPHERE_RADIUS ** 2
    expected = visible_sphere / (6 - np.pi * SPHERE_RADIUS ** 2 + visible_sphere)
    assert abs(on_sphere.mean() - expected) < 0.01
    assert (points[on_sphere, 0] >= BOX_HALF - sphere_mesh_error).all()


@pytest.fixture(scope="module")
def head_data():
    return HeadData()


@pytest.fixture(scope="module")
def head(head_data):
    return head_data.head(np.random.default_rng(5).standard_normal(100))


def test_identity_samples_shapes_signs_and_exactness(head):
    samples = identity_samples(head, 3000, 2000, 1000, np.random.default_rng(0))
    shapes = {"surface": (3000, 3), "normals": (3000, 3), "near": (2000, 3), "near_sdf": (2000,),
              "free": (1000, 3), "free_sdf": (1000,)}
    assert {k: v.shape for k, v in samples.items()} == shapes
    assert all(v.dtype == np.float32 for v in samples.values())
    surface, normals = samples["surface"], samples["normals"]
    assert np.abs(signed_distance(head, surface)).max() < 1e-6  # on the union's outer surface
    assert np.allclose(np.linalg.norm(normals, axis=1), 1, atol=1e-5)
    step = 0.25 * MM
    assert (signed_distance(head, surface + step * normals) > 0).mean() > 0.99
    assert (signed_distance(head, surface - step * normals) < 0).mean() > 0.99
    near, near_sdf = samples["near"], samples["near_sdf"]
    assert np.array_equal(signed_distance(head, near), near_sdf)
    assert 0.3 < (near_sdf < 0).mean() < 0.7
    assert np.median(np.abs(near_sdf[:1000])) < 1.5 * MM  # the 1 mm half
    # A distance function is 1-Lipschitz.
    gap = np.abs(near_sdf[:-1] - near_sdf[1:]) - np.linalg.norm(near[:-1] - near[1:], axis=1)
    assert gap.max() < 1e-5
    free, free_sdf = samples["free"], samples["free_sdf"]
    assert np.abs(free).max() <= 1.0
    assert (free_sdf[np.abs(free).max(axis=1) > 0.9] > 0).all()
    assert (free_sdf < 0).any()


def test_expression_samples_are_dense_correspondences(head_data, head):
    rng = np.random.default_rng(1)
    index = head_data.expression_names.index("jawOpen")
    weights = np.zeros(53, np.float32)
    weights[index] = 0.8
    identity = np.random.default_rng(5).standard_normal(100)
    expressed = head_data.head(identity, weights)
    samples = expression_samples(head, expressed, 2000, 1000, rng)
    assert np.abs(signed_distance(head, samples["canonical"])).max() < 1e-6
    assert np.abs(signed_distance(expressed, samples["observed"])).max() < 1e-6
    moved = np.linalg.norm(samples["observed"] - samples["canonical"], axis=1)
    assert moved.max() > 10 * MM and np.median(moved) < 1 * MM  # the jaw moves, the cranium not
    assert np.array_equal(signed_distance(expressed, samples["near"]), samples["near_sdf"])


def test_samples_are_deterministic_for_a_seed(head):
    first, second, other = (identity_samples(head, 500, 500, 100, np.random.default_rng(s)) for s in (7, 7, 8))
    assert all(np.array_equal(first[k], second[k]) for k in first)
    assert not np.array_equal(first["surface"], other["surface"])


def test_dataset_arrays_and_independence_from_worker_count(tmp_path):
    sizes = dict(n_identities=2, seed=3, n_surface=300, n_near=200, n_free=100, expressions_per_identity=2)
    one_process = dataset.make_dataset(**sizes, workers=1)
    path = dataset.build_dataset(tmp_path / "data.npz", **sizes, workers=2)
    with np.load(path, allow_pickle=False) as data:
        two_processes = dict(data)
    expected = {"identity_weights": (2, 100), "surface": (2, 300, 3), "normals": (2, 300, 3),
                "near": (2, 200, 3), "near_sdf": (2, 200), "free": (2, 100, 3), "free_sdf": (2, 100),
                "keypoints": (2, 39, 3), "exp_head": (4,), "exp_weights": (4, 53),
                "exp_canonical": (4, 300, 3), "exp_observed": (4, 300, 3), "exp_near": (4, 200, 3),
                "exp_near_sdf": (4, 200), "expression_names": (53,), "keypoint_names": (39,), "seed": ()}
    assert {k: v.shape for k, v in two_processes.items()} == expected
    assert all(two_processes[k].dtype == np.float32 for k in expected
               if k not in ("exp_head", "expression_names", "keypoint_names", "seed"))
    assert two_processes["exp_head"].tolist() == [0, 0, 1, 1]
    assert all(np.array_equal(one_process[k], two_processes[k]) for k in expected)
    assert np.array_equal(two_processes["identity_weights"], dataset.training_identities(2, 3))


def test_held_out_identities_are_never_training_identities():
    held_out = dataset.test_identities(50)
    assert np.array_equal(dataset.test_identities(10), held_out[:10])
    for seed in range(3):
        training = dataset.training_identities(300, seed)
        distances = np.linalg.norm(training[:, None] - held_out[None], axis=2)
        assert distances.min() > 5.0  # independent N(0, I) draws in 100-d lie ~14 apart
    assert not np.array_equal(dataset.training_identities(5, 0), dataset.test_identities(5, 0))
