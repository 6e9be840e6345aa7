"""The closed ICT heads, their keypoints and the expression sampler."""
import time

import numpy as np
import pytest

from model.data.data_paths import DATA_DIR_ENV, PROJECT_ROOT, DataMissingError, ict_model_path
from model.data.heads import EXCLUSIVE_EXPRESSIONS, SKIN, HeadData, template_keypoints
from model.data.neck import NeckCutError
from model.data.samples import signed_distance

MM = 0.005  # model units


@pytest.fixture(scope="module")
def head_data():
    return HeadData()


def _volume(vertices, faces):
    a, b, c = (vertices[faces[:, i]].astype(np.float64) for i in range(3))
    return np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0


def _assert_closed_oriented_sphere(faces):
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    assert len(np.unique(directed, axis=0)) == len(directed), "an edge is used twice in one direction"
    undirected, counts = np.unique(np.sort(directed, axis=1), axis=0, return_counts=True)
    assert (counts == 2).all(), "every edge is shared by exactly two faces"
    n_vertices = len(np.unique(faces))
    assert n_vertices - len(undirected) + len(faces) == 2, "Euler characteristic of a sphere"


def test_skin_and_each_eyeball_shell_are_closed_outward_spheres(head_data):
    rng = np.random.default_rng(1)
    for head in (head_data.head(np.zeros(100)),
                 head_data.head(rng.standard_normal(100), head_data.random_expression(rng))):
        for component in np.unique(head.face_component):
            faces = head.faces[head.face_component == component]
            _assert_closed_oriented_sphere(faces)
            assert _volume(head.vertices, faces) > 0, f"component {component} is wound inward"
    assert set(np.unique(head.face_component)) == {SKIN, 1, 2, 3, 4}
    skin_volume_litres = _volume(head_data.head(np.zeros(100)).vertices, head.skin_faces) * 0.2 ** 3 * 1000
    assert 4.0 < skin_volume_litres < 6.5


def _assert_flat_neck_cap(head, plane_point, axis):
    """The skin lies above the plane and is closed there by a flat cap facing down the neck;
    returns the cap's area in cm^2."""
    skin = head.skin_faces
    height = (head.vertices[np.unique(skin)] - plane_point) @ axis
    assert height.min() > -1e-4 * MM, "skin below the neck cut"
    corners = head.vertices[skin].astype(np.float64)
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    in_plane = (np.abs((corners - plane_point) @ axis) < 1e-3 * MM).all(axis=1)
    cap_normals = normals[in_plane] / np.linalg.norm(normals[in_plane], axis=1, keepdims=True)
    assert (cap_normals @ axis < -0.9999).all(), "the cap faces down the neck, outward"
    return 0.5 * np.linalg.norm(normals[in_plane], axis=1).sum() * 20.0 ** 2


def test_flat_neck_cut_heads_are_closed_single_pieces_capped_flat_across_the_neck():
    data = HeadData(flat_neck_cut=True)
    rng = np.random.default_rng(4)
    heads, refused = 0, 0
    while heads < 6:
        identity = rng.standard_normal(100).astype(np.float32)
        try:
            neutral = data.head(identity)
        except NeckCutError:
            refused += 1
            continue
        heads += 1
        point, axis = data.neck_cut_plane(data.vertices(identity))
        assert np.degrees(np.arccos(axis[2])) < 25  # near vertical (0.8-20 degrees in 100 draws)
        twin, expressed = data.expression_pair(identity, data.random_expression(rng))
        assert np.array_equal(twin.faces, expressed.faces)
        for head in (neutral, expressed):
            assert set(np.unique(head.face_component)) == {SKIN, 1, 2, 3, 4}
            for component in np.unique(head.face_component):
                faces = head.faces[head.face_component == component]
                _assert_closed_oriented_sphere(faces)  # one closed piece each
                assert _volume(head.vertices, faces) > 0, f"component {component} is wound inward"
            cap_area_cm2 = _assert_flat_neck_cap(head, point, axis)  # the expression keeps the cap
            assert 60 < cap_area_cm2 < 250, cap_area_cm2  # an adult neck's cross-section
        # The old bottom of the neck (ICT's own cap, 6-12 cm below the chin) is gone.
        assert (neutral.vertices[:, 2].min() - data.vertices(identity)[:, 2].min()) > 15 * MM
        # Above the plane the surface is the uncut head's: its keypoint vertices are kept as they are.
        for keypoint in data.keypoints(data.vertices(identity))[:35]:  # all but the neck's four
            assert np.abs(neutral.vertices - keypoint).sum(axis=1).min() < 1e-6
    assert refused <= 2


def test_head_is_fast_and_in_the_model_frame(head_data):
    rng = np.random.default_rng(2)
    start = time.perf_counter()
    for _ in range(20):
        head = head_data.head(rng.standard_normal(100), head_data.random_expression(rng))
    assert (time.perf_counter() - start) / 20 < 0.02
    assert head.vertices.dtype == np.float32
    assert np.abs(head.vertices).max() < 1.0
    template = head_data.head(np.zeros(100)).vertices
    nose_tip = template[head_data.keypoint_vertices[head_data.keypoint_names.index("nose_tip")]]
    crown = template[head_data.keypoint_vertices[head_data.keypoint_names.index("crown")]]
    assert nose_tip[1] < -0.4 and crown[2] > 0.8  # face toward -Y, Z up


def test_expression_names_are_the_arkit_set(head_data):
    names = head_data.expression_names
    assert len(names) == 53 and names[0] == "browDown_L" and names[-1] == "noseSneer_R"
    assert not any(n.startswith(("PupilDilate", "cheekRaiser")) for n in names)


def test_keypoints_are_symmetric_outer_skin_vertices_in_one_region_each(head_data):
    names = head_data.keypoint_names
    assert len(names) == 39 == len(set(names))
    template = head_data.head(np.zeros(100)).vertices
    keypoints = head_data.keypoints(template)
    assert keypoints.shape == (39, 3)
    for name, mirror, point in zip(names, head_data.keypoint_mirrors, keypoints):
        mirror_point = keypoints[names.index(mirror)]
        assert head_data.keypoint_mirrors[names.index(mirror)] == name
        assert np.linalg.norm(point * [-1, 1, 1] - mirror_point) < 2 * MM, name
        if mirror == name:
            assert abs(point[0]) < 0.5 * MM, name
    # On the outside skin (face and head_neck parts), not in a socket or under an eyeball.
    assert (head_data.keypoint_vertices < 11248).all()
    # On the union's surface; the eye corners sit where the lids touch the eyeballs.
    assert np.abs(signed_distance(head_data.head(np.zeros(100)), keypoints)).max() < 0.25 * MM
    in_regions = sorted(i for members in head_data.regions.values() for i in members)
    assert in_regions == list(range(39))
    assert list(head_data.regions)[:3] == ["nose", "eyes", "brows"] and len(head_data.regions) == 13
    # Spread over the whole head: front and back, top and neck, both ears.
    assert keypoints[:, 1].max() > 0.4 and keypoints[:, 2].max() > 0.8 and keypoints[:, 2].min() < -0.4
    assert np.abs(keypoints[:, 0]).max() > 0.4
    assert np.array_equal(template_keypoints(), keypoints)  # what other sources are aligned to


def test_random_expressions_are_sparse_and_plausible(head_data):
    index = {n: i for i, n in enumerate(head_data.expression_names)}
    rng = np.random.default_rng(3)
    draws = np.stack([head_data.random_expression(rng) for _ in range(500)])
    active = draws > 0
    assert draws.dtype == np.float32 and draws.min() >= 0 and draws.max() <= 1
    assert set(active.sum(axis=1)) <= {1, 2, 3, 4} and 4 in set(active.sum(axis=1))
    assert active.any(axis=0).sum() > 45  # every kind of shape appears
    for group in EXCLUSIVE_EXPRESSIONS:
        assert (active[:, [index[n] for n in group]].sum(axis=1) <= 1).all(), group
    assert (draws[:, index["mouthClose"]] <= draws[:, index["jawOpen"]]).all()
    assert (draws[:, index["mouthClose"]] > 0).any()
    again = np.stack([head_data.random_expression(np.random.default_rng(3)) for _ in range(2)])
    assert np.array_equal(again[0], draws[0]) and np.array_equal(again[1], draws[0])


def test_missing_data_is_a_clear_error_naming_the_path(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(DataMissingError, match=str(tmp_path)) as error:
        HeadData()
    assert isinstance(error.value, FileNotFoundError)
    assert str(tmp_path / "ict-face-model" / "ict_face_model_light.npz") in str(error.value)


def test_data_is_read_from_the_repository_with_its_licence(monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    path = ict_model_path()
    assert path.parent == PROJECT_ROOT / "data" / "ict-face-model"
    assert "MIT License" in (path.parent / "LICENSE").read_text()
