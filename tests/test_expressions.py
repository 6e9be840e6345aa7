"""Expressions without Blender: inverting the warp per vertex, linear mixes, presets, animation files.
The key tests run on the tiny model (warp made ten times as strong where it is near identity) and on the
bundled model, whose warp moves points by millimetres (up to 25 mm for jawOpen)."""
import json

import numpy as np
import pytest

from model import HeadModel, ImHeadError
from model.runtime import expressions
from model.runtime.animation import read_expression_track, resample
from model.runtime.frame import model_to_mm

# The columns an iPhone face-capture app writes (Live Link Face), in its order.
LIVE_LINK_COLUMNS = (
    "Timecode,BlendShapeCount,EyeBlinkLeft,EyeLookDownLeft,EyeLookInLeft,EyeLookOutLeft,EyeLookUpLeft,"
    "EyeSquintLeft,EyeWideLeft,EyeBlinkRight,EyeLookDownRight,EyeLookInRight,EyeLookOutRight,EyeLookUpRight,"
    "EyeSquintRight,EyeWideRight,JawForward,JawRight,JawLeft,JawOpen,MouthClose,MouthFunnel,MouthPucker,"
    "MouthRight,MouthLeft,MouthSmileLeft,MouthSmileRight,MouthFrownLeft,MouthFrownRight,MouthDimpleLeft,"
    "MouthDimpleRight,MouthStretchLeft,MouthStretchRight,MouthRollLower,MouthRollUpper,MouthShrugLower,"
    "MouthShrugUpper,MouthPressLeft,MouthPressRight,MouthLowerDownLeft,MouthLowerDownRight,MouthUpperUpLeft,"
    "MouthUpperUpRight,BrowDownLeft,BrowDownRight,BrowInnerUp,BrowOuterUpLeft,BrowOuterUpRight,CheekPuff,"
    "CheekSquintLeft,CheekSquintRight,NoseSneerLeft,NoseSneerRight,TongueOut,HeadYaw,HeadPitch,HeadRoll,"
    "LeftEyeYaw,LeftEyePitch,LeftEyeRoll,RightEyeYaw,RightEyePitch,RightEyeRoll"
).split(",")


@pytest.fixture(scope="module")
def tiny(tiny_model):
    return HeadModel.load(tiny_model)


def model_head(model, resolution=32):
    identity = model.sample_identity(2, 1.0)
    mesh = model.extract_mesh(identity, resolution=resolution)
    return model, identity, mesh.vertices, expressions.mesh_edges(mesh.faces)


@pytest.fixture(scope="module")
def head(tiny):
    return model_head(tiny)[1:]


@pytest.fixture(scope="module")
def strong_warp(tiny_model):
    """The tiny model with its warp ten times as strong: displacements of millimetres to test the inverse."""
    model = HeadModel.load(tiny_model)
    model.network.warp.weights[-1] *= 10.0
    model.network.warp.biases[-1] *= 10.0
    return model


@pytest.fixture(scope="module")
def bundled():
    from conftest import ROOT
    return model_head(HeadModel.load(ROOT / "weights" / "imhead.npz"))


@pytest.fixture
def warped(request, tiny, head):
    """(model, identity, neutral vertices, edges) of the strong-warp tiny model or of the bundled model."""
    if request.param == "bundled":
        return request.getfixturevalue("bundled")
    return (request.getfixturevalue("strong_warp") if request.param == "strong_warp" else tiny, *head)


# The mean residual's bound: the tiny model's warp is smooth; the bundled one bends sharply at the lips,
# where a few vertices keep up to about a millimetre (the test after this one).
@pytest.mark.parametrize("warped, mean_residual_mm", [("strong_warp", 0.05), ("bundled", 0.1)], indirect=["warped"])
def test_inverse_warp_finds_where_each_vertex_goes(warped, mean_residual_mm):
    strong_warp, identity, vertices, edges = warped
    weights = np.eye(len(strong_warp.expression_names), dtype=np.float32)[[10, 26, 45]]  # blink, jaw, smile
    solved = expressions.inverse_warp(strong_warp, identity, vertices, edges, weights)
    assert solved.positions.shape == (3, len(vertices), 3)
    assert model_to_mm(np.abs(solved.positions - vertices).max()) > 1.0  # it really moves vertices

    for k, w in enumerate(weights):
        moved = np.flatnonzero(solved.solved[k])
        x = solved.positions[k, moved]
        # The residual reported is the warp's own: x + delta(x) lands on the vertex that far away.
        landed = strong_warp.warp(x, identity, w)
        np.testing.assert_allclose(np.linalg.norm(landed - vertices[moved], axis=1), solved.residual[k, moved],
                                   atol=1e-6)
        assert np.mean(solved.residual[k, moved] <= expressions.TOLERANCE) > 0.9
    summary = solved.residual_summary_mm()
    assert summary["mean"] < mean_residual_mm and summary["max"] >= summary["mean"]


def test_the_bake_reaches_the_vertices_where_the_bundled_warp_bends_sharply():
    """Issue #15's bar on a Final head: residual p99 <= 0.5 mm, max <= 2 mm. The expressions are those
    whose lips and jaw the plain fixed-point iteration left up to 22 mm away (jawOpen: 1,460 vertices
    beyond 2 mm)."""
    from conftest import ROOT
    model, identity, vertices, edges = model_head(HeadModel.load(ROOT / "weights" / "imhead.npz"), 256)
    names = model.expression_names
    hard = ["jawOpen", "mouthRollLower", "mouthRollUpper", "mouthSmile_L", "mouthFunnel"]
    solved = expressions.inverse_warp(model, identity, vertices, edges,
                                      np.eye(len(names), dtype=np.float32)[[names.index(n) for n in hard]])
    summary = solved.residual_summary_mm()
    assert summary["p99"] <= 0.5 and summary["max"] <= 2.0, summary
    assert model_to_mm(np.linalg.norm(solved.positions[0] - vertices, axis=-1).max()) > 10  # the jaw opens


@pytest.mark.parametrize("warped", ["tiny", "bundled"], indirect=True)
def test_vertices_left_in_place_are_where_the_expression_does_not_move_the_head(warped):
    tiny, identity, vertices, edges = warped
    solved = expressions.inverse_warp(tiny, identity, vertices, edges, np.eye(len(tiny.expression_names))[:4])
    kept = ~solved.solved
    np.testing.assert_array_equal(solved.positions[kept], np.broadcast_to(vertices, solved.positions.shape)[kept])
    # Measured at the screening samples: what the warp does there is all the error of keeping them.
    assert np.isfinite(solved.residual[kept]).any()
    assert solved.residual_summary_mm()["kept_max"] < 1.0


@pytest.mark.parametrize("warped", ["tiny", "bundled"], indirect=True)
def test_a_linear_mix_of_one_key_is_that_key_and_mixes_are_measured(warped):
    tiny, identity, vertices, edges = warped
    names = tiny.expression_names
    keys = expressions.inverse_warp(tiny, identity, vertices, edges, np.eye(len(names)))
    one = np.zeros(len(names), np.float32)
    one[7] = 1.0
    np.testing.assert_allclose(expressions.linear_mix(vertices, keys.positions, one), keys.positions[7], atol=1e-6)

    combinations = expressions.random_expressions(names, 3, seed=0)
    assert np.all((combinations > 0).sum(1) == 4) and combinations[:, names.index("mouthClose")].max() == 0
    error = expressions.linear_mix_error(tiny, identity, vertices, edges, keys, combinations)
    assert error.shape == (3, len(vertices)) and np.all(np.isfinite(error))
    assert model_to_mm(error.mean()) < 0.5


def test_groups_cover_every_expression_and_presets_name_real_ones(tiny):
    names = tiny.expression_names
    groups = expressions.expression_groups(names)
    assert [label for label, _ in groups] == ["Brows", "Eyes", "Cheeks", "Nose", "Jaw", "Mouth"]
    assert sorted(n for _, members in groups for n in members) == sorted(names)
    for preset, values in expressions.PRESETS.items():
        assert set(values) <= set(names), preset
        weights = expressions.preset_weights(names, preset)
        assert weights[names.index(next(iter(values)))] == pytest.approx(next(iter(values.values())))
    with pytest.raises(ImHeadError, match="unknown expression preset"):
        expressions.preset_weights(names, "boredom")


def test_a_face_capture_csv_maps_arkit_columns_to_the_models_expressions(tiny, tmp_path):
    names = tiny.expression_names
    rows = []
    for frame in range(3):
        values = {column: 0.0 for column in LIVE_LINK_COLUMNS[2:]}
        values.update(EyeBlinkLeft=0.1 * frame, BrowInnerUp=0.5, MouthLeft=0.25, JawOpen=0.3, HeadYaw=0.7)
        rows.append([f"13:57:29:{frame:02d}.584", "61"] + [f"{values[c]:.4f}" for c in LIVE_LINK_COLUMNS[2:]])
    path = tmp_path / "capture.csv"
    path.write_text("\n".join(",".join(r) for r in [LIVE_LINK_COLUMNS] + rows) + "\n")

    track = read_expression_track(path, names)
    assert track.values.shape == (3, len(names))
    column = {n: track.values[:, names.index(n)] for n in names}
    np.testing.assert_allclose(column["eyeBlink_L"], [0.0, 0.1, 0.2], atol=1e-6)
    np.testing.assert_allclose(column["browInnerUp_L"], 0.5)
    np.testing.assert_allclose(column["browInnerUp_R"], 0.5)
    np.testing.assert_allclose(column["mouthLeft"], 0.25)
    np.testing.assert_allclose(column["jawOpen"], 0.3)
    assert track.values.max() <= 0.5  # head rotations drive nothing
    assert track.unused == ["TongueOut"]


def test_every_arkit_blendshape_drives_an_expression_and_every_expression_is_driven(tiny, tmp_path):
    names = tiny.expression_names
    blendshapes = LIVE_LINK_COLUMNS[2:LIVE_LINK_COLUMNS.index("TongueOut")]
    path = tmp_path / "ones.csv"
    ones = ["0", "61"] + ["1"] * (len(LIVE_LINK_COLUMNS) - 2)
    path.write_text(",".join(LIVE_LINK_COLUMNS) + "\n" + ",".join(ones))
    track = read_expression_track(path, names)
    assert len(blendshapes) == 51 and np.all(track.values[0] == 1.0)


def test_json_and_npy_coefficients(tiny, tmp_path):
    names = tiny.expression_names
    values = np.random.default_rng(0).uniform(0, 1, (5, len(names))).astype(np.float32)
    (tmp_path / "a.json").write_text(json.dumps({"fps": 30, "names": names, "frames": values.tolist()}))
    (tmp_path / "b.json").write_text(json.dumps([{"jawOpen": 0.5}, {"JawOpen": 0.75, "eyeBlinkLeft": 1.0}]))
    np.save(tmp_path / "c.npy", values)

    track = read_expression_track(tmp_path / "a.json", names)
    assert track.fps == 30
    np.testing.assert_allclose(track.values, values, atol=1e-6)
    track = read_expression_track(tmp_path / "b.json", names)
    assert track.values[:, names.index("jawOpen")].tolist() == [0.5, 0.75]
    assert track.values[1, names.index("eyeBlink_L")] == 1.0
    np.testing.assert_array_equal(read_expression_track(tmp_path / "c.npy", names).values, values)

    (tmp_path / "d.npy").write_text("not an array")
    (tmp_path / "e.txt").write_text("")
    (tmp_path / "f.json").write_text(json.dumps({"frames": [{"tail": 1.0}]}))
    for bad, message in (("d.npy", "not a readable"), ("e.txt", "unknown animation file type"),
                         ("f.json", "no expression names"), ("missing.csv", "not found")):
        with pytest.raises(ImHeadError, match=message):
            read_expression_track(tmp_path / bad, names)



@pytest.mark.parametrize("content, message", [
    ({"names": ["jawOpen", "eyeBlink_L"], "frames": [[0.1, 0.2], [0.3]]}, "lists of 2 numbers"),
    ({"names": ["jawOpen"], "frames": [["wide"]]}, "lists of 1 numbers"),
    ({"names": ["jawOpen"], "frames": [[None]]}, "lists of 1 numbers"),
    ([{"jawOpen": 0.5}, [0.5]], "lists of"),
    ([{"jawOpen": "half"}], "frame 0: the value of 'jawOpen' is not a number"),
    ([{"jawOpen": 0.5}, {"jawOpen": float("nan")}], "1 of 2 frames have NaN"),
    ({"fps": "fast", "frames": [{"jawOpen": 0.5}]}, "fps must be a positive number"),
    ({"names": "jawOpen", "frames": [[0.5]]}, "names must be a list"),
    ({"frames": {"jawOpen": 0.5}}, "has no frames"),
])
def test_malformed_json_animation_is_refused_with_a_reason(tiny, tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ImHeadError, match=message):
        read_expression_track(path, tiny.expression_names)


def test_npy_animation_of_strings_or_nan_is_refused(tiny, tmp_path):
    names = tiny.expression_names
    np.save(tmp_path / "strings.npy", np.full((2, len(names)), "x"))
    values = np.zeros((3, len(names)), np.float32)
    values[1, 0] = np.inf
    np.save(tmp_path / "inf.npy", values)
    for bad, message in (("strings.npy", "expected numbers"), ("inf.npy", "1 of 3 frames have NaN or infinite")):
        with pytest.raises(ImHeadError, match=message):
            read_expression_track(tmp_path / bad, names)

def test_resampling_to_the_scene_frame_rate():
    values = np.arange(7, dtype=np.float32)[:, None] * [1.0, 2.0]  # 7 frames at 60 fps: 0.1 s
    at_30 = resample(values, 60, 30)
    np.testing.assert_allclose(at_30[:, 0], [0, 2, 4, 6])
    at_24 = resample(values, 60, 24)
    np.testing.assert_allclose(at_24[:, 1], [0, 5, 10], atol=1e-5)  # 0, 1/24 s = frame 2.5, 2/24 s = frame 5
    np.testing.assert_array_equal(resample(values, 60, 60), values)
