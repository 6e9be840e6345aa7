"""numpy marching cubes (what meshing runs) against scikit-image's, on the lattice of a real head, in one run.

    python bench/bench_marching_cubes.py --model weights/imhead.npz [--seed 0] [--resolutions 128 256]

For each resolution, the coarse-to-fine lattice and mask of crossed-cell corners that
HeadModel.extract_mesh meshes (identity --seed, HeadModel's box); then both marching cubes on it,
alternating, --repeats times each: wall and CPU seconds (best and median of each), and the mesh each
gives (vertices, faces, pieces, closed), and how far each numpy vertex lies from scikit-image's nearest.
Then counting pieces, the numpy union-find against scipy's connected_components, and the case table's
build time.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components as scipy_components
from scipy.spatial import cKDTree
from skimage.measure import marching_cubes as skimage_marching_cubes

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model import HeadModel  # noqa: E402
from model.runtime import marching_cubes, meshing  # noqa: E402
from model.runtime.head_model import HEAD_BOUNDS  # noqa: E402


def head_lattice(model_path, seed, resolution):
    """The lattice values and corner mask extract_surface hands to marching cubes."""
    head = HeadModel.load(model_path)
    grid = meshing.Grid(resolution, HEAD_BOUNDS)
    return meshing.surface_lattice(head.sdf_function(head.sample_identity(seed)), grid)


def timed(run, repeats):
    """(wall, CPU) seconds of each of `repeats` runs, and the last result."""
    seconds = []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = run()
        seconds.append((time.perf_counter() - start, time.process_time() - start_cpu))
    return np.array(seconds), result


def scipy_pieces(vertices, faces):
    rows, cols = faces.reshape(-1), np.roll(faces, 1, axis=1).reshape(-1)
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(len(vertices),) * 2)
    labels = scipy_components(graph, directed=False)[1]
    return len(np.unique(labels[np.unique(faces)]))


def as_mesh(vertices, faces):
    return meshing.SurfaceMesh(vertices, faces.astype(np.int32), np.zeros_like(vertices))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="model file (e.g. weights/imhead.npz)")
    parser.add_argument("--seed", type=int, default=0, help="identity seed")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--repeats", type=int, default=11, help="runs of each marching cubes, alternating")
    args = parser.parse_args(argv)
    if not args.model.is_file():
        parser.error(f"model file not found: {args.model}")

    print(f"{args.model} (identity seed {args.seed}); HeadModel's box; {args.repeats} alternating runs of each "
          "marching cubes\n")
    print("| resolution | marching cubes | wall best s | wall median s | CPU best s | CPU median s | vertices | faces "
          "| pieces | closed |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    summary, meshes = [], {}
    for resolution in args.resolutions:
        values, corners = head_lattice(args.model, args.seed, resolution)
        runs = {
            "numpy": lambda: marching_cubes.marching_cubes(values, corners),
            "scikit-image": lambda: skimage_marching_cubes(values, 0.0, gradient_direction="descent",
                                                           mask=corners)[:2],
        }
        seconds = {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, run in runs.items():
                taken, meshes[name] = timed(run, 1)
                seconds[name].append(taken[0])
        best = {name: np.min(seconds[name], axis=0) for name in runs}
        median = {name: np.median(seconds[name], axis=0) for name in runs}
        for name in runs:
            vertices, faces = meshes[name]
            mesh = as_mesh(vertices, faces)
            print(f"| {resolution}^3 | {name} | {best[name][0]:.4f} | {median[name][0]:.4f} | {best[name][1]:.4f} "
                  f"| {median[name][1]:.4f} | {len(vertices):,} | {len(faces):,} "
                  f"| {meshing.connected_components(mesh)} | {meshing.is_closed(mesh)} |", flush=True)
        ours, reference = meshes["numpy"][0], meshes["scikit-image"][0]
        ratio_best, ratio_median = best["numpy"] / best["scikit-image"], median["numpy"] / median["scikit-image"]
        summary.append(f"{resolution}^3: numpy / scikit-image, wall {ratio_best[0]:.2f} (best) {ratio_median[0]:.2f} "
                       f"(median), CPU {ratio_best[1]:.2f} (best) {ratio_median[1]:.2f} (median); numpy vertices "
                       f"at most {cKDTree(reference).query(ours)[0].max():.1e} voxel from scikit-image's")
    print()
    for line in summary:
        print(line)

    vertices, faces = meshes["numpy"]
    mesh = as_mesh(vertices, faces)
    ours, _ = timed(lambda: meshing.connected_components(mesh), args.repeats)
    theirs, _ = timed(lambda: scipy_pieces(vertices, faces), args.repeats)
    ours, theirs = ours[:, 0].min(), theirs[:, 0].min()
    print(f"\nPieces of the {args.resolutions[-1]}^3 mesh ({len(faces):,} faces), wall best of {args.repeats}: numpy "
          f"union-find {ours:.4f} s, scipy connected_components {theirs:.4f} s ({ours / theirs:.2f}x)")
    build, _ = timed(marching_cubes._case_table, args.repeats)
    print(f"Case table, built at import: {build[:, 0].min() * 1000:.1f} ms (wall best of {args.repeats})")


if __name__ == "__main__":
    main()
