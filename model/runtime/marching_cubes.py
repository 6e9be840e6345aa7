"""Marching cubes in numpy: the zero level set of a 3-d lattice of values as an indexed triangle mesh.

The case table is derived from the cube's geometry when this module is imported, not typed in. For
each of the 256 sign patterns of a cell's corners, each of the cube's six faces gets the segments
where the surface crosses it; a face whose corners alternate in sign around it (ambiguous) joins its
two negative corners, i.e. cuts off each positive corner with its own segment. That rule reads only
the face's own four corners, so the two cells sharing a face cut it alike and the mesh has no cracks.
The segments chain into closed loops around the cell, each loop is triangulated, and the triangles
are stored as triples of the cell's edges. A triangulation draws no diagonal between two vertices on
one face of the cube: such a diagonal could be drawn by the cell on the other side of that face too,
and an edge shared by four triangles is not a surface.

The extraction is whole-array numpy over the cells the surface crosses: given a mask of them, it reads
the values only at the marked points. A vertex sits on each crossed lattice edge, at the linear
interpolation of its two values, and every triangle that uses that edge shares it; faces wind
counter-clockwise seen from where the values are larger.
"""
import numpy as np

# Corner c of a cell lies at offset (c >> 2 & 1, c >> 1 & 1, c & 1) from the cell's lower corner; bit c
# of a case number is set where the value there is positive. The table is built from plain Python
# numbers: numpy's cost per call would make it several times slower to build.
_CORNER_OFFSETS = [((c >> 2) & 1, (c >> 1) & 1, c & 1) for c in range(8)]


def _cube_edges():
    """The cell's twelve edges as (axis, start corner, end corner)."""
    return [(axis, start, start | (4 >> axis)) for axis in range(3) for start in range(8)
            if not _CORNER_OFFSETS[start][axis]]


def _cube_faces():
    """The cell's six faces as (outward normal, corners in order around the face, edges in that order:
    edge k ends at corner k)."""
    faces = []
    for axis in range(3):
        first, second = (other for other in range(3) if other != axis)
        for side in (0, 1):
            cycle = []
            for u, v in ((0, 0), (1, 0), (1, 1), (0, 1)):
                offset = [0, 0, 0]
                offset[axis], offset[first], offset[second] = side, u, v
                cycle.append(4 * offset[0] + 2 * offset[1] + offset[2])
            normal = [0, 0, 0]
            normal[axis] = 1 if side else -1
            sides = [next(e for e, (_, a, b) in enumerate(_EDGES) if {a, b} == {cycle[k - 1], cycle[k]})
                     for k in range(4)]
            faces.append((normal, cycle, sides))
    return faces


_EDGES = _cube_edges()
_FACES = _cube_faces()
_EDGE_MIDPOINTS = [[(p + q) / 2 for p, q in zip(_CORNER_OFFSETS[a], _CORNER_OFFSETS[b])] for _, a, b in _EDGES]
# Whether two edges lie on one face of the cube: their midpoints share a coordinate that is 0 or 1.
_ON_ONE_FACE = [[any(p == q != 0.5 for p, q in zip(_EDGE_MIDPOINTS[d], _EDGE_MIDPOINTS[e])) for e in range(12)]
                for d in range(12)]
_EDGE_DISTANCES = [[sum((p - q) ** 2 for p, q in zip(_EDGE_MIDPOINTS[d], _EDGE_MIDPOINTS[e])) ** 0.5
                    for e in range(12)] for d in range(12)]


def _determinant(u, v, w):
    """u . (v x w) of three 3-vectors."""
    return (u[0] * (v[1] * w[2] - v[2] * w[1]) - u[1] * (v[0] * w[2] - v[2] * w[0])
            + u[2] * (v[0] * w[1] - v[1] * w[0]))


def _face_segments(case, normal, cycle, sides):
    """The surface's segments on one cube face, as (start edge, end edge), oriented so that the loops
    they chain into wind counter-clockwise seen from the positive side of the surface."""
    positive = [bool(case >> c & 1) for c in cycle]
    crossed = [sides[k] for k in range(4) if positive[k - 1] != positive[k]]
    if len(crossed) == 4:
        # Ambiguous: the segments cut off the positive corners, each with the two face edges at it.
        pairs = [(sides[k], sides[(k + 1) % 4]) for k in range(4) if positive[k]]
    else:
        pairs = [tuple(crossed)] if crossed else []
    segments = []
    for start, end in pairs:
        # Seen from outside the cube, the surface's positive side lies to the left of a segment that
        # winds its loop counter-clockwise seen from that side: n x (end - start) points to it.
        _, a, b = _EDGES[start]
        positive_corner = _CORNER_OFFSETS[a if case >> a & 1 else b]
        along = [q - p for p, q in zip(_EDGE_MIDPOINTS[start], _EDGE_MIDPOINTS[end])]
        towards_positive = [c - p for p, c in zip(_EDGE_MIDPOINTS[start], positive_corner)]
        if _determinant(normal, along, towards_positive) < 0:
            start, end = end, start
        segments.append((start, end))
    return segments


def _loops(case):
    """The closed loops of crossed edges the surface of a case draws on the cube, each in winding order."""
    following = {}
    for face in _FACES:
        for start, end in _face_segments(case, *face):
            assert start not in following, "an edge starts two segments: the faces disagree on orientation"
            following[start] = end
    loops = []
    while following:
        loop = [min(following)]
        while following[loop[-1]] != loop[0]:
            loop.append(following.pop(loop[-1]))
        following.pop(loop[-1])
        loops.append(loop)
    return loops


def _triangulate(loop):
    """Triangles (edge triples, in the loop's winding) covering a loop with the shortest total length of
    diagonals, none of which joins two edges on one cube face."""
    n = len(loop)

    def diagonal_length(i, j):
        if j - i == 1 or (i == 0 and j == n - 1):
            return 0.0  # a side of the loop, not a diagonal
        return float("inf") if _ON_ONE_FACE[loop[i]][loop[j]] else _EDGE_DISTANCES[loop[i]][loop[j]]

    # The classic dynamic programme over sub-polygons loop[i..j]: cost and the apex k of the triangle on i-j.
    cost, apex = {}, {}
    for i in range(n - 1):
        cost[i, i + 1] = 0.0
    for span in range(2, n):
        for i in range(n - span):
            j = i + span
            cost[i, j], apex[i, j] = min((cost[i, k] + cost[k, j] + diagonal_length(i, k) + diagonal_length(k, j), k)
                                         for k in range(i + 1, j))
    assert cost[0, n - 1] < float("inf"), f"loop {loop} has no triangulation without diagonals on a face"
    triangles, pending = [], [(0, n - 1)]
    while pending:
        i, j = pending.pop()
        if j - i >= 2:
            k = apex[i, j]
            triangles.append((loop[i], loop[k], loop[j]))
            pending += [(i, k), (k, j)]
    return triangles


def _case_table():
    """Triangles of every case, concatenated: (rows (T, 3) of edge numbers, first row of each case (257,))."""
    rows, starts = [], [0]
    for case in range(256):
        for loop in _loops(case):
            rows += _triangulate(loop)
        starts.append(len(rows))
    return np.array(rows, dtype=np.int64).reshape(-1, 3), np.array(starts, dtype=np.int64)


TRIANGLE_EDGES, CASE_STARTS = _case_table()
_CASE_COUNTS = np.diff(CASE_STARTS)
# The extraction finds a cell's corners by their ranks among the marked lattice points (sorted flat
# indices): it looks up the ranks of the four corners at offset 0 along the last axis, "columns"
# (0, 0), (0, 1), (1, 0), (1, 1) along the first two; each one's neighbour along the last axis has the
# next rank. A lattice edge is known by 3 * (the rank of its start) + its axis, so each triangle
# corner's edge is 3 * rank[column] + (3 * step along the last axis + axis).
_EDGE_COLUMNS = np.array([2 * _CORNER_OFFSETS[start][0] + _CORNER_OFFSETS[start][1] for _, start, _ in _EDGES])
_EDGE_KEY_OFFSETS = np.array([3 * _CORNER_OFFSETS[start][2] + axis for axis, start, _ in _EDGES])
_TRIANGLE_COLUMNS = _EDGE_COLUMNS[TRIANGLE_EDGES]
_TRIANGLE_KEY_OFFSETS = _EDGE_KEY_OFFSETS[TRIANGLE_EDGES]
# Rank lookups go through a dense table of one slab of the lattice at a time, of about this many
# entries: few Python steps per lattice, and a table of a few MB, reused by every slab, where one of
# the whole lattice would be 100 MB at 256^3.
_SLAB_ENTRIES = 1 << 19


def _crossed_cell_corners(values):
    """Lattice points that are a corner of a cell with corners of both signs."""
    positive = values > 0
    low, high = positive, positive
    for axis in range(3):
        head, tail = [slice(None)] * 3, [slice(None)] * 3
        head[axis], tail[axis] = slice(0, -1), slice(1, None)
        low, high = low[tuple(head)] & low[tuple(tail)], high[tuple(head)] | high[tuple(tail)]
    corners = np.pad(high & ~low, 1)
    for axis in range(3):
        head, tail = [slice(None)] * 3, [slice(None)] * 3
        head[axis], tail[axis] = slice(0, -1), slice(1, None)
        corners = corners[tuple(head)] | corners[tuple(tail)]
    return corners


def _slab_ranks(marked, origins, offsets, layer):
    """For each offset, the index in `marked` of each point origin + offset, or where that point is not
    marked, some index into `marked`. `marked` and `origins` are sorted flat lattice indices, `layer`
    the flat size of one layer along the first axis, and the offsets less than two layers."""
    if len(origins) == 0:
        return [origins for _ in offsets]
    # A dense table from flat index to rank over a slab of layers at a time, and over the one layer
    # after it that the offsets reach: no search, and no table of the whole lattice.
    slab = max(1, _SLAB_ENTRIES // layer - 1)
    table = np.zeros((slab + 1) * layer, dtype=np.int64)  # stale entries stay valid indices
    bounds = np.arange(0, int(origins[-1]) // layer + slab + 1, slab) * layer
    origin_bounds = np.searchsorted(origins, bounds)
    marked_bounds = np.searchsorted(marked, bounds)
    marked_ends = np.searchsorted(marked, bounds + (slab + 1) * layer)
    ranks = [np.empty(len(origins), dtype=np.int64) for _ in offsets]
    for k, base in enumerate(bounds[:-1]):
        first, last = origin_bounds[k], origin_bounds[k + 1]
        if first == last:
            continue
        table[marked[marked_bounds[k]:marked_ends[k]] - base] = np.arange(marked_bounds[k], marked_ends[k])
        for rank, offset in zip(ranks, offsets):
            rank[first:last] = table[origins[first:last] + (offset - base)]
    return ranks


def marching_cubes(values, mask=None):
    """The zero level set of a 3-d lattice of values: vertices (V, 3) float64 in lattice index
    coordinates and faces (F, 3) int32, counter-clockwise seen from where the values are larger (from
    outside, for a field negative inside). A value counts as positive when it is > 0.

    With a boolean `mask` of the lattice's shape, only cells whose eight corners are all marked are
    visited. Vertices come in the lexicographic order of their lattice edges and faces in that of their
    cells, so a lattice meshed with no mask and with one that marks the corners of every crossed cell
    gives the same arrays, and so do two lattices that agree on their crossed cells.
    """
    values = np.ascontiguousarray(values)
    if values.ndim != 3 or min(values.shape) < 2:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int32)
    if mask is None:
        mask = _crossed_cell_corners(values)
    elif np.shape(mask) != values.shape:
        raise ValueError(f"mask has shape {np.shape(mask)}, the values {values.shape}")
    layer, row = values.shape[1] * values.shape[2], values.shape[2]
    flat_values = values.reshape(-1)

    marked = np.flatnonzero(np.ascontiguousarray(mask, dtype=bool))
    # Candidate cells, by the rank of their lower corner: not on a far side of the lattice, and the
    # corner's neighbour along the last axis marked.
    pair_marked = np.append(marked[1:] == marked[:-1] + 1, False)  # a point and the next along the last axis
    lower = marked[:-1]
    within_layer = np.ones(values.shape[1:], dtype=bool)
    within_layer[-1], within_layer[:, -1] = False, False
    cells = np.flatnonzero(pair_marked[:-1] & (lower < (values.shape[0] - 1) * layer)
                           & within_layer.reshape(-1)[lower % layer])
    origins = marked[cells]
    columns = [cells]
    all_marked = np.ones(len(cells), dtype=bool)
    offsets = (row, layer, layer + row)  # columns (0, 1), (1, 0), (1, 1)
    for offset, rank in zip(offsets, _slab_ranks(marked, origins, offsets, layer)):
        all_marked &= pair_marked[rank] & (marked[rank] == origins + offset)
        columns.append(rank)
    keep = np.flatnonzero(all_marked)
    column_ranks = np.stack([c[keep] for c in columns], axis=1)  # (cells, 4)

    # Two bits per marked point: its sign and that of its neighbour along the last axis; a cell's case
    # is its four columns' pairs (corner 2 * column + step).
    positive = np.append(flat_values[marked] > 0, False).astype(np.uint8)
    pairs = positive[:-1] | positive[1:] << 1
    case = pairs[column_ranks[:, 0]]
    for column in (1, 2, 3):
        case |= pairs[column_ranks[:, column]] << (2 * column)
    crossed = np.flatnonzero((case != 0) & (case != 255))
    case, column_ranks = case[crossed], column_ranks[crossed]

    # Each crossed cell's triangles: their rows in the case table, and where the cell's four column
    # ranks start in column_ranks' flat array.
    counts = _CASE_COUNTS[case]
    first_triangle = np.cumsum(counts) - counts
    rows = np.arange(counts.sum()) + np.repeat(CASE_STARTS[case] - first_triangle, counts)
    index = _TRIANGLE_COLUMNS[rows]  # in place from here on: (F, 3) int64 temporaries are the cost
    index += np.repeat(np.arange(0, 4 * len(case), 4), counts)[:, None]
    edge_keys = (3 * column_ranks.reshape(-1))[index]
    edge_keys += _TRIANGLE_KEY_OFFSETS[rows]

    used = np.zeros(3 * len(marked), dtype=bool)
    used[edge_keys.reshape(-1)] = True
    vertex_of_key = np.cumsum(used, dtype=np.int32) - 1
    faces = vertex_of_key[edge_keys]

    keys = np.flatnonzero(used)
    starts, axes = marked[keys // 3], keys % 3
    start_values = flat_values[starts].astype(np.float64)
    end_values = flat_values[starts + np.array([layer, row, 1])[axes]].astype(np.float64)
    vertices = np.empty((len(keys), 3))
    first, within = np.divmod(starts, layer)
    vertices[:, 0], (vertices[:, 1], vertices[:, 2]) = first, np.divmod(within, row)
    vertices[np.arange(len(keys)), axes] += start_values / (start_values - end_values)
    return vertices, faces
