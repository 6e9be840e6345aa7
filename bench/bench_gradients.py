"""The numpy backward pass (numpy_gradients.sdf_and_vjp) against torch autograd, in one run on the same
weights: what one step of fitting a scan costs.

    .venv/bin/python bench/bench_gradients.py [--model weights/imhead.npz] [--points 4500] [--threads 1] [--repeats 7]

Points lie near a held-out ICT head's surface (where a fit queries), one head (B = 1), the identity of
`--seed`. Three cases: neutral, with an expression (the refinement), and the nearest 3 parts with an
expression (the rigid alignment). For each, alternating, `--repeats` times: numpy's forward alone
(NumpyNetwork), numpy's forward and backward (sdf_and_vjp, then backward), torch's forward without
gradients and torch's forward and backward (gradients of points, code and expression; parameters frozen,
denormals flushed, as fit.py runs it). Prints median and best wall seconds, and numpy / torch ratios.
`--threads` sets both numpy's BLAS threads and torch's. Prints the OpenBLAS kernels numpy runs: on a CPU
that OpenBLAS does not recognise (a virtual machine's masked model) it falls back to generic ones
("Prescott"), 2-4x slower on these matmuls; OPENBLAS_CORETYPE=SkylakeX (say) sets them.
"""
import argparse
import ctypes
import os
import statistics
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
from model.data.samples import sample_outer_surface, surface_points  # noqa: E402
from model.runtime import parallel  # noqa: E402
from model.runtime.numpy_gradients import sdf_and_vjp  # noqa: E402
from model.training.network import denormals_flushed, network_from_model_file  # noqa: E402


def near_surface_points(n, seed=0, spread_mm=2.0):
    head = HeadData().head(test_identities(1, seed)[0])
    rng = np.random.default_rng(seed)
    face, bary = sample_outer_surface(head, n, rng)
    points = surface_points(head.vertices, head.faces, face, bary)
    return (points + rng.normal(0, spread_mm * 0.005, points.shape)).astype(np.float32)


def set_blas_threads(count):
    """numpy's OpenBLAS threads (parallel.py's handle on it), where it can be told."""
    if parallel._FUNCTIONS is not None:
        parallel._FUNCTIONS[1](count)


def openblas_core():
    """The name of the kernels numpy's OpenBLAS runs, or "unknown"."""
    for folder in parallel._LIBRARY_DIRS:
        for path in sorted(folder.glob("*openblas*")) if folder.is_dir() else ():
            library = ctypes.CDLL(str(path))
            for name in ("openblas_get_corename64_", "openblas_get_corename", "scipy_openblas_get_corename64_"):
                function = getattr(library, name, None)
                if function is not None:
                    function.restype = ctypes.c_char_p
                    return function().decode()
    return "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "weights" / "imhead.npz"))
    parser.add_argument("--points", type=int, default=4500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    set_blas_threads(args.threads)
    model = HeadModel.load(args.model)
    runtime = model.network
    reference = network_from_model_file(model.header, model.arrays).requires_grad_(False)
    c = model.config
    points = near_surface_points(args.points, args.seed)[None]
    code = model.sample_identity(args.seed)[None].astype(np.float32)
    expression = np.random.default_rng(args.seed).uniform(0, 0.5, (1, c.expression_dim)).astype(np.float32)
    upstream = np.random.default_rng(args.seed + 1).standard_normal(points.shape[:2]).astype(np.float32)
    print(f"model {args.model} ({model.hash[:12]}, blend_parts {c.blend_parts}), {args.points} points, "
          f"{args.threads} thread(s), OpenBLAS {openblas_core()}, torch {torch.__version__}, {args.repeats} repeats, "
          f"load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")

    def numpy_forward(expr, n_parts):
        runtime(points, code, expr, n_parts)

    def numpy_backward(expr, n_parts):
        _, backward = sdf_and_vjp(runtime, points, code, expr, n_parts)
        backward(upstream)

    def torch_forward(expr, n_parts):
        with torch.no_grad(), denormals_flushed():
            reference(torch.from_numpy(points), torch.from_numpy(code),
                      None if expr is None else torch.from_numpy(expr), n_parts)

    def torch_backward(expr, n_parts):
        with denormals_flushed():
            p = torch.from_numpy(points).requires_grad_(True)
            z = torch.from_numpy(code).requires_grad_(True)
            e = None if expr is None else torch.from_numpy(expr).requires_grad_(True)
            (reference(p, z, e, n_parts) * torch.from_numpy(upstream)).sum().backward()

    sides = {"numpy forward": numpy_forward, "numpy fwd+bwd": numpy_backward,
             "torch forward": torch_forward, "torch fwd+bwd": torch_backward}
    cases = {"neutral": (None, None), "expression": (expression, None), "expression, 3 parts": (expression, 3)}
    print("\ncase                  side             best s  median s")
    for name, (expr, n_parts) in cases.items():
        seconds = {side: [] for side in sides}
        for function in sides.values():  # warm-up
            function(expr, n_parts)
        for _ in range(args.repeats):
            for side, function in sides.items():
                start = time.perf_counter()
                function(expr, n_parts)
                seconds[side].append(time.perf_counter() - start)
        median = {side: statistics.median(s) for side, s in seconds.items()}
        for side in sides:
            print(f"{name:21s} {side:15s} {min(seconds[side]):7.4f} {median[side]:9.4f}")
        print(f"{name:21s} numpy / torch: forward {median['numpy forward'] / median['torch forward']:.2f}x, "
              f"fwd+bwd {median['numpy fwd+bwd'] / median['torch fwd+bwd']:.2f}x; numpy fwd+bwd / numpy "
              f"forward {median['numpy fwd+bwd'] / median['numpy forward']:.2f}x")
    print(f"\nload average after {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
