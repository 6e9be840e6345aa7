"""How many pieces a model's meshes fall into, and where the stray ones lie: random heads (variation 1
and 2) and random region edits (2 standard deviations) meshed as the add-on meshes them. Every piece
but the largest (the head) is located by the region of the head's keypoint nearest to its centre.

    python -m model.evaluation.pieces [--model weights/imhead.npz] [--heads 10] [--resolution 256]

Prints one markdown table row per mesh and a summary: meshes that are one closed piece, and the
stray pieces by region.
"""
import argparse
from collections import Counter

import numpy as np

from ..runtime import HeadModel
from ..runtime.frame import model_to_mm
from ..runtime.head_state import HeadState, neutral_mesh
from ..runtime.meshing import is_closed, piece_labels


def survey_cases(model, n_heads):
    """(name, HeadState) of the meshes surveyed: for each seed a head at variation 1, one at 2, and the
    first one with a random region randomized at 2 standard deviations."""
    regions = sorted(model.regions)
    for seed in range(n_heads):
        yield f"seed {seed}, variation 1", HeadState.generated(model, seed, 1.0)
        yield f"seed {seed}, variation 2", HeadState.generated(model, seed, 2.0)
        region = regions[np.random.default_rng(seed).integers(len(regions))]
        edited = HeadState.generated(model, seed, 1.0)
        edited.randomize_region(model, region, seed=seed, scale=2.0)
        yield f"seed {seed}, {region} randomized", edited


def stray_pieces(model, state, mesh):
    """Every piece of `mesh` but the largest: [{"vertices", "extent_mm", "region"}], largest first."""
    labels = piece_labels(mesh)
    used = np.unique(mesh.faces)
    pieces, sizes = np.unique(labels[used], return_counts=True)
    keypoints = model.keypoints(state.identity, state.local_offsets(model))
    part_regions = {part: name for name, parts in model.regions.items() for part in parts}
    strays = []
    for piece in pieces[np.argsort(-sizes)][1:]:
        vertices = mesh.vertices[used[labels[used] == piece]]
        centre = vertices.mean(0)
        nearest = int(np.argmin(np.linalg.norm(keypoints - centre, axis=1)))
        strays.append({"vertices": len(vertices),
                       "extent_mm": float(model_to_mm(np.ptp(vertices, axis=0).max())),
                       "region": part_regions.get(nearest, "none")})
    return strays


def survey(model, n_heads, resolution, progress=print):
    """One row per surveyed mesh: {"case", "vertices", "closed", "strays"}."""
    rows = []
    for case, state in survey_cases(model, n_heads):
        mesh = neutral_mesh(model, state, resolution)
        rows.append({"case": case, "vertices": len(mesh.vertices), "closed": is_closed(mesh),
                     "strays": stray_pieces(model, state, mesh)})
        progress(markdown_row(rows[-1]))
    return rows


def markdown_row(row):
    by_region = Counter(s["region"] for s in row["strays"])
    strays = ", ".join(f"{name} {count}" for name, count in by_region.most_common()) or "-"
    largest = (f"{row['strays'][0]['vertices']} v, {max(s['extent_mm'] for s in row['strays']):.1f} mm"
               if row["strays"] else "-")
    return (f"| {row['case']} | {row['vertices']} | {1 + len(row['strays'])} | {'yes' if row['closed'] else 'no'} "
            f"| {strays} | {largest} |")


def summary(rows):
    one_piece = sum(1 for row in rows if row["closed"] and not row["strays"])
    by_region = Counter(s["region"] for row in rows for s in row["strays"])
    largest = max((s["extent_mm"] for row in rows for s in row["strays"]), default=0.0)
    regions = ", ".join(f"{name} {count}" for name, count in by_region.most_common()) or "none"
    return (f"{one_piece} of {len(rows)} meshes are one closed piece; stray pieces by region: {regions}; "
            f"the largest spans {largest:.1f} mm")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="weights/imhead.npz")
    parser.add_argument("--heads", type=int, default=10, help="seeds: each gives three meshes")
    parser.add_argument("--resolution", type=int, default=256)
    args = parser.parse_args(argv)
    model = HeadModel.load(args.model)
    print(f"model {args.model} ({model.hash[:12]}), {args.heads} seeds, resolution {args.resolution}\n")
    print("| mesh | vertices | pieces | closed | stray pieces by region | most vertices, widest extent |")
    print("|---|---|---|---|---|---|")
    rows = survey(model, args.heads, args.resolution)
    print("\n" + summary(rows))


if __name__ == "__main__":
    main()
