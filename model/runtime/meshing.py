"""Surfaces from signed distance fields: coarse-to-fine extraction, the dense baseline and mesh checks
(their files: mesh_io.py).

Both extractors sample the same lattice (`Grid`) and run the same marching cubes on it, so at one
resolution they give the same mesh. The coarse-to-fine one evaluates the field only where the surface
can be: a point's sign is certified without evaluating it when a neighbour with known value v lies at
distance d < |v| / lipschitz (the field changes by at most lipschitz per unit length). Every other point
is evaluated, and at the finest level so is every corner of a cell the surface crosses, so marching
cubes sees exactly the values the dense grid would have there.

A field is `sdf_fn(points)`: a numpy array (N, 3) float32 -> (N,) signed distances, negative inside. It
is called from parallel.threads() worker threads at once.
Meshes come out in the field's frame, faces wound so that their normals point outward.
"""
import itertools
import math
from dataclasses import dataclass

import numpy as np

from . import parallel
from .marching_cubes import marching_cubes

# A learned field is only roughly 1-Lipschitz. 1.5 is the smallest factor that certified no wrong sign
# on the bundled model (1.0 certified dozens); see bench/README.md, "Lipschitz factor".
DEFAULT_LIPSCHITZ = 1.5
# A field seen steeper than the factor assumed is extracted again with this many times its steepest
# slope seen (a slope between lattice neighbours underestimates the field's steepest).
LIPSCHITZ_MARGIN = 1.5
# Points per sdf_fn call, at most: the dense grid runs as fast at 4k, 8k and 16k (within the noise of
# repeated runs), coarse to fine fastest at 8k (256^3: 1.44-1.52 s against 1.67-1.76 s at 16k), whose
# calls mostly hold a few times that many points. Progress, and with it cancelling, comes every few
# hundredths of a second.
DEFAULT_BATCH_SIZE = 8192
# The coarsest level has at least this many cells along the longest side; it is evaluated everywhere.
COARSEST_CELLS = 8
# Values closer to zero than this share of a voxel are pushed off zero (zero counts as outside). On an
# exact zero marching cubes puts several vertices on one grid point, which gives zero-area faces.
ZERO_SNAP = 1e-3

# The seven sublattices a level adds to its parent: offset 1 on an axis means halfway between parents.
_NEW_OFFSETS = [o for o in itertools.product((0, 1), repeat=3) if any(o)]


@dataclass
class SurfaceMesh:
    vertices: np.ndarray  # (V, 3) float32, in the field's frame
    faces: np.ndarray     # (F, 3) int32, counter-clockwise seen from outside
    normals: np.ndarray   # (V, 3) float32, unit, area-weighted over the adjacent faces


class Grid:
    """The lattice both extractors sample: cubic voxels, `resolution` cells along the longest side of
    the box, the other sides rounded up to whole cells, centred on the box."""

    def __init__(self, resolution, bounds):
        lo, hi = (np.asarray(b, dtype=np.float64).reshape(3) for b in bounds)
        if int(resolution) < 2:
            raise ValueError(f"resolution must be at least 2, got {resolution}")
        if not np.all(hi > lo):
            raise ValueError(f"bounds must have lo < hi on every axis, got {lo} and {hi}")
        self.voxel = float((hi - lo).max()) / int(resolution)
        self.cells = np.maximum(1, np.ceil((hi - lo) / self.voxel - 1e-6)).astype(np.int64)
        self.origin = (lo + hi) / 2 - self.cells * self.voxel / 2

    @property
    def levels(self):
        """How many times coarse to fine halves its coarsest spacing to reach this lattice's."""
        return max(0, int(math.floor(math.log2(int(self.cells.max()) / COARSEST_CELLS))))

    @property
    def sampled_shape(self):
        """The points coarse to fine may ask for: the lattice grown on its far sides to whole coarsest
        cells."""
        stride = 2 ** self.levels
        return tuple(int(n) for n in -(-self.cells // stride) * stride + 1)

    def points(self, index):
        """Integer lattice indices (N, 3) -> positions (N, 3) float32."""
        return (self.origin + index * self.voxel).astype(np.float32)


class LatticeMemo:
    """Values of one field at the points coarse to fine samples on one lattice (Grid.sampled_shape),
    remembered as they are computed."""

    def __init__(self, grid):
        self.grid = grid
        self.shape = grid.sampled_shape
        # Left unwritten until used: at 256^3 this is 50 MB, of which a head touches its surface band.
        self.known = np.zeros(int(np.prod(self.shape)), dtype=bool)
        self.values = np.empty(len(self.known), dtype=np.float32)

    def slots(self, points):
        """Lattice points (N, 3) -> their slots (N,); -1 for points beyond what coarse to fine samples."""
        index = np.rint((np.asarray(points, np.float64) - self.grid.origin) / self.grid.voxel).astype(np.int64)
        inside = np.all((index >= 0) & (index < self.shape), axis=1)
        slots = np.full(len(index), -1, dtype=np.int64)
        slots[inside] = np.ravel_multi_index(tuple(index[inside].T), self.shape)
        return slots

    def recall(self, slots):
        """Remembered values at the slots, NaN where none is."""
        clamped = np.maximum(slots, 0)
        return np.where((slots >= 0) & self.known[clamped], self.values[clamped], np.float32(np.nan))

    def remember(self, slots, values):
        inside = slots >= 0
        self.values[slots[inside]] = values[inside]
        self.known[slots[inside]] = True


class _FieldSampler:
    """Evaluates the field at lattice indices in batches, reporting progress.

    Inside `with`, batches run side by side on parallel.threads() workers, each on one thread: the
    network's many small per-part matmuls gain little from threads inside one call and more from calls
    side by side; on leaving, the workers stop. Outside, batches run one after another on the caller's
    thread.
    """

    def __init__(self, sdf_fn, grid, batch_size, progress, memo=None):
        self.sdf_fn = sdf_fn
        self.grid = grid
        self.memo = memo  # a LatticeMemo of grid: points it knows are not evaluated again
        self.batch_size = int(batch_size)
        self.progress = progress
        self.span = (0.0, 1.0)  # the share of the whole job this call's points stand for
        self.threads = parallel.threads()
        self._workers = parallel.worker_map()
        self.map = map

    def __enter__(self):
        self.map = self._workers.__enter__()
        return self

    def __exit__(self, *exc):
        return self._workers.__exit__(*exc)

    def _evaluate(self, index):
        return np.asarray(self.sdf_fn(self.grid.points(index)), np.float32).reshape(-1)

    def __call__(self, index):
        if self.memo is None:
            return self._snapped(self._evaluated(index))
        slots = np.ravel_multi_index(tuple(index.T), self.memo.shape)
        known = self.memo.known[slots]
        values = self.memo.values[slots]
        values[~known] = self._evaluated(index[~known])
        self.memo.remember(slots[~known], values[~known])
        return self._snapped(values)

    def _evaluated(self, index):
        values = np.empty(len(index), dtype=np.float32)
        # Equal batches, a whole number of them per worker: no worker waits on a short last batch.
        rounds = max(1, -(-len(index) // (self.batch_size * self.threads)))
        size = max(1, -(-len(index) // (rounds * self.threads)))
        starts = range(0, len(index), size)
        batches = self.map(self._evaluate, [index[start:start + size] for start in starts])
        start_fraction, end_fraction = self.span
        for start, batch in zip(starts, batches):  # raising here (a cancel) leaves the rest to __exit__
            stop = start + len(batch)
            values[start:stop] = batch
            if self.progress is not None:
                self.progress(start_fraction + (end_fraction - start_fraction) * stop / len(index))
        return values

    def _snapped(self, values):
        snap = ZERO_SNAP * self.grid.voxel
        small = np.abs(values) < snap
        values[small] = np.where(values[small] < 0, -snap, snap)
        return values


def extract_surface(sdf_fn, resolution, bounds, *, lipschitz=DEFAULT_LIPSCHITZ,
                    batch_size=DEFAULT_BATCH_SIZE, progress=None):
    """The zero level set of `sdf_fn` inside `bounds` = (lo (3,), hi (3,)), with `resolution` cells
    along the longest side, evaluating the field only near the surface.

    Gives the mesh `extract_surface_dense` gives at the same resolution wherever the field changes by
    at most `lipschitz` per unit length. `progress(fraction)` is called now and then; an exception
    raised in it propagates (that is how callers cancel). No crossing in the box: an empty mesh.
    A field found steeper than that somewhere (two evaluated neighbours further apart) is extracted
    again assuming LIPSCHITZ_MARGIN times the steepest slope seen there, in the coarsest cells where it
    was seen and those next to them (_LipschitzFactor), so the mesh stays the dense one for any field,
    and a field steep in one small place is not sampled more densely everywhere.
    """
    grid = Grid(resolution, bounds)
    values, corners = surface_lattice(sdf_fn, grid, lipschitz=lipschitz, batch_size=batch_size, progress=progress)
    mesh = _mesh_from_lattice(values, grid, corners)
    if progress is not None:
        progress(1.0)
    return mesh


def surface_lattice(sdf_fn, grid, *, lipschitz=DEFAULT_LIPSCHITZ, batch_size=DEFAULT_BATCH_SIZE, progress=None):
    """What extract_surface meshes on `grid`: the lattice values (grid.sampled_shape) and the mask of the
    corners of the cells the surface crosses, tried again where the field is steeper than assumed."""
    factor = _LipschitzFactor(lipschitz, -(-grid.cells // 2 ** grid.levels))
    memo = LatticeMemo(grid)  # what one try evaluated, the next need not
    while True:
        try:
            with _FieldSampler(sdf_fn, grid, batch_size, progress, memo) as sampler:
                return _surface_lattice(grid, factor, sampler)
        except _SteeperThanAssumed as steeper:
            factor.mark(steeper.index, steeper.per_coarsest, steeper.slope)


def extract_surface_dense(sdf_fn, resolution, bounds, *, batch_size=DEFAULT_BATCH_SIZE, progress=None):
    """The baseline (as in DeepSDF and NPHM): evaluate every lattice point, then marching cubes."""
    grid = Grid(resolution, bounds)
    shape = tuple(grid.cells + 1)
    values = np.empty(shape, dtype=np.float32)
    flat_values = values.reshape(-1)
    with _FieldSampler(sdf_fn, grid, batch_size, progress) as sampler:
        chunk = 16 * sampler.batch_size  # a chunk at a time keeps the index arrays small
        for start in range(0, len(flat_values), chunk):
            stop = min(start + chunk, len(flat_values))
            sampler.span = (0.95 * start / len(flat_values), 0.95 * stop / len(flat_values))
            flat_values[start:stop] = sampler(np.stack(np.unravel_index(np.arange(start, stop), shape), axis=-1))
    mesh = _mesh_from_lattice(values, grid, None)
    if progress is not None:
        progress(1.0)
    return mesh


class _LipschitzFactor:
    """The Lipschitz factor coarse to fine assumes at each lattice point: `base`, and `steep` in the
    marked coarsest cells, where the field was seen steeper than `base` (and in those next to them)."""

    def __init__(self, base, coarse_cells):
        self.base = self.steep = float(base)
        self.marked = np.zeros(tuple(int(n) for n in coarse_cells), dtype=bool)

    def cells(self, per_coarsest):
        """The factor of each cell of the lattice with `per_coarsest` cells along a coarsest cell's side
        (a number while nothing is marked)."""
        if not self.marked.any():
            return self.base
        marked = self.marked
        for axis in range(3):
            marked = marked.repeat(per_coarsest, axis=axis)
        return np.where(marked, np.float32(self.steep), np.float32(self.base))

    def points(self, flat, shape, per_coarsest):
        """The factor at the points `flat` (flat indices) of that lattice, of shape `shape`: their coarsest
        cell's (a point on a border, the cell above it: a marked cell's neighbours are marked too)."""
        if not self.marked.any():
            return self.base
        index = np.stack(np.unravel_index(flat, shape), axis=-1)
        cell = np.minimum(index // per_coarsest, np.array(self.marked.shape) - 1)
        return np.where(self.marked[tuple(cell.T)], np.float32(self.steep), np.float32(self.base))

    def mark(self, index, per_coarsest, slope):
        """The field changed by `slope` per unit length at lattice points index (N, 3): their coarsest
        cells and those next to them get LIPSCHITZ_MARGIN times it (every cell, once most are marked)."""
        seen = np.zeros_like(self.marked)
        seen[tuple(np.minimum(index // per_coarsest, np.array(self.marked.shape) - 1).T)] = True
        for axis in range(3):
            head, tail = _halves(axis)
            grown = seen.copy()
            grown[head] |= seen[tail]
            grown[tail] |= seen[head]
            seen = grown
        self.marked |= seen
        if self.marked.mean() > 0.5:
            self.marked[:] = True
        self.steep = max(self.steep, LIPSCHITZ_MARGIN * slope)


def _surface_lattice(grid, lipschitz, sampler):
    """Lattice values, coarse to fine, on grid.sampled_shape (the lattice grown to whole coarsest cells):
    exact at every corner of every cell of the lattice proper the surface crosses and of the right sign
    elsewhere; and the mask of those corners. lipschitz: a _LipschitzFactor."""
    levels = grid.levels
    stride = 2 ** levels
    coarse_cells = -(-grid.cells // stride)
    # Level l costs about 4^l evaluations (a surface band at twice the resolution); marching cubes
    # takes the last 5 %.
    weights = 4.0 ** np.arange(levels + 1)
    ends = 0.95 * np.cumsum(weights) / weights.sum()

    sampler.span = (0.0, ends[0])
    index = np.stack(np.meshgrid(*(np.arange(c + 1) for c in coarse_cells), indexing="ij"), axis=-1)
    values = sampler(index.reshape(-1, 3) * stride).reshape(tuple(coarse_cells + 1))
    exact = np.ones(values.shape, dtype=bool)
    active = np.ones(tuple(coarse_cells), dtype=bool)
    for level in range(1, levels + 1):
        stride //= 2
        sampler.span = (ends[level - 1], ends[level])
        values, exact, active = _refine(values, exact, active, stride, lipschitz, sampler)
        if level < levels:
            active = active.repeat(2, axis=0).repeat(2, axis=1).repeat(2, axis=2)  # their eight children

    sampler.span = (ends[-1], ends[-1])
    return values, _complete_crossed_cells(values, exact, sampler)


class _SteeperThanAssumed(Exception):
    """Evaluated lattice neighbours differ by more than the Lipschitz factor there allows: some signs
    certified from it may be wrong. index (N, 3): those points, on a lattice with per_coarsest cells along
    a coarsest cell's side; slope: the steepest."""

    def __init__(self, slope, index, per_coarsest):
        super().__init__(f"field slope {slope:.3g}")
        self.slope, self.index, self.per_coarsest = slope, index, per_coarsest


def _steeper_than_assumed(flat_values, flat_exact, flat, steps, shape, spacing, factor):
    """The points `flat` whose |difference| / spacing to an evaluated lattice neighbour exceeds the
    Lipschitz factor there (a number, or one per point), and the steepest such slope (0 if none)."""
    index = np.unravel_index(flat, shape)
    allowed = np.broadcast_to(factor, flat.shape)
    steep = np.zeros(len(flat), dtype=bool)
    steepest = 0.0
    for axis in range(3):
        for sign in (-1, 1):
            inside = np.flatnonzero((index[axis] + sign >= 0) & (index[axis] + sign < shape[axis]))
            there = flat[inside] + sign * steps[axis]
            evaluated = flat_exact[there]
            known = inside[evaluated]
            slope = np.abs(flat_values[flat[known]] - flat_values[there[evaluated]]) / spacing
            over = slope > allowed[known]
            if over.any():
                steep[known[over]] = True
                steepest = max(steepest, float(slope[over].max()))
    return flat[steep], steepest


def _refine(coarse, coarse_exact, active, stride, lipschitz, sampler):
    """One level finer: values and exact on the lattice with half the spacing, and which of the
    active coarse cells may hold the surface.

    values: signed distances where evaluated (exact), proven signed lower bounds of them on and near
    the surface, and elsewhere only the right sign. A cell can hold the surface unless all its corners
    lie farther than lipschitz * half its diagonal from zero, on one side; then nothing inside it is
    looked at again, and its new points copy its lower corner's value for the sign. In the other active
    cells, first the corners whose bound is too weak to certify anything one spacing away are evaluated
    (near the surface most of them are needed anyway, and their values certify the points around them:
    256^3, 437k -> 386k points); then the new points are certified from their nearest neighbours (edge
    midpoints from the corners, face centres from edge midpoints and corners, cell centres from face
    centres and corners) or else evaluated.
    """
    spacing = stride * sampler.grid.voxel
    per_coarsest = 2 ** sampler.grid.levels // stride
    shape = tuple(2 * n - 1 for n in coarse.shape)
    values = np.empty(shape, dtype=np.float32)
    exact = np.zeros(shape, dtype=bool)
    values[::2, ::2, ::2] = coarse
    exact[::2, ::2, ::2] = coarse_exact
    for offset in _NEW_OFFSETS:
        lower_corner = coarse[tuple(slice(0, n - o) for n, o in zip(coarse.shape, offset))]
        values[tuple(slice(o, None, 2) for o in offset)] = lower_corner

    uncertain = _uncertain_cells(coarse, lipschitz.cells(per_coarsest // 2) * spacing * math.sqrt(3)) & active
    flat_values, flat_exact = values.reshape(-1), exact.reshape(-1)
    steps = np.array(values.strides) // values.itemsize
    span_start, span_end = sampler.span

    def evaluate(flat, step):
        """The field at these points (flat indices), as the step-th of four quarters of the progress span."""
        sampler.span = (span_start + (span_end - span_start) * step / 4,
                        span_start + (span_end - span_start) * (step + 1) / 4)
        flat_values[flat] = sampler(np.stack(np.unravel_index(flat, shape), axis=-1) * stride)
        flat_exact[flat] = True
        steep, slope = _steeper_than_assumed(flat_values, flat_exact, flat, steps, shape, spacing,
                                             lipschitz.points(flat, shape, per_coarsest))
        if len(steep):
            raise _SteeperThanAssumed(slope, np.stack(np.unravel_index(steep, shape), axis=-1), per_coarsest)

    candidates = _flat_children(_cell_corners(uncertain) & ~coarse_exact, (0, 0, 0), steps)
    evaluate(candidates[np.abs(flat_values[candidates]) <= lipschitz.points(candidates, shape, per_coarsest) * spacing],
             0)
    for order in (1, 2, 3):
        pending = []
        for offset in (o for o in _NEW_OFFSETS if sum(o) == order):
            flat = _flat_children(_touching(uncertain, offset), offset, steps)
            axes = [a for a in range(3) if offset[a]]
            near = [flat + sign * steps[a] for a in axes for sign in (-1, 1)]
            reach = lipschitz.points(flat, shape, per_coarsest) * spacing
            above, below = _bounds(flat_values, near, reach)
            if order > 1:
                corners = [flat + np.dot(signs, steps[axes]) for signs in itertools.product((-1, 1), repeat=order)]
                corner_above, corner_below = _bounds(flat_values, corners, reach * math.sqrt(order))
                above, below = np.maximum(above, corner_above), np.maximum(below, corner_below)
            # Certified: exactly one sign is proven. Both (a field steeper than lipschitz) or neither:
            # evaluate.
            certified = (above > 0) != (below > 0)
            flat_values[flat[certified]] = np.where(above > 0, above, -below)[certified]
            pending.append(flat[~certified])
        evaluate(np.concatenate(pending), order)
    return values, exact, uncertain


def _where(mask):
    """Indices (N, 3) of the true entries (np.nonzero is several times slower on 3-d masks)."""
    return np.stack(np.unravel_index(np.flatnonzero(mask), mask.shape), axis=-1)


def _flat_children(mask, offset, steps):
    """Flat indices, on the lattice one level finer (`steps` its element strides), of the points of the
    sublattice `offset` whose lower parent is marked in `mask`."""
    index = np.unravel_index(np.flatnonzero(mask), mask.shape)
    return sum((2 * i + o) * step for i, o, step in zip(index, offset, steps))


def _halves(axis):
    """Index tuples that drop the last and the first entry along `axis`: each pair of neighbours."""
    head, tail = [slice(None)] * 3, [slice(None)] * 3
    head[axis], tail[axis] = slice(0, -1), slice(1, None)
    return tuple(head), tuple(tail)


def _uncertain_cells(values, reach):
    """Cells whose corners do not all lie farther than `reach` from zero on one side."""
    low, high = values, values
    for axis in range(3):
        head, tail = _halves(axis)
        low = np.minimum(low[head], low[tail])
        high = np.maximum(high[head], high[tail])
    return (low <= reach) & (high >= -reach)


def _touching(cells, offset):
    """For the points of one new sublattice (indexed by their lower parent), whether a marked cell
    contains them: along an axis with offset 1 the point is inside one cell, along the others it
    lies between two."""
    padded = np.pad(cells, [(0, 0) if o else (1, 1) for o in offset])
    shape = [n if o else n + 1 for n, o in zip(cells.shape, offset)]
    out = np.zeros(shape, dtype=bool)
    for shift in itertools.product(*[(0,) if o else (0, 1) for o in offset]):
        out |= padded[tuple(slice(s, s + n) for s, n in zip(shift, shape))]
    return out


def _bounds(flat_values, neighbours, reach):
    """Proven lower bounds of the field (above) and of minus the field (below) at points whose
    neighbours, all at one distance, are listed; a bound <= 0 proves nothing."""
    high = flat_values[neighbours[0]]
    low = high.copy()
    for n in neighbours[1:]:
        gathered = flat_values[n]
        np.maximum(high, gathered, out=high)
        np.minimum(low, gathered, out=low)
    return high - reach, -low - reach


def _crossed_cells(values):
    """Cells with corners of both signs (the ones marching cubes triangulates)."""
    count = (values > 0).astype(np.uint8)
    for axis in range(3):
        head, tail = _halves(axis)
        count = count[head] + count[tail]
    return (count > 0) & (count < 8)


def _cell_corners(cells):
    """Lattice points that are a corner of at least one of the given cells."""
    corners = np.pad(cells, 1)
    for axis in range(3):
        head, tail = _halves(axis)
        corners = corners[head] | corners[tail]
    return corners


def _complete_crossed_cells(values, exact, sampler):
    """Evaluates the corners of crossed cells that only have a certified sign; returns the mask of
    all such corners. Only cells of the sampler's lattice count: beyond it `values` extends to whole
    coarsest cells, which the dense grid does not sample. Repeats if an evaluation turned a sign (a
    field steeper than assumed), since that changes which cells are crossed."""
    lattice = tuple(slice(0, n + 1) for n in sampler.grid.cells)
    corners = np.zeros(values.shape, dtype=bool)
    while True:
        corners[lattice] = _cell_corners(_crossed_cells(values[lattice]))
        missing = _where(corners & ~exact)
        if len(missing) == 0:
            return corners
        index = tuple(missing.T)
        before = values[index] > 0
        values[index] = sampler(missing)
        exact[index] = True
        if np.array_equal(values[index] > 0, before):
            return corners


def _mesh_from_lattice(values, grid, corners):
    """Marching cubes on the lattice values, in the field's frame, with outward normals. With
    `corners`, only cells whose eight corners are marked there are visited (every crossed cell's are,
    and no cell beyond the marked ones, where coarse to fine's lattice extends past the dense grid's)."""
    # Faces wind counter-clockwise seen from where the values are larger: from outside, for a field
    # negative inside.
    index_vertices, faces = marching_cubes(values, corners)
    vertices = (grid.origin + index_vertices * grid.voxel).astype(np.float32)
    return SurfaceMesh(vertices, faces, vertex_normals(vertices, faces))


def vertex_normals(vertices, faces):
    """Unit vertex normals, the adjacent faces' normals weighted by their areas."""
    corners = vertices[faces].astype(np.float64)
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])  # 2 * area
    normals = np.stack([np.bincount(faces.reshape(-1), weights=np.repeat(face_normals[:, axis], 3),
                                    minlength=len(vertices)) for axis in range(3)], axis=-1)
    length = np.linalg.norm(normals, axis=-1, keepdims=True)
    return (normals / np.where(length > 0, length, 1.0)).astype(np.float32)


def connected_components(mesh):
    """The number of pieces: sets of faces connected through shared vertices."""
    used = np.zeros(len(mesh.vertices), dtype=bool)
    used[mesh.faces] = True
    labels = piece_labels(mesh)
    return int(np.count_nonzero(used & (labels == np.arange(len(labels)))))


def piece_labels(mesh):
    """Each vertex's piece, as the smallest vertex index of it (a vertex of no face is a piece of its own)."""
    # Union-find in whole-array steps. Every vertex points at a smaller one of its piece or at itself
    # (a root). Each round hooks the larger root of every face edge whose ends have different roots onto
    # the smaller (where several edges hook one root, any of them will do), then lets every vertex
    # jump to its parent's parent until each points at its root.
    parent = np.arange(len(mesh.vertices))
    # Two edges of each face join all three of its vertices.
    a = np.concatenate([mesh.faces[:, 0], mesh.faces[:, 1]])
    b = np.concatenate([mesh.faces[:, 1], mesh.faces[:, 2]])
    while True:
        root_a, root_b = parent[a], parent[b]
        apart = np.flatnonzero(root_a != root_b)
        if len(apart) == 0:
            break
        # An edge within one piece joins nothing in later rounds.
        a, b, root_a, root_b = a[apart], b[apart], root_a[apart], root_b[apart]
        parent[np.maximum(root_a, root_b)] = np.minimum(root_a, root_b)
        while True:
            grandparent = parent[parent]
            if np.array_equal(grandparent, parent):
                break
            parent = grandparent
    return parent


def _edge_keys(faces):
    """Each face's three undirected edges as one int64 key (smaller vertex index first)."""
    a = faces.reshape(-1).astype(np.int64)
    b = np.roll(faces, -1, axis=1).reshape(-1).astype(np.int64)
    return np.minimum(a, b) * (int(faces.max(initial=0)) + 1) + np.maximum(a, b)


def is_closed(mesh):
    """Whether the mesh has faces and every edge is shared by exactly two of them (a watertight surface)."""
    _, counts = np.unique(_edge_keys(mesh.faces), return_counts=True)
    return len(mesh.faces) > 0 and bool(np.all(counts == 2))
