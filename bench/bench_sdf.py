"""SDF query throughput: `paper` and `compact` presets, dense blend vs nearest-k parts, on this machine.

    python bench/bench_sdf.py [--model weights/imhead.npz] [--points 65536] [--threads 2]

Throughput (of the numpy runtime, on parallel.threads() workers) does not depend on the weights'
values, so both presets run with freshly initialised weights at the bundled model's keypoints; points lie near the head surface (a held-out ICT head),
where meshing and fitting query. With --model, it also measures the accuracy side of the trade:
the largest and mean |SDF difference| (mm) of nearest-k evaluation against the model's full blend on
points near held-out surfaces.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from model import HeadModel  # noqa: E402
from model.data.build_dataset import test_identities  # noqa: E402
from model.data.heads import HeadData  # noqa: E402
from model.data.samples import sample_outer_surface, surface_points  # noqa: E402
from model.runtime import parallel  # noqa: E402
from model.runtime.config import make_config  # noqa: E402
from model.runtime.frame import model_to_mm  # noqa: E402
from model.runtime.modelfile import state_dict_arrays  # noqa: E402
from model.runtime.numpy_network import NumpyNetwork  # noqa: E402
from model.training.network import ImHeadNetwork  # noqa: E402

def near_surface_points(n, seed=0, spread_mm=2.0):
    head = HeadData().head(test_identities(1, seed)[0])
    rng = np.random.default_rng(seed)
    face, bary = sample_outer_surface(head, n, rng)
    points = surface_points(head.vertices, head.faces, face, bary)
    return (points + rng.normal(0, spread_mm * 0.005, points.shape)).astype(np.float32), head


def points_per_second(net, code, points, n_parts, repeats=3):
    local, extra = net.split_code(code)
    keypoints = net.keypoints(local)

    def field(chunk):
        return net.identity_sdf(chunk[None], local, keypoints, extra, n_parts)[0]

    field(points[:parallel.BATCH])  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        parallel.in_batches(field, points)
        best = min(best, time.perf_counter() - start)
    return len(points) / best


def throughput(points, template_keypoints):
    print("| preset | parts evaluated | points/s | vs dense |")
    print("|---|---|---|---|")
    for preset in ("paper", "compact"):
        config = make_config(preset)
        torch.manual_seed(0)
        initialised = ImHeadNetwork(config, template_keypoints)
        net = NumpyNetwork(config, state_dict_arrays(initialised.state_dict()))
        code = np.zeros((1, config.code_dim), np.float32)
        dense = points_per_second(net, code, points, config.n_parts if preset == "paper" else config.blend_parts)
        label = "39 (dense)" if preset == "paper" else f"{config.blend_parts} (full blend)"
        print(f"| {preset} | {label} | {dense:,.0f} | 1.0x |")
        for k in (8, 4, 2):
            if k < (config.n_parts if preset == "paper" else config.blend_parts):
                rate = points_per_second(net, code, points, k)
                print(f"| {preset} | nearest {k} | {rate:,.0f} | {rate / dense:.1f}x |")


def sparse_error(model, points):
    print("\n| parts evaluated | max abs SDF diff (mm) | mean abs diff (mm) | points/s |")
    print("|---|---|---|---|")
    identity = model.sample_identity(0, 1.0)
    full = model.sdf(points, identity)
    for k in range(model.config.blend_parts, 0, -1):
        start = time.perf_counter()
        values = model.sdf(points, identity, n_parts=k)
        rate = len(points) / (time.perf_counter() - start)
        diff = model_to_mm(np.abs(values - full))
        print(f"| {k} | {diff.max():.4f} | {diff.mean():.4f} | {rate:,.0f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--points", type=int, default=65536)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    parallel.set_threads(args.threads)
    points, _ = near_surface_points(args.points)
    template = HeadData().keypoints(HeadData().neutral)
    print(f"{args.points} points within ~2 mm of a held-out head, {parallel.threads()} workers\n")
    throughput(points, template)
    if args.model:
        sparse_error(HeadModel.load(args.model), points)


if __name__ == "__main__":
    main()
