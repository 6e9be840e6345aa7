"""Training samples of one closed Head: exact signed distance, surface, near and free points.

Signed distance is negative inside. The head is a union of closed components (skin,
eyeballs), so its signed distance is the minimum over them: exact outside the union, with the
right sign everywhere, and inside it a lower bound on the depth only where components overlap.
Each component's distance is libigl's exact point-triangle distance, signed by the fast
winding number (robust to the self-touching lips of some expressions, unlike ray parity).
"""
import igl
import numpy as np

from ..runtime.frame import MM
from .heads import SKIN

NEAR_SIGMAS = (1 * MM, 10 * MM)  # near-surface offsets: half the points at each sigma
FREE_BOUND = 1.0  # free-space points are uniform in [-FREE_BOUND, FREE_BOUND]^3
_WINDING = igl.SIGNED_DISTANCE_TYPE_FAST_WINDING_NUMBER


def signed_distance(head, points):
    """(N,) float32 signed distance from points (N, 3) to the head's surface."""
    query = np.ascontiguousarray(points, np.float64)
    vertices = head.vertices.astype(np.float64)
    distance = _signed_distance_to(query, vertices, head.skin_faces)
    # The eyes' signed distance is at least the distance to their bounding box, so they can
    # only lower the minimum inside that box or where the box is nearer than the skin.
    eye_faces = head.eye_faces
    eye_vertices = vertices[np.unique(eye_faces)]
    gap = np.maximum(eye_vertices.min(axis=0) - query, query - eye_vertices.max(axis=0))
    may_change = np.linalg.norm(np.maximum(gap, 0.0), axis=1) <= np.maximum(distance, 0.0)
    if may_change.any():
        eye_distance = _signed_distance_to(query[may_change], vertices, eye_faces)
        distance[may_change] = np.minimum(distance[may_change], eye_distance)
    return distance.astype(np.float32)


def sample_outer_surface(head, n, rng):
    """n area-uniform samples of the union's outer surface: (face index (n,), barycentric (n, 3)).

    Samples of one component that lie inside another (the hidden part of each eyeball, the
    skin behind it) are rejected, so the samples cover exactly the boundary of the union.
    """
    vertices = head.vertices.astype(np.float64)
    corners = vertices[head.faces]
    areas = 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)
    cumulative = np.cumsum(areas)
    kept_faces, kept_bary, n_kept = [], [], 0
    while n_kept < n:
        n_draw = int((n - n_kept) * 1.1) + 64
        faces = np.minimum(np.searchsorted(cumulative, rng.random(n_draw) * cumulative[-1]), len(areas) - 1)
        bary = _uniform_barycentric(n_draw, rng)
        points = np.einsum("nk,nkd->nd", bary, corners[faces])
        outside = ~_inside_other_components(head, vertices, faces, points)
        kept_faces.append(faces[outside])
        kept_bary.append(bary[outside])
        n_kept += int(outside.sum())
    return np.concatenate(kept_faces)[:n], np.concatenate(kept_bary)[:n]


def surface_points(vertices, faces, face_index, barycentric):
    """(n, 3) float32 positions of (face, barycentric) samples on a mesh with these vertices."""
    return np.einsum("nk,nkd->nd", barycentric, vertices[faces[face_index]]).astype(np.float32)


def face_normals(vertices, faces, face_index):
    """(n, 3) float32 unit normals of the given faces (the exact gradient of the mesh's distance)."""
    corners = vertices[faces[face_index]].astype(np.float64)
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    return (normals / np.linalg.norm(normals, axis=1, keepdims=True)).astype(np.float32)


def near_points(surface, rng):
    """Surface points moved by Gaussian offsets, half with each of NEAR_SIGMAS, float32 (n, 3)."""
    n = len(surface)
    sigmas = np.where(np.arange(n) < n // 2, NEAR_SIGMAS[0], NEAR_SIGMAS[1])[:, None]
    return (surface + rng.standard_normal((n, 3)) * sigmas).astype(np.float32)


def free_points(n, rng):
    """n points uniform in the model frame's cube, float32 (n, 3)."""
    return rng.uniform(-FREE_BOUND, FREE_BOUND, (n, 3)).astype(np.float32)


def identity_samples(head, n_surface, n_near, n_free, rng):
    """Training samples of one neutral head, as a dict of float32 arrays:
    surface (n_surface, 3), normals (n_surface, 3), near (n_near, 3), near_sdf (n_near,),
    free (n_free, 3), free_sdf (n_free,)."""
    face_index, bary = sample_outer_surface(head, n_surface + n_near, rng)
    points = surface_points(head.vertices, head.faces, face_index, bary)
    near = near_points(points[n_surface:], rng)
    free = free_points(n_free, rng)
    sdf = signed_distance(head, np.concatenate([near, free]))
    return {
        "surface": points[:n_surface],
        "normals": face_normals(head.vertices, head.faces, face_index[:n_surface]),
        "near": near, "near_sdf": sdf[:n_near],
        "free": free, "free_sdf": sdf[n_near:],
    }


def expression_samples(neutral_head, expressed_head, n_surface, n_near, rng):
    """Samples of an expressed head with dense correspondence to its neutral head, float32:
    canonical (n_surface, 3) and observed (n_surface, 3) positions of the same surface points
    (same face and barycentric coordinates) on the neutral and the expressed head;
    near (n_near, 3) points around the expressed head, near_sdf (n_near,) their signed distance."""
    face_index, bary = sample_outer_surface(expressed_head, n_surface + n_near, rng)
    observed = surface_points(expressed_head.vertices, expressed_head.faces, face_index, bary)
    canonical = surface_points(neutral_head.vertices, neutral_head.faces, face_index[:n_surface], bary[:n_surface])
    near = near_points(observed[n_surface:], rng)
    return {
        "canonical": canonical,
        "observed": observed[:n_surface],
        "near": near,
        "near_sdf": signed_distance(expressed_head, near),
    }


def _signed_distance_to(query, vertices, faces):
    """Exact distance to the closest point, signed by the fast winding number.

    libigl 2.6 scales the distance by (1 - 2 w) in this mode instead of taking only the sign,
    which is off by the winding number's approximation error (measured 0.3 % near a box), so
    the distance is recomputed from the closest point."""
    signed, _, closest, _ = igl.signed_distance(query, vertices, faces, _WINDING)
    distance = np.linalg.norm(query - closest, axis=1)
    return np.where(signed < 0, -distance, distance)


def _inside_other_components(head, vertices, sample_faces, points):
    """Whether each sample (on face sample_faces[i]) lies inside a component other than its own.

    The winding number of several closed shells is the sum of theirs, 0 or 1 each."""
    component = head.face_component[sample_faces]
    on_skin = component == SKIN
    winding = np.zeros(len(points))
    # Only skin samples inside the eyes' bounding box can be inside an eye.
    eye_vertices = vertices[np.unique(head.eye_faces)]
    near_eyes = on_skin & (points >= eye_vertices.min(axis=0)).all(axis=1) & (points <= eye_vertices.max(axis=0)).all(axis=1)
    winding[near_eyes] = _winding_number(vertices, head.eye_faces, points[near_eyes])
    winding[~on_skin] = _winding_number(vertices, head.skin_faces, points[~on_skin])
    for shell in np.unique(component[~on_skin]):
        on_shell = component == shell
        other_shells = head.faces[(head.face_component != SKIN) & (head.face_component != shell)]
        winding[on_shell] += _winding_number(vertices, other_shells, points[on_shell])
    return winding > 0.5


def _winding_number(vertices, faces, points):
    if len(faces) == 0 or len(points) == 0:  # libigl crashes on empty input
        return np.zeros(len(points))
    return igl.fast_winding_number(vertices, faces, points)


def _uniform_barycentric(n, rng):
    """n barycentric coordinates uniform over a triangle."""
    r1, r2 = rng.random(n), rng.random(n)
    s = np.sqrt(r1)
    return np.stack([1.0 - s, s * (1.0 - r2), s * r2], axis=1)
