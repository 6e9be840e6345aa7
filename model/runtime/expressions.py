"""Expressions as fixed-topology vertex positions: the inverse of the backward warp, per vertex.

The network warps observed points to the canonical (neutral) head: x_can = x + delta(x). A neutral mesh
vertex v shows up, under an expression, at the x with x + delta(x) = v; it is found with the fixed-point
iteration x <- v - delta(x), which converges where the warp's Jacobian has norm below 1, then with Newton
steps where it did not: where the warp bends sharply (the jaw opening, the lips rolling) the plain step
overshoots. A vertex that Newton's steps cannot reach from its own position either (it starts on the
wrong side of a fold) starts again from its solved mesh neighbours' displacement.

Evaluating the warp at every vertex for every expression is the whole cost, and most expressions move a
small part of the head. The warp is first evaluated at one vertex per cell of a coarse grid (the screening
samples); only vertices within one cell of a sample that the expression moves are solved, the others keep
their neutral position (their residual is what the warp does there, measured at the samples).
"""
from dataclasses import dataclass

import numpy as np

from .errors import ImHeadError
from .frame import model_to_mm
from .parallel import in_batches

# Warp evaluations per vertex at most, and the residual (model units) at which a vertex counts as solved
# (5e-5 = 10 um, a hundredth of a voxel at 256^3).
MAX_STEPS = 10
TOLERANCE = 5e-5
# Newton steps after them, with the warp's Jacobian by central differences of FD_STEP (model units,
# 2e-4 = 0.04 mm), each step halved up to LINE_SEARCH times until it lowers the residual; rounds of
# starting the unsolved vertices from their neighbours.
NEWTON_STEPS = 12
FD_STEP = 2e-4
LINE_SEARCH = 8
NEIGHBOUR_ROUNDS = 6
# Screening: grid cell size (model units, 0.04 = 8 mm) and how much an expression must move a sample,
# beyond what the warp does at the neutral expression, for the vertices around it to be solved (1e-4 = 0.02 mm).
SCREEN_CELL = 0.04
SCREEN_THRESHOLD = 1e-4

# Panel groups, by name prefix (ARKit naming), in the order a face reads from the top.
EXPRESSION_GROUPS = (("Brows", "brow"), ("Eyes", "eye"), ("Cheeks", "cheek"), ("Nose", "nose"),
                     ("Jaw", "jaw"), ("Mouth", "mouth"))

PRESETS = {
    "smile": {"mouthSmile_L": 0.8, "mouthSmile_R": 0.8, "cheekSquint_L": 0.4, "cheekSquint_R": 0.4,
              "eyeSquint_L": 0.2, "eyeSquint_R": 0.2, "mouthUpperUp_L": 0.2, "mouthUpperUp_R": 0.2},
    "surprise": {"browInnerUp_L": 0.8, "browInnerUp_R": 0.8, "browOuterUp_L": 0.7, "browOuterUp_R": 0.7,
                 "eyeWide_L": 0.6, "eyeWide_R": 0.6, "jawOpen": 0.35, "mouthFunnel": 0.2},
    "anger": {"browDown_L": 0.8, "browDown_R": 0.8, "eyeSquint_L": 0.4, "eyeSquint_R": 0.4,
              "noseSneer_L": 0.5, "noseSneer_R": 0.5, "mouthFrown_L": 0.4, "mouthFrown_R": 0.4,
              "mouthPress_L": 0.3, "mouthPress_R": 0.3},
    "blink": {"eyeBlink_L": 1.0, "eyeBlink_R": 1.0},
}


@dataclass
class InverseWarp:
    positions: np.ndarray  # (E, N, 3) observed positions of the neutral vertices, model frame
    solved: np.ndarray     # (E, N) bool: solved by the iteration; the others kept their neutral position
    residual: np.ndarray   # (E, N) |x + delta(x) - v| (model units) where measured, NaN elsewhere

    def residual_summary_mm(self):
        """Largest, 99th percentile and mean measured residual over every vertex and expression, and the
        largest among the vertices left at their neutral position (measured at the screening samples), in mm."""
        kept = np.where(self.solved, np.nan, self.residual)
        return {"max": float(model_to_mm(np.nanmax(self.residual))),
                "p99": float(model_to_mm(np.nanpercentile(self.residual, 99))),
                "mean": float(model_to_mm(np.nanmean(self.residual))),
                "kept_max": float(model_to_mm(np.nanmax(kept))) if np.isfinite(kept).any() else 0.0}


def expression_groups(names):
    """[(group label, [expression names])] for the panel; names matching no group go under "Other"."""
    groups = [(label, [n for n in names if n.startswith(prefix)]) for label, prefix in EXPRESSION_GROUPS]
    grouped = {n for _, members in groups for n in members}
    other = [n for n in names if n not in grouped]
    return [(label, members) for label, members in groups + [("Other", other)] if members]


def preset_weights(names, preset):
    """(E,) weights of a named preset (PRESETS) over the expressions `names`."""
    if preset not in PRESETS:
        raise ImHeadError(f"unknown expression preset {preset!r}; choose from {', '.join(PRESETS)}")
    weights = np.zeros(len(names), np.float32)
    index = {n: i for i, n in enumerate(names)}
    for name, value in PRESETS[preset].items():
        if name in index:
            weights[index[name]] = value
    return weights


def _warp(model, code, expression, points):
    """x + delta(x) for points (M, 3) under one expression (1, E), in batches side by side."""
    return in_batches(lambda chunk: model.network.warp_to_canonical(chunk[None], code, expression)[0], points)


def _screening_samples(vertices):
    """One vertex per SCREEN_CELL cell: the samples' indices, and the cell (N, 3) of every vertex."""
    cells = np.floor((vertices - vertices.min(0)) / SCREEN_CELL).astype(np.int64)
    _, samples = np.unique(cells, axis=0, return_index=True)
    return samples, cells


def _near_moving_samples(cells, sample_cells, moving):
    """(N,) bool: vertices whose cell is within one cell (26-neighbourhood) of a moving sample's cell."""
    shape = cells.max(0) + 3
    grid = np.zeros(tuple(shape), bool)
    marked = sample_cells[moving] + 1
    for offset in np.stack(np.meshgrid(*[[-1, 0, 1]] * 3, indexing="ij"), -1).reshape(-1, 3):
        grid[tuple((marked + offset).T)] = True
    return grid[tuple((cells + 1).T)]


def inverse_warp(model, identity, vertices, edges, expressions, steps=MAX_STEPS, tolerance=TOLERANCE,
                 progress=None):
    """Where the neutral vertices (N, 3) of a head's mesh with edges (M, 2) (mesh_edges makes them from
    triangles) go under each expression (E', n_expressions) of coefficients: an InverseWarp.
    progress(fraction) is called after each expression."""
    code = model._code(identity)
    expressions = np.atleast_2d(np.asarray(expressions, np.float32))
    if expressions.shape[1] != len(model.expression_names):
        raise ImHeadError(f"expressions have {expressions.shape[1]} values, this model has "
                          f"{len(model.expression_names)} expressions")
    vertices = np.ascontiguousarray(vertices, np.float32)
    samples, cells = _screening_samples(vertices)
    sample_points = vertices[samples]
    neutral_samples = _warp(model, code, np.zeros((1, expressions.shape[1]), np.float32), sample_points)

    n_expr, n = len(expressions), len(vertices)
    positions = np.repeat(vertices[None], n_expr, 0)
    solved = np.zeros((n_expr, n), bool)
    residual = np.full((n_expr, n), np.nan, np.float32)
    for k, weights in enumerate(expressions):
        expression = weights[None]
        warped_samples = _warp(model, code, expression, sample_points)
        residual[k, samples] = np.linalg.norm(warped_samples - sample_points, axis=-1)
        moving = np.linalg.norm(warped_samples - neutral_samples, axis=-1) > SCREEN_THRESHOLD
        active = np.flatnonzero(_near_moving_samples(cells, cells[samples], moving))
        x, error, r = _fixed_point(model, code, expression, vertices[active], steps, tolerance)
        x, r = _newton(model, code, expression, vertices[active], x, error, r, NEWTON_STEPS, tolerance)
        positions[k, active] = x
        solved[k, active] = True
        residual[k, active] = r
        _start_from_neighbours(model, code, expression, vertices, edges, positions[k], residual[k], solved[k],
                               tolerance)
        if progress is not None:
            progress((k + 1) / n_expr)
    return InverseWarp(positions, solved, residual)


def _fixed_point(model, code, expression, targets, steps, tolerance):
    """x with x + delta(x) = targets (M, 3), and the error x + delta(x) - targets and residual of the x returned.

    The step x <- x - (x + delta(x) - target) is taken where it lowers a vertex's residual and halved
    where it would not, so that vertices where the warp is not contracting still settle at their best
    point (their residual says how good it is).
    """
    x = targets.copy()
    error = _warp(model, code, expression, x) - targets
    residual = np.linalg.norm(error, axis=-1)
    step = np.ones(len(targets), np.float32)
    for _ in range(steps - 1):
        todo = np.flatnonzero(residual > tolerance)
        if len(todo) == 0:
            break
        better = _keep_better(model, code, expression, targets, todo, x[todo] - step[todo, None] * error[todo],
                              x, error, residual)
        step[todo[~better]] *= 0.5
    return x, error, residual


def _keep_better(model, code, expression, targets, todo, candidate, x, error, residual):
    """Moves the points `todo` of x (with their error and residual, in place) to their candidate positions
    where that lowers the residual; returns where it did (bool, over todo)."""
    candidate_error = _warp(model, code, expression, candidate) - targets[todo]
    candidate_residual = np.linalg.norm(candidate_error, axis=-1)
    better = candidate_residual < residual[todo]
    accepted = todo[better]
    x[accepted], error[accepted], residual[accepted] = (candidate[better], candidate_error[better],
                                                        candidate_residual[better])
    return better


def warp_jacobian(model, identity, expression, points):
    """(M, 3, 3) d(x + delta(x))/dx at points (M, 3) under one expression (n_expressions,) of the head
    `identity`: where its determinant is not positive, the warp folds space."""
    return _warp_jacobian(model, model._code(identity), np.asarray(expression, np.float32)[None],
                          np.ascontiguousarray(points, np.float32))


def _warp_jacobian(model, code, expression, x):
    """(M, 3, 3) d(x + delta(x))/dx by central differences, the six shifted copies in one evaluation."""
    shifts = np.concatenate([np.eye(3, dtype=np.float32), -np.eye(3, dtype=np.float32)]) * FD_STEP
    warped = _warp(model, code, expression, (x[None] + shifts[:, None]).reshape(-1, 3)).reshape(6, len(x), 3)
    return np.stack([(warped[a] - warped[a + 3]) / (2 * FD_STEP) for a in range(3)], axis=-1)


def _newton(model, code, expression, targets, x, error, residual, steps, tolerance):
    """Newton steps on x (M, 3) where its residual exceeds the tolerance: (x, residual). Damped least squares
    (J^T J + lambda I) keeps the step finite where the warp folds (J singular)."""
    x, error, residual = x.copy(), error.copy(), residual.copy()
    for _ in range(steps):
        todo = np.flatnonzero(residual > tolerance)
        if len(todo) == 0:
            break
        jacobian = _warp_jacobian(model, code, expression, x[todo])
        transposed = jacobian.transpose(0, 2, 1)
        normal = transposed @ jacobian + 1e-6 * np.eye(3, dtype=np.float32)
        step = np.linalg.solve(normal, (transposed @ error[todo][..., None]))[..., 0]
        for _ in range(LINE_SEARCH):
            better = _keep_better(model, code, expression, targets, todo, x[todo] - step, x, error, residual)
            todo, step = todo[~better], 0.5 * step[~better]
            if len(todo) == 0:
                break
    return x, residual


def _start_from_neighbours(model, code, expression, vertices, edges, x, residual, solved, tolerance):
    """Solves again, in place, the vertices left above the tolerance that have a neighbour within it: from
    the vertex moved as those neighbours moved (their mean displacement), keeping what lowers the residual.
    Each round passes solutions one edge further."""
    a, b = np.concatenate([edges[:, 0], edges[:, 1]]), np.concatenate([edges[:, 1], edges[:, 0]])
    for _ in range(NEIGHBOUR_ROUNDS):
        good = solved & (residual <= tolerance)
        count = np.bincount(a, weights=good[b], minlength=len(x))
        todo = np.flatnonzero(solved & (residual > tolerance) & (count > 0))
        if len(todo) == 0:
            return
        moved = (x - vertices) * good[:, None]
        displacement = np.stack([np.bincount(a, weights=moved[b, axis], minlength=len(x))
                                 for axis in range(3)], -1)[todo] / count[todo, None]
        start = (vertices[todo] + displacement).astype(np.float32)
        error = _warp(model, code, expression, start) - vertices[todo]
        candidate, candidate_residual = _newton(model, code, expression, vertices[todo], start, error,
                                                np.linalg.norm(error, axis=-1), NEWTON_STEPS, tolerance)
        better = candidate_residual < residual[todo]
        if not better.any():
            return
        x[todo[better]], residual[todo[better]] = candidate[better], candidate_residual[better]


def mesh_edges(faces):
    """(M, 2) the undirected edges of triangle faces (F, 3), each once."""
    pairs = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return np.unique(np.sort(pairs, axis=1), axis=0)


def linear_mix(vertices, key_positions, weights):
    """Positions of a linear shape-key mix: v + sum_k w_k (x_k - v); key_positions (E, N, 3)."""
    weights = np.asarray(weights, np.float32)
    return vertices + np.tensordot(weights, key_positions - vertices[None], axes=1)


def random_expressions(names, count, seed, active=4):
    """(count, E) random combinations: `active` expressions each, weights uniform in [0.2, 1].
    mouthClose is left out: without jawOpen it pushes the lips through each other."""
    rng = np.random.default_rng(seed)
    allowed = [i for i, name in enumerate(names) if name != "mouthClose"]
    weights = np.zeros((count, len(names)), np.float32)
    for row in weights:
        row[rng.choice(allowed, size=active, replace=False)] = rng.uniform(0.2, 1.0, active)
    return weights


def linear_mix_error(model, identity, vertices, edges, keys, combinations):
    """Distance (model units) between the linear mix of one-expression keys (an InverseWarp of the
    identity matrix) and the exact inverse warp, per combination (C, E): an array (C, N)."""
    exact = inverse_warp(model, identity, vertices, edges, combinations).positions
    mixed = np.stack([linear_mix(vertices, keys.positions, c) for c in combinations])
    return np.linalg.norm(mixed - exact, axis=-1)
