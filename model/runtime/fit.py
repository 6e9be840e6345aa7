"""Fitting imHead to a scan: a point cloud (normals optional) in any units and placement.

    python -m imhead fit --input scan.ply --out-mesh fit.obj --out-json fit.json

1. Units are guessed from the cloud's size (a head's RMS radius is about 0.1 m), the cloud is centred
   and scaled into the model frame.
2. Rigid alignment to the mean head from each of the 24 axis-aligned rotations, the cloud's centroid
   placed where a whole head's lies and where a face-only scan's does, each at the cloud's own size and
   scaled to a head's or a face's (96 starts): a few Adam steps on rotation, translation and scale each,
   all starts in one batch; the start whose points lie closest to the surface wins. (From the whole-head
   centroid alone, front-only scans were fitted turned 70-130 degrees; at the cloud's own size alone, a
   toddler's whole head, the size of an adult's face, was aligned as a face: 50 mm off.)
3. Rotation, translation, scale, the identity (in the whitened principal axes of the training codes, so
   the latent prior is a Mahalanobis distance) and the expression (clamped to [0, 1]) are optimized
   together so that the signed distance vanishes on the points: a truncated Huber loss (outliers beyond
   the truncation pull nothing), plus the normals' agreement with the field's gradient when given.

Everything runs on numpy: gradients come from the network's backward pass (numpy_gradients), the
optimizer is Adam as torch has it, rotations are axis-angle through Rodrigues' formula.

Every step uses a random batch of the (at most `n_points`) subsampled points; all randomness comes
from `seed`, so a fit is repeatable.
"""
import time
from dataclasses import dataclass

import numpy as np

from . import parallel
from .errors import ImHeadError
from .frame import MM, MODEL_UNIT_M, model_to_mm
from .meshing import SurfaceMesh
from .numpy_gradients import sdf_and_vjp

QUALITY_STEPS = {"fast": 150, "best": 500}
MIN_POINTS = 300
# Metres per unit of each length unit a scan may come in.
UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001, "in": 0.0254}
# RMS distance of a head scan's points from their centroid: 0.11-0.13 m for a whole head, about 0.08 m
# for the face alone. A cloud whose size is more than SIZE_TOLERANCE times off this in every unit is
# not a head.
HEAD_RMS_RADIUS_M = 0.1
SIZE_TOLERANCE = 3.5
# Where the centroid of a whole head's surface lies in the model frame (measured on the ICT heads).
HEAD_CENTROID = (0.0, 0.03, -0.02)
# Where the centroid of a face-only scan (one view from the front: the surface facing forward) lies.
FACE_CENTROID = (0.0, -0.185, -0.06)
# The RMS radius (metres) the size-matched alignment starts scale a cloud to: an adult's whole head cut
# at the neck (0.093-0.118 m over the held-out heads), a face-only scan.
WHOLE_HEAD_RMS_M = 0.11
FACE_RMS_M = 0.08

# Alignment phases: (starts kept from the phase before, steps, points per start).
ALIGN_PHASES = ((96, 20, 128), (4, 30, 384))
ALIGN_STEPS = sum(steps for _, steps, _ in ALIGN_PHASES)
# Parts per point in the alignment: a coarser field than the model's, good enough to tell starts apart.
ALIGN_PARTS = 3
BATCH_POINTS = 3000
NORMAL_POINTS = 500
HUBER = 2 * MM        # quadratic below, linear above: Gaussian noise of a few mm stays in the quadratic part
# Residuals beyond the truncation pull nothing (hair, shoulders, stray points). It follows the fit:
# TRUNCATION_SPREAD times the batch's median |residual|, within TRUNCATION_RANGE.
TRUNCATION_SPREAD = 4.0
TRUNCATION_RANGE = (3 * MM, 15 * MM)
ALIGN_HUBER = 10 * MM
# Loss weights, relative to the data term (a residual of HUBER costs 0.5).
IDENTITY_PRIOR = 2e-4
EXPRESSION_PRIOR = 2e-3
# The warp barely responds to coefficients below about 0.07 (it was trained on expressions, not on
# traces of them): the fit starts every coefficient above that, where each has a gradient.
EXPRESSION_START = 0.1
SCALE_PRIOR = 1.0
NORMAL_WEIGHT = 0.2
# The step of the central differences that give the field's gradient at a normal point: 0.2 mm, small
# against the field's curvature and large against float32 rounding of the signed distance (~1e-7).
NORMAL_STEP = 0.2 * MM
# The six points about x whose signed distances give the gradient there: x + h e_k, then x - h e_k.
CENTRAL_OFFSETS = np.concatenate([np.eye(3), -np.eye(3)]) * NORMAL_STEP
# Fewest points per worker worth splitting a batch over the workers for.
MIN_WORKER_POINTS = 1000
# A fit must explain its scan: at least MIN_EXPLAINED of the fitted points within EXPLAINED_DISTANCE of
# the head. The truncated loss lets a fit "converge" on the few points it keeps (a head turned the wrong
# way on a partial scan, a cloud that is no head), and its mean residual over the kept points looks good.
# Half leaves room for hair, shoulders and clutter; a head explains 90 % and more of a clean scan.
EXPLAINED_DISTANCE_MM = 5.0
MIN_EXPLAINED = 0.5
LEARNING_RATES = {"rotation": 0.01, "translation": 4 * MM, "log_scale": 0.004, "identity": 0.2,
                  "expression": 0.02}
ALIGN_LEARNING_RATES = {"rotation": 0.05, "translation": 10 * MM, "log_scale": 0.01}


class PoorFitError(ImHeadError):
    """A fit that does not explain its scan; `result` is the FitResult, for a caller that wants it."""

    def __init__(self, message, result):
        super().__init__(message)
        self.result = result


@dataclass
class FitResult:
    identity: np.ndarray    # (code_dim,) float32
    expression: np.ndarray  # (n_expressions,) float32, each in [0, 1]; zeros for a neutral fit
    transform: np.ndarray   # (4, 4) float64: homogeneous input coordinates -> model frame
    unit: str               # the input's length unit, guessed or given: "m", "cm", "mm" or "in"
    residual_mm: float      # mean distance of the fitted points to the result (fitted_distances), in mm
    within_2mm: float       # share of the fitted points within 2 mm of the result
    within_5mm: float       # ... within 5 mm (EXPLAINED_DISTANCE_MM)
    median_mm: float        # median distance of the fitted points to the result
    steps: int              # refinement steps run (after the fixed ALIGN_STEPS of the alignment)
    seconds: float

    @property
    def explains_scan(self):
        """Whether the head lies on enough of the scan to be taken as its fit (MIN_EXPLAINED)."""
        return self.within_5mm >= MIN_EXPLAINED

    def require_explained(self):
        """The result itself, or PoorFitError when it does not explain its scan."""
        if not self.explains_scan:
            raise PoorFitError(
                f"the fitted head lies within {EXPLAINED_DISTANCE_MM:g} mm of only {self.within_5mm:.0%} of the "
                f"scan's points (median distance {self.median_mm:.1f} mm; a fit needs {MIN_EXPLAINED:.0%}): the scan "
                "may not be a head, hold much besides the head (crop it to the head), or the alignment failed "
                "(try another seed or the best quality)", self)
        return self

    @property
    def inverse_transform(self):
        """(4, 4) float64: model frame -> input coordinates."""
        return np.linalg.inv(self.transform)

    def to_input(self, mesh):
        """A model-frame SurfaceMesh placed on the scan, in the input's coordinates."""
        inverse = self.inverse_transform
        vertices = mesh.vertices.astype(np.float64) @ inverse[:3, :3].T + inverse[:3, 3]
        normals = mesh.normals.astype(np.float64) @ inverse[:3, :3].T
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
        return SurfaceMesh(vertices.astype(np.float32), mesh.faces, normals.astype(np.float32))


def fit(model, points, normals=None, *, neutral=False, quality="fast", steps=None, n_points=10000, seed=0,
        unit=None, progress=None, vjp=None):
    """Fit the HeadModel `model` to points (N, 3) in any units and placement; returns a FitResult.

    normals: optional (N, 3) outward normals. neutral: keep the expression at zero. quality: "fast" or
    "best" (the number of refinement steps, unless `steps` is given). unit: the input's unit ("m",
    "cm", "mm", "in"); guessed from the size when None. progress(fraction, message) is called as the
    fit goes; an exception raised in it propagates and ends the fit. vjp: where the signed distance and
    its gradients come from, (points (1, N, 3), codes, expression, n_parts) -> (sdf, backward) as
    numpy_gradients.sdf_and_vjp; the numpy runtime's unless given (network.sdf_and_vjp is torch's: the
    reference the runtime's fit is tested against).
    Raises ImHeadError for input that cannot be a head scan.
    """
    started = time.perf_counter()
    if steps is None:
        if quality not in QUALITY_STEPS:
            raise ImHeadError(f"unknown fit quality {quality!r}; choose from {', '.join(QUALITY_STEPS)}")
        steps = QUALITY_STEPS[quality]
    if n_points < MIN_POINTS:
        raise ImHeadError(f"a fit uses at least {MIN_POINTS} points; {n_points} were asked for")
    rng = np.random.default_rng(seed)
    points, normals = subsample(*checked_points(points, normals), n_points, rng)
    unit = guess_unit(points) if unit is None else unit
    if unit not in UNITS:
        raise ImHeadError(f"unknown unit {unit!r}; choose from {', '.join(UNITS)}")
    centre = points.mean(0)
    # Input -> model units about the centroid; everything after this works in the model frame's scale.
    scale = UNITS[unit] / MODEL_UNIT_M
    cloud = (points - centre) * scale
    vjp = vjp or network_vjp(model)

    report = progress or (lambda fraction, message: None)
    total = ALIGN_STEPS + steps
    # One BLAS thread for the fit's own small matmuls (pose, codes) between the workers' batches too:
    # numpy's default BLAS threads busy-wait after each on the cores the workers need (bench_fit: 16.7 s
    # and 31.6 CPU s against 11.4 s and 18.3 CPU s).
    with parallel.single_threaded_blas():
        report(0.0, "Aligning the scan")
        start = align(vjp, model, cloud, rng, lambda step: report(step / total, "Aligning the scan"))
        report(ALIGN_STEPS / total, "Fitting the head")
        pose, identity, expression = refine(vjp, model, cloud, normals, start, steps, neutral, rng,
                                            lambda step: report((ALIGN_STEPS + step) / total, "Fitting the head"))
        distances = model_to_mm(fitted_distances(model, cloud, pose, identity, expression))

    linear = pose["scale"] * scale * pose["rotation"]
    transform = np.eye(4)
    transform[:3, :3] = linear
    transform[:3, 3] = pose["translation"] - linear @ centre
    report(1.0, "Fitted")
    expression = np.zeros(len(model.expression_names), np.float32) if expression is None else expression
    return FitResult(identity, expression, transform, unit, float(distances.mean()), float(np.mean(distances < 2.0)),
                     float(np.mean(distances < EXPLAINED_DISTANCE_MM)), float(np.median(distances)), steps,
                     time.perf_counter() - started)


# --- input ----------------------------------------------------------------------------------------
def checked_points(points, normals=None):
    """The points (and normals) as arrays, or ImHeadError saying what is wrong with them."""
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ImHeadError(f"points must be an array of shape (N, 3), got shape {points.shape}")
    if len(points) == 0:
        raise ImHeadError("the scan has no points")
    if len(points) < MIN_POINTS:
        raise ImHeadError(f"the scan has only {len(points)} points; fitting needs at least {MIN_POINTS}")
    # The sum is finite when every coordinate is (or overflows): a clean scan makes no (N, 3) temporary.
    bad = 0 if np.isfinite(points.sum()) else int(np.count_nonzero(~np.isfinite(points).all(axis=1)))
    if bad:
        raise ImHeadError(f"{bad} of the scan's {len(points)} points have NaN or infinite coordinates")
    if normals is not None:
        normals = np.asarray(normals)
        if normals.shape != points.shape:
            raise ImHeadError(f"normals must have the points' shape {points.shape}, got {normals.shape}")
        if not np.isfinite(normals).all():
            raise ImHeadError("the scan's normals contain NaN or infinite values")
    return points, normals


def subsample(points, normals, n_points, rng):
    """At most n_points of the points (and their normals, unit length), chosen at random, float64.

    Only the chosen rows are copied: a scan of millions of points costs little more than itself.
    """
    chosen = np.sort(rng.choice(len(points), n_points, replace=False)) if len(points) > n_points else slice(None)
    points = points[chosen].astype(np.float64)
    if normals is not None:
        normals = normals[chosen].astype(np.float64)
        length = np.linalg.norm(normals, axis=1, keepdims=True)
        # A zero normal carries no direction: it stays zero and the normal term ignores it.
        normals = normals / np.where(length > 0, length, 1.0)
    return points, normals


# The least spread of a head scan across its thinnest direction, as a fraction of its widest.
MIN_THICKNESS = 0.05


def guess_unit(points):
    """The unit in which the cloud has the size of a head; ImHeadError when it has none, or is no solid's."""
    centred = points - points.mean(0)
    rms_radius = float(np.sqrt((centred ** 2).sum(1).mean()))
    if not rms_radius > 0:  # all in one point (the log below would be -inf)
        raise ImHeadError("the scan's points all lie in one place")
    spread = np.sqrt(np.maximum(np.linalg.eigvalsh(centred.T @ centred), 0.0))  # ascending
    if spread[0] < MIN_THICKNESS * spread[2]:  # even a face-only scan has depth: this is a line or a plane
        raise ImHeadError("the scan's points lie on a line or a plane, not on a head")
    misfit = {name: abs(np.log(rms_radius * metres / HEAD_RMS_RADIUS_M)) for name, metres in UNITS.items()}
    unit = min(misfit, key=misfit.get)
    if misfit[unit] > np.log(SIZE_TOLERANCE):
        raise ImHeadError(f"the scan's points spread {rms_radius:.4g} units around their centre, which is "
                          f"not the size of a head in any unit ({', '.join(UNITS)})")
    return unit


# --- optimization ---------------------------------------------------------------------------------
def network_vjp(model):
    """The numpy runtime's signed distance and its vector-Jacobian product for `model`, split over the
    workers (parallel.threads()): (points (1, N, 3), codes, expression, n_parts) -> (sdf, backward)."""
    def vjp(points, codes, expression=None, n_parts=None):
        count = max(1, min(parallel.threads(), points.shape[1] // MIN_WORKER_POINTS))
        chunks = np.array_split(points, count, axis=1)
        with parallel.worker_map() as map_:
            traced = list(map_(lambda chunk: sdf_and_vjp(model.network, chunk, codes, expression, n_parts),
                               chunks))
        sdf = np.concatenate([values for values, _ in traced], axis=1)
        sizes = np.cumsum([chunk.shape[1] for chunk in chunks])[:-1]

        def backward(upstream):
            jobs = zip([back for _, back in traced], np.split(upstream, sizes, axis=1))
            with parallel.worker_map() as map_:
                parts = list(map_(lambda job: job[0](job[1]), jobs))
            d_points = np.concatenate([part[0] for part in parts], axis=1)
            d_codes = sum(part[1] for part in parts)
            d_expression = None if expression is None else sum(part[2] for part in parts)
            return d_points, d_codes, d_expression
        return sdf, backward
    return vjp


class Adam:
    """torch.optim.Adam's update (betas 0.9 and 0.999, eps 1e-8) of named float64 arrays, each with its
    own learning rate."""
    BETAS = (0.9, 0.999)
    EPS = 1e-8

    def __init__(self, params, rates):
        self.params, self.rates = params, rates
        self.moments = {name: (np.zeros_like(value), np.zeros_like(value)) for name, value in params.items()}
        self.steps = 0

    def step(self, gradients, decay=1.0):
        """One update from {name: gradient}, every learning rate times `decay`."""
        self.steps += 1
        b1, b2 = self.BETAS
        for name, gradient in gradients.items():
            first, second = self.moments[name]
            first *= b1
            first += (1 - b1) * gradient
            second *= b2
            second += (1 - b2) * gradient ** 2
            denominator = np.sqrt(second / (1 - b2 ** self.steps)) + self.EPS
            self.params[name] -= self.rates[name] * decay / (1 - b1 ** self.steps) * first / denominator


def axis_aligned_rotations():
    """The 24 rotations that map coordinate axes to coordinate axes, (24, 3, 3) float64."""
    rotations = []
    for permutation in ((0, 1, 2), (1, 2, 0), (2, 0, 1), (0, 2, 1), (2, 1, 0), (1, 0, 2)):
        for signs in np.ndindex(2, 2, 2):
            matrix = np.zeros((3, 3))
            matrix[range(3), permutation] = 1 - 2 * np.array(signs)
            if np.linalg.det(matrix) > 0:
                rotations.append(matrix)
    return np.array(rotations)


def skew(vectors):
    """(..., 3) -> the cross-product matrices (..., 3, 3)."""
    x, y, z = np.moveaxis(vectors, -1, 0)
    zero = np.zeros_like(x)
    return np.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*vectors.shape[:-1], 3, 3)


def rotation_and_derivatives(axis_angle):
    """Axis-angle vectors (n, 3) -> rotations R (n, 3, 3) and dR/dw (n, 3, 3, 3), [:, k] the derivative by
    the k-th component: Rodrigues' formula and its derivative by Gallego & Yezzi (2015),
    dR/dw_k = (w_k [w] + [w x (I - R) e_k]) R / |w|^2, which tends to [e_k] as w -> 0."""
    angle = np.linalg.norm(axis_angle, axis=-1)[:, None, None]
    small = angle < 1e-6
    safe = np.where(small, 1.0, angle)
    # sin(t)/t and (1 - cos t)/t^2, by their series near zero.
    a = np.where(small, 1 - angle ** 2 / 6, np.sin(safe) / safe)
    b = np.where(small, 0.5 - angle ** 2 / 24, (1 - np.cos(safe)) / safe ** 2)
    cross = skew(axis_angle)
    rotation = np.eye(3) + a * cross + b * cross @ cross
    generators = skew(np.eye(3))                                               # [e_k], (3, 3, 3)
    moved = np.cross(axis_angle[:, None, :], np.swapaxes(np.eye(3) - rotation, 1, 2))  # w x (I - R) e_k
    exact = (axis_angle[:, :, None, None] * cross[:, None] + skew(moved)) @ rotation[:, None] / safe[..., None] ** 2
    return rotation, np.where(small[..., None], generators[None] @ rotation[:, None], exact)


def robust_loss_gradient(residual, huber, truncation=None):
    """d/dr of the Huber of |r| (flat beyond `truncation`), scaled so that r = huber costs 0.5."""
    magnitude = np.abs(residual)
    slope = np.where(magnitude < huber, residual, huber * np.sign(residual)) / huber ** 2
    return slope if truncation is None else np.where(magnitude <= truncation, slope, 0.0)


def pose_gradients(d_placed, cloud, rotation, scale, d_rotation=0.0):
    """Gradients of placed = scale * cloud @ rotation.T + translation, batched over starts (n, m, 3):
    by the translation (n, 3), the log-scale (n,) and the rotation matrix (n, 3, 3); d_rotation adds what
    else depends on the rotation (the normals)."""
    linear = np.einsum("nmi,nmj->nij", d_placed, cloud)                        # dL/d(scale * R)
    return d_placed.sum(1), scale * np.einsum("nij,nij->n", linear, rotation), scale[:, None, None] * linear + d_rotation


def axis_angle_gradient(d_rotation, derivatives, start_rotation):
    """dL/dw of R = exp([w]) R0 from dL/dR (n, 3, 3)."""
    return np.einsum("nij,nkij->nk", d_rotation @ np.swapaxes(start_rotation, 1, 2), derivatives)


def align(vjp, model, cloud, rng, step_done):
    """The rotation (3, 3), translation (3,) and log-scale that best align the centred cloud (float64)
    with the mean head.

    Each ALIGN_PHASES entry (starts kept, steps, points per start) optimizes the best starts of the
    phase before; the first phase has all 96 starts.
    """
    code = model.mean_identity()[None]
    rms_m = float(np.sqrt((cloud ** 2).sum(1).mean())) * MODEL_UNIT_M  # the cloud is centred
    # Every axis-aligned rotation, the cloud's centroid placed where a whole head's lies or a face's, at the
    # cloud's own size and at a head's or a face's.
    rotations = np.tile(axis_aligned_rotations(), (4, 1, 1))
    translations = np.repeat([HEAD_CENTROID, FACE_CENTROID] * 2, len(rotations) // 4, axis=0)
    log_scales = np.repeat([0.0, 0.0, np.log(WHOLE_HEAD_RMS_M / rms_m), np.log(FACE_RMS_M / rms_m)],
                           len(rotations) // 4)
    scores = np.zeros(len(rotations))
    done = 0
    for kept, steps, n_points in ALIGN_PHASES:
        best = np.argsort(scores, kind="stable")[:kept]
        chosen = rng.choice(len(cloud), min(n_points, len(cloud)), replace=False)
        rotations, translations, log_scales, scores = align_starts(
            vjp, code, cloud[chosen], rotations[best], translations[best], log_scales[best], steps,
            lambda step: step_done(done + step))
        done += steps
    best = int(scores.argmin())
    return rotations[best], translations[best], log_scales[best]


def align_starts(vjp, code, points, start_rotations, translations, log_scales, steps, step_done):
    """Rigid + scale optimization of several starts at once on the mean head; returns the optimized
    rotations, translations, log-scales and each start's score (mean truncated |SDF|)."""
    n, m = len(start_rotations), len(points)
    params = {"rotation": np.zeros((n, 3)), "translation": translations.copy(), "log_scale": log_scales.copy()}
    optimizer = Adam(params, ALIGN_LEARNING_RATES)
    clouds = np.broadcast_to(points, (n, m, 3))

    def placed():
        rotation, derivatives = rotation_and_derivatives(params["rotation"])
        rotation = rotation @ start_rotations
        scale = np.exp(params["log_scale"])
        return (scale[:, None, None] * clouds @ np.swapaxes(rotation, 1, 2) + params["translation"][:, None],
                rotation, derivatives, scale)

    for step in range(steps):
        # All starts share the mean head: their points go through the network as one cloud.
        where, rotation, derivatives, scale = placed()
        residual, backward = vjp(where.reshape(1, -1, 3).astype(np.float32), code, None, ALIGN_PARTS)
        upstream = robust_loss_gradient(residual.astype(np.float64), ALIGN_HUBER) / m
        d_placed = backward(upstream.astype(np.float32))[0].reshape(n, m, 3).astype(np.float64)
        d_translation, d_log_scale, d_rotation = pose_gradients(d_placed, clouds, rotation, scale)
        optimizer.step({"rotation": axis_angle_gradient(d_rotation, derivatives, start_rotations),
                        "translation": d_translation,
                        "log_scale": d_log_scale + 2 * SCALE_PRIOR * params["log_scale"]})
        step_done(step + 1)
    where, rotation, _, _ = placed()
    residual, _ = vjp(where.reshape(1, -1, 3).astype(np.float32), code, None, ALIGN_PARTS)
    score = np.minimum(np.abs(residual.reshape(n, m)), TRUNCATION_RANGE[1]).mean(1)
    return rotation, params["translation"], params["log_scale"], score


def refine(vjp, model, cloud, normals, start, steps, neutral, rng, step_done):
    """Pose, identity and expression optimized together; returns (pose dict, identity, expression or None)."""
    mean, axes = (a.astype(np.float64) for a in model.code_statistics)
    start_rotation, translation, log_scale = start
    params = {"rotation": np.zeros((1, 3)), "translation": translation[None].copy(),
              "log_scale": np.array([log_scale]), "identity": np.zeros(len(axes))}  # identity = mean + w @ axes
    if not neutral:
        params["expression"] = np.full(model.config.expression_dim, EXPRESSION_START)
    optimizer = Adam(params, LEARNING_RATES)
    batch_size = min(BATCH_POINTS, len(cloud))
    normal_size = min(NORMAL_POINTS, len(cloud)) if normals is not None else 0
    # The field's gradient at a normal point, by central differences: six more points each, whose signed
    # distances have first derivatives like every other point's (the backward pass has no second ones).

    for step in range(steps):
        # Cosine decay to a tenth: big moves first, then settling without jitter.
        decay = 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * step / max(steps, 1)))
        rotation, derivatives = rotation_and_derivatives(params["rotation"])
        rotation = rotation[0] @ start_rotation
        scale = np.exp(params["log_scale"][0])
        rows = rng.choice(len(cloud), batch_size, replace=False)
        normal_rows = rng.choice(len(cloud), normal_size, replace=False) if normal_size else rows[:0]
        source = np.concatenate([rows, np.repeat(normal_rows, len(CENTRAL_OFFSETS))])
        where = scale * cloud[source] @ rotation.T + params["translation"][0]
        where[batch_size:] += np.tile(CENTRAL_OFFSETS, (normal_size, 1))
        code = (mean + params["identity"] @ axes)[None].astype(np.float32)
        values = None if neutral else params["expression"][None].astype(np.float32)
        sdf, backward = vjp(where[None].astype(np.float32), code, values)
        sdf = sdf[0].astype(np.float64)

        residual = sdf[:batch_size]
        truncation = np.clip(TRUNCATION_SPREAD * np.median(np.abs(residual)), *TRUNCATION_RANGE)
        upstream = np.zeros(len(source))
        upstream[:batch_size] = robust_loss_gradient(residual, HUBER, truncation) / batch_size
        d_rotation = 0.0
        if normal_size:
            d_differences, d_rotation = normal_loss_gradients(sdf[batch_size:].reshape(normal_size, 2, 3),
                                                              normals[normal_rows], rotation)
            upstream[batch_size:] = NORMAL_WEIGHT * d_differences.reshape(-1)
            d_rotation = NORMAL_WEIGHT * d_rotation
        d_placed, d_code, d_expression = backward(upstream[None].astype(np.float32))
        d_translation, d_log_scale, d_rotation = pose_gradients(
            d_placed.astype(np.float64), cloud[source][None], rotation[None], np.array([scale]), d_rotation)
        gradients = {"rotation": axis_angle_gradient(d_rotation, derivatives, start_rotation[None]),
                     "translation": d_translation,
                     "log_scale": d_log_scale + 2 * SCALE_PRIOR * params["log_scale"],
                     "identity": axes @ d_code[0].astype(np.float64) + 2 * IDENTITY_PRIOR * params["identity"]}
        if not neutral:
            gradients["expression"] = d_expression[0].astype(np.float64) + EXPRESSION_PRIOR
        optimizer.step(gradients, decay)
        if not neutral:
            np.clip(params["expression"], 0.0, 1.0, out=params["expression"])
        step_done(step + 1)

    rotation = rotation_and_derivatives(params["rotation"])[0][0] @ start_rotation
    pose = {"rotation": rotation, "translation": params["translation"][0],
            "scale": float(np.exp(params["log_scale"][0]))}
    identity = (mean + params["identity"] @ axes).astype(np.float32)
    return pose, identity, None if neutral else params["expression"].astype(np.float32)


def normal_loss_gradients(differences, normals, rotation):
    """The normal term, mean (1 - cos) between the rotated normals and the field's gradient, whose
    components are (f(x + h e_k) - f(x - h e_k)) / 2h of differences (n, 2, 3): its gradients by those
    signed distances (n, 2, 3) and by the rotation (3, 3). Points without a normal (zero) count nothing."""
    gradient = (differences[:, 0] - differences[:, 1]) / (2 * NORMAL_STEP)
    rotated = normals @ rotation.T
    has_normal = (np.abs(normals).sum(-1) > 0).astype(np.float64)
    gradient_length = np.maximum(np.linalg.norm(gradient, axis=-1, keepdims=True), 1e-8)
    normal_length = np.maximum(np.linalg.norm(rotated, axis=-1, keepdims=True), 1e-8)
    unit_gradient, unit_normal = gradient / gradient_length, rotated / normal_length
    cosine = (unit_gradient * unit_normal).sum(-1, keepdims=True)
    weight = -has_normal[:, None] / max(has_normal.sum(), 1.0)                  # d loss / d cosine
    d_gradient = weight * (unit_normal - cosine * unit_gradient) / gradient_length
    d_rotated = weight * (unit_gradient - cosine * unit_normal) / normal_length
    d_differences = np.stack([d_gradient, -d_gradient], 1) / (2 * NORMAL_STEP)
    return d_differences, d_rotated.T @ normals


def fitted_distances(model, cloud, pose, identity, expression):
    """Distance of every point of the cloud to the fitted head, model units: |f| / |grad f|, the distance
    to the surface to first order, also where a field's slope is not 1 (a briefly trained model's)."""
    placed = cloud @ (pose["scale"] * pose["rotation"]).T + pose["translation"]
    queries = np.concatenate([placed, (placed[:, None] + CENTRAL_OFFSETS).reshape(-1, 3)]).astype(np.float32)
    values = model.sdf(queries, identity, expression).astype(np.float64)
    sdf, around = values[:len(placed)], values[len(placed):].reshape(-1, 2, 3)
    slope = np.linalg.norm(around[:, 0] - around[:, 1], axis=1) / (2 * NORMAL_STEP)
    return np.abs(sdf) / np.maximum(slope, 1e-3)

