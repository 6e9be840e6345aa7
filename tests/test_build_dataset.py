"""The all-ages data set: ICT and Anny heads in one npz, disjoint held-out streams, cached builds."""
import json
import shutil
import time

import numpy as np
import pytest

from model.data.anny_heads import AnnyHeadData
from model.data.build_dataset import (ANNY, ICT, anny_candidate, build_dataset, data_version, held_out_heads,
                                      ict_candidate, progress_bar)
from model.data.data_paths import DATA_DIR_ENV, data_dir
from model.data.heads import HeadData
from model.training.train import dataset_path, load_config
from test_heads import _assert_closed_oriented_sphere, _volume

SMALL = dict(seed=0, n_surface=256, n_near=256, n_free=128, expressions_per_identity=1)


@pytest.fixture(scope="module")
def anny_data():
    return AnnyHeadData()


def _build(path, n_ict, n_anny, cache):
    return build_dataset(path, n_ict, SMALL["seed"], SMALL["n_surface"], SMALL["n_near"], SMALL["n_free"],
                         SMALL["expressions_per_identity"], workers=2, anny_heads=n_anny, flat_neck_cut=True,
                         head_cache=cache)


def test_both_sources_in_one_data_set_built_once_and_reused(tmp_path, capsys):
    started = time.perf_counter()
    _build(tmp_path / "a.npz", 2, 3, tmp_path / "cache")
    first_seconds = time.perf_counter() - started
    data = np.load(tmp_path / "a.npz")
    assert data["source"].tolist() == [ICT, ICT, ANNY, ANNY, ANNY]
    assert data["surface"].shape == (5, 256, 3) and data["free_sdf"].shape == (5, 128)
    assert data["keypoints"].shape == (5, 39, 3)
    assert data["identity_weights"].shape == (2, 100)
    assert np.array_equal(data["identity_weights"][1], ict_candidate(0, data["candidate"][1]))
    # Expressions only on ICT identities, one each.
    assert data["exp_head"].tolist() == [0, 1] and data["exp_observed"].shape == (2, 256, 3)
    ages = data["age_years"]
    assert np.isnan(ages[:2]).all() and ((ages[2:] >= 1) & (ages[2:] <= 90)).all()
    assert data["anny_phenotypes"].shape == (3, 8) and len(json.loads(str(data["anny_local_changes"]))) == 3
    # Every head's samples have a surface: the near points straddle it, free points far off are outside.
    assert ((data["near_sdf"] < 0).mean(axis=1) > 0.2).all() and ((data["near_sdf"] > 0).mean(axis=1) > 0.2).all()
    # An Anny child's keypoints are closer together than an ICT adult's.
    assert np.ptp(data["keypoints"][0], axis=0).max() > 0.5

    files = sorted(p.name for p in (tmp_path / "cache").rglob("*.npz"))
    started = time.perf_counter()
    _build(tmp_path / "b.npz", 2, 3, tmp_path / "cache")
    assert time.perf_counter() - started < 0.5 * first_seconds, "the cached heads are reused"
    assert sorted(p.name for p in (tmp_path / "cache").rglob("*.npz")) == files
    again = np.load(tmp_path / "b.npz")
    for key in data.files:
        assert np.array_equal(data[key], again[key], equal_nan=data[key].dtype.kind == "f"), key
    # A larger build starts with the smaller one's heads.
    _build(tmp_path / "c.npz", 3, 4, tmp_path / "cache")
    larger = np.load(tmp_path / "c.npz")
    assert np.array_equal(larger["surface"][:2], data["surface"][:2])
    assert np.array_equal(larger["surface"][3:6], data["surface"][2:5])


def test_held_out_streams_never_meet_the_training_identities(anny_data):
    training = np.stack([ict_candidate(0, k) for k in range(2000)])
    held_out = held_out_heads(ICT, 20, ict_data=HeadData(flat_neck_cut=True))
    assert len(held_out) == 20
    nearest = [np.abs(training - weights).max(axis=1).min() for weights, _ in held_out]
    assert min(nearest) > 0.1  # not one weight vector repeated

    def key(identity):
        return repr(identity)  # every phenotype and local target, in full precision

    anny_training = {key(anny_candidate(anny_data, 0, k)) for k in range(1000)}
    anny_held_out = held_out_heads(ANNY, 20, anny_data=anny_data)
    assert len(anny_held_out) == 20 and not {key(identity) for identity, _ in anny_held_out} & anny_training
    assert len(anny_training) == 1000
    ages = np.array([identity.age_years for identity, _ in anny_held_out])
    assert (ages < 12).sum() >= 5 and (ages > 60).sum() >= 5
    for _, head in anny_held_out[:3] + held_out[:3]:
        skin = head.skin_faces
        _assert_closed_oriented_sphere(skin)
        assert _volume(head.vertices, skin) > 0


def test_v2_config_names_its_own_cache_and_the_bundled_one_keeps_its_name():
    v2 = load_config("configs/v2.json")["data"]
    assert v2["heads"] + v2["anny_heads"] >= 2000 and v2["flat_neck_cut"]
    compact = load_config("configs/compact.json")["data"]
    assert dataset_path(compact).name == f"heads_300_s0_16384_16384_4096_e2_v{data_version()}.npz"
    assert dataset_path(v2) != dataset_path(compact) and "anny" in dataset_path(v2).name


def test_a_changed_data_file_or_builder_names_another_cache(tmp_path, monkeypatch):
    """The cache name follows what the data set is made from, not only its settings."""
    compact = load_config("configs/compact.json")["data"]
    before = dataset_path(compact)
    copy = tmp_path / "data"
    shutil.copytree(data_dir(), copy)
    monkeypatch.setenv(DATA_DIR_ENV, str(copy))
    data_version.cache_clear()
    try:
        assert dataset_path(compact) == before  # the same files elsewhere: the same data set
        with open(copy / "anny" / "keypoints.json", "a") as file:
            file.write(" ")
        data_version.cache_clear()
        assert dataset_path(compact) != before
    finally:
        data_version.cache_clear()


def test_progress_bar_shows_count_and_eta():
    import io
    stream = io.StringIO()
    progress = progress_bar(200, "heads", stream=stream)
    progress(0.25)
    assert "50/200 heads" in stream.getvalue() and "ETA" in stream.getvalue()
