"""The Anny heads: closed surfaces with a flat neck cap, in the ICT frame, keypoints on the anatomy.

The first run in a checkout builds Anny's blend-shape cache (about 80 s, .cache/anny/)."""
import numpy as np
import pytest

from model.data.anny_heads import AGE_BANDS_YEARS, AnnyHeadData, AnnyIdentity, neck_cut_point, sample_identity
from model.data.data_paths import DATA_DIR_ENV, DataMissingError
from model.data.heads import SKIN, template_keypoints
from model.data.samples import identity_samples
from model.runtime.frame import MM, MODEL_UNIT_M
from test_heads import _assert_closed_oriented_sphere, _assert_flat_neck_cap, _volume

MIDDLE = dict(gender=0.5, african=1 / 3, asian=1 / 3, caucasian=1 / 3, muscle=0.5, weight=0.5, height=0.5, proportions=0.5)


@pytest.fixture(scope="module")
def anny_data():
    return AnnyHeadData()


@pytest.fixture(scope="module")
def identities(anny_data):
    """A stream of sampled people, with the youngest and oldest ages added."""
    rng = np.random.default_rng(0)
    sampled = [anny_data.sample_identity(rng) for _ in range(10)]
    return sampled + [AnnyIdentity(age_years=1.0, **MIDDLE), AnnyIdentity(age_years=90.0, **MIDDLE)]


def _midline(anny_data):
    return np.abs(anny_data._model.template_vertices[:, 0].numpy()) < 1e-6


def test_heads_are_closed_single_pieces_capped_flat_across_the_neck(anny_data, identities):
    chin = anny_data.keypoint_names.index("chin")
    for identity in identities:
        head, _ = anny_data.head_and_keypoints(identity)
        assert head.vertices.dtype == np.float32 and np.abs(head.vertices).max() < 1.0
        assert set(np.unique(head.face_component)) == {SKIN, 1, 2}
        for component in (SKIN, 1, 2):
            faces = head.faces[head.face_component == component]
            _assert_closed_oriented_sphere(faces)  # one closed piece each
            assert _volume(head.vertices, faces) > 0, f"component {component} is wound inward"

        body, axis = anny_data.aligned_body(identity)
        plane_point = neck_cut_point(body[anny_data.keypoint_vertices[chin]], axis) / MODEL_UNIT_M
        cap_area_cm2 = _assert_flat_neck_cap(head, plane_point, axis)
        assert 20 < cap_area_cm2 < 400, cap_area_cm2  # a neck's cross-section, of a baby or a heavy adult


def test_heads_sit_in_the_ict_frame_at_their_own_size(anny_data):
    names = anny_data.keypoint_names
    ict = template_keypoints()
    adult_head, adult = anny_data.head_and_keypoints(AnnyIdentity(age_years=30.0, **MIDDLE))
    child_head, child = anny_data.head_and_keypoints(AnnyIdentity(age_years=2.0, **MIDDLE))
    for name in ("nose_tip", "chin", "eye_inner_L", "eye_outer_R"):
        assert np.linalg.norm(adult[names.index(name)] - ict[names.index(name)]) < 8 * MM, name
    assert np.linalg.norm(child[names.index("nose_tip")] - ict[names.index("nose_tip")]) < 25 * MM

    def eye_distance(keypoints):
        return np.linalg.norm(keypoints[names.index("eye_outer_L")] - keypoints[names.index("eye_outer_R")])

    assert eye_distance(child) < 0.92 * eye_distance(adult)  # not scaled to the adult's size
    assert _volume(child_head.vertices, child_head.skin_faces) < 0.7 * _volume(adult_head.vertices, adult_head.skin_faces)


def test_nose_tip_keypoint_is_each_heads_nose_tip(anny_data):
    """The hm08 nose tip of a head: the most forward vertex of its nose's midline profile."""
    names = anny_data.keypoint_names
    tip, subnasale, bridge = (anny_data.keypoint_vertices[names.index(n)] for n in ("nose_tip", "subnasale", "nose_bridge"))
    midline = _midline(anny_data)
    rng = np.random.default_rng(1)
    distances = []
    for _ in range(40):
        body, _ = anny_data.aligned_body(anny_data.sample_identity(rng))
        nose = midline & (body[:, 2] > body[subnasale, 2]) & (body[:, 2] < body[bridge, 2])
        most_forward = np.flatnonzero(nose)[np.argmin(body[nose, 1])]
        distances.append(np.linalg.norm(body[most_forward] - body[tip]) * 1000)
    assert np.median(distances) < 1.0 and max(distances) < 6.0, distances


def test_heads_train_like_ict_heads(anny_data):
    head, _ = anny_data.head_and_keypoints(AnnyIdentity(age_years=8.0, **MIDDLE))
    samples = identity_samples(head, 256, 256, 256, np.random.default_rng(2))
    assert np.abs(samples["near_sdf"]).max() < 0.2
    free = samples["free"]
    outside_box = ((free < head.vertices.min(axis=0)) | (free > head.vertices.max(axis=0))).any(axis=1)
    assert outside_box.sum() > 100 and (samples["free_sdf"][outside_box] > 0).all()
    assert (samples["free_sdf"] < 0).any()  # some free points fall inside the head


def test_sampled_ages_and_mixes_meet_the_shares():
    labels = ["nose-hump-incr", "l-ear-lobe-incr", "r-ear-lobe-incr", "chin-width-incr"]
    rng = np.random.default_rng(3)
    people = [sample_identity(rng, labels) for _ in range(1000)]
    ages = np.array([p.age_years for p in people])
    assert ages.min() >= 1.0 and ages.max() <= 90.0
    assert (ages < 12).mean() >= 0.15 and (ages > 60).mean() >= 0.10
    assert min(share for _, _, share in AGE_BANDS_YEARS) > 0.15
    mixes = np.array([(p.african, p.asian, p.caucasian) for p in people])
    assert np.allclose(mixes.sum(axis=1), 1.0)
    assert (np.bincount(mixes.argmax(axis=1), minlength=3) > 250).all()  # each ethnicity leads often
    assert ((mixes.max(axis=1) > 0.4) & (mixes.max(axis=1) < 0.6)).mean() > 0.1  # and mixes are common
    genders = np.array([p.gender for p in people])
    assert (genders < 0.2).mean() > 0.15 and (genders > 0.8).mean() > 0.15
    ears = np.array([(p.local_changes.get("l-ear-lobe-incr", 0), p.local_changes.get("r-ear-lobe-incr", 0)) for p in people])
    active = (ears != 0).all(axis=1)
    assert 0.2 < active.mean() < 0.4 and (ears == 0).all(axis=1).sum() + active.sum() == 1000  # twins move together
    assert np.corrcoef(ears[active].T)[0, 1] > 0.9
    again = sample_identity(np.random.default_rng(3), labels)
    assert again == people[0]


def test_no_facial_action_targets_are_used(anny_data):
    assert anny_data._model.facial_action_labels == []
    assert all(not label.startswith("facial_action") for label in anny_data._model.blendshape_labels)


def test_missing_keypoints_file_is_a_clear_error_naming_the_path(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(DataMissingError) as error:
        AnnyHeadData()
    assert str(tmp_path / "anny" / "keypoints.json") in str(error.value)
