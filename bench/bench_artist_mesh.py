"""The artist mesh (model/runtime/artist_mesh.py) on generated heads and on heads fitted to held-out
scans: how close it lies to the implicit surface, whether its faces stay sound, how far its quads and
UVs are from the template's, and how long the conforming takes, against marching cubes at Preview
resolution (128) in the same run.

    python bench/bench_artist_mesh.py --model weights/imhead.npz [--seeds 10] [--fitted 5] [--threads 2]

Distance of a vertex to the surface: |f| / |grad f| (model units to mm), grad f the exact gradient of
the numpy runtime (numpy_gradients.sdf_and_vjp), over the conformed vertices (all but the eye sockets',
which lie behind the eyeballs: artist_mesh.on_surface_vertices). Flipped and degenerate quads as
artist_mesh.QuadSoundness defines them (the normal against the placed template's; under 1 % of the
template's area, scaled to the head's size, or a corner under 5 degrees). Against grad f: quads of the conformed vertices whose
normal points against grad f at their centre, and the same count on the placed template (the template
has cavities the field lacks: the lids' inner rims, the backs of the ears, the lip corners). Distortion
against the template: per quad, |log2| of its area's share of the whole against the template's, and per
corner the change of angle; the UVs are the template's, so this is the UV distortion too. A fitted head
is the fit (quality fast) to 10,000 points of a held-out head's outer surface (model.data's test
identities).
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model import HeadModel  # noqa: E402
from model.runtime import parallel  # noqa: E402
from model.runtime.artist_mesh import (QuadSoundness, head_artist_mesh, load_topology, on_surface_vertices,  # noqa: E402
                                       placement, quad_geometry)
from model.runtime.frame import model_to_mm  # noqa: E402
from model.runtime.numpy_gradients import sdf_and_vjp  # noqa: E402

PREVIEW_RESOLUTION = 128


def surface_distance(model, identity, points):
    """(N,) distance of points to the head's surface, model units: |f| / |grad f|, and grad f (N, 3)."""
    code = model._code(identity)
    values, gradients = [], []
    for start in range(0, len(points), 8192):
        chunk = points[start:start + 8192]
        value, backward = sdf_and_vjp(model.network, chunk[None], code)
        values.append(value[0])
        gradients.append(backward(np.ones_like(value))[0][0])
    values, gradients = np.concatenate(values), np.concatenate(gradients)
    return np.abs(values) / np.linalg.norm(gradients, axis=1), gradients


def measure(model, identity, topology):
    start = time.perf_counter()
    mesh = head_artist_mesh(model, identity)
    seconds = time.perf_counter() - start
    on = on_surface_vertices(topology)
    distance, _ = surface_distance(model, identity, mesh.vertices[on])
    quads = topology.quads
    keypoint_vertices = [k["vertex"] for k in model.header["keypoints"]]
    placed, _ = placement(lambda points: parallel.in_batches(model.sdf_function(identity), points),
                          model.keypoints(identity), keypoint_vertices, topology)
    flipped, degenerate = QuadSoundness(placed, topology)(mesh.vertices)
    normal, area, cosine = quad_geometry(mesh.vertices, quads)
    placed_normal, _, _ = quad_geometry(placed, quads)
    _, template_area, template_cosine = quad_geometry(topology.vertices, quads)
    surface_quads = np.isin(quads, on).all(1)
    _, centre_gradient = surface_distance(model, identity, mesh.vertices[quads[surface_quads]].mean(1))
    _, placed_gradient = surface_distance(model, identity, placed[quads[surface_quads]].mean(1))
    share = (area / area.sum()) / (template_area / template_area.sum())
    distortion = np.abs(np.log2(share))
    angle_change = np.degrees(np.abs(np.arccos(np.clip(cosine, -1, 1)) - np.arccos(np.clip(template_cosine, -1, 1))))
    mm = model_to_mm(distance)
    return {"seconds": seconds, "mean_mm": mm.mean(), "p99_mm": np.percentile(mm, 99), "max_mm": mm.max(),
            "flipped": int(flipped.sum()), "degenerate": int(degenerate.sum()),
            "against": int((np.einsum("qd,qd->q", normal[surface_quads], centre_gradient) < 0).sum()),
            "placed_against": int((np.einsum("qd,qd->q", placed_normal[surface_quads], placed_gradient) < 0).sum()),
            "area_log2_mean": distortion.mean(), "area_log2_p99": np.percentile(distortion, 99),
            "angle_mean": angle_change.mean(), "angle_p99": np.percentile(angle_change, 99)}


def fitted_identities(model, n):
    """Identities of the model fitted (quality fast) to 10,000 points of each of n held-out heads."""
    from model.data.build_dataset import test_identities
    from model.data.heads import HeadData
    from model.data.samples import sample_outer_surface, surface_points
    from model.runtime.fit import fit
    from model.runtime.frame import MODEL_UNIT_M

    data = HeadData()
    for index, weights in enumerate(test_identities(n)):
        head = data.head(weights)
        face_index, bary = sample_outer_surface(head, 10000, np.random.default_rng(index))
        points = surface_points(head.vertices, head.faces, face_index, bary) * MODEL_UNIT_M  # metres
        yield f"fit {index}", fit(model, points, quality="fast").identity


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "weights" / "imhead.npz")
    parser.add_argument("--seeds", type=int, default=10, help="generated heads: identity seeds 0 .. seeds - 1")
    parser.add_argument("--fitted", type=int, default=0, help="heads fitted to held-out scans (needs model/data's heads)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    parallel.set_threads(args.threads)
    model = HeadModel.load(args.model)
    topology = load_topology()
    print(f"model {args.model} ({model.hash[:12]}), {args.seeds} generated and {args.fitted} fitted heads, "
          f"{args.threads} threads; artist mesh {len(topology.vertices)} vertices, {len(topology.quads)} quads, "
          f"{len(topology.uv)} UVs")
    head_artist_mesh(model, model.sample_identity(0))  # warm-up: first calls map memory
    rows = []
    mc_seconds = []
    header = ("head", "conform s", "MC128 s", "mean mm", "p99 mm", "max mm", "flipped", "degen", "against",
              "placed ag", "area|log2|", "p99", "angle deg", "p99")
    print(" ".join(f"{h:>10}" for h in header), flush=True)
    heads = [(f"seed {seed}", model.sample_identity(seed)) for seed in range(args.seeds)]
    for name, identity in heads + list(fitted_identities(model, args.fitted)):
        row = measure(model, identity, topology)
        start = time.perf_counter()
        model.extract_mesh(identity, resolution=PREVIEW_RESOLUTION)
        mc_seconds.append(time.perf_counter() - start)
        rows.append(row)
        values = (row["seconds"], mc_seconds[-1], row["mean_mm"], row["p99_mm"], row["max_mm"], row["flipped"],
                  row["degenerate"], row["against"], row["placed_against"], row["area_log2_mean"],
                  row["area_log2_p99"], row["angle_mean"], row["angle_p99"])
        print(f"{name:>10} " + " ".join(f"{v:>10}" if isinstance(v, int) else f"{v:>10.3f}" for v in values),
              flush=True)

    def total(key):
        return sum(r[key] for r in rows)

    def mean(key):
        return np.mean([r[key] for r in rows])

    print(f"all heads: conform {mean('seconds'):.2f} s (marching cubes at {PREVIEW_RESOLUTION}: "
          f"{np.mean(mc_seconds):.2f} s), mean {mean('mean_mm'):.3f} mm, p99 {max(r['p99_mm'] for r in rows):.3f} mm "
          f"(worst head), max {max(r['max_mm'] for r in rows):.3f} mm, flipped {total('flipped')}, degenerate "
          f"{total('degenerate')} of {len(rows) * len(topology.quads)} quads; against grad f {total('against')} "
          f"(placed template: {total('placed_against')}); area |log2| mean {mean('area_log2_mean'):.3f}, angle "
          f"change mean {mean('angle_mean'):.2f} deg")


if __name__ == "__main__":
    main()
