"""Closed ground-truth heads from the ICT Face Model, in the model frame.

A head is the union of two kinds of closed surfaces:
- the skin: parts face, head_neck, mouth_socket and eye_socket_l/r, one connected manifold
  wound outward, whose only hole (a 54-vertex loop at the bottom of the neck) is closed by a
  fan of triangles around the loop's centroid;
- the eyeballs: four closed shells (sclera and iris of each eye) that intersect the skin.
Open parts (gums, tongue, teeth, lacrimal, occlusion, eye-blend, lashes) are left out.

Vertex layout of every Head: the ICT skin vertices keep their ICT indices (0..14061), then
the eyeball vertices, then the neck cap's centre.

Keypoints (keypoints.json) are template vertices: the facial ones are ICT's Multi-PIE 68
landmarks; cheeks, ears, forehead, cranium, back of head and neck were chosen on the
template as the outer-skin vertex furthest along a direction (from the cranium's centre, or
within a ring around the neck), and each left point's mirror is the vertex at its mirror
image across x = 0 (the template is symmetric to 0.05 mm).
"""
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .data_paths import ict_model_path
from .frame import MODEL_UNIT_M, ict_to_model, ict_vectors_to_model

N_IDENTITY = 100
N_EXPRESSION = 53  # the ARKit-named shapes; PupilDilate and cheekRaiser are left out
KEYPOINTS_PATH = Path(__file__).with_name("keypoints.json")

SKIN_PARTS = ("face", "head_neck", "mouth_socket", "eye_socket_l", "eye_socket_r")
EYE_PARTS = ("eyeball_l", "eyeball_r")
SKIN = 0  # face_component id of the skin; eyeball shells are 1..4

MAX_ACTIVE_EXPRESSIONS = 4
# Shapes that pull the same tissue in opposite directions: at most one of each group is active.
EXCLUSIVE_EXPRESSIONS = (
    ("mouthLeft", "mouthRight"),
    ("jawLeft", "jawRight"),
    ("eyeLookIn_L", "eyeLookOut_L"),
    ("eyeLookIn_R", "eyeLookOut_R"),
    ("eyeLookUp_L", "eyeLookDown_L"),
    ("eyeLookUp_R", "eyeLookDown_R"),
    ("eyeBlink_L", "eyeWide_L"),
    ("eyeBlink_R", "eyeWide_R"),
    ("browDown_L", "browOuterUp_L"),
    ("browDown_R", "browOuterUp_R"),
    ("mouthSmile_L", "mouthFrown_L"),
    ("mouthSmile_R", "mouthFrown_R"),
    ("mouthPucker", "mouthFunnel", "mouthStretch_L", "mouthStretch_R"),
    ("mouthFunnel", "mouthRollLower"),
    ("mouthFunnel", "mouthRollUpper"),
    ("mouthPucker", "mouthRollLower"),
    ("mouthPucker", "mouthRollUpper"),
)


@dataclass(frozen=True)
class Head:
    """One closed head: the union of the closed components listed by face_component.

    Its true surface, e.g. of a held-out head for evaluation: vertices and faces."""
    vertices: np.ndarray  # (V, 3) float32, model frame
    faces: np.ndarray  # (F, 3) int64, outward wound
    face_component: np.ndarray  # (F,) int8: SKIN, or the eyeball shell 1..4

    @property
    def skin_faces(self):
        return self.faces[self.face_component == SKIN]

    @property
    def eye_faces(self):
        return self.faces[self.face_component != SKIN]


def template_keypoints():
    """(39, 3) float32 keypoints of the ICT template (all identity weights 0), model frame:
    where other sources' heads are aligned to."""
    vertices = [k["vertex"] for k in json.loads(KEYPOINTS_PATH.read_text())["keypoints"]]
    with np.load(ict_model_path()) as data:
        return ict_to_model(data["neutral"][vertices])


class HeadData:
    """The ICT Face Model, loaded once, producing closed heads in the model frame."""

    def __init__(self, path=None):
        with np.load(path or ict_model_path()) as data:
            ranges = dict(zip(data["part_names"].tolist(), data["part_ranges"].tolist()))
            all_faces = data["faces"].astype(np.int64)
            # The skin parts are the first vertices, in one run; the eyeballs another run.
            skin_hi = max(ranges[p][1] for p in SKIN_PARTS)
            eye_lo = min(ranges[p][0] for p in EYE_PARTS)
            eye_hi = max(ranges[p][1] for p in EYE_PARTS)
            ict_vertices = np.r_[0:skin_hi + 1, eye_lo:eye_hi + 1]

            skin_faces = all_faces[(all_faces <= skin_hi).all(axis=1)]
            eye_faces = all_faces[((all_faces >= eye_lo) & (all_faces <= eye_hi)).all(axis=1)]
            eye_faces = eye_faces - eye_lo + skin_hi + 1
            self._neck_loop = _single_boundary_loop(skin_faces)
            cap_centre = len(ict_vertices)
            # Reversed loop order: the cap continues the skin's outward winding.
            cap = np.stack([np.roll(self._neck_loop, -1), self._neck_loop,
                            np.full(len(self._neck_loop), cap_centre)], axis=1)
            self.faces = np.concatenate([skin_faces, cap, eye_faces])
            self.face_component = np.concatenate([
                np.full(len(skin_faces) + len(cap), SKIN, np.int8),
                _shell_ids(eye_faces, len(ict_vertices) + 1) + 1,
            ])

            self.neutral = ict_to_model(data["neutral"][ict_vertices])
            to_model = np.float32(0.01 / MODEL_UNIT_M)  # centimetres to model units
            self.identity_basis = (ict_vectors_to_model(
                data["id_basis"][:, ict_vertices].astype(np.float32)) * to_model).reshape(N_IDENTITY, -1)
            self.expression_basis = (ict_vectors_to_model(
                data["exp_basis"][:N_EXPRESSION, ict_vertices].astype(np.float32)) * to_model).reshape(N_EXPRESSION, -1)
            self.expression_names = data["exp_names"][:N_EXPRESSION].tolist()

        keypoints = json.loads(KEYPOINTS_PATH.read_text())
        self.keypoint_names = [k["name"] for k in keypoints["keypoints"]]
        self.keypoint_vertices = np.array([k["vertex"] for k in keypoints["keypoints"]], np.int64)
        self.keypoint_mirrors = [k["mirror"] for k in keypoints["keypoints"]]
        self.regions = {r: [i for i, k in enumerate(keypoints["keypoints"]) if k["region"] == r]
                        for r in keypoints["regions"]}
        self._expression_index = {n: i for i, n in enumerate(self.expression_names)}

    def vertices(self, identity_weights, expression_weights=None):
        """(V, 3) float32 model-frame vertices of a head, neck cap centre included."""
        offsets = np.asarray(identity_weights, np.float32) @ self.identity_basis
        if expression_weights is not None:
            offsets += np.asarray(expression_weights, np.float32) @ self.expression_basis
        v = self.neutral + offsets.reshape(-1, 3)
        return np.concatenate([v, v[self._neck_loop].mean(axis=0, keepdims=True)])

    def head(self, identity_weights, expression_weights=None):
        """The closed Head for identity weights (100,) and optional expression weights (53,)."""
        return Head(self.vertices(identity_weights, expression_weights), self.faces, self.face_component)

    def keypoints(self, vertices):
        """(39, 3) keypoint positions of a head's vertices."""
        return vertices[self.keypoint_vertices]

    def random_expression(self, rng):
        """A sparse plausible expression (53,) float32: 1-4 active shapes, weights in [0, 1].

        Opposing shapes are never combined, and mouthClose only comes with a larger jawOpen
        (mouthClose without jawOpen pushes the lips through each other).
        """
        n_active = rng.integers(1, MAX_ACTIVE_EXPRESSIONS + 1)
        weights = np.zeros(N_EXPRESSION, np.float32)
        active = []
        for index in rng.permutation(N_EXPRESSION):
            if len(active) == n_active:
                break
            name = self.expression_names[index]
            if name in active or self._conflicts(name, active):
                continue
            if name == "mouthClose" and "jawOpen" not in active:
                if len(active) + 2 > n_active or self._conflicts("jawOpen", active):
                    continue
                active.append("jawOpen")
            active.append(name)
        for name in active:
            weights[self._expression_index[name]] = rng.uniform(0.0, 1.0)
        if "mouthClose" in active:
            jaw, close = self._expression_index["jawOpen"], self._expression_index["mouthClose"]
            weights[close] *= weights[jaw]
        return weights

    @staticmethod
    def _conflicts(name, active):
        return any(name in group and any(a in group for a in active) for group in EXCLUSIVE_EXPRESSIONS)


def _single_boundary_loop(faces):
    """The vertex loop of the one hole of an oriented manifold, in the faces' edge order."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    directed = set(map(tuple, edges.tolist()))
    boundary = {a: b for a, b in edges.tolist() if (b, a) not in directed}
    start = next(iter(boundary))
    loop = [start]
    while boundary[loop[-1]] != start:
        loop.append(boundary[loop[-1]])
    if len(loop) != len(boundary):
        raise ValueError("skin surface has more than one hole")
    return np.array(loop, np.int64)


def _shell_ids(faces, n_vertices):
    """Connected-component id (0..) of each face."""
    rows = faces[:, [0, 1, 2]].ravel()
    cols = faces[:, [1, 2, 0]].ravel()
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_vertices, n_vertices))
    _, labels = connected_components(graph, directed=False)
    _, shell = np.unique(labels[faces[:, 0]], return_inverse=True)
    return shell.astype(np.int8)
