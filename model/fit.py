"""Fitting imHead to a scan: a point cloud (normals optional) in any units and placement.

    python -m model.fit --model weights/imhead.npz --input scan.ply --out-mesh fit.obj --out-json fit.json

1. Units are guessed from the cloud's size (a head's RMS radius is about 0.1 m), the cloud is centred
   and scaled into the model frame.
2. Rigid alignment to the mean head from each of the 24 axis-aligned rotations: a few Adam steps on
   rotation, translation and scale each, all starts in one batch; the start whose points lie closest to
   the surface wins.
3. Rotation, translation, scale, the identity (in the whitened principal axes of the training codes, so
   the latent prior is a Mahalanobis distance) and the expression (clamped to [0, 1]) are optimized
   together so that the signed distance vanishes on the points: a truncated Huber loss (outliers beyond
   the truncation pull nothing), plus the normals' agreement with the field's gradient when given.

Every step uses a random batch of the (at most `n_points`) subsampled points; all randomness comes
from `seed`, so a fit is repeatable.
"""
import argparse
import json
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .errors import ImHeadError
from .frame import MM, MODEL_UNIT_M, model_to_mm
from .meshing import SurfaceMesh, write_obj
from .network import denormals_flushed, network_from_model_file

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

# Alignment phases: (starts kept from the phase before, steps, points per start).
ALIGN_PHASES = ((24, 20, 128), (4, 30, 384))
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
LEARNING_RATES = {"rotation": 0.01, "translation": 4 * MM, "log_scale": 0.004, "identity": 0.2,
                  "expression": 0.02}
ALIGN_LEARNING_RATES = {"rotation": 0.05, "translation": 10 * MM, "log_scale": 0.01}


@dataclass
class FitResult:
    identity: np.ndarray    # (code_dim,) float32
    expression: np.ndarray  # (n_expressions,) float32, each in [0, 1]; zeros for a neutral fit
    transform: np.ndarray   # (4, 4) float64: homogeneous input coordinates -> model frame
    unit: str               # the input's length unit, guessed or given: "m", "cm", "mm" or "in"
    residual_mm: float      # mean |signed distance| of the fitted points to the result, in mm
    steps: int              # refinement steps run (after the fixed ALIGN_STEPS of the alignment)
    seconds: float

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
        unit=None, progress=None):
    """Fit the HeadModel `model` to points (N, 3) in any units and placement; returns a FitResult.

    normals: optional (N, 3) outward normals. neutral: keep the expression at zero. quality: "fast" or
    "best" (the number of refinement steps, unless `steps` is given). unit: the input's unit ("m",
    "cm", "mm", "in"); guessed from the size when None. progress(fraction, message) is called as the
    fit goes; an exception raised in it propagates and ends the fit.
    Raises ImHeadError for input that cannot be a head scan.
    """
    started = time.perf_counter()
    if steps is None:
        if quality not in QUALITY_STEPS:
            raise ImHeadError(f"unknown fit quality {quality!r}; choose from {', '.join(QUALITY_STEPS)}")
        steps = QUALITY_STEPS[quality]
    rng = np.random.default_rng(seed)
    points, normals = subsample(*checked_points(points, normals), n_points, rng)
    unit = guess_unit(points) if unit is None else unit
    if unit not in UNITS:
        raise ImHeadError(f"unknown unit {unit!r}; choose from {', '.join(UNITS)}")
    centre = points.mean(0)
    # Input -> model units about the centroid; everything after this works in the model frame's scale.
    scale = UNITS[unit] / MODEL_UNIT_M
    cloud = torch.as_tensor((points - centre) * scale, dtype=torch.float32)
    normal_tensor = None if normals is None else torch.as_tensor(normals, dtype=torch.float32)

    report = progress or (lambda fraction, message: None)
    total = ALIGN_STEPS + steps
    report(0.0, "Aligning the scan")
    with deterministic_algorithms(), denormals_flushed():
        start = align(model, cloud, rng, lambda step: report(step / total, "Aligning the scan"))
        report(ALIGN_STEPS / total, "Fitting the head")
        pose, identity, expression = refine(model, cloud, normal_tensor, start, steps, neutral, rng,
                                            lambda step: report((ALIGN_STEPS + step) / total, "Fitting the head"))
    residual = mean_residual(model, cloud, pose, identity, expression)

    linear = pose["scale"] * scale * pose["rotation"]
    transform = np.eye(4)
    transform[:3, :3] = linear
    transform[:3, 3] = pose["translation"] - linear @ centre
    report(1.0, "Fitted")
    expression = np.zeros(len(model.expression_names), np.float32) if expression is None else expression
    return FitResult(identity, expression, transform, unit, float(model_to_mm(residual)), steps,
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
    bad = int(np.count_nonzero(~np.isfinite(points).all(axis=1)))
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


def guess_unit(points):
    """The unit in which the cloud has the size of a head; ImHeadError when it has none."""
    rms_radius = float(np.sqrt(((points - points.mean(0)) ** 2).sum(1).mean()))
    misfit = {name: abs(np.log(rms_radius * metres / HEAD_RMS_RADIUS_M)) for name, metres in UNITS.items()}
    unit = min(misfit, key=misfit.get)
    if misfit[unit] > np.log(SIZE_TOLERANCE):
        raise ImHeadError(f"the scan's points spread {rms_radius:.4g} units around their centre, which is "
                          f"not the size of a head in any unit ({', '.join(UNITS)})")
    return unit


# --- optimization ---------------------------------------------------------------------------------
@contextmanager
def deterministic_algorithms():
    """torch's deterministic kernels for the duration: with several threads, the network's backward
    otherwise accumulates gradients in a varying order, and a fit would not repeat bit for bit. On the
    CPU they cost the same."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


@lru_cache(maxsize=4)
def torch_network(model):
    """The torch network of a HeadModel: fitting needs gradients, which the numpy runtime does not give."""
    return network_from_model_file(model.header, model.arrays).requires_grad_(False)


def axis_aligned_rotations():
    """The 24 rotations that map coordinate axes to coordinate axes, (24, 3, 3) float32."""
    rotations = []
    for permutation in ((0, 1, 2), (1, 2, 0), (2, 0, 1), (0, 2, 1), (2, 1, 0), (1, 0, 2)):
        for signs in np.ndindex(2, 2, 2):
            matrix = np.zeros((3, 3))
            matrix[range(3), permutation] = 1 - 2 * np.array(signs)
            if np.linalg.det(matrix) > 0:
                rotations.append(matrix)
    return torch.tensor(np.array(rotations), dtype=torch.float32)


def rotation_matrix(axis_angle):
    """(..., 3) axis-angle vectors -> (..., 3, 3) rotation matrices (differentiable, also at zero)."""
    x, y, z = axis_angle.unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).view(*axis_angle.shape[:-1], 3, 3)
    return torch.linalg.matrix_exp(skew)


def robust_loss(residual, huber, truncation=None):
    """Huber of |residual| (cut at `truncation`: beyond it the loss is flat), scaled so r = huber costs 0.5."""
    a = residual.abs()
    if truncation is not None:
        a = a.clamp(max=truncation)
    return torch.where(a < huber, 0.5 * a ** 2, huber * (a - 0.5 * huber)) / huber ** 2


def align(model, cloud, rng, step_done):
    """The rotation (3, 3), translation (3,) and log-scale (1,) that best align the centred cloud with
    the mean head (float32 tensors).

    Each ALIGN_PHASES entry (starts kept, steps, points per start) optimizes the best starts of the
    phase before; the first phase has all 24 axis-aligned rotations.
    """
    code = torch.as_tensor(model.mean_identity())[None]
    rotations = axis_aligned_rotations()
    translations = torch.tensor(HEAD_CENTROID, dtype=torch.float32).repeat(len(rotations), 1)
    log_scales = torch.zeros(len(rotations), 1)
    scores = torch.zeros(len(rotations))
    done = 0
    for kept, steps, n_points in ALIGN_PHASES:
        best = torch.argsort(scores, stable=True)[:kept]
        chosen = torch.as_tensor(rng.choice(len(cloud), min(n_points, len(cloud)), replace=False))
        rotations, translations, log_scales, scores = align_starts(
            model, code, cloud[chosen], rotations[best], translations[best], log_scales[best], steps,
            lambda step: step_done(done + step))
        done += steps
    best = int(scores.argmin())
    return rotations[best], translations[best], log_scales[best]


def align_starts(model, code, points, rotations, translations, log_scales, steps, step_done):
    """Rigid + scale optimization of several starts at once on the mean head; returns the optimized
    rotations, translations, log-scales and each start's score (mean truncated |SDF|)."""
    n = len(rotations)
    axis_angle = torch.zeros(n, 3, requires_grad=True)
    translation = translations.clone().requires_grad_(True)
    log_scale = log_scales.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([
        {"params": [axis_angle], "lr": ALIGN_LEARNING_RATES["rotation"]},
        {"params": [translation], "lr": ALIGN_LEARNING_RATES["translation"]},
        {"params": [log_scale], "lr": ALIGN_LEARNING_RATES["log_scale"]}])

    def residual():
        # All starts share the mean head: their points go through the network as one cloud.
        rotation = rotation_matrix(axis_angle) @ rotations
        placed = log_scale.exp()[:, None] * torch.einsum("kij,nj->kni", rotation, points) + translation[:, None]
        return torch_network(model)(placed.reshape(1, -1, 3), code, n_parts=ALIGN_PARTS).view(n, -1)

    for step in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = robust_loss(residual(), ALIGN_HUBER).mean(1).sum() + SCALE_PRIOR * log_scale.pow(2).sum()
        loss.backward()
        optimizer.step()
        step_done(step + 1)
    with torch.no_grad():
        score = residual().abs().clamp(max=TRUNCATION_RANGE[1]).mean(1)
        return rotation_matrix(axis_angle) @ rotations, translation.detach(), log_scale.detach(), score


def refine(model, cloud, normals, start, steps, neutral, rng, step_done):
    """Pose, identity and expression optimized together; returns (pose dict, identity, expression or None)."""
    mean, axes = (torch.as_tensor(a) for a in model.code_statistics)
    weights = torch.zeros(len(axes), requires_grad=True)  # identity = mean + weights @ axes
    axis_angle = torch.zeros(3, requires_grad=True)
    start_rotation, translation, log_scale = (tensor.clone() for tensor in start)
    translation.requires_grad_(True)
    log_scale.requires_grad_(True)
    groups = [{"params": [axis_angle], "lr": LEARNING_RATES["rotation"]},
              {"params": [translation], "lr": LEARNING_RATES["translation"]},
              {"params": [log_scale], "lr": LEARNING_RATES["log_scale"]},
              {"params": [weights], "lr": LEARNING_RATES["identity"]}]
    expression = None
    if not neutral:
        expression = torch.full((model.config.expression_dim,), EXPRESSION_START, requires_grad=True)
        groups.append({"params": [expression], "lr": LEARNING_RATES["expression"]})
    optimizer = torch.optim.Adam(groups)
    base_rates = [group["lr"] for group in groups]
    batch_size = min(BATCH_POINTS, len(cloud))
    normal_size = min(NORMAL_POINTS, len(cloud)) if normals is not None else 0

    def pose_matrix():
        return log_scale.exp() * rotation_matrix(axis_angle) @ start_rotation

    for step in range(steps):
        # Cosine decay to a tenth: big moves first, then settling without jitter.
        decay = 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * step / max(steps, 1)))
        for group, rate in zip(optimizer.param_groups, base_rates):
            group["lr"] = rate * decay
        optimizer.zero_grad(set_to_none=True)
        chosen = torch.as_tensor(rng.choice(len(cloud), batch_size, replace=False))
        code = (mean + weights @ axes)[None]
        values = None if expression is None else expression[None]
        placed = cloud[chosen] @ pose_matrix().T + translation
        residual = torch_network(model)(placed[None], code, values)[0]
        truncation = (TRUNCATION_SPREAD * residual.detach().abs().median()).clamp(*TRUNCATION_RANGE)
        loss = robust_loss(residual, HUBER, truncation).mean()
        loss = loss + IDENTITY_PRIOR * weights.pow(2).sum() + SCALE_PRIOR * log_scale.pow(2).sum()
        if expression is not None:
            loss = loss + EXPRESSION_PRIOR * expression.sum()
        if normal_size:
            loss = loss + NORMAL_WEIGHT * normal_loss(model, cloud, normals, rng, normal_size, pose_matrix(),
                                                      translation, code, values)
        loss.backward()
        optimizer.step()
        if expression is not None:
            with torch.no_grad():
                expression.clamp_(0.0, 1.0)
        step_done(step + 1)

    with torch.no_grad():
        rotation = (rotation_matrix(axis_angle) @ start_rotation).double().numpy()
        pose = {"rotation": rotation, "translation": translation.double().numpy(),
                "scale": float(log_scale.exp())}
        identity = (mean + weights @ axes).numpy().astype(np.float32)
        return pose, identity, None if expression is None else expression.numpy().astype(np.float32)


def normal_loss(model, cloud, normals, rng, count, matrix, translation, code, values):
    """Mean (1 - cos) between the points' rotated normals and the field's gradient there."""
    chosen = torch.as_tensor(rng.choice(len(cloud), count, replace=False))
    placed = cloud[chosen] @ matrix.T + translation
    residual = torch_network(model)(placed[None], code, values)[0]
    gradient, = torch.autograd.grad(residual.sum(), placed, create_graph=True)
    rotated = normals[chosen] @ matrix.T
    cosine = torch.nn.functional.cosine_similarity(gradient, rotated, dim=-1)
    has_normal = (normals[chosen].abs().sum(-1) > 0).float()
    return ((1 - cosine) * has_normal).sum() / has_normal.sum().clamp_min(1.0)


@torch.no_grad()
def mean_residual(model, cloud, pose, identity, expression):
    """Mean |signed distance| over all the cloud's points, model units."""
    matrix = torch.as_tensor(pose["scale"] * pose["rotation"], dtype=torch.float32)
    placed = cloud @ matrix.T + torch.as_tensor(pose["translation"], dtype=torch.float32)
    return float(np.abs(model.sdf(placed.numpy(), identity, expression)).mean())


# --- files and the command ------------------------------------------------------------------------
def read_points(path):
    """Points (N, 3) and normals (N, 3) or None from a .ply, .obj or .npy file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise ImHeadError(f"{path}: no such file")
    if suffix == ".npy":
        array = np.load(path, allow_pickle=False)
        if array.ndim != 2 or array.shape[1] not in (3, 6):
            raise ImHeadError(f"{path}: expected an array of shape (N, 3) or (N, 6), got {array.shape}")
        return array[:, :3], (array[:, 3:] if array.shape[1] == 6 else None)
    if suffix == ".obj":
        return read_obj_vertices(path), None
    if suffix == ".ply":
        return read_ply_vertices(path)
    raise ImHeadError(f"{path}: cannot read {suffix or 'extension-less'} files; use .ply, .obj or .npy")


def read_obj_vertices(path):
    """The `v` lines of a Wavefront OBJ as (N, 3) float64 (colours after x y z are ignored)."""
    with open(path, "r", encoding="utf-8", errors="replace") as file:
        rows = [line.split()[1:4] for line in file if line.startswith("v ")]
    try:
        return np.array(rows, dtype=np.float64).reshape(-1, 3)
    except ValueError as exc:
        raise ImHeadError(f"{path}: unreadable vertex line: {exc}") from exc


PLY_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
             "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
             "float": "f4", "float32": "f4", "double": "f8", "float64": "f8"}


def read_ply_vertices(path):
    """Vertex positions (N, 3) and normals (N, 3) or None of an ASCII or binary PLY file."""
    with open(path, "rb") as file:
        if file.readline().strip() != b"ply":
            raise ImHeadError(f"{path}: not a PLY file")
        fmt, elements = None, []
        while True:
            line = file.readline()
            if not line:
                raise ImHeadError(f"{path}: the PLY header has no end_header")
            words = line.decode("ascii", errors="replace").split()
            if not words:
                continue
            if words[0] == "format":
                fmt = words[1]
            elif words[0] == "element":
                elements.append((words[1], int(words[2]), []))
            elif words[0] == "property" and elements:
                elements[-1][2].append(words[1:])
            elif words[0] == "end_header":
                break
        names = [name for name, _, _ in elements]
        if "vertex" not in names:
            raise ImHeadError(f"{path}: the PLY file has no vertex element")
        if names.index("vertex") != 0:
            raise ImHeadError(f"{path}: the PLY file's vertices must come first")
        _, count, properties = elements[0]
        if any(p[0] == "list" for p in properties):
            raise ImHeadError(f"{path}: PLY vertices with list properties are not supported")
        columns = [p[1] for p in properties]
        if not {"x", "y", "z"} <= set(columns):
            raise ImHeadError(f"{path}: the PLY vertices have no x, y, z")
        if fmt == "ascii":
            table = np.loadtxt(file, dtype=np.float64, max_rows=count, ndmin=2)
            if table.shape != (count, len(columns)):
                raise ImHeadError(f"{path}: expected {count} vertex rows of {len(columns)} values")
            column = {name: table[:, i] for i, name in enumerate(columns)}
        elif fmt in ("binary_little_endian", "binary_big_endian"):
            order = "<" if fmt == "binary_little_endian" else ">"
            try:
                dtype = np.dtype([(name, order + PLY_TYPES[kind]) for kind, name in properties])
            except KeyError as exc:
                raise ImHeadError(f"{path}: unknown PLY property type {exc}") from exc
            data = file.read(dtype.itemsize * count)
            if len(data) < dtype.itemsize * count:
                raise ImHeadError(f"{path}: the PLY file is truncated")
            table = np.frombuffer(data, dtype=dtype, count=count)
            column = {name: table[name].astype(np.float64) for name in columns}
        else:
            raise ImHeadError(f"{path}: unknown PLY format {fmt!r}")
    points = np.stack([column["x"], column["y"], column["z"]], axis=1)
    normals = None
    if {"nx", "ny", "nz"} <= set(columns):
        normals = np.stack([column["nx"], column["ny"], column["nz"]], axis=1)
    return points, normals


def main(argv=None):
    from .head_model import HeadModel

    parser = argparse.ArgumentParser(description="Fit imHead to a scan (.ply, .obj or .npy points).")
    parser.add_argument("--model", required=True, help="model file (.npz)")
    parser.add_argument("--input", required=True, help="the scan: .ply or .obj vertices, or .npy (N, 3|6)")
    parser.add_argument("--out-mesh", help="fitted head as OBJ, placed on the scan in its coordinates")
    parser.add_argument("--out-json", help="codes, transform, unit and residual as JSON")
    parser.add_argument("--neutral", action="store_true", help="keep the expression neutral")
    parser.add_argument("--quality", choices=sorted(QUALITY_STEPS), default="fast")
    parser.add_argument("--steps", type=int, help="refinement steps (overrides --quality)")
    parser.add_argument("--points", type=int, default=10000, help="points used for the fit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--unit", choices=sorted(UNITS), help="the scan's unit (default: guessed)")
    parser.add_argument("--resolution", type=int, default=256, help="marching cubes resolution of the mesh")
    args = parser.parse_args(argv)
    try:
        model = HeadModel.load(args.model)
        points, normals = read_points(args.input)
        result = fit(model, points, normals, neutral=args.neutral, quality=args.quality, steps=args.steps,
                     n_points=args.points, seed=args.seed, unit=args.unit)
        if args.out_mesh:
            mesh = model.extract_mesh(result.identity, result.expression, resolution=args.resolution)
            write_obj(args.out_mesh, result.to_input(mesh))
    except ImHeadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    summary = {"model": model.hash, "unit": result.unit, "residual_mm": round(result.residual_mm, 4),
               "steps": result.steps, "seconds": round(result.seconds, 2),
               "transform": result.transform.tolist(), "identity": result.identity.tolist(),
               "expression": dict(zip(model.expression_names, result.expression.tolist()))}
    if args.out_json:
        Path(args.out_json).write_text(json.dumps(summary, indent=1))
    print(f"unit {result.unit}, residual {result.residual_mm:.3f} mm, {result.steps} steps, "
          f"{result.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
