"""The neck cut: a closed surface cut by a plane and capped flat, so that every head ends alike.

The part of the surface on the positive side of the plane that holds a given vertex (the head's)
is kept; triangles crossing the plane are clipped exactly at it; the one hole the plane leaves
is closed by a fan of triangles around its centroid, which lies in the plane.

Every source places its plane by one rule (neck_cut_point): NECK_CUT_BELOW_CHIN_M below the chin
keypoint along the neck's axis, perpendicular to it. A cut made on one pose of a mesh can be
replayed on another pose of the same mesh (CutSurface.replay): same faces, the cut's vertices at
the same place along the same edges, so that points on the two keep their correspondence.
"""
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


NECK_CUT_BELOW_CHIN_M = 0.035


def neck_cut_point(chin, neck_axis):
    """A point of the neck's cutting plane (perpendicular to neck_axis, a unit vector up the
    neck): NECK_CUT_BELOW_CHIN_M below the chin along the neck, in the chin's units (metres)."""
    return np.asarray(chin, np.float64) - NECK_CUT_BELOW_CHIN_M * np.asarray(neck_axis, np.float64)


class NeckCutError(ValueError):
    """The plane does not cut the surface in one simple loop that a flat fan can close."""


@dataclass(frozen=True)
class CutSurface:
    vertices: np.ndarray  # (V, 3) float64: the kept input vertices in order, the cut's, the cap's centre
    faces: np.ndarray  # (F, 3) int64, wound as the input
    is_cap: np.ndarray  # (F,) bool: the cap's faces
    # How each vertex is made from the input's, for replay: the cut's new vertices lie at
    # edge_start + edge_t * (edge_end - edge_start) of input vertices, the cap's centre is the
    # mean of the loop (indices into [input vertices, new vertices]), and `used` picks the
    # output's vertices out of [input vertices, new vertices, centre].
    edge_start: np.ndarray
    edge_end: np.ndarray
    edge_t: np.ndarray
    loop: np.ndarray
    used: np.ndarray

    def replay(self, vertices):
        """(V, 3) float64 vertices of this cut surface made from another pose of the input mesh
        (same connectivity, moved vertices): the faces stay self.faces. Its rim stays on the
        same edges, so it lies in the plane only where the new pose does not move it."""
        vertices = np.asarray(vertices, np.float64)
        start, end = vertices[self.edge_start], vertices[self.edge_end]
        all_vertices = np.concatenate([vertices, start + self.edge_t[:, None] * (end - start)])
        centre = all_vertices[self.loop].mean(axis=0, keepdims=True)
        return np.concatenate([all_vertices, centre])[self.used]


def cut_and_cap(vertices, faces, point, normal, keep_vertex):
    """Cut the oriented closed surface (vertices, faces) by the plane through point with unit
    normal, keep the piece on the normal's side that holds vertex keep_vertex, and cap it.

    The surface must be wound outward; the cap then faces along -normal (outward). Raises
    NeckCutError when the kept piece's cut is not one loop, or the loop is not star-shaped
    around its centroid (a fan would fold)."""
    vertices = np.asarray(vertices, np.float64)
    faces = np.asarray(faces, np.int64)
    normal = np.asarray(normal, np.float64) / np.linalg.norm(normal)
    height = (vertices - point) @ normal
    # A vertex exactly on the plane counts as above it: every crossing edge then has one end
    # strictly below and gives one new vertex.
    above = height >= 0.0
    if not above[keep_vertex]:
        raise NeckCutError("the vertex to keep lies below the cutting plane")

    n_above = above[faces].sum(axis=1)
    whole = faces[n_above == 3]
    crossing = faces[(n_above == 1) | (n_above == 2)]
    # Rotate each crossing triangle (keeping its winding) so that its odd vertex comes first:
    # the one above (1 above) or the one below (2 above).
    odd = np.where(above[crossing].sum(axis=1, keepdims=True) == 1, above[crossing], ~above[crossing]).argmax(axis=1)
    crossing = np.take_along_axis(crossing, (odd[:, None] + np.arange(3)) % 3, axis=1)

    edge_vertex = {}
    new_points, new_edges = [], []

    def on_plane(a, b):
        key = (min(a, b), max(a, b))
        if key not in edge_vertex:
            t = height[a] / (height[a] - height[b])
            edge_vertex[key] = len(vertices) + len(new_points)
            new_points.append(vertices[a] + t * (vertices[b] - vertices[a]))
            new_edges.append((a, b, t))
        return edge_vertex[key]

    clipped = []
    for a, b, c in crossing.tolist():
        ab, ca = on_plane(a, b), on_plane(c, a)
        if above[a]:  # a above, b and c below: the tip survives
            clipped.append((a, ab, ca))
        else:  # a below: the quad b, c, ca, ab survives
            clipped.append((ab, b, c))
            clipped.append((ab, c, ca))
    all_vertices = np.concatenate([vertices, np.reshape(new_points, (-1, 3))])
    surface = np.concatenate([whole, np.reshape(np.array(clipped, np.int64), (-1, 3))])

    surface = piece_holding(surface, keep_vertex, len(all_vertices))
    loop = _boundary_loops(surface)
    if len(loop) != 1:
        raise NeckCutError(f"the plane cuts the kept piece in {len(loop)} loops, not one")
    loop = np.array(loop[0], np.int64)
    if (loop < len(vertices)).any():
        raise NeckCutError("the kept piece has a hole besides the cut")

    centre = all_vertices[loop].mean(axis=0)
    # Reversed loop order: the cap continues the surface's winding across the cut.
    cap = np.stack([np.roll(loop, -1), loop, np.full(len(loop), len(all_vertices))], axis=1)
    cap_vertices = np.concatenate([all_vertices, centre[None]])
    corners = cap_vertices[cap]
    cap_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    if (cap_normals @ normal >= 0).any():
        raise NeckCutError("the cut loop is not star-shaped around its centroid")

    used = np.unique(np.concatenate([surface.ravel(), [len(all_vertices)]]))
    remap = np.full(len(cap_vertices), -1, np.int64)
    remap[used] = np.arange(len(used))
    edges = np.reshape(np.array(new_edges, np.float64), (-1, 3))
    return CutSurface(cap_vertices[used], remap[np.concatenate([surface, cap])],
                      np.r_[np.zeros(len(surface), bool), np.ones(len(cap), bool)],
                      edges[:, 0].astype(np.int64), edges[:, 1].astype(np.int64), edges[:, 2], loop, used)


def piece_holding(faces, vertex, n_vertices):
    """The faces of the edge-connected piece that holds vertex."""
    rows = faces[:, [0, 1, 2]].ravel()
    cols = faces[:, [1, 2, 0]].ravel()
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_vertices, n_vertices))
    _, labels = connected_components(graph, directed=False)
    return faces[labels[faces[:, 0]] == labels[vertex]]


def _boundary_loops(faces):
    """The vertex loops of an oriented surface's holes, each in its faces' edge order."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).tolist()
    directed = set(map(tuple, edges))
    boundary = {a: b for a, b in edges if (b, a) not in directed}
    loops = []
    while boundary:
        start = next(iter(boundary))
        loop = [start]
        while boundary[loop[-1]] != start:
            loop.append(boundary[loop[-1]])
        for v in loop:
            del boundary[v]
        loops.append(loop)
    return loops
