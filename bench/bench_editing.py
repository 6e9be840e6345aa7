"""Region-edit locality, expression baking time and residual, and the linear-mix error, for one model.

    .venv/bin/python bench/bench_editing.py --model weights/imhead.npz [--resolution 216] [--threads 2]

1. Locality: each region edited strongly (its training mean plus 3 standard deviations along every
   principal direction), movement |SDF change| at the unedited head's vertices: the share of the head
   the edit touches (editing.edit_share > 0), the largest movement outside and inside it, and the
   largest beyond 60 and 100 mm of the region's keypoints.
2. Baking: every expression into positions of the head's vertices at `--resolution` (~100k vertices
   at 256), wall seconds, solved share, residual.
3. Linear mix: random combinations of 4 expressions, mix of the baked keys against the exact inverse warp.
4. Live previews: the head re-meshed at `--preview-resolution` after each of a row of region edits (2
   standard deviations), as the region sliders' live preview does, with and without the unedited
   field remembered (HeadModel.extract_mesh(remember=True)): seconds, and the largest vertex difference.
"""
import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from model import HeadModel  # noqa: E402
from model.runtime import editing, expressions, parallel  # noqa: E402
from model.runtime.frame import model_to_mm  # noqa: E402


def locality(model, identity, vertices):
    print("\nregion         parts  touched %   untouched max mm   touched max mm   >60 mm max   >100 mm max")
    unedited = editing.no_edit(model)
    before = model.keypoints(identity)
    for region, parts in model.regions.items():
        codes = editing.random_region_codes(model, region, seed=0, scale=3.0)
        offsets = editing.set_region(unedited, model, region, codes, identity)
        moved = model_to_mm(editing.surface_displacement(model, vertices, identity, unedited, offsets))
        touched = editing.edit_share(model, vertices, identity, offsets) > 0
        after = model.keypoints(identity, offsets)
        distance = model_to_mm(np.minimum(
            np.linalg.norm(vertices[:, None] - before[parts][None], axis=-1).min(1),
            np.linalg.norm(vertices[:, None] - after[parts][None], axis=-1).min(1)))
        beyond = [moved[distance > d].max(initial=0.0) for d in (60, 100)]
        print(f"{region:14s} {len(parts):5d}  {100 * touched.mean():9.1f}   {moved[~touched].max(initial=0.0):16.4f}"
              f"   {moved[touched].max(initial=0.0):14.2f}   {beyond[0]:10.2f}   {beyond[1]:11.2f}")


def baking(model, identity, vertices, edges):
    names = model.expression_names
    start, cpu_start = time.perf_counter(), time.process_time()
    keys = expressions.inverse_warp(model, identity, vertices, edges, np.eye(len(names), dtype=np.float32))
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    summary = keys.residual_summary_mm()
    moved = model_to_mm(np.linalg.norm(keys.positions - vertices, axis=-1))
    print(f"\nbake: {len(names)} expressions x {len(vertices)} vertices in {seconds:.1f} s "
          f"({cpu_seconds:.1f} CPU s, {os.getloadavg()[0]:.1f} load average); solved "
          f"{100 * keys.solved.mean():.1f} % of (expression, vertex) pairs")
    print(f"residual: max {summary['max']:.4f} mm, 99th percentile {summary['p99']:.4f} mm, mean {summary['mean']:.5f} mm, "
          f"at vertices left in place max {summary['kept_max']:.4f} mm")
    largest = np.argsort(moved.max(1))[::-1][:5]
    print("largest displacements: " + ", ".join(f"{names[k]} {moved[k].max():.1f} mm" for k in largest))
    return keys


def linear_mix(model, identity, vertices, edges, keys, count):
    combinations = expressions.random_expressions(model.expression_names, count, seed=0)
    error = model_to_mm(expressions.linear_mix_error(model, identity, vertices, edges, keys, combinations))
    print(f"\nlinear mix of baked keys vs exact warp, {count} random 4-expression combinations: "
          f"mean {error.mean():.4f} mm, 99th percentile {np.percentile(error, 99):.3f} mm, "
          f"max {error.max():.3f} mm")
    for c, e in zip(combinations, error):
        active = ", ".join(f"{model.expression_names[i]} {c[i]:.2f}" for i in np.flatnonzero(c))
        print(f"  {active}: mean {e.mean():.4f} mm, max {e.max():.3f} mm")


def previews(model, identity, resolution):
    forgetful = HeadModel.load(model.path)
    model.extract_mesh(identity, resolution=resolution, remember=True)  # the head as first shown
    print(f"\nlive previews at {resolution}: seconds without / with the unedited field remembered")
    for region, seed in (("nose", 1), ("nose", 2), ("jaw", 1), ("ears", 1), ("nose", 3)):
        offsets = editing.set_region(editing.no_edit(model), model, region,
                                     editing.random_region_codes(model, region, seed, 2.0), identity)
        start = time.perf_counter()
        plain = forgetful.extract_mesh(identity, resolution=resolution, local_offsets=offsets)
        middle = time.perf_counter()
        remembered = model.extract_mesh(identity, resolution=resolution, local_offsets=offsets, remember=True)
        end = time.perf_counter()
        if plain.vertices.shape == remembered.vertices.shape:
            difference = model_to_mm(np.abs(plain.vertices - remembered.vertices).max())
            agreement = f"largest vertex difference {difference:.1e} mm"
        else:
            agreement = f"meshes differ: {len(plain.vertices)} and {len(remembered.vertices)} vertices"
        without, remembering = middle - start, end - middle
        print(f"  {region} {seed}: {without:.3f} / {remembering:.3f} s ({without / remembering:.1f}x), {agreement}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resolution", type=int, default=216, help="216 gives about 100k vertices")
    parser.add_argument("--locality-resolution", type=int, default=96)
    parser.add_argument("--combinations", type=int, default=5)
    parser.add_argument("--preview-resolution", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    parallel.set_threads(args.threads)
    model = HeadModel.load(args.model)
    identity = model.sample_identity(args.seed, 1.0)
    print(f"model {args.model} (blend_parts {model.config.blend_parts}), identity seed {args.seed}, "
          f"{parallel.threads()} threads")

    locality(model, identity, model.extract_mesh(identity, resolution=args.locality_resolution).vertices)
    previews(model, identity, args.preview_resolution)
    start = time.perf_counter()
    mesh = model.extract_mesh(identity, resolution=args.resolution)
    print(f"\nmesh at {args.resolution}: {len(mesh.vertices)} vertices in {time.perf_counter() - start:.1f} s")
    edges = expressions.mesh_edges(mesh.faces)
    keys = baking(model, identity, mesh.vertices, edges)
    linear_mix(model, identity, mesh.vertices, edges, keys, args.combinations)


if __name__ == "__main__":
    main()
