"""Time to fit the model to 10,000 points of a held-out head on numpy (what Blender runs), against the
same fit with its gradients from torch autograd (the torch runtime's speed), in one run.

    python bench/bench_fit.py                                 # weights/imhead.npz, quality fast
    python bench/bench_fit.py --model PATH --quality best --threads 2 --heads 3

The points are area-uniform samples of the head's outer surface in metres. Prints, per head and
runtime, the seconds of the alignment and of the refinement, refinement steps per second, the CPU time
(all threads; on a busy machine the wall time says little), the fit's own residual, and the Chamfer
distance (mm) of the fitted mesh to the true head; then numpy's time over torch's.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model import HeadModel  # noqa: E402
from model.data.build_dataset import test_identities  # noqa: E402
from model.data.heads import HeadData  # noqa: E402
from model.data.samples import face_normals, sample_outer_surface, surface_points  # noqa: E402
from model.runtime import parallel  # noqa: E402
from model.runtime.fit import fit  # noqa: E402
from model.runtime.frame import MODEL_UNIT_M, model_to_mm  # noqa: E402
from model.training import network  # noqa: E402


def chamfer_mm(mesh, head, rng, n=20000):
    """½ (mean distance mesh samples -> head surface + head samples -> mesh surface), mm."""
    import igl

    def distance(points, vertices, faces):
        squared, _, _ = igl.point_mesh_squared_distance(points.astype(np.float64), vertices.astype(np.float64),
                                                        faces.astype(np.int64))
        return np.sqrt(squared)

    face_index, bary = sample_outer_surface(head, n, rng)
    truth = surface_points(head.vertices, head.faces, face_index, bary)
    corners = mesh.vertices[mesh.faces].astype(np.float64)
    area = np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)
    faces = rng.choice(len(area), n, p=area / area.sum())
    u, v = rng.random(n), rng.random(n)
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    c = corners[faces]
    predicted = c[:, 0] + u[:, None] * (c[:, 1] - c[:, 0]) + v[:, None] * (c[:, 2] - c[:, 0])
    return float(model_to_mm(0.5 * (distance(predicted, head.vertices, head.faces).mean()
                                    + distance(truth, mesh.vertices, mesh.faces).mean())))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "weights" / "imhead.npz"))
    parser.add_argument("--quality", default="fast")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--points", type=int, default=10000)
    parser.add_argument("--heads", type=int, default=1, help="held-out heads to fit, one after another")
    parser.add_argument("--threads", type=int, help="torch threads (fitting) and workers (meshing, queries); default: all cores")
    parser.add_argument("--neutral", action="store_true")
    parser.add_argument("--normals", action="store_true", help="give the fit the points' normals too")
    parser.add_argument("--no-chamfer", action="store_true", help="skip meshing and the Chamfer distance")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        parallel.set_threads(args.threads)
    model = HeadModel.load(args.model)
    data = HeadData()
    print(f"model {args.model} ({model.hash[:12]}), {torch.get_num_threads()} threads, quality {args.quality}, "
          f"{args.points} points{' with normals' if args.normals else ''}{', neutral' if args.neutral else ''}")
    torch_network = network.network_from_model_file(model.header, model.arrays).requires_grad_(False)

    def torch_vjp(points, codes, expression=None, n_parts=None):
        return network.sdf_and_vjp(torch_network, points, codes, expression, n_parts)

    seconds = {"numpy": [], "torch": []}
    for index, weights in enumerate(test_identities(args.heads)):
        head = data.head(weights)
        rng = np.random.default_rng(index)
        face_index, bary = sample_outer_surface(head, args.points, rng)
        points = surface_points(head.vertices, head.faces, face_index, bary) * MODEL_UNIT_M  # metres
        normals = face_normals(head.vertices, head.faces, face_index) if args.normals else None
        for runtime, vjp in (("numpy", None), ("torch", torch_vjp)):
            phase_started = {}

            def progress(fraction, message):
                phase_started.setdefault(message, time.perf_counter())

            started, cpu_started = time.perf_counter(), time.process_time()
            result = fit(model, points, normals, quality=args.quality, steps=args.steps, n_points=args.points,
                         neutral=args.neutral, progress=progress, vjp=vjp)
            cpu_seconds = time.process_time() - cpu_started
            seconds[runtime].append(result.seconds)
            align_seconds = phase_started["Fitting the head"] - started
            refine_seconds = result.seconds - align_seconds
            line = (f"head {index}, {runtime}: {result.seconds:.1f} s (alignment {align_seconds:.1f} s, {result.steps} "
                    f"steps in {refine_seconds:.1f} s = {result.steps / refine_seconds:.1f} steps/s; {cpu_seconds:.1f} s "
                    f"CPU time), residual {result.residual_mm:.3f} mm, unit {result.unit}")
            if not args.no_chamfer:
                mesh = model.extract_mesh(result.identity, result.expression, resolution=128)
                # The fitted mesh back on the scan (metres), then into the model frame the truth is in.
                placed = result.to_input(mesh)
                placed.vertices[:] = placed.vertices / MODEL_UNIT_M
                line += f", Chamfer {chamfer_mm(placed, head, np.random.default_rng(index)):.3f} mm (mesh at resolution 128)"
            print(line, flush=True)
    ours, theirs = np.median(seconds["numpy"]), np.median(seconds["torch"])
    print(f"median fit: numpy {ours:.1f} s, torch {theirs:.1f} s: {ours / theirs:.2f}x")


if __name__ == "__main__":
    main()
