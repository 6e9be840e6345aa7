"""The artist mesh: the ICT head topology (quads and UVs, artist_topology/ict_skin.npz, MIT) conformed
to a head's implicit surface, with the same vertices, order and UVs for every head.

The skin of the ICT Face Model (face, head and neck, mouth and eye sockets: 14,062 vertices, 14,034
quads, one open loop at the bottom of the neck) is
1. placed by the keypoints: the template's keypoints (the model's keypoint vertices) go onto the head's
   regressed keypoints by an affine map, then a thin-plate spline (kernel |r|) through what the affine
   map leaves, so every keypoint lands on the head's own;
2. conformed: PROJECTIONS rounds of a Newton step onto the zero level set along the field's gradient
   (x <- x - f grad f / |grad f|^2, at most MAX_STEP), each followed by a tangential relaxation that
   gives every vertex back the Laplacian offset (neighbours' mean minus itself) it had on the placed
   template, so quads keep the template's proportions and the UVs stay undistorted; a last step lands
   the vertices on the surface. The gradient is taken by forward differences of the field (any field:
   an edited head's too) at the placed template, and again only where a step did not halve the
   distance (where the direction turned: creases, ears): 3 extra field evaluations per vertex once,
   not per round. The eye sockets are not projected: they lie behind the eyeballs, where the field's
   surface is the eyeball's (the model learned skin and eyes as one surface); the relaxation carries
   them along with the eyelids;
3. held at the neck: the learned neck may end anywhere. A model trained on ICT's necks runs on to
   about the open loop; there the NECK_RINGS rings of vertices above the loop move only across the
   neck's axis, so they cannot slide onto where it ends; where no surface is within reach across the
   axis they keep their placed positions. The rings above them up to NECK_AXIS_RING follow the field's
   gradient along the axis more ring by ring, so that on a sloping neck they do not slide down onto the
   held rings. A model trained on cut necks (the all-ages data, model/data/neck.py) ends in a flat cap
   well above the loop (ICT's skin runs on to the shoulders and chest): the skin below it is first
   laid over the cap, as a sleeve's end turned in (fit_neck_to_cap), and is not held.
An edited head (region edits) is its unedited artist mesh refitted (steps 2 and 3 from there) where the
edit reaches, the rest pinned: an edit moves no vertex beyond its fade.

The ICT parts beyond the skin (PARTS: eyeballs, teeth, gums and tongue, lashes; artist_topology/
ict_parts.npz) go with it, each its own mesh, not conformed (the field has no surface of its own for
them: the eyeballs' fronts are part of the learned surface, the rest lies in the mouth and sockets).
They are carried by the keypoint placement of step 1 (the same affine map and spline; from the edited
head's keypoints for an edited head), then by the conforming's moves of the skin near them: each
vertex moves by the weighted mean move of its ANCHORS nearest skin vertices on the template, so the
eyeballs stay behind the lids that were laid onto the surface and the lashes' roots on them.
Under the expressions they move by ICT's own expression shapes of them (the lower teeth and tongue
with the jaw, the lashes closing with the lids), carried by the linear part of their placement, and
the eyeballs by a rigid turn of EYE_TURN_DEGREES for eyeLook* (part_expression_offsets); the skin's
expressions are the model's, learned from ICT's.
"""
import dataclasses
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import parallel
from .editing import edit_share
from .frame import MM

TOPOLOGY_DIR = Path(__file__).with_name("artist_topology")
TOPOLOGY_PATH = TOPOLOGY_DIR / "ict_skin.npz"
PARTS_PATH = TOPOLOGY_DIR / "ict_parts.npz"
# The ICT Face Model's parts that go with the artist mesh, each its own mesh (ICT's part names).
PARTS = ("eyeball_l", "eyeball_r", "teeth", "gums_tongue", "lashes_l", "lashes_r")
# A part's vertex follows the moves of its ANCHORS nearest skin vertices (on the template), weighted by
# exp(-(d^2 - d_nearest^2) / (2 ANCHOR_SIGMA^2)), d their distances (model units): smooth over a part.
ANCHORS = 8
ANCHOR_SIGMA = 5 * MM
# ICT's expression shapes do not turn its eyeballs (its rig turns them): eyeLookIn/Out/Up/Down turn an
# eyeball by this much about its centroid (a chosen gaze range: an eye turns about 30-45 degrees), as a
# linear key (a half value moves it half the turn's chord: 3 % nearer its centre at most).
EYE_TURN_DEGREES = 30.0

PROJECTIONS = 4
# Longest Newton step, model units: the placed template lies within a few millimetres of the surface; a
# longer step comes from a gradient that is nearly zero (a crease, the inside of the mouth).
MAX_STEP = 5 * MM
# Forward-difference step of the field's gradient: small against the head's curvature (the direction
# is off by about step / (2 * radius of curvature)).
GRADIENT_STEP = 0.25 * MM
RELAX_SWEEPS = 3
RELAX_RATE = 0.5
# Rings of vertices above the neck's open loop that move only across the neck's axis (and the rings up to
# NECK_AXIS_RING that move along it only in part).
NECK_RINGS = 3
# The neck's axis: from the open loop's centroid to the centroid of the ring this many edges above it.
NECK_AXIS_RING = 8
# fit_neck_to_cap lays the template's skin that lies more than OFF_SURFACE outside a head with a neck cap,
# below NECK_BAND above the cap, over the cap, leaving a hole of NECK_HOLE_SHARE of the rim's radius
# (the open loop's). The cap is found along lines parallel to the neck's axis, through the loop's centroid
# and through its vertices pulled to CAP_SEARCH_SHARE of their distance from the axis (inside the neck, clear
# of its side), sampled every CAP_SEARCH_STEP.
OFF_SURFACE = 2 * MM
NECK_BAND = 25 * MM
NECK_HOLE_SHARE = 0.3
CAP_SEARCH_SHARE = 0.25
CAP_SEARCH_STEP = 1 * MM
# A field whose neck ends less than this above the template's open loop ends where ICT's neck does (a model
# trained on ICT's necks learned their open loop closed, 0-9 mm above it): fit_neck_to_cap leaves it be.
# The all-ages model's (runs/v2) lies 26-76 mm above it (12 generated heads).
CAP_MIN_RISE = 15 * MM
# fit_neck_to_cap works round the neck's axis in ANGLES sectors, smoothing over SMOOTHING of them.
ANGLES = 72
SMOOTHING = 5
# A gradient shorter than this gives no direction to step in (an SDF's is about 1).
MIN_SLOPE = 0.1
# Distance (model units) below which a vertex counts as on the surface.
CONVERGED = 0.02 * MM
# Thin-plate spline's smoothing (model units squared): keeps the solve well conditioned.
SPLINE_SMOOTHING = 1e-6
# A quad is degenerate when its area is under MIN_AREA_SHARE of the template's (scaled to the head's
# size) or a corner's angle is under MIN_ANGLE degrees (the template's smallest is 19.5): QuadSoundness.
MIN_AREA_SHARE = 0.01
MIN_ANGLE = 5.0
# Rounds after the PROJECTIONS that move only the vertices farther than RESCUE_DISTANCE from the surface
# (those the guard below held back) and their neighbours.
RESCUES = 4
RESCUE_DISTANCE = 0.1 * MM
# A move that would flip or degenerate a quad is halved this many times, then not taken.
STEP_HALVINGS = 3


@dataclass(frozen=True)
class ArtistTopology:
    """The template: vertices (V, 3) float32 model frame, quads (F, 4) int32 outward wound, quad_uv (F, 4)
    int32 indices into uv (U, 2) float32 (UDIM), and each skin part's first vertex."""
    vertices: np.ndarray
    quads: np.ndarray
    quad_uv: np.ndarray
    uv: np.ndarray
    part_starts: dict

    @property
    def edges(self):
        """(E, 2) int32 undirected edges, each once."""
        pairs = np.stack([self.quads, np.roll(self.quads, -1, axis=1)], -1).reshape(-1, 2)
        return np.unique(np.sort(pairs, axis=1), axis=0)

    def boundary_loop(self):
        """Vertices (L,) of the open loop at the bottom of the neck (edges of one quad only)."""
        pairs = np.sort(np.stack([self.quads, np.roll(self.quads, -1, axis=1)], -1).reshape(-1, 2), axis=1)
        unique, counts = np.unique(pairs, axis=0, return_counts=True)
        return np.unique(unique[counts == 1])


@lru_cache(maxsize=1)
def load_topology():
    """The shipped ArtistTopology (read once)."""
    with np.load(TOPOLOGY_PATH) as data:
        return ArtistTopology(vertices=data["vertices"], quads=data["quads"], quad_uv=data["quad_uv"],
                              uv=data["uv"], part_starts=dict(zip(data["part_names"].tolist(),
                                                                  data["part_starts"].tolist())))


@dataclass(frozen=True)
class PartMesh:
    """One of the PARTS: vertices (V, 3) float32 model frame; faces (F, 4) int32, quads and triangles (a
    triangle's fourth corner -1), outward wound; face_uv (F, 4) int32 into uv (U, 2) float32 (UDIM), -1
    where faces is; anchors (V, ANCHORS) int16, the skin vertices whose moves each vertex follows, with
    anchor_weights (V, ANCHORS) float16; expressions (E, V, 3) float16, ICT's shapes of the template (its
    offsets at weight 1) for the expressions part_expression_names(). Read like meshing.SurfaceMesh, with UVs
    per face corner besides."""
    vertices: np.ndarray
    faces: np.ndarray
    face_uv: np.ndarray
    uv: np.ndarray
    anchors: np.ndarray
    anchor_weights: np.ndarray
    expressions: np.ndarray

    @property
    def corner_uv(self):
        """(corners, 2) float32: the UV of every face corner, in the faces' order."""
        return self.uv[self.face_uv[self.faces >= 0]]


@lru_cache(maxsize=1)
def load_parts():
    """The shipped PARTS' templates: {part name: PartMesh} (read once)."""
    with np.load(PARTS_PATH) as data:
        return {part: PartMesh(*(data[f"{part}_{key}"] for key in ("vertices", "faces", "face_uv", "uv", "anchors",
                                                                    "anchor_weights", "expressions")))
                for part in PARTS}


@lru_cache(maxsize=1)
def part_expression_names():
    """The expressions (ICT's ARKit names) whose shapes PartMesh.expressions holds, in its order."""
    with np.load(PARTS_PATH) as data:
        return tuple(data["expression_names"].tolist())


def part_expression_offsets(part, placed, names, weights):
    """How the part `part` (one of PARTS) placed at `placed` (V, 3, model frame) moves under expressions:
    (W, V, 3) float32 offsets for weights (W, len(names)) over the expressions `names` (those ICT has no
    shape for move no part). ICT's shapes of the part are carried by the linear part of the affine map
    that best takes the part's template onto `placed`: its placement's (a part is small against the
    spline's bend), so the shapes scale and turn with the head. An eyeball's eyeLook* turn it rigidly
    (eye_turn) about its centroid, in the frame that map turns the template to."""
    mesh = load_parts()[part]
    placed = np.asarray(placed, np.float64)
    template = np.concatenate([mesh.vertices, np.ones((len(mesh.vertices), 1), np.float32)], 1)
    affine, *_ = np.linalg.lstsq(template.astype(np.float64), placed, rcond=None)
    linear = affine[:3]  # row vectors: placed ~ template @ linear + affine[3]
    weights = np.asarray(weights, np.float32)
    index = {name: i for i, name in enumerate(part_expression_names())}
    ict_weights = np.zeros((len(weights), len(index)), np.float32)
    for column, name in enumerate(names):
        if name in index:
            ict_weights[:, index[name]] = weights[:, column]
    shapes = np.tensordot(ict_weights, mesh.expressions.astype(np.float32), axes=1)  # (W, V, 3)
    offsets = shapes @ linear.astype(np.float32)
    u, _, vt = np.linalg.svd(linear)
    frame = u @ vt  # the rotation nearest the linear part: the template's axes as the head has them
    centred = placed - placed.mean(0)
    for column, name in enumerate(names):
        turn = eye_turn(part, name)
        if turn is not None:
            moved = centred @ (frame.T @ turn.T @ frame) - centred
            offsets += weights[:, column, None, None] * moved.astype(np.float32)
    return offsets


def eye_turn(part, name):
    """The rotation (3, 3, template frame, acting on column vectors) of an eyeball `part` under the
    expression `name` at weight 1, or None: eyeLookOut/In/Up/Down_<side> turn its front (the face looks
    toward -y) by EYE_TURN_DEGREES out (toward its own side: +x for the left eye), in, up (+z) or down."""
    side = {"eyeball_l": "L", "eyeball_r": "R"}.get(part)
    if side is None:
        return None
    out = 1.0 if side == "L" else -1.0
    toward = {f"eyeLookOut_{side}": ("x", out), f"eyeLookIn_{side}": ("x", -out), f"eyeLookUp_{side}": ("z", 1.0),
              f"eyeLookDown_{side}": ("z", -1.0)}
    if name not in toward:
        return None
    axis, sign = toward[name]
    cos, sin = np.cos(np.radians(EYE_TURN_DEGREES)), sign * np.sin(np.radians(EYE_TURN_DEGREES))
    if axis == "x":  # about z: the front (0, -1, 0) to (sin, -cos, 0)
        return np.array([[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]])
    return np.array([[1, 0, 0], [0, cos, sin], [0, -sin, cos]])  # about x: the front to (0, -cos, sin)


@dataclass(frozen=True)
class ArtistMesh:
    """A head's artist mesh: vertices (V, 3) float32 in the model frame, the topology's quads and UVs, and
    the head's PARTS ({part name: PartMesh}, placed). Read like meshing.SurfaceMesh (vertices, faces),
    with UVs per face corner besides."""
    vertices: np.ndarray
    topology: ArtistTopology
    parts: dict = dataclasses.field(default_factory=dict)
    capped: bool = False  # its neck is laid over a learned neck cap (fit_neck_to_cap)

    @property
    def faces(self):
        """(F, 4) int32 quads, outward wound."""
        return self.topology.quads

    @property
    def corner_uv(self):
        """(F * 4, 2) float32: the UV of every face corner, in the faces' order."""
        return self.topology.uv[self.topology.quad_uv.ravel()]


class _Neighbours:
    """Mean of each vertex's edge neighbours, for the relaxation."""

    def __init__(self, edges, n_vertices):
        self.a, self.b = edges[:, 0], edges[:, 1]
        self.degree = np.bincount(edges.ravel(), minlength=n_vertices).astype(np.float32)[:, None]

    def laplacian(self, x):
        """(V, 3): the mean of each vertex's neighbours minus the vertex."""
        total = np.zeros_like(x)
        np.add.at(total, self.a, x[self.b])
        np.add.at(total, self.b, x[self.a])
        return total / self.degree - x


def quad_geometry(vertices, quads):
    """Per quad: the area vector (Q, 3) (half the cross product of the diagonals: the normal times the
    area), the area (Q,) and the cosines (Q, 4) of its corner angles."""
    corners = vertices[quads]
    normal = 0.5 * np.cross(corners[:, 2] - corners[:, 0], corners[:, 3] - corners[:, 1])
    sides = np.roll(corners, -1, axis=1) - corners  # side c runs from corner c to corner c + 1
    lengths = np.sqrt(np.einsum("qcd,qcd->qc", sides, sides))
    incoming = np.roll(sides, 1, axis=1)
    cosine = -np.einsum("qcd,qcd->qc", incoming, sides) / np.maximum(lengths * np.roll(lengths, 1, axis=1), 1e-20)
    return normal, np.sqrt(np.einsum("qd,qd->q", normal, normal)), cosine


class QuadSoundness:
    """Which quads of a mesh are flipped or degenerate, the one definition of both (the conforming keeps
    every quad sound; bench and tests count them):
    - flipped: the quad's normal (diagonals' cross product) not with its normal on `reference` (V, 3),
      the placed template for a head (the template's outward orientation carried by the keypoint
      placement, which folds no quad), or a mesh's start;
    - degenerate: its area under MIN_AREA_SHARE of its area on the template scaled to the reference's
      size (by the ratio of their total areas), or a corner's angle under MIN_ANGLE degrees."""

    def __init__(self, reference, topology):
        self.quads = topology.quads
        self.reference_normal, reference_area, _ = quad_geometry(reference, self.quads)
        self.reference_area = reference_area.sum()
        _, template_area, _ = quad_geometry(topology.vertices, self.quads)
        self.template_share = template_area / template_area.sum()
        # Quads degenerate on the reference already: move() lets them be (it could not mend them).
        self.kept_sound = ~self(reference)[1]

    def __call__(self, vertices, which=slice(None)):
        """(flipped, degenerate), each (Q,) bool (or for the quads `which`), of the quads of `vertices`
        (V, 3)."""
        normal, area, cosine = quad_geometry(vertices, self.quads[which])
        flipped = np.einsum("qd,qd->q", normal, self.reference_normal[which]) <= 0
        share = area / self.reference_area / self.template_share[which]
        return flipped, (share < MIN_AREA_SHARE) | (cosine.max(1) > np.cos(np.radians(MIN_ANGLE)))

    def move(self, vertices, step):
        """vertices + step (both (V, 3)), where every vertex whose move would flip or degenerate a quad
        moves half as far, STEP_HALVINGS times, then stays: a quad sound before is sound after."""
        moved = vertices + step
        flipped, degenerate = self(moved)
        broken = np.flatnonzero(self.kept_sound & (flipped | degenerate))
        halvings = np.zeros(len(vertices), np.int32)
        while len(broken):
            halvings[self.quads[broken]] += 1
            cut = np.zeros(len(vertices), bool)
            cut[self.quads[broken]] = True
            scale = np.where(halvings[cut] > STEP_HALVINGS, 0.0, 0.5 ** halvings[cut]).astype(np.float32)
            moved[cut] = vertices[cut] + scale[:, None] * step[cut]
            # Look again at the quads of the cut vertices, but not at those none of whose vertices moves
            # (they are as they were).
            affected = np.flatnonzero(cut[self.quads].any(1) & self.kept_sound
                                      & (halvings[self.quads] <= STEP_HALVINGS).any(1))
            flipped, degenerate = self(moved, affected)
            broken = affected[flipped | degenerate]
        return moved


def place_template(template, template_keypoints, keypoints):
    """Template vertices (V, 3) moved so its keypoints (K, 3) land on `keypoints` (K, 3): an affine map
    (least squares), then a thin-plate spline (kernel |r|) through the residuals. float32."""
    source = np.asarray(template_keypoints, np.float64)
    target = np.asarray(keypoints, np.float64)
    homogeneous = np.concatenate([source, np.ones((len(source), 1))], 1)
    affine, *_ = np.linalg.lstsq(homogeneous, target, rcond=None)  # (4, 3)
    residual = target - homogeneous @ affine
    kernel = np.linalg.norm(source[:, None] - source[None], axis=-1) + SPLINE_SMOOTHING * np.eye(len(source))
    # The spline's weights are orthogonal to affine functions, so it adds nothing affine of its own.
    system = np.block([[kernel, homogeneous], [homogeneous.T, np.zeros((4, 4))]])
    solution = np.linalg.solve(system, np.concatenate([residual, np.zeros((4, 3))]))
    weights, extra_affine = solution[:len(source)], solution[len(source):]
    points = np.asarray(template, np.float64)
    points_h = np.concatenate([points, np.ones((len(points), 1))], 1)
    spline = np.linalg.norm(points[:, None] - source[None], axis=-1) @ weights
    return (points_h @ (affine + extra_affine) + spline).astype(np.float32)


def place_parts(template_keypoints, keypoints, skin_moves):
    """The PARTS ({part name: PartMesh}) carried by the placement that takes template_keypoints (K, 3)
    to `keypoints` (K, 3) (place_template's), then by skin_moves (V, 3): how far the conforming moved each
    skin vertex from that placement."""
    return {part: replace(mesh, vertices=place_template(mesh.vertices, template_keypoints, keypoints)
                          + np.einsum("va,vad->vd", mesh.anchor_weights, skin_moves[mesh.anchors]))
            for part, mesh in load_parts().items()}


def field_gradient(field, points, values):
    """(N, 3) forward-difference gradient of `field` at points (N, 3) whose values (N,) are known."""
    shifted = points[None] + np.float32(GRADIENT_STEP) * np.eye(3, dtype=np.float32)[:, None]
    ahead = field(shifted.reshape(-1, 3)).reshape(3, -1)
    return ((ahead - values) / np.float32(GRADIENT_STEP)).T


def neck_rings(topology, rings=NECK_AXIS_RING):
    """Vertex sets (list of arrays) of the open loop (ring 0) and of the `rings` rings above it."""
    edges = topology.edges
    n = len(topology.vertices)
    distance = np.full(n, -1)
    current = topology.boundary_loop()
    distance[current] = 0
    found = [current]
    for ring in range(1, rings + 1):
        touched = np.zeros(n, bool)
        in_ring = np.zeros(n, bool)
        in_ring[current] = True
        touched[edges[in_ring[edges[:, 0]], 1]] = True
        touched[edges[in_ring[edges[:, 1]], 0]] = True
        current = np.flatnonzero(touched & (distance < 0))
        distance[current] = ring
        found.append(current)
    return found


def fit_neck_to_cap(field, placed, topology):
    """The placed template (V, 3) with its skin below the field's neck cap laid over the cap, where the
    field ends in one at least CAP_MIN_RISE above the template's open loop (a model trained on cut necks;
    ICT's skin runs on to the shoulders and chest); None where it does not.

    Heights are along the neck's axis (the loop's centroid to ring NECK_AXIS_RING's), angles round it.
    The cap is the plane of height over the cross-section through the points where lines along the axis
    enter the field. The skin that goes: the skin reached from the loop through vertices more than
    OFF_SURFACE outside the field below NECK_BAND above the cap (the chest, the shoulders), rounded out to
    a smooth line round the neck: at each angle, as far from the loop (along the template's edges) as that
    skin's edge reaches there, in median. It goes onto the cap plane, at each angle in its order and its
    share of the way from the loop: from a hole of NECK_HOLE_SHARE of the rim's radius out to the rim (the
    skin that stays next to it), as a sleeve's end turned in, outside still out, so that its quads face
    out of the cap and the UVs stay."""
    rings = neck_rings(topology, NECK_AXIS_RING)
    loop = rings[0]
    origin = placed[loop].mean(0).astype(np.float64)
    axis = placed[rings[NECK_AXIS_RING]].mean(0) - origin
    axis /= np.linalg.norm(axis)
    heights = (placed - origin) @ axis
    across = (placed - origin) - heights[:, None] * axis
    reach = heights.max() - heights[loop].min()
    centre_entry = _entries(field, origin[None], axis, reach)[0]
    if not np.isfinite(centre_entry) or centre_entry < CAP_MIN_RISE:
        return None  # no cap, or the loop's own (checked first: it costs a line, not the loop's 54)
    starts = np.concatenate([np.zeros((1, 3)), CAP_SEARCH_SHARE * across[loop]])
    entries = np.concatenate([[centre_entry], _entries(field, origin + starts[1:], axis, reach)])
    found = np.isfinite(entries)
    cap = _height_plane(starts[found], entries[found])

    below_band = heights - cap(across) < NECK_BAND
    off = np.zeros(len(placed), bool)
    off[below_band] = field(placed[below_band]) > OFF_SURFACE
    off[loop] = True
    edges = topology.edges
    off_edge = _next_to(np.isfinite(_distance_from(loop, edges, placed, off)), edges)
    if not off_edge.any():
        return None
    along = _distance_from(loop, edges, placed, below_band | off)

    # Angles round the centre of that skin's edge (the loop's centroid can lie near the neck's side: the
    # chest pulls it forward), in ANGLES sectors.
    centre = across[off_edge].mean(0)
    across = across - centre
    radii = np.linalg.norm(across, axis=1)
    side = np.cross(axis, [1.0, 0.0, 0.0] if abs(axis[0]) < 0.9 else [0.0, 1.0, 0.0])
    side /= np.linalg.norm(side)
    angles = np.arctan2(across @ np.cross(axis, side), across @ side)
    sectors = np.rint((angles + np.pi) / (2 * np.pi) * ANGLES).astype(int) % ANGLES

    def per_vertex(where, values, statistic):
        """A smooth function of the angle: `statistic` of values (N,) at the vertices `where` (N,) within
        each sector, over SMOOTHING sectors round it, then interpolated to every vertex's angle."""
        by_sector = np.array([statistic(values[sectors[where] == k]) if np.any(sectors[where] == k) else np.nan
                              for k in range(ANGLES)])
        known = np.flatnonzero(np.isfinite(by_sector))
        turns = np.arange(ANGLES)
        by_sector = np.interp(turns, known, by_sector[known], period=ANGLES)
        window = np.ones(SMOOTHING) / SMOOTHING
        smooth = np.convolve(np.concatenate([by_sector[-SMOOTHING:], by_sector, by_sector[:SMOOTHING]]), window,
                             "same")[SMOOTHING:-SMOOTHING]
        return np.interp((angles + np.pi) / (2 * np.pi) * ANGLES, turns, smooth, period=ANGLES)

    # The skin goes up to a smooth line round the neck: at each angle, as far from the loop as the skin
    # off the surface reaches there (its edge's median distance), so that no strip of the neck is left
    # between skin that goes.
    edge = np.flatnonzero(off_edge)
    reach = per_vertex(edge, along[edge], np.median)
    going = along <= reach
    rim = np.flatnonzero(_next_to(going, edges))
    rim_radius = per_vertex(rim, radii[rim], np.median)
    share = np.clip(along / np.maximum(reach, 1e-12), 0, 1)
    new_radii = rim_radius * (NECK_HOLE_SHARE + (1 - NECK_HOLE_SHARE) * share)
    new_across = (new_radii / np.maximum(radii, 1e-12))[:, None] * across + centre
    moved = np.where(going[:, None], cap(new_across)[:, None] * axis + new_across,
                     heights[:, None] * axis + across + centre)
    return (moved + origin).astype(np.float32)


def _next_to(marked, edges):
    """(V,) bool: the vertices not marked (V,) with an edge to one that is."""
    near = np.zeros(len(marked), bool)
    near[edges[marked[edges[:, 1]] & ~marked[edges[:, 0]], 0]] = True
    near[edges[marked[edges[:, 0]] & ~marked[edges[:, 1]], 1]] = True
    return near


def _distance_from(sources, edges, vertices, within):
    """Per vertex (V,): the length of the shortest path along `edges` from any of `sources`, through
    vertices marked `within` (V,) only; inf elsewhere."""
    a, b = edges[:, 0], edges[:, 1]
    inside = within[a] & within[b]
    a, b = a[inside], b[inside]
    lengths = np.linalg.norm(vertices[a].astype(np.float64) - vertices[b], axis=1)
    distance = np.full(len(vertices), np.inf)
    distance[sources] = 0.0
    while True:
        relaxed = distance.copy()
        np.minimum.at(relaxed, b, distance[a] + lengths)
        np.minimum.at(relaxed, a, distance[b] + lengths)
        if np.array_equal(relaxed, distance):
            return distance
        distance = relaxed


def _entries(field, starts, direction, reach):
    """Per start (N, 3): how far along `direction` (3,) the field is first negative, within `reach`
    (linear between the samples CAP_SEARCH_STEP apart); 0 where it is at the start, inf where never."""
    steps = np.arange(0.0, reach, CAP_SEARCH_STEP)
    points = starts[:, None] + steps[None, :, None] * direction
    values = field(points.reshape(-1, 3).astype(np.float32)).reshape(len(starts), len(steps))
    inside = values < 0
    first = inside.argmax(1)
    before = np.maximum(first - 1, 0)
    rows = np.arange(len(starts))
    v0, v1 = values[rows, before], values[rows, first]
    fraction = np.where(first > 0, v0 / np.maximum(v0 - v1, 1e-12), 0.0)
    return np.where(inside.any(1), steps[before] + fraction * (steps[first] - steps[before]), np.inf)


def _height_plane(across, heights):
    """The least-squares plane h(p) = h0 + g . p through points p (N, 3) across the axis and their
    heights (N,): a function (M, 3) -> (M,)."""
    design = np.concatenate([np.ones((len(across), 1)), across], 1)
    coefficients, *_ = np.linalg.lstsq(design, heights, rcond=None)
    return lambda points: coefficients[0] + points @ coefficients[1:]


def on_surface_vertices(topology):
    """Indices of the vertices conformed to the surface: all but the eye sockets', which lie behind the
    eyeballs (the field's surface there is the eyeball's: the model learned the skin and eyes as one)."""
    first_socket = min(topology.part_starts["eye_socket_l"], topology.part_starts["eye_socket_r"])
    return np.arange(first_socket)


def placement(field, keypoints, template_keypoint_vertices, topology=None):
    """Where the conforming starts (V, 3) for the head whose signed distance is field((N, 3)) -> (N,) and
    whose keypoints are (K, 3): the template placed by them (place_template; template_keypoint_vertices
    (K,): the template vertex of each), its neck then laid over the field's neck cap if it has one
    (fit_neck_to_cap); and whether it was."""
    topology = topology or load_topology()
    placed = place_template(topology.vertices, topology.vertices[np.asarray(template_keypoint_vertices)], keypoints)
    over_cap = fit_neck_to_cap(field, placed, topology)
    return (placed, False) if over_cap is None else (over_cap, True)


def conform(field, keypoints, template_keypoint_vertices, topology=None):
    """The artist mesh (ArtistMesh) of the head whose signed distance is field((N, 3)) -> (N,) and whose
    keypoints are (K, 3), model frame; template_keypoint_vertices (K,): the template vertex of each."""
    topology = topology or load_topology()
    template_keypoints = topology.vertices[np.asarray(template_keypoint_vertices)]
    placed, capped = placement(field, keypoints, template_keypoint_vertices, topology)
    vertices = _settle(field, placed, topology, np.zeros(len(placed), bool), hold_neck=not capped)
    return ArtistMesh(vertices=vertices, topology=topology,
                      parts=place_parts(template_keypoints, keypoints, vertices - placed), capped=capped)


def refit(field, mesh, pinned):
    """`mesh` (an ArtistMesh) moved onto the surface of `field` where pinned (V,) is False, keeping its
    own proportions: for an edit, which changes the surface only where it does not pin the mesh. Its
    parts stay as they are."""
    return replace(mesh, vertices=_settle(field, mesh.vertices, mesh.topology, np.asarray(pinned, bool),
                                          hold_neck=not mesh.capped))


def _settle(field, start, topology, pinned, hold_neck):
    """Vertices (V, 3) from `start` onto the surface (the module's steps 2 and 3); pinned ones stay. The
    neck is held (step 3) unless told not to: a neck laid over a learned cap has a surface to land on."""
    rings = neck_rings(topology)
    axis = start[rings[NECK_AXIS_RING]].mean(0) - start[rings[0]].mean(0)
    axis /= np.linalg.norm(axis)
    # How much of the field's gradient along the neck's axis each vertex follows: none on the NECK_RINGS
    # rings, then more ring by ring up to all of it from ring NECK_AXIS_RING on. Rings that followed all
    # of it would slide down a neck that slopes (the front of a neck whose surface faces forward and up)
    # onto the rings that move only across the axis, and turn the quads between them over.
    axis_share = np.ones(len(start), np.float32)
    for ring in range(NECK_AXIS_RING if hold_neck else 0):
        axis_share[rings[ring]] = max(0, ring - NECK_RINGS + 1) / (NECK_AXIS_RING - NECK_RINGS + 1)
    neighbours = _Neighbours(topology.edges, len(start))
    soundness = QuadSoundness(start, topology)
    offsets = neighbours.laplacian(start)  # the start's own proportions, kept by the relaxation
    free = (~pinned)[:, None].astype(np.float32)
    x = start.copy()
    on = on_surface_vertices(topology)
    on = on[~pinned[on]]

    # direction: unit Newton direction per vertex (zero: not projected), slope: the field's derivative
    # along it. The eye sockets, which follow the eyelids, have no direction: the relaxation moves them
    # in all three directions, the others only along the surface.
    direction = np.zeros_like(x)
    slope = np.ones(len(x), np.float32)

    def aim(vertices, values):
        gradient = field_gradient(field, x[vertices], values)
        aimed = gradient - ((1 - axis_share[vertices]) * (gradient @ axis))[:, None] * axis
        length = np.linalg.norm(aimed, axis=1)
        # Where the gradient vanishes (or, at the neck, points along the axis) there is no step to take.
        movable = length > MIN_SLOPE
        unit = aimed / np.maximum(length, 1e-12)[:, None]
        direction[vertices] = np.where(movable[:, None], unit, 0.0)
        slope[vertices] = np.where(movable, np.einsum("ij,ij->i", gradient, unit), 1.0)

    values = np.zeros(len(x), np.float32)
    if len(on) == 0:
        return x
    values[on] = field(x[on])
    aim(on, values[on])
    moving = free  # what the relaxation moves; the rescue rounds narrow it
    for projection in range(PROJECTIONS + RESCUES + 1):
        x = soundness.move(x, -np.clip(values / slope, -MAX_STEP, MAX_STEP)[:, None] * direction)
        if projection == PROJECTIONS + RESCUES:
            break
        if projection == PROJECTIONS:
            # The rescue: from here on only the vertices still off the surface (the guard held them back)
            # and their neighbours move, and only they are evaluated.
            far = np.zeros(len(x), bool)
            far[on[np.abs(values[on]) > RESCUE_DISTANCE]] = True
            far[neighbours.a[far[neighbours.b]]] = True
            far[neighbours.b[far[neighbours.a]]] = True
            on = on[far[on]]
            moving = free * far[:, None]
            values[:] = 0
        for _ in range(RELAX_SWEEPS):
            pull = neighbours.laplacian(x) - offsets
            pull -= np.einsum("ij,ij->i", pull, direction)[:, None] * direction
            x = soundness.move(x, np.float32(RELAX_RATE) * moving * pull)
        before = values[on]
        values[on] = field(x[on])
        # Where the step did not halve the distance the direction has turned: aim those vertices again.
        stale = on[(np.abs(values[on]) > 0.5 * np.abs(before)) & (np.abs(values[on]) > CONVERGED)]
        if len(stale):
            aim(stale, values[stale])
    return x.astype(np.float32)


def head_artist_mesh(model, identity, local_offsets=None):
    """The artist mesh of a head of `model` (a HeadModel) in its neutral expression, with region edits
    local_offsets (K, L) or none. An edited head is the unedited one refitted where the edit reaches
    (editing.edit_share > 0), so that no vertex beyond the edit's fade moves; its parts are placed by
    the edited head's keypoints and follow its refitted skin."""
    def field(offsets):
        function = model.sdf_function(identity, local_offsets=offsets)
        return lambda points: parallel.in_batches(function, points)

    keypoint_vertices = [k["vertex"] for k in model.header["keypoints"]]
    mesh = conform(field(None), model.keypoints(identity), keypoint_vertices)
    if local_offsets is None or not np.any(local_offsets):
        return mesh
    share = edit_share(model, mesh.vertices, identity, local_offsets)
    edited = refit(field(local_offsets), mesh, pinned=share == 0)
    template = mesh.topology.vertices
    keypoints = model.keypoints(identity, local_offsets)
    placed = place_template(template, template[keypoint_vertices], keypoints)
    return replace(edited, parts=place_parts(template[keypoint_vertices], keypoints, edited.vertices - placed))
