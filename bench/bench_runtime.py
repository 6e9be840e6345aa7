"""The numpy runtime against the torch network, in one run on the same weights.

    .venv/bin/python bench/bench_runtime.py --model weights/imhead.npz [--threads 2] [--repeats 3]

Both sides run the product's own code (HeadModel meshing, live previews, expression baking); only the
network under it differs: the numpy runtime (numpy_network.NumpyNetwork, what Blender runs), or torch's
ImHeadNetwork behind the same interface, with denormals flushed and one torch thread per worker (the
workers run side by side, as the torch runtime did). Tasks, each timed `--repeats` times, alternating
the two sides:

- Final: the head of identity `--seed` meshed at 256^3;
- Preview: at 128^3;
- live preview: a nose edit (2 standard deviations) re-meshed at 128^3 with the unedited field
  remembered, as the region sliders do;
- bake: the 53 expressions inverted on the head's vertices at 216^3 (about 100k vertices).

Prints wall seconds (best and median), CPU seconds, numpy / torch ratios, the load average before and
after, and whether the two sides gave the same meshes.
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from model import HeadModel  # noqa: E402
from model.runtime import editing, expressions, parallel  # noqa: E402
from model.runtime.frame import model_to_mm  # noqa: E402
from model.runtime.head_model import HEAD_BOUNDS  # noqa: E402
from model.training.network import denormals_flushed, network_from_model_file  # noqa: E402


class TorchNetwork:
    """The torch reference network behind numpy_network.NumpyNetwork's interface (numpy in and out)."""

    def __init__(self, net):
        self.net = net
        self.config = net.config

    @staticmethod
    def _run(function, *arrays, **options):
        with torch.no_grad(), denormals_flushed():
            tensors = [None if a is None else torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]
            result = function(*tensors, **options)
        return tuple(None if r is None else r.numpy() for r in result) if isinstance(result, tuple) else result.numpy()

    def split_code(self, codes):
        return self._run(self.net.split_code, codes)

    def keypoints(self, local):
        return self._run(self.net.keypoints, local)

    def identity_sdf(self, points, local, keypoints, extra=None, n_parts=None):
        return self._run(self.net.identity_sdf, points, local, keypoints, extra, n_parts=n_parts)

    def warp_to_canonical(self, points, codes, expression):
        return self._run(self.net.warp_to_canonical, points, codes, expression)


def timed(function):
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bake-resolution", type=int, default=216)
    args = parser.parse_args()
    parallel.set_threads(args.threads)
    torch.set_num_threads(1)  # per worker; the workers run side by side

    runtime = HeadModel.load(args.model)
    reference = HeadModel.load(args.model)
    reference.network = TorchNetwork(network_from_model_file(reference.header, reference.arrays))
    sides = {"numpy": runtime, "torch": reference}
    identity = runtime.sample_identity(args.seed, 1.0)
    offsets = editing.set_region(editing.no_edit(runtime), runtime, "nose",
                                 editing.random_region_codes(runtime, "nose", 1, 2.0), identity)
    baked = runtime.extract_mesh(identity, resolution=args.bake_resolution)
    vertices, edges = baked.vertices, expressions.mesh_edges(baked.faces)
    keys = np.eye(len(runtime.expression_names), dtype=np.float32)

    def live_preview(model):
        model.extract_mesh(identity, resolution=128, remember=True)  # the head as shown before the edit
        return timed(lambda: model.extract_mesh(identity, resolution=128, local_offsets=offsets, remember=True))

    tasks = [  # (name, the resolution of its mesh, the task)
        ("Final 256^3", 256, lambda model: timed(lambda: model.extract_mesh(identity, resolution=256))),
        ("Preview 128^3", 128, lambda model: timed(lambda: model.extract_mesh(identity, resolution=128))),
        ("live preview 128^3", 128, live_preview),
        (f"bake 53 keys ({len(vertices)} vertices)", args.bake_resolution,
         lambda model: timed(lambda: expressions.inverse_warp(model, identity, vertices, edges, keys))),
    ]
    print(f"model {args.model} ({runtime.hash[:12]}, blend_parts {runtime.config.blend_parts}), identity seed "
          f"{args.seed}, {args.threads} workers, {args.repeats} repeats; load average before "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    for model in sides.values():
        model.extract_mesh(identity, resolution=32)  # warm-up: first calls, imports

    print("\ntask                             side    best s  median s   CPU s   ratio (median)   difference")
    for name, resolution, task in tasks:
        seconds = {side: [] for side in sides}
        cpu = {side: [] for side in sides}
        results = {}
        for _ in range(args.repeats):
            for side, model in sides.items():
                wall, used, results[side] = task(model)
                seconds[side].append(wall)
                cpu[side].append(used)
        voxel = float((HEAD_BOUNDS[1] - HEAD_BOUNDS[0]).max()) / resolution
        same = difference(results["numpy"], results["torch"], voxel)
        ratio = statistics.median(seconds["numpy"]) / statistics.median(seconds["torch"])
        for side in sides:
            row = (f"{name:32s} {side:6s} {min(seconds[side]):7.3f} {statistics.median(seconds[side]):9.3f} "
                   f"{statistics.median(cpu[side]):7.2f}")
            print(row + (f"   {ratio:5.2f}x           {same}" if side == "numpy" else ""))
    print(f"\nload average after {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


def difference(a, b, voxel):
    """How far apart the two sides' results are: for meshes, the counts and the largest distance from a
    vertex to the nearest of the other mesh (in voxels; the lists' orders may differ, see
    tests/test_runtime.py); for inverse warps, how many positions differ by more than 0.01 mm (the
    solver's tolerance), the largest difference, and how many vertices one side solved and the other
    left in place."""
    if isinstance(a, expressions.InverseWarp):
        moved = model_to_mm(np.linalg.norm(a.positions - b.positions, axis=-1))
        return (f"{np.count_nonzero(moved > 0.01)} of {moved.size} positions > 0.01 mm apart (max "
                f"{moved.max():.2g} mm), {np.count_nonzero(a.solved != b.solved)} solved flags differ")
    if a.vertices.shape != b.vertices.shape or a.faces.shape != b.faces.shape:
        return f"counts differ: {len(a.vertices)} / {len(b.vertices)} vertices"
    distance = max(cKDTree(b.vertices).query(a.vertices)[0].max(), cKDTree(a.vertices).query(b.vertices)[0].max())
    return f"same counts, max {distance / voxel:.2g} voxel"


if __name__ == "__main__":
    main()
