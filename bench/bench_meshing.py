"""Dense grid against coarse-to-fine surface extraction, on one field, in one run.

    python bench/bench_meshing.py --model weights/imhead.npz      # the head model (identity --seed)
    python bench/bench_meshing.py --analytic                      # an analytic stand-in, for a quick run

For each resolution, three methods: the naive dense grid as DeepSDF and NPHM sample it (resolution^3
cells, a cube), the dense grid on HeadModel's box (the same voxels, only the head's extent along each
axis), and coarse to fine on that box (what HeadModel.extract_mesh runs). Each in one fresh subprocess,
reporting seconds, points sent to the field, and peak memory (its ru_maxrss, and the growth over what
it held before the call). Then: whether coarse to fine gives the dense meshes, and, at the lowest
resolution, how the coarse-to-fine cost and exactness depend on the Lipschitz factor next to the
steepest slope the dense grid shows.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from skimage.measure import marching_cubes as skimage_marching_cubes

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model import HeadModel  # noqa: E402
from model.runtime import meshing, parallel  # noqa: E402
from model.runtime.head_model import HEAD_BOUNDS  # noqa: E402

LIPSCHITZ_SWEEP = (1.0, 1.25, 1.5, 2.0, 3.0)
# The naive grid as DeepSDF and NPHM sample it (a cube), the dense grid on HeadModel's box, ours.
METHODS = ("dense (cube)", "dense (box)", "coarse-to-fine")


def analytic_head(points):
    """A head-sized union of exact distance fields: skull, neck, ears, nose (model units)."""
    def sphere(centre, radius):
        return np.linalg.norm(points - np.array(centre, np.float32), axis=-1) - np.float32(radius)

    def capsule(a, b, radius):
        a, b = np.array(a, np.float32), np.array(b, np.float32)
        t = np.clip(((points - a) @ (b - a)) / ((b - a) @ (b - a)), 0.0, 1.0)
        return np.linalg.norm(points - (a + t[:, None] * (b - a)), axis=-1) - np.float32(radius)

    parts = [sphere((0.0, 0.05, 0.1), 0.5), capsule((0.0, 0.1, -0.2), (0.0, 0.12, -0.7), 0.22),
             sphere((-0.5, 0.08, 0.08), 0.09), sphere((0.5, 0.08, 0.08), 0.09),
             capsule((0.0, -0.45, 0.12), (0.0, -0.55, 0.02), 0.05)]
    return np.min(parts, axis=0)


def load_field(args):
    """sdf_fn for the chosen field."""
    if args.analytic:
        return analytic_head
    head = HeadModel.load(args.model)
    return head.sdf_function(head.sample_identity(args.seed))


class Counted:
    """The field, counting the points it is asked for. (from several threads at once)."""

    def __init__(self, field):
        self.field = field
        self.points = 0
        self.lock = threading.Lock()

    def __call__(self, points):
        with self.lock:
            self.points += len(points)
        return self.field(points)


def rss_bytes():
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def worker(args):
    """One extraction in this process; prints a JSON line, saves the mesh to args.mesh_out."""
    parallel.set_threads(args.threads)
    field = Counted(load_field(args))
    # Warm up with one coarse surface, as a Blender session is warm after its first head.
    meshing.extract_surface(field.field, 32, HEAD_BOUNDS)
    before = rss_bytes()
    start, start_cpu = time.perf_counter(), time.process_time()
    if args.method == "dense (cube)":
        mesh = meshing.extract_surface_dense(field, args.resolution, cube_bounds(args.resolution))
    elif args.method == "dense (box)":
        mesh = meshing.extract_surface_dense(field, args.resolution, HEAD_BOUNDS)
    else:
        mesh = meshing.extract_surface(field, args.resolution, HEAD_BOUNDS, lipschitz=args.lipschitz)
    seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    again = None
    if args.method == "coarse-to-fine":
        # Once more: every later head of a session at this resolution finds its memory already mapped
        # (the first pays for page faults). The dense grid gains nothing from that (bench/README.md).
        start = time.perf_counter()
        meshing.extract_surface(field.field, args.resolution, HEAD_BOUNDS, lipschitz=args.lipschitz)
        again = time.perf_counter() - start
    np.savez(args.mesh_out, vertices=mesh.vertices, faces=mesh.faces)
    print(json.dumps({"seconds": seconds, "again": again, "cpu": cpu, "points": field.points, "peak_rss": peak,
                      "growth": peak - before,
                      "vertices": len(mesh.vertices), "faces": len(mesh.faces),
                      "components": meshing.connected_components(mesh), "closed": meshing.is_closed(mesh)}))


def cube_bounds(resolution):
    """The box of the naive grid as DeepSDF and NPHM sample it: resolution^3 cells, a cube (here with
    HeadModel's voxel, around its box, lattice points on the box lattice's), where HeadModel's box
    lattice only covers the head's extent along each axis (256: 204 x 194 x 256 cells)."""
    grid = meshing.Grid(resolution, HEAD_BOUNDS)
    lo = grid.origin - (resolution - grid.cells) // 2 * grid.voxel
    return lo, lo + resolution * grid.voxel


def run_worker(args, method, resolution, lipschitz, mesh_out):
    command = [sys.executable, __file__, "--worker", "--method", method, "--resolution", str(resolution),
               "--lipschitz", str(lipschitz), "--mesh-out", mesh_out, "--threads", str(args.threads),
               "--seed", str(args.seed)]
    command += ["--analytic"] if args.analytic else ["--model", str(args.model)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def compare(path_a, path_b, voxel):
    """'same' when vertex and face counts match and vertices lie within 1 % of a voxel."""
    a, b = np.load(path_a), np.load(path_b)
    if a["vertices"].shape != b["vertices"].shape or a["faces"].shape != b["faces"].shape:
        return f"differ: {len(a['vertices'])} vs {len(b['vertices'])} vertices"
    deviation = np.abs(a["vertices"] - b["vertices"]).max() / voxel if len(a["vertices"]) else 0.0
    return f"{'same' if deviation < 0.01 else 'differ'} (max deviation {deviation:.1e} voxel)"


def steepest_slopes(args, resolution):
    """Largest |sdf(p) - sdf(q)| / |p - q| over lattice neighbours k voxels apart along an axis."""
    field = load_field(args)
    grid = meshing.Grid(resolution, HEAD_BOUNDS)
    sampler = meshing._FieldSampler(field, grid, meshing.DEFAULT_BATCH_SIZE, None)
    shape = tuple(grid.cells + 1)
    index = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), axis=-1).reshape(-1, 3)
    values = sampler(index).reshape(shape)
    slopes = {}
    for k in (1, 2, 4, 8, 16):
        worst = 0.0
        for axis in range(3):
            head = [slice(None)] * 3
            tail = [slice(None)] * 3
            head[axis], tail[axis] = slice(0, -k), slice(k, None)
            worst = max(worst, float(np.abs(values[tuple(tail)] - values[tuple(head)]).max()) / (k * grid.voxel))
        slopes[k] = worst
    return slopes


def weld(vertices, faces):
    """Merges vertices at identical positions (blocks emit their shared faces' vertices twice)."""
    unique, inverse = np.unique(np.ascontiguousarray(vertices).view(np.dtype((np.void, 24))).ravel(),
                                return_inverse=True)
    return unique.view(np.float64).reshape(-1, 3), inverse.reshape(-1)[faces]


def marching_cubes_in_blocks(values, crossed, block):
    """Marching cubes on each block of block^3 cells that holds a crossed cell, then welded."""
    counts = -(-np.array(crossed.shape) // block)
    padded = np.zeros(counts * block, dtype=bool)
    padded[tuple(slice(0, n) for n in crossed.shape)] = crossed
    busy = padded.reshape(counts[0], block, counts[1], block, counts[2], block).any(axis=(1, 3, 5))
    all_vertices, all_faces, offset = [], [], 0
    for corner in np.argwhere(busy) * block:
        piece = np.ascontiguousarray(values[tuple(slice(c, c + block + 1) for c in corner)])
        vertices, faces, _, _ = skimage_marching_cubes(piece, 0.0, gradient_direction="descent")
        all_vertices.append(vertices.astype(np.float64) + corner)
        all_faces.append(faces + offset)
        offset += len(vertices)
    return weld(np.concatenate(all_vertices), np.concatenate(all_faces))


def marching_cubes_variants(args, resolution):
    """CPU seconds (best of 3) of scikit-image's marching cubes on the coarse-to-fine lattice, four ways
    (what chose the mask; bench_marching_cubes.py compares it with the numpy one meshing runs now)."""
    grid = meshing.Grid(resolution, HEAD_BOUNDS)
    values, corners = meshing.surface_lattice(load_field(args), grid)
    lattice = tuple(slice(0, n + 1) for n in grid.cells)  # the dense grid's share of what was sampled
    values, corners = np.ascontiguousarray(values[lattice]), np.ascontiguousarray(corners[lattice])
    crossed = meshing._crossed_cells(values)
    variants = {
        "whole lattice": lambda: skimage_marching_cubes(values, 0.0, gradient_direction="descent")[:2],
        "mask": lambda: skimage_marching_cubes(values, 0.0, gradient_direction="descent", mask=corners)[:2],
    }
    for block in (8, 16, 32):
        variants[f"blocks of {block}^3 + weld"] = lambda block=block: marching_cubes_in_blocks(values, crossed, block)
    rows = []
    for name, run in variants.items():
        best = float("inf")
        for _ in range(3):
            start = time.process_time()
            vertices, faces = run()
            best = min(best, time.process_time() - start)
        rows.append((name, best, len(vertices), len(faces)))
    return rows


def megabytes(n):
    return f"{n / 2 ** 20:.0f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, help="model file (e.g. weights/imhead.npz)")
    source.add_argument("--analytic", action="store_true", help="an analytic head-sized field, for a quick run")
    parser.add_argument("--seed", type=int, default=0, help="identity seed for --model")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--threads", type=int, default=2, help="workers (the target machine has 2 cores)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--method", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--resolution", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--lipschitz", type=float, default=meshing.DEFAULT_LIPSCHITZ, help=argparse.SUPPRESS)
    parser.add_argument("--mesh-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return
    if args.model is not None and not args.model.is_file():
        parser.error(f"model file not found: {args.model}")

    field_name = "analytic head" if args.analytic else f"{args.model} (identity seed {args.seed})"
    print(f"field: {field_name}; HeadModel's box {HEAD_BOUNDS[0]} .. {HEAD_BOUNDS[1]}; "
          f"{args.threads} workers; lipschitz {meshing.DEFAULT_LIPSCHITZ}\n")
    print("| resolution | method | seconds | again | CPU seconds | points evaluated | vertices | faces | pieces "
          "| closed | peak RSS MB | growth MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        summary = []
        for resolution in args.resolutions:
            results = {}
            for method in METHODS:
                mesh_out = os.path.join(scratch, f"{method}-{resolution}.npz")
                r = results[method] = run_worker(args, method, resolution, meshing.DEFAULT_LIPSCHITZ, mesh_out)
                again = "-" if r["again"] is None else f"{r['again']:.2f}"
                print(f"| {resolution}^3 | {method} | {r['seconds']:.2f} | {again} | {r['cpu']:.2f} | {r['points']:,} "
                      f"| {r['vertices']:,} "
                      f"| {r['faces']:,} | {r['components']} | {r['closed']} | {megabytes(r['peak_rss'])} "
                      f"| {megabytes(r['growth'])} |", flush=True)
            fine = results["coarse-to-fine"]
            voxel = meshing.Grid(resolution, HEAD_BOUNDS).voxel
            for method in METHODS[:2]:
                dense = results[method]
                agreement = compare(os.path.join(scratch, f"{method}-{resolution}.npz"),
                                    os.path.join(scratch, f"coarse-to-fine-{resolution}.npz"), voxel)
                summary.append(f"{resolution}^3: coarse-to-fine {dense['seconds'] / fine['seconds']:.1f}x faster "
                               f"({dense['seconds'] / fine['again']:.1f}x again) than {method}, "
                               f"{dense['points'] / fine['points']:.1f}x fewer points; meshes {agreement}")
        print()
        for line in summary:
            print(line)

        resolution = min(args.resolutions)
        print(f"\nLipschitz factor at {resolution}^3 (coarse-to-fine against the dense mesh above):\n")
        print("| lipschitz | seconds | CPU seconds | points evaluated | mesh |")
        print("|---|---|---|---|---|")
        dense_mesh = os.path.join(scratch, f"dense (box)-{resolution}.npz")
        voxel = meshing.Grid(resolution, HEAD_BOUNDS).voxel
        for lipschitz in LIPSCHITZ_SWEEP:
            mesh_out = os.path.join(scratch, f"sweep-{lipschitz}.npz")
            r = run_worker(args, "coarse-to-fine", resolution, lipschitz, mesh_out)
            print(f"| {lipschitz} | {r['seconds']:.2f} | {r['cpu']:.2f} | {r['points']:,} "
                  f"| {compare(mesh_out, dense_mesh, voxel)} |",
                  flush=True)
        for resolution in args.resolutions:
            print(f"\nscikit-image's marching cubes on the coarse-to-fine lattice at {resolution}^3 "
                  "(CPU seconds, best of 3):\n")
            print("| variant | seconds | vertices | faces |")
            print("|---|---|---|---|")
            for name, seconds, vertices, faces in marching_cubes_variants(args, resolution):
                print(f"| {name} | {seconds:.3f} | {vertices:,} | {faces:,} |", flush=True)

        resolution = min(args.resolutions)
        slopes = steepest_slopes(args, resolution)
        print("\nSteepest slope |sdf(p) - sdf(q)| / |p - q| on the dense grid, neighbours k voxels apart: "
              + ", ".join(f"k={k}: {s:.3f}" for k, s in slopes.items()))


if __name__ == "__main__":
    main()
