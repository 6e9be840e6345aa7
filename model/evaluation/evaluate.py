"""Evaluate a model file the way the paper does, on held-out heads (identities never trained on).

    python -m model.evaluation.evaluate --model weights/imhead.npz --out docs/evaluation

Held-out heads of both sources: ICT adults (with the neck the model was trained on: ICT's own, or
the flat neck cut of the all-ages data set) and Anny people of every age (always the flat cut;
their held-out stream takes turns by age band, so a third are children under 12). Each source,
and Anny's children alone, has its own rows beside the mean head's baseline on the same heads.

Writes <out>.md (Markdown tables), <out>.json (every number) and <out>-noise.png (error against noise;
not with --robustness-heads 0, which leaves the robustness rows out: a quick look at the held-out rows).
Every fitted head is fitted by model.runtime.fit from surface points given in metres (as a scan in a Blender
scene would be), meshed at --resolution and compared with its true surface by model.evaluation.metrics.
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from ..data.build_dataset import ANNY, ICT, accepted_heads, held_out_heads, test_identities, training_identities
from ..data.heads import HeadData
from ..data.samples import face_normals, sample_outer_surface, surface_points
from ..runtime import HeadModel
from ..runtime.fit import fit
from ..runtime.frame import MODEL_UNIT_M
from .metrics import compare_surfaces

NOISE_MM = (0.0, 0.5, 1.0, 2.0, 4.0)
FACE_REGION_Y = -0.1  # model units: 2 cm in front of the head's centre
METRICS = ("chamfer_mm", "normal_consistency", "f_score_1mm", "f_score_5mm")


def scan_points(head, n, seed, noise_mm=0.0, front_only=False):
    """Points (metres, model axes) and normals on a true head, as a scanner would give them."""
    rng = np.random.default_rng(seed)
    face, bary = sample_outer_surface(head, n * (3 if front_only else 1), rng)
    points = surface_points(head.vertices, head.faces, face, bary)
    normals = face_normals(head.vertices, head.faces, face)
    if front_only:  # one structured-light view from the front (-Y): surfaces facing the camera
        keep = np.flatnonzero(normals[:, 1] < -0.2)[:n]
        points, normals = points[keep], normals[keep]
    points = points * MODEL_UNIT_M + rng.normal(0.0, noise_mm / 1000.0, points.shape)
    return points, normals


def rotation_about_z_and_x(degrees_z, degrees_x):
    a, b = np.radians(degrees_z), np.radians(degrees_x)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rz @ rx


def front_faces(vertices, faces):
    """The faces in front of the ears (the face region a frontal scan sees), model frame."""
    return faces[vertices[faces].mean(1)[:, 1] < FACE_REGION_Y]


def fitted_mesh(model, points, normals, resolution, seed, quality):
    """Fit, mesh, and bring the mesh back to the coordinates the points were given in."""
    result = fit(model, points, normals, quality=quality, seed=seed, neutral=True)
    mesh = result.to_input(model.extract_mesh(result.identity, resolution=resolution))
    return mesh, result


def mean_row(rows):
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if isinstance(rows[0][k], (int, float))}


CHILD_AGE_YEARS = 12.0


def evaluation_heads(model, n_heads, anny_heads=0, n_train=None):
    """The true heads evaluate() compares with, as the model was trained (its config's data settings).

    Returns {"ict": [(weights (100,), Head)], "anny": [(AnnyIdentity, Head)], "training": [(row, identity,
    Head)]}: the held-out ICT and Anny heads (identities of the held-out streams, never trained on), and
    the first n_train (default min(n_heads, 5)) training heads of each source with the row of the model's
    codes they were trained as (the data set's rows: its ICT heads, then its Anny heads).
    """
    data_settings = model.training.get("config", {}).get("data", {})
    flat_neck_cut = bool(data_settings.get("flat_neck_cut", False))
    seed = data_settings.get("seed", 0)
    n_train = min(n_heads, 5) if n_train is None else n_train
    data = HeadData(flat_neck_cut=flat_neck_cut)
    heads = {"anny": []}
    if flat_neck_cut:
        heads["ict"] = held_out_heads(ICT, n_heads, ict_data=data)
        heads["training"] = [(i, identity, head) for i, (identity, head)
                             in enumerate(accepted_heads(ICT, n_train, seed, ict_data=data))]
    else:
        heads["ict"] = [(w, data.head(w)) for w in test_identities(n_heads)]
        heads["training"] = [(i, w, data.head(w))
                             for i, w in enumerate(training_identities(model.codes.shape[0], seed)[:n_train])]
    if anny_heads or (flat_neck_cut and data_settings.get("anny_heads", 0)):
        from ..data.anny_heads import AnnyHeadData
        anny = AnnyHeadData()
        if anny_heads:
            heads["anny"] = held_out_heads(ANNY, anny_heads, anny_data=anny)
        if flat_neck_cut and data_settings.get("anny_heads", 0):
            n_ict = data_settings.get("heads", 0)
            heads["training"] += [(n_ict + j, identity, head) for j, (identity, head) in enumerate(
                accepted_heads(ANNY, min(n_train, data_settings["anny_heads"]), seed, anny_data=anny))]
    return heads


def evaluate(model, n_heads, resolution, n_points, quality, robustness_heads, progress=print, anny_heads=15):
    """The report (a dict of rows of metrics, see main()); robustness_heads=0 leaves out the robustness
    rows (noise, front-only scans, millimetres rotated and shifted)."""
    data_settings = model.training.get("config", {}).get("data", {})
    flat_neck_cut = bool(data_settings.get("flat_neck_cut", False))
    heads = evaluation_heads(model, n_heads, anny_heads)
    truths = [head for _, head in heads["ict"]]
    report = {"settings": {"held_out_heads": n_heads, "anny_held_out_heads": anny_heads, "resolution": resolution,
                           "points": n_points, "quality": quality, "robustness_heads": robustness_heads,
                           "model_hash": model.hash, "threads": torch.get_num_threads(),
                           "trained_on_flat_neck_cut": flat_neck_cut,
                           "trained_on_anny_heads": int(data_settings.get("anny_heads", 0))}}

    def compare(mesh_vertices_m, faces, truth):
        return compare_surfaces(mesh_vertices_m / MODEL_UNIT_M, faces, truth.vertices, truth.faces)

    mean_mesh = model.extract_mesh(model.mean_identity(), resolution=resolution)
    report["mean_head"] = [compare_surfaces(mean_mesh.vertices, mean_mesh.faces, t.vertices, t.faces)
                           for t in truths]
    fits = []
    for i, truth in enumerate(truths):
        points, normals = scan_points(truth, n_points, seed=i)
        mesh, result = fitted_mesh(model, points, None, resolution, i, quality)
        fits.append({**compare(mesh.vertices, mesh.faces, truth), "fit_seconds": result.seconds})
        progress(f"held-out head {i}: {fits[-1]}")
    report["held_out_fit"] = fits

    if heads["anny"]:
        people = heads["anny"]
        report["anny_ages"] = [identity.age_years for identity, _ in people]
        report["anny_mean_head"] = [compare_surfaces(mean_mesh.vertices, mean_mesh.faces, t.vertices, t.faces)
                                    for _, t in people]
        report["anny_held_out_fit"] = []
        for i, (identity, truth) in enumerate(people):
            points, _ = scan_points(truth, n_points, seed=i)
            mesh, result = fitted_mesh(model, points, None, resolution, i, quality)
            report["anny_held_out_fit"].append({**compare(mesh.vertices, mesh.faces, truth),
                                                "fit_seconds": result.seconds, "age_years": identity.age_years})
            progress(f"held-out Anny head {i} ({identity.age_years:.0f} years): {report['anny_held_out_fit'][-1]}")

    report["training_reconstruction"] = []
    for row, _, truth in heads["training"]:
        mesh = model.extract_mesh(model.codes[row], resolution=resolution)
        report["training_reconstruction"].append(compare_surfaces(mesh.vertices, mesh.faces,
                                                                  truth.vertices, truth.faces))

    report["noise"], report["front_only"], report["millimetres_rotated_shifted"] = {}, [], []
    if not robustness_heads:
        return report
    for sigma in NOISE_MM:
        rows = []
        for i, truth in enumerate(truths[:robustness_heads]):
            points, _ = scan_points(truth, n_points, seed=100 + i, noise_mm=sigma)
            mesh, _ = fitted_mesh(model, points, None, resolution, i, quality)
            rows.append(compare(mesh.vertices, mesh.faces, truth))
        report["noise"][f"{sigma:g}"] = rows
        progress(f"noise {sigma} mm: {mean_row(rows)}")

    rows = []
    for i, truth in enumerate(truths[:robustness_heads]):
        points, normals = scan_points(truth, n_points, seed=200 + i, front_only=True)
        mesh, _ = fitted_mesh(model, points, normals, resolution, i, quality)
        vertices = mesh.vertices / MODEL_UNIT_M
        face_region = compare_surfaces(vertices, front_faces(vertices, mesh.faces), truth.vertices,
                                       front_faces(truth.vertices, truth.faces))
        whole = compare(mesh.vertices, mesh.faces, truth)
        rows.append({**{f"face_{k}": v for k, v in face_region.items()}, **whole})
    report["front_only"] = rows
    progress(f"front only: {mean_row(rows)}")

    rows = []
    for i, truth in enumerate(truths[:robustness_heads]):
        points, _ = scan_points(truth, n_points, seed=300 + i)
        rotation = rotation_about_z_and_x(30.0 - 12 * i, 10.0 + 5 * i)
        shift = np.array([0.35, -0.2, 1.1]) + 0.05 * i
        moved_mm = (points @ rotation.T + shift) * 1000.0
        mesh, _ = fitted_mesh(model, moved_mm, None, resolution, i, quality)
        back = ((mesh.vertices / 1000.0) - shift) @ rotation  # undo the placement to compare
        rows.append(compare(back, mesh.faces, truth))
    report["millimetres_rotated_shifted"] = rows
    progress(f"mm, rotated, shifted: {mean_row(rows)}")
    return report


def markdown(report):
    s = report["settings"]
    lines = [f"Held-out ICT identities: {s['held_out_heads']} (robustness rows: first {s['robustness_heads']}); "
             f"held-out Anny people: {s.get('anny_held_out_heads', 0)}; "
             f"fit from {s['points']} surface points ({s['quality']} quality), meshed at {s['resolution']}^3; "
             f"metrics on 100,000 samples per surface, point-to-surface, millimetres. Model {s['model_hash'][:12]}.",
             "", "| case | Chamfer (mm) ↓ | normal consistency ↑ | F@1mm ↑ | F@5mm ↑ |", "|---|---|---|---|---|"]

    def row(name, rows):
        m = mean_row(rows)
        lines.append(f"| {name} | {m['chamfer_mm']:.3f} | {m['normal_consistency']:.4f} | "
                     f"{m['f_score_1mm']:.3f} | {m['f_score_5mm']:.4f} |")
    row("ICT: mean head (baseline)", report["mean_head"])
    row("ICT: held-out fit, clean", report["held_out_fit"])
    if report.get("anny_held_out_fit"):
        children = [i for i, age in enumerate(report["anny_ages"]) if age < CHILD_AGE_YEARS]
        row("Anny, all ages: mean head (baseline)", report["anny_mean_head"])
        row("Anny, all ages: held-out fit, clean", report["anny_held_out_fit"])
        if children:
            row(f"Anny, children under 12 ({len(children)}): mean head (baseline)",
                [report["anny_mean_head"][i] for i in children])
            row(f"Anny, children under 12 ({len(children)}): held-out fit, clean",
                [report["anny_held_out_fit"][i] for i in children])
    row("training heads, learned codes", report["training_reconstruction"])
    for sigma, rows in report["noise"].items():
        row(f"held-out fit, noise σ = {sigma} mm", rows)
    if report["front_only"]:
        row("held-out fit, front-only partial scan (whole head)", report["front_only"])
        row("held-out fit, front-only partial scan (face region)",
            [{k[len("face_"):]: v for k, v in r.items() if k.startswith("face_")} for r in report["front_only"]])
    if report["millimetres_rotated_shifted"]:
        row("held-out fit, millimetres, rotated ≤ 30°, shifted", report["millimetres_rotated_shifted"])
    fit_seconds = np.mean([r["fit_seconds"] for r in report["held_out_fit"]])
    lines += ["", f"Mean fitting time: {fit_seconds:.1f} s per head ({s['threads']} CPU thread(s))."]
    return "\n".join(lines) + "\n"


def noise_plot(report, path):
    """Chamfer distance against noise sigma, as a small PNG (drawn with Pillow)."""
    from PIL import Image, ImageDraw
    sigmas = [float(s) for s in report["noise"]]
    chamfer = [mean_row(rows)["chamfer_mm"] for rows in report["noise"].values()]
    width, height, margin = 640, 400, 60
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    top = max(max(chamfer) * 1.2, 1.0)

    def xy(s, c):
        return (margin + s / max(sigmas) * (width - 2 * margin), height - margin - c / top * (height - 2 * margin))
    draw.line([xy(0, 0), xy(max(sigmas), 0)], fill="black")
    draw.line([xy(0, 0), xy(0, top)], fill="black")
    for s in sigmas:
        draw.text((xy(s, 0)[0] - 8, height - margin + 8), f"{s:g}", fill="black")
    for k in range(int(top) + 1):
        draw.text((margin - 30, xy(0, k)[1] - 6), f"{k}", fill="black")
    draw.line([xy(s, c) for s, c in zip(sigmas, chamfer)], fill=(200, 40, 40), width=3)
    for s, c in zip(sigmas, chamfer):
        x, y = xy(s, c)
        draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=(200, 40, 40))
        draw.text((x + 6, y - 16), f"{c:.2f}", fill="black")
    draw.text((width // 2 - 90, height - 25), "noise sigma (mm)", fill="black")
    draw.text((10, 10), "Chamfer distance (mm) of held-out fits against scan noise", fill="black")
    image.save(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="weights/imhead.npz")
    parser.add_argument("--out", default="docs/evaluation")
    parser.add_argument("--heads", type=int, default=10)
    parser.add_argument("--anny-heads", type=int, default=15, help="held-out Anny heads (a third of them children)")
    parser.add_argument("--robustness-heads", type=int, default=5,
                        help="held-out ICT heads of the robustness rows (noise, front-only, mm rotated and "
                             "shifted); 0 leaves those rows (and the noise plot) out")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--points", type=int, default=10000)
    parser.add_argument("--quality", default="best")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    report = evaluate(HeadModel.load(args.model), args.heads, args.resolution, args.points, args.quality,
                      args.robustness_heads, anny_heads=args.anny_heads)
    report["settings"]["seconds"] = round(time.perf_counter() - started, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    out.with_suffix(".md").write_text(markdown(report))
    if report["noise"]:
        noise_plot(report, out.with_name(out.name + "-noise.png"))
    print(markdown(report))


if __name__ == "__main__":
    main()
