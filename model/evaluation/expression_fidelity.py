"""How much of each ICT expression a model's warp reproduces, and whether it folds the skin.

    python -m model.evaluation.expression_fidelity [--model weights/imhead.npz] [--heads 3] [--out PATH]

For each of the 53 ARKit-named expressions at full strength, on ICT heads (the first --heads training
heads with their learned codes, and as many held-out heads with codes fitted to 10,000 points on their
neutral), the skin's neutral vertices are moved by the model's inverse warp (what Bake Expressions
writes as shape keys) and compared with ICT's own expressed vertices where ICT moves them more than 1 mm:

- reach: the least-squares scale of the model's displacements onto ICT's (1: as far as ICT moves them;
  0.3: a blink that closes a third of the lid's travel);
- error: the mean distance (mm) of the model's expressed vertices to ICT's;
- folded: the share of all skin vertices at which the warp's Jacobian determinant is not positive (the
  warp folds the skin there: it is not a bijection).

Prints a Markdown table (one row per expression, sorted by ICT's largest move) and a summary; --out
writes it, and the numbers as JSON beside it.
"""
import argparse
import json
from pathlib import Path

import numpy as np

from ..runtime import HeadModel
from ..runtime.expressions import inverse_warp, mesh_edges, warp_jacobian
from ..runtime.fit import fit
from ..runtime.frame import MM, model_to_mm
from ..data.heads import SKIN, HeadData
from .evaluate import evaluation_heads, scan_points

MOVING_MM = 1.0


def ict_heads(model, n_heads):
    """[(source, code, identity weights)]: the first n training ICT heads with their learned codes, and n
    held-out ones with codes fitted to their neutral."""
    heads = evaluation_heads(model, n_heads, n_train=n_heads)
    chosen = [("training", model.codes[row], identity) for row, identity, _ in heads["training"]
              if isinstance(identity, np.ndarray)]
    for i, (identity, head) in enumerate(heads["ict"]):
        points, _ = scan_points(head, 10000, seed=i)
        chosen.append(("held-out", fit(model, points, neutral=True, seed=i).identity, identity))
    return chosen


def measure(model, code, identity, data):
    """{expression: {"truth_max_mm", "reach", "error_mm", "folded"}} for one ICT head: its skin's vertices
    (above the neck cut, where the model was trained with one)."""
    names = model.expression_names
    neutral = data.vertices(identity)
    skin_faces = data.faces[data.face_component == SKIN]
    skin = np.unique(skin_faces)
    if data.flat_neck_cut:
        point, axis = data.neck_cut_plane(neutral)
        skin = skin[(neutral[skin] - point) @ axis > 0]
    remap = np.full(len(neutral), -1)
    remap[skin] = np.arange(len(skin))
    faces = remap[skin_faces][(remap[skin_faces] >= 0).all(axis=1)]
    vertices = neutral[skin]
    solved = inverse_warp(model, code, vertices, mesh_edges(faces), np.eye(len(names), dtype=np.float32))
    rows = {}
    for k, name in enumerate(names):
        weights = np.eye(len(names), dtype=np.float32)[k]
        truth = data.vertices(identity, weights)[skin] - vertices
        predicted = solved.positions[k] - vertices
        moving = np.linalg.norm(truth, axis=1) > MOVING_MM * MM
        determinant = np.linalg.det(warp_jacobian(model, code, weights, solved.positions[k]))
        rows[name] = {
            "truth_max_mm": float(model_to_mm(np.linalg.norm(truth, axis=1).max())),
            "reach": float((predicted[moving] * truth[moving]).sum() / (truth[moving] ** 2).sum())
            if moving.any() else float("nan"),
            "error_mm": float(model_to_mm(np.linalg.norm(predicted[moving] - truth[moving], axis=1).mean()))
            if moving.any() else float("nan"),
            "folded": float((determinant <= 0).mean())}
    return rows


def fidelity(model, n_heads, progress=print):
    """{"training": [per-head rows], "held-out": [...]} (rows as measure() gives them)."""
    data = HeadData(flat_neck_cut=bool(model.training.get("config", {}).get("data", {}).get("flat_neck_cut")))
    report = {"training": [], "held-out": []}
    for source, code, identity in ict_heads(model, n_heads):
        report[source].append(measure(model, code, identity, data))
        progress(f"{source} head {len(report[source])} measured")
    return report


def markdown(report, model):
    def mean(source, name, key):
        return float(np.nanmean([head[name][key] for head in report[source]]))

    names = sorted(model.expression_names, key=lambda n: -mean("training", n, "truth_max_mm"))
    lines = [f"Model {model.hash[:12]} ({model.path}); ICT heads: {len(report['training'])} training (learned codes), "
             f"{len(report['held-out'])} held-out (fitted codes); each expression at 1.0; vertices ICT moves "
             f"over {MOVING_MM:g} mm.", "",
             "| expression | ICT's largest move (mm) | reach, training | error (mm), training | reach, held-out "
             "| error (mm), held-out | folded skin, held-out |", "|---|---|---|---|---|---|---|"]
    for name in names:
        lines.append(f"| {name} | {mean('training', name, 'truth_max_mm'):.1f} | "
                     f"{mean('training', name, 'reach'):.2f} | {mean('training', name, 'error_mm'):.2f} | "
                     f"{mean('held-out', name, 'reach'):.2f} | {mean('held-out', name, 'error_mm'):.2f} | "
                     f"{100 * mean('held-out', name, 'folded'):.2f} % |")
    reach = [mean("held-out", name, "reach") for name in names]
    folded = [mean("held-out", name, "folded") for name in names]
    lines += ["", f"Held-out: median reach {np.nanmedian(reach):.2f} (lowest {np.nanmin(reach):.2f}, "
              f"{names[int(np.nanargmin(reach))]}); skin folded by any expression: at most "
              f"{100 * max(folded):.2f} % ({names[int(np.argmax(folded))]})."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="weights/imhead.npz")
    parser.add_argument("--heads", type=int, default=3, help="training heads, and as many held-out heads")
    parser.add_argument("--out", help="write <out>.md and <out>.json")
    args = parser.parse_args(argv)
    model = HeadModel.load(args.model)
    report = fidelity(model, args.heads)
    table = markdown(report, model)
    print(table)
    if args.out:
        out = Path(args.out)
        out.with_suffix(".md").write_text(table)
        out.with_suffix(".json").write_text(json.dumps({"model_hash": model.hash, **report}, indent=1))
    return report


if __name__ == "__main__":
    main()
