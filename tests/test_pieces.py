"""The pieces survey (model.evaluation.pieces): stray pieces counted and located by region."""
import numpy as np

from model import HeadModel
from model.evaluation.pieces import main, stray_pieces
from model.runtime.frame import MM
from model.runtime.head_state import HeadState, neutral_mesh
from model.runtime.meshing import SurfaceMesh, extract_surface


def small_sphere(centre, radius):
    return extract_surface(lambda p: np.linalg.norm(p - centre, axis=-1) - radius, 24,
                           (centre - 2 * radius, centre + 2 * radius))


def joined(*meshes):
    offsets = np.cumsum([0] + [len(m.vertices) for m in meshes[:-1]])
    return SurfaceMesh(np.concatenate([m.vertices for m in meshes]),
                       np.concatenate([m.faces + offset for m, offset in zip(meshes, offsets)]),
                       np.concatenate([m.normals for m in meshes]))


def test_a_bubble_at_the_nose_is_the_one_stray_piece_and_is_placed_at_the_nose(tiny_model):
    model = HeadModel.load(tiny_model)
    state = HeadState.generated(model, seed=0)
    head = neutral_mesh(model, state, 40)
    nose = model.keypoints(state.identity)[model.regions["nose"][0]]
    # well in front of the face, nearest to the nose's keypoint: a bubble the field would have there
    bubble = small_sphere(nose + np.array([0.0, -8 * MM, 0.0], np.float32), 2 * MM)
    strays = stray_pieces(model, state, joined(head, bubble))
    assert len(strays) == len(stray_pieces(model, state, head)) + 1
    [placed] = [s for s in strays if s["vertices"] == len(bubble.vertices)]
    assert placed["region"] == "nose" and 3.5 < placed["extent_mm"] < 4.5


def test_the_survey_prints_a_row_per_mesh_and_a_summary(tiny_model, capsys):
    main(["--model", str(tiny_model), "--heads", "1", "--resolution", "32"])
    out = capsys.readouterr().out
    assert out.count("| seed 0,") == 3
    assert "meshes are one closed piece; stray pieces by region:" in out
