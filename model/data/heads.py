"""Closed ground-truth heads from the ICT Face Model, in the model frame.

A head is the union of two kinds of closed surfaces:
- the skin: parts face, head_neck, mouth_socket and eye_socket_l/r, one connected manifold
  wound outward, whose only hole (a 54-vertex loop at the bottom of the neck) is closed by a
  fan of triangles around the loop's centroid;
- the eyeballs: four closed shells (sclera and iris of each eye) that intersect the skin.
Open parts (gums, tongue, teeth, lacrimal, occlusion, eye-blend, lashes) are left out.

Vertex layout of every Head: the ICT skin vertices keep their ICT indices (0..14061), then
the eyeball vertices, then the neck cap's centre.

With flat_neck_cut (the all-ages data set, model/data/build_dataset.py), the skin is instead cut like
every Anny head (model/data/neck.py): by the plane NECK_CUT_BELOW_CHIN_M below the chin keypoint,
perpendicular to the neck's axis, and capped flat. ICT has no skeleton, so the neck's axis is
the line from the centroid of the neck's open bottom loop to the centroid of the vertex ring
NECK_AXIS_RING edges above it (5 cm below the chin on the template, 10 degrees from vertical,
leaning forward; Anny's neck bones lean 7-24 degrees). The plane is the identity's (from its
neutral head): an expressed head is cut by the same plane, so its cap stays where the neutral
one is (jawOpen pulls the skin below the chin down across the plane, up to 14 mm at the rim);
expression_pair gives the neutral pose with the expressed head's faces for dense correspondence.
Then the Head's vertices are the cut skin's (CutSurface order), then the eyeballs'.

The all-ages heads (flat_neck_cut, and every Anny head) also close the two thin gaps where a model
meshed at Final grows air pockets of its own (measured on the first v2 run: every stray piece was air
inside the head, next to an eyeball or in a mouth closed off by the lips):
- sealed_eyeballs: the eyelids and socket wrap the eyeball at 0-3.5 mm (ICT's sclera; Anny's sphere
  0.2-1 mm), air that reaches the outside only through the lid slit. Each eyeball point on its shell's
  outer side that skin covers within EYE_SEAL_REACH (radially, from the shell's fitted centre) moves
  EYE_SEAL_DEPTH into that skin; the exposed eye and ICT's inner sclera wall stay where they are;
- parted lips (ICT): the neutral presses the lips of about half of ICT's identities together and
  closes the mouth socket off. Each identity's neutral is opened by the least jawOpen that holds the
  three inner-lip landmark pairs LIP_GAP_M apart (lip_parting); its expressions are that pose plus theirs.
Both keep the signed distance exact: the training surface is still a union of closed components.

Keypoints (keypoints.json) are template vertices: the facial ones are ICT's Multi-PIE 68
landmarks; cheeks, ears, forehead, cranium, back of head and neck were chosen on the
template as the outer-skin vertex furthest along a direction (from the cranium's centre, or
within a ring around the neck), and each left point's mirror is the vertex at its mirror
image across x = 0 (the template is symmetric to 0.05 mm).
"""
import json
from dataclasses import dataclass
from pathlib import Path

import igl
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..runtime.frame import MM, MODEL_UNIT_M, ict_to_model, ict_vectors_to_model
from .data_paths import ict_model_path
from .neck import cut_and_cap, neck_cut_point

N_IDENTITY = 100
N_EXPRESSION = 53  # the ARKit-named shapes; PupilDilate and cheekRaiser are left out
KEYPOINTS_PATH = Path(__file__).with_name("keypoints.json")

SKIN_PARTS = ("face", "head_neck", "mouth_socket", "eye_socket_l", "eye_socket_r")
EYE_PARTS = ("eyeball_l", "eyeball_r")
SKIN = 0  # face_component id of the skin; eyeball shells are 1..4
NECK_AXIS_RING = 8  # edges above the neck's open loop: the ring whose centroid aims the neck's axis

EYE_SEAL_REACH = 5 * MM  # skin further than this out along the eyeball's radius does not cover it
EYE_SEAL_DEPTH = 0.5 * MM  # how far into the covering skin a covered eyeball point moves
LIP_GAP_M = 0.0025  # the least gap between the inner lips of a parted ICT neutral
# Multi-PIE 68 inner-lip landmarks facing each other: (61, 67), (62, 66), (63, 65).
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))
LIP_PARTING_STEP = 0.001  # jawOpen resolution of lip_parting

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

    def __init__(self, path=None, flat_neck_cut=False):
        self.flat_neck_cut = flat_neck_cut
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
            self._closed_skin_faces = np.concatenate([skin_faces, cap])
            self._eye_faces = eye_faces
            self._n_skin_vertices = skin_hi + 1
            self._neck_axis_ring = _vertices_at_edge_distance(skin_faces, self._neck_loop, NECK_AXIS_RING)
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
            self._inner_lips = np.asarray(data["landmarks68"], np.int64)[np.array(INNER_LIP_PAIRS)]

        keypoints = json.loads(KEYPOINTS_PATH.read_text())
        self.keypoint_names = [k["name"] for k in keypoints["keypoints"]]
        self.keypoint_vertices = np.array([k["vertex"] for k in keypoints["keypoints"]], np.int64)
        self.keypoint_mirrors = [k["mirror"] for k in keypoints["keypoints"]]
        self.regions = {r: [i for i, k in enumerate(keypoints["keypoints"]) if k["region"] == r]
                        for r in keypoints["regions"]}
        self._expression_index = {n: i for i, n in enumerate(self.expression_names)}

    def vertices(self, identity_weights, expression_weights=None):
        """(V, 3) float32 model-frame vertices of a head, neck cap centre included; with flat_neck_cut
        the identity's neutral is its parted pose (lip_parting) and expressions come on top of it."""
        identity_weights = np.asarray(identity_weights, np.float32)
        offsets = identity_weights @ self.identity_basis
        weights = np.zeros(N_EXPRESSION, np.float32)
        if self.flat_neck_cut:
            weights[self._expression_index["jawOpen"]] = self.lip_parting(identity_weights)
        if expression_weights is not None:
            weights += np.asarray(expression_weights, np.float32)
        if weights.any():
            offsets += weights @ self.expression_basis
        v = self.neutral + offsets.reshape(-1, 3)
        return np.concatenate([v, v[self._neck_loop].mean(axis=0, keepdims=True)])

    def lip_parting(self, identity_weights):
        """The least jawOpen weight (a multiple of LIP_PARTING_STEP) at which every pair of
        INNER_LIP_PAIRS of the identity's neutral is LIP_GAP_M apart."""
        lips = self._inner_lips.ravel()
        columns = (3 * lips[:, None] + np.arange(3)).ravel()
        neutral = (self.neutral[lips].ravel() + np.asarray(identity_weights, np.float32)
                   @ self.identity_basis[:, columns]).reshape(-1, 2, 3)
        jaw = self.expression_basis[self._expression_index["jawOpen"], columns].reshape(-1, 2, 3)
        steps = np.arange(0.0, 1.0 + LIP_PARTING_STEP / 2, LIP_PARTING_STEP)[:, None, None]
        gaps = np.linalg.norm((neutral[:, 0] - neutral[:, 1]) + steps * (jaw[:, 0] - jaw[:, 1]), axis=-1)
        parted = (gaps >= LIP_GAP_M / MODEL_UNIT_M).all(axis=1)
        if not parted.any():
            raise ValueError("jawOpen does not part this identity's lips")
        return float(steps[np.argmax(parted), 0, 0])

    def head(self, identity_weights, expression_weights=None):
        """The closed Head for identity weights (100,) and optional expression weights (53,).

        With flat_neck_cut, raises NeckCutError when the plane does not cut the skin in one loop
        that a flat fan closes (2 in 100 identities drawn from N(0, 1)): draw another."""
        vertices = self.vertices(identity_weights, expression_weights)
        if not self.flat_neck_cut:
            return Head(vertices, self.faces, self.face_component)
        return self._cut_head(vertices, self._cut(vertices, self.vertices(identity_weights)))

    def expression_pair(self, identity_weights, expression_weights):
        """(neutral, expressed) Heads of one identity with the same faces, so that a point with
        the same face and barycentric coordinates on both is the same point of the skin.

        Without flat_neck_cut these are head(identity) and head(identity, expression). With it,
        the expressed head is cut by its identity's neutral plane (an expression never moves the
        cap) and the neutral one is that same cut replayed on the neutral pose: its skin points
        lie on the neutral surface, a few of them below the neutral head's own cap where the
        expression lifts the neck's skin across the plane, and its cap is the rim's fan."""
        if not self.flat_neck_cut:
            return self.head(identity_weights), self.head(identity_weights, expression_weights)
        neutral = self.vertices(identity_weights)
        expressed = self.vertices(identity_weights, expression_weights)
        cut = self._cut(expressed, neutral)
        return self._cut_head(neutral, cut, cut.replay(neutral)), self._cut_head(expressed, cut)

    def neck_axis(self, vertices):
        """Unit vector up the neck of a head's vertices (the layout of self.vertices)."""
        axis = vertices[self._neck_axis_ring].mean(axis=0) - vertices[self._neck_loop].mean(axis=0)
        return (axis / np.linalg.norm(axis)).astype(np.float64)

    def neck_cut_plane(self, neutral_vertices):
        """(point, unit normal up the neck) of the flat neck cut of an identity, from its neutral
        head's vertices (the layout of self.vertices), model frame."""
        axis = self.neck_axis(neutral_vertices)
        chin = neutral_vertices[self.keypoint_vertices[self.keypoint_names.index("chin")]].astype(np.float64)
        return neck_cut_point(chin * MODEL_UNIT_M, axis) / MODEL_UNIT_M, axis

    def _cut(self, vertices, neutral_vertices):
        point, axis = self.neck_cut_plane(neutral_vertices)
        nose_tip = self.keypoint_vertices[self.keypoint_names.index("nose_tip")]
        return cut_and_cap(vertices, self._closed_skin_faces, point, axis, nose_tip)

    def _cut_head(self, vertices, cut, skin_vertices=None):
        """The Head of a cut skin and the eyeballs of vertices (the layout of self.vertices)."""
        skin = cut.vertices if skin_vertices is None else skin_vertices
        eyes = vertices[self._n_skin_vertices:-1]  # the last vertex is ICT's own cap's centre, cut away
        eye_faces = self._eye_faces - self._n_skin_vertices + len(skin)
        return sealed_eyeballs(Head(np.concatenate([skin, eyes]).astype(np.float32),
                                    np.concatenate([cut.faces, eye_faces]),
                                    np.concatenate([np.full(len(cut.faces), SKIN, np.int8),
                                                    self.face_component[-len(eye_faces):]])))

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


def sealed_eyeballs(head):
    """The head with each eyeball point that skin covers moved into that skin (the module docstring).

    A point is covered when the ray from its shell's fitted centre through it, on past it, enters the
    skin within EYE_SEAL_REACH; it then moves along that ray EYE_SEAL_DEPTH past the entry, or halfway
    through the skin where the skin is thinner than twice that. Points inside the skin already and
    points on a shell's inner side (normal towards the centre) stay. The moves are radial and outward,
    so each shell stays a closed, outward surface without self-intersections."""
    vertices = head.vertices.astype(np.float64)
    skin_faces = head.skin_faces
    skin_corners = vertices[skin_faces]
    skin_normals = np.cross(skin_corners[:, 1] - skin_corners[:, 0], skin_corners[:, 2] - skin_corners[:, 0])
    sealed = vertices.copy()
    for shell in np.unique(head.face_component[head.face_component != SKIN]):
        faces = head.faces[head.face_component == shell]
        points = np.unique(faces)
        centre, radius = fit_sphere(vertices[points])
        radial = vertices[points] - centre
        radial /= np.linalg.norm(radial, axis=1, keepdims=True)
        outer = (igl.per_vertex_normals(vertices, faces)[points] * radial).sum(axis=1) > 0
        nearby = (np.abs(skin_corners - centre) < radius + 2 * EYE_SEAL_REACH).all(axis=2).any(axis=1)
        nearby_faces, nearby_normals = skin_faces[nearby], skin_normals[nearby]
        for point, direction in zip(points[outer], radial[outer]):
            hits = igl.ray_mesh_intersect(vertices[point], direction, vertices, nearby_faces)
            # Covered: the ray enters the skin (against the face's outward normal) within reach. A ray
            # that first leaves the skin starts inside it: that point is sealed already.
            if not hits or hits[0][1] > EYE_SEAL_REACH or nearby_normals[hits[0][0]] @ direction > 0:
                continue
            entry = hits[0][1]
            depth = EYE_SEAL_DEPTH if len(hits) < 2 else min(EYE_SEAL_DEPTH, 0.5 * (hits[1][1] - entry))
            sealed[point] += (entry + depth) * direction
    return Head(sealed.astype(np.float32), head.faces, head.face_component)


def fit_sphere(points):
    """Centre and radius of the least-squares sphere through points."""
    a = np.c_[2.0 * points, np.ones(len(points))]
    solution = np.linalg.lstsq(a, (points ** 2).sum(axis=1), rcond=None)[0]
    centre = solution[:3]
    return centre, np.sqrt(solution[3] + centre @ centre)


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


def _vertices_at_edge_distance(faces, start, distance):
    """The vertices exactly `distance` edges away from the nearest of the start vertices."""
    n_vertices = int(faces.max()) + 1
    rows = faces[:, [0, 1, 2]].ravel()
    cols = faces[:, [1, 2, 0]].ravel()
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_vertices, n_vertices)).tocsr()
    graph = graph + graph.T
    reached = np.zeros(n_vertices, bool)
    reached[start] = True
    ring = np.asarray(start)
    for _ in range(distance):
        neighbours = np.unique(graph[ring].indices)
        ring = neighbours[~reached[neighbours]]
        reached[ring] = True
    return ring


def _shell_ids(faces, n_vertices):
    """Connected-component id (0..) of each face."""
    rows = faces[:, [0, 1, 2]].ravel()
    cols = faces[:, [1, 2, 0]].ravel()
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_vertices, n_vertices))
    _, labels = connected_components(graph, directed=False)
    _, shell = np.unique(labels[faces[:, 0]], return_inverse=True)
    return shell.astype(np.int8)
