"""The artist mesh (model/runtime/artist_mesh.py) on generated heads: how close it lies to the implicit
surface, whether its faces stay sound, how far its quads and UVs are from the template's, and how long
the conforming takes, against marching cubes at Preview resolution (128) in the same run.

    python bench/bench_artist_mesh.py --model weights/imhead.npz [--seeds 10] [--threads 2]

Distance of a vertex to the surface: |f| / |grad f| (model units to mm), grad f the exact gradient of
the numpy runtime (numpy_gradients.sdf_and_vjp), over the conformed vertices (all but the eye sockets',
which lie behind the eyeballs: artist_mesh.on_surface_vertices). Flipped: quads whose normal (cross
product of the diagonals) points against grad f at their centre; of the eye sockets' quads, against
their normal on the placed template; and, for every quad, "folded": against the placed template's
(the placed template itself has quads against grad f where the field lacks its folds: counted too). Degenerate: quads under 1 % of their template area
(after the head's overall scale), or with a corner angle under 5 degrees. Distortion against the
template: per quad, |log2| of its area's share of the whole against the template's, and per corner the
change of angle; the UVs are the template's, so this is the UV distortion too.
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
from model.runtime.artist_mesh import head_artist_mesh, load_topology, on_surface_vertices, place_template  # noqa: E402
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


def quad_measures(vertices, quads):
    """Per quad: normal (Q, 3) (diagonals' cross product, half of it: the area vector), area (Q,), and
    the corner angles (Q, 4) in degrees."""
    corners = vertices[quads]
    normal = 0.5 * np.cross(corners[:, 2] - corners[:, 0], corners[:, 3] - corners[:, 1])
    area = np.linalg.norm(normal, axis=1)
    before = corners - np.roll(corners, 1, axis=1)
    after = np.roll(corners, -1, axis=1) - corners
    cosine = -np.einsum("qcd,qcd->qc", before, after) / (
        np.linalg.norm(before, axis=-1) * np.linalg.norm(after, axis=-1) + 1e-12)
    return normal, area, np.degrees(np.arccos(np.clip(cosine, -1, 1)))


def measure(model, identity, topology):
    start = time.perf_counter()
    mesh = head_artist_mesh(model, identity)
    seconds = time.perf_counter() - start
    on = on_surface_vertices(topology)
    distance, _ = surface_distance(model, identity, mesh.vertices[on])
    quads = topology.quads
    keypoint_vertices = [k["vertex"] for k in model.header["keypoints"]]
    placed = place_template(topology.vertices, topology.vertices[keypoint_vertices], model.keypoints(identity))
    normal, area, angles = quad_measures(mesh.vertices, quads)
    placed_normal, _, _ = quad_measures(placed, quads)
    _, template_area, template_angles = quad_measures(topology.vertices, quads)
    surface_quads = np.isin(quads, on).all(1)
    _, centre_gradient = surface_distance(model, identity, mesh.vertices[quads[surface_quads]].mean(1))
    _, placed_gradient = surface_distance(model, identity, placed[quads[surface_quads]].mean(1))
    against_placed = np.einsum("qd,qd->q", normal, placed_normal) < 0
    flipped = int((np.einsum("qd,qd->q", normal[surface_quads], centre_gradient) < 0).sum()
                  + against_placed[~surface_quads].sum())
    placed_flipped = int((np.einsum("qd,qd->q", placed_normal[surface_quads], placed_gradient) < 0).sum())
    share = (area / area.sum()) / (template_area / template_area.sum())
    degenerate = int(((share < 0.01) | (angles.min(1) < 5)).sum())
    distortion = np.abs(np.log2(share))
    angle_change = np.abs(angles - template_angles)
    mm = model_to_mm(distance)
    return {"seconds": seconds, "mean_mm": mm.mean(), "p99_mm": np.percentile(mm, 99), "max_mm": mm.max(),
            "flipped": flipped, "placed_flipped": placed_flipped, "folded": int(against_placed.sum()),
            "degenerate": degenerate, "area_log2_mean": distortion.mean(),
            "area_log2_p99": np.percentile(distortion, 99), "angle_mean": angle_change.mean(),
            "angle_p99": np.percentile(angle_change, 99)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "weights" / "imhead.npz")
    parser.add_argument("--seeds", type=int, default=10, help="heads: identity seeds 0 .. seeds - 1")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    parallel.set_threads(args.threads)
    model = HeadModel.load(args.model)
    topology = load_topology()
    print(f"model {args.model} ({model.hash[:12]}), {args.seeds} heads, {args.threads} threads; artist mesh "
          f"{len(topology.vertices)} vertices, {len(topology.quads)} quads, {len(topology.uv)} UVs")
    head_artist_mesh(model, model.sample_identity(0))  # warm-up: first calls map memory
    rows = []
    mc_seconds = []
    header = ("seed", "conform s", "MC128 s", "mean mm", "p99 mm", "max mm", "flipped", "placed fl", "folded",
              "degen",
              "area|log2|", "p99", "angle deg", "p99")
    print(" ".join(f"{h:>10}" for h in header), flush=True)
    for seed in range(args.seeds):
        identity = model.sample_identity(seed)
        row = measure(model, identity, topology)
        start = time.perf_counter()
        model.extract_mesh(identity, resolution=PREVIEW_RESOLUTION)
        mc_seconds.append(time.perf_counter() - start)
        rows.append(row)
        values = (seed, row["seconds"], mc_seconds[-1], row["mean_mm"], row["p99_mm"], row["max_mm"],
                  row["flipped"], row["placed_flipped"], row["folded"], row["degenerate"], row["area_log2_mean"], row["area_log2_p99"],
                  row["angle_mean"], row["angle_p99"])
        print(" ".join(f"{v:>10}" if isinstance(v, int) else f"{v:>10.3f}" for v in values), flush=True)
    def total(key):
        return sum(r[key] for r in rows)

    def mean(key):
        return np.mean([r[key] for r in rows])

    print(f"all heads: conform {mean('seconds'):.2f} s (marching cubes at {PREVIEW_RESOLUTION}: "
          f"{np.mean(mc_seconds):.2f} s), mean {mean('mean_mm'):.3f} mm, p99 {max(r['p99_mm'] for r in rows):.3f} mm "
          f"(worst head), max {max(r['max_mm'] for r in rows):.3f} mm, flipped {total('flipped')} (placed template: "
          f"{total('placed_flipped')}), folded {total('folded')}, degenerate {total('degenerate')} of "
          f"{len(rows) * len(topology.quads)} quads, area |log2| mean {mean('area_log2_mean'):.3f}, angle change "
          f"mean {mean('angle_mean'):.2f} deg")

if __name__ == "__main__":
    main()
