"""The all-ages training surface has no enclosed air at the eyes or the mouth: eyeballs sealed into the
lids that cover them, ICT's lips parted; and the pocket measure that shows it finds the pockets of the
surface as it was."""
import igl
import numpy as np
import pytest

from model.data.build_dataset import ANNY, ICT, held_out_heads
from model.data.heads import (EYE_SEAL_DEPTH, EYE_SEAL_REACH, INNER_LIP_PAIRS, LIP_GAP_M, LIP_PARTING_STEP, SKIN,
                              HeadData, fit_sphere, sealed_eyeballs)
from model.evaluation.air_pockets import keypoint_regions, pockets
from model.runtime.frame import MODEL_UNIT_M

VOXEL_MM3 = 1.54 ** 3  # a voxel of the Final lattice


@pytest.fixture(scope="module")
def ict_data():
    return HeadData(flat_neck_cut=True)


def _inner_lip_gaps_mm(data, vertices):
    lips = np.asarray(data._inner_lips)
    return np.linalg.norm(vertices[lips[:, 0]] - vertices[lips[:, 1]], axis=1) * MODEL_UNIT_M * 1000


def test_each_ict_neutral_is_parted_by_the_least_jaw_open_that_holds_its_inner_lips_apart(ict_data):
    assert len(INNER_LIP_PAIRS) == 3
    jaw = np.zeros(53, np.float32)
    jaw_open = ict_data.expression_names.index("jawOpen")
    unparted = HeadData()
    partings = []
    for identity in np.random.default_rng(5).standard_normal((30, 100)).astype(np.float32):
        parting = ict_data.lip_parting(identity)
        partings.append(parting)
        gaps = _inner_lip_gaps_mm(ict_data, ict_data.vertices(identity))
        assert gaps.min() >= LIP_GAP_M * 1000 - 1e-3
        jaw[jaw_open] = parting
        assert np.allclose(ict_data.vertices(identity), unparted.vertices(identity, jaw), atol=1e-6)
        if parting > 0:  # one step less leaves a pair closer than the gap
            jaw[jaw_open] = parting - LIP_PARTING_STEP
            assert _inner_lip_gaps_mm(ict_data, unparted.vertices(identity, jaw)).min() < LIP_GAP_M * 1000
        # An expression comes on top of the parted pose.
        smile = np.zeros(53, np.float32)
        smile[ict_data.expression_names.index("mouthSmile_L")] = 0.7
        jaw[jaw_open] = parting
        assert np.allclose(ict_data.vertices(identity, smile), unparted.vertices(identity, jaw + smile), atol=1e-6)
    assert 0.0 < np.median(partings) < 0.2 and max(partings) < 0.3  # a small opening, not a gape


def test_the_bundled_models_ict_heads_keep_their_lips_and_eyes():
    data, identity = HeadData(), np.random.default_rng(6).standard_normal(100).astype(np.float32)
    assert np.array_equal(data.head(identity).vertices, data.vertices(identity))  # no parting, no sealing
    assert np.array_equal(data.vertices(identity)[:-1], data.neutral + (identity @ data.identity_basis).reshape(-1, 3))


def test_sealing_moves_only_covered_eyeball_points_radially_into_the_skin():
    head = HeadData().head(np.zeros(100))  # ICT's own neck: eyeballs as ICT made them
    sealed = sealed_eyeballs(head)
    assert np.array_equal(sealed.faces, head.faces) and np.array_equal(sealed.face_component, head.face_component)
    vertices, moved_to = head.vertices.astype(np.float64), sealed.vertices.astype(np.float64)
    skin = np.unique(head.skin_faces)
    assert np.array_equal(moved_to[skin], vertices[skin])
    moved = np.linalg.norm(moved_to - vertices, axis=1) > 0
    assert moved.sum() > 200
    # Every moved point ends inside the skin, no further than the reach and the depth out.
    winding = igl.fast_winding_number(vertices, head.skin_faces, moved_to[moved])
    assert (winding > 0.5).all()
    assert np.linalg.norm(moved_to - vertices, axis=1).max() <= EYE_SEAL_REACH + EYE_SEAL_DEPTH + 1e-6
    for shell in (1, 2, 3, 4):
        points = np.unique(head.faces[head.face_component == shell])
        centre, _ = fit_sphere(vertices[points])
        steps = moved_to[points] - vertices[points]
        outward = vertices[points] - centre
        radial = (steps * outward).sum(axis=1) / np.linalg.norm(outward, axis=1)
        # Radial and outward: the step is its own radial component.
        assert np.allclose(radial, np.linalg.norm(steps, axis=1), atol=1e-7)
        # The eye's front (the cornea, straight ahead of the centre: toward -Y) is exposed and stays.
        front = points[np.argmin(vertices[points, 1])]
        assert not moved[front]
        # Each shell is still closed and outward.
        faces = sealed.faces[sealed.face_component == shell]
        a, b, c = (moved_to[faces[:, i]] for i in range(3))
        assert np.einsum("ij,ij->i", a, np.cross(b, c)).sum() > 0


def test_the_all_ages_heads_hold_no_air_where_the_plain_ict_heads_hold_it_at_the_eyes_and_mouth(ict_data):
    """The Final lattice of the first held-out ICT identity: its plain head (the bundled model's data set)
    holds dozens of pockets at the eyes and its mouth socket closed off by the lips; its all-ages head at
    most two single voxels."""
    regions = keypoint_regions(ict_data)
    [(identity, head)] = held_out_heads(ICT, 1, ict_data=ict_data)
    found = pockets(head, ict_data.keypoints(ict_data.vertices(identity)), regions)
    assert len(found) <= 2 and sum(air for air, _ in found) <= 2 * VOXEL_MM3, found
    plain = HeadData()
    before = pockets(plain.head(identity), plain.keypoints(plain.vertices(identity)), regions)
    assert sum(region == "eyes" for _, region in before) >= 20
    assert max(air for air, region in before if region in ("lips", "mouth")) > 100_000  # mm^3: the socket


def test_anny_heads_hold_no_air_at_the_eyes(ict_data):
    from model.data.anny_heads import AnnyHeadData
    anny = AnnyHeadData()
    assert anny.keypoint_names == ict_data.keypoint_names
    for identity, _ in held_out_heads(ANNY, 2, anny_data=anny):
        head, keypoints = anny.head_and_keypoints(identity)
        found = pockets(head, keypoints, keypoint_regions(ict_data))
        eyes = [air for air, region in found if region == "eyes"]
        assert len(eyes) <= 2 and sum(eyes) <= 2 * VOXEL_MM3, found
