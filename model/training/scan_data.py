"""A training data set of your own scans: a folder of head meshes brought into the model frame.

    python -m imhead build-scan-data --scans scans/ --out scans.npz
    python -m imhead train --config configs/finetune.json --init weights/imhead.npz --data scans.npz --out mine.npz

Input (docs/own-scans.md): one neutral head per mesh file, .obj, .ply, .glb or .gltf (by the extension;
a glTF's meshes are placed by its node transforms), in any unit and placement, with or without holes or
an open neck, cropped to the head and neck like the fit needs. Landmark files are not read and
expressions are not supported: the keypoints come from the fit, and every scan is fitted neutral.

Each scan is fitted by the runtime fit (model/runtime/fit.py) with the model it is built for, on
area-uniform samples of its surface and their normals. The fit's similarity transform without its scale
(the rotation, the translation and the unit: the head keeps its real size) takes the scan into the model
frame. There it is sampled like the synthetic heads (model/data/samples.py): surface points and normals,
near points, free points, their signed distance. Scans have holes, so the sign of the distance and
which surface samples are hidden inside another part of the scan (the back of an eyeball) come from the
generalized winding number (libigl's fast winding number), which closes the holes smoothly; it needs
outward faces, so each patch of the scan is first wound consistently and turned outward (outward_faces). The keypoints are the landmark network's on the fitted
code, scaled like the head. A scan the fit does not explain (FitResult.require_explained) is left out
and reported.

The data set file has the arrays model.training.train reads, as model/data/build_dataset.py writes them
(H scans; model frame, float32): surface, normals (H, S, 3), near (H, M, 3), near_sdf (H, M), free
(H, K, 3), free_sdf (H, K), keypoints (H, 39, 3), the exp_* arrays empty (no expressions),
expression_names, keypoint_names, seed; and of the fits: codes (H, code_dim), each scan's fitted code,
where fine-tuning starts its code; to_model (H, 4, 4) float64, scan coordinates -> model frame;
fit_scale (H,), the fit's own scale, taken out of to_model; residual_mm (H,); scan_names (H,) str,
units (H,) str; model_hash () str, the model the scans were fitted with.
"""
import argparse
import time
from pathlib import Path

import igl
import numpy as np
import trimesh

from ..data.samples import free_points, near_points, _signed_distance_to
from ..runtime import HeadModel, ImHeadError
from ..runtime import fit as fitting
from ..runtime.frame import MODEL_UNIT_M, MM
from ..runtime.progress import progress_bar

MESH_SUFFIXES = (".obj", ".ply", ".glb", ".gltf")
# Points whose winding number is below this are outside the scan. A surface sample is hidden (the back of
# an eyeball, the skin behind it) when it is inside the scan on both sides, HIDDEN_STEP ahead and behind.
# (The winding number on the sample itself says nothing: on its own sheet libigl's comes out 0 or 1.)
OUTSIDE_WINDING = 0.5
# Small against a head's thinnest parts (an ear, about 5 mm), large against float rounding.
HIDDEN_STEP = 0.5 * MM


def read_mesh(path):
    """Vertices (V, 3) float64 and triangles (F, 3) int64 of a mesh file, in its own coordinates."""
    try:
        mesh = trimesh.load(path, force="mesh", process=False)
    except Exception as error:  # trimesh raises many kinds, all meaning an unreadable file
        raise ImHeadError(f"{path}: cannot read the mesh: {error}") from error
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise ImHeadError(f"{path}: no triangles (a scan for training must be a mesh, not a point cloud)")
    return np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)


def outward_faces(vertices, faces):
    """The faces wound outward, whatever their winding in the file: each connected patch wound
    consistently (libigl's bfs_orient), then turned over where it encloses a negative volume. The
    winding number, and so every sign of the data set, is only right for outward faces."""
    faces, patch = igl.bfs_orient(faces)
    corners = vertices[faces]
    # The signed volume of the cone from the centroid over each face: its sum is the enclosed volume,
    # close to it for a patch with holes.
    cone = np.einsum("ij,ij->i", corners[:, 0] - vertices.mean(0), np.cross(corners[:, 1] - corners[:, 0],
                                                                             corners[:, 2] - corners[:, 0]))
    inward = np.bincount(patch, cone) < 0
    return np.where(inward[patch][:, None], faces[:, ::-1], faces)


def oriented_surface_samples(vertices, faces, n, rng):
    """n area-uniform points (n, 3) on the outer surface of a mesh of outward faces (outward_faces) and
    their unit normals (n, 3); samples hidden inside the scan are left out (OUTSIDE_WINDING)."""
    corners = vertices[faces]
    areas = 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)
    kept_points, kept_normals, n_kept = [], [], 0
    while n_kept < n:
        count = int((n - n_kept) * 1.1) + 64
        face = rng.choice(len(faces), count, p=areas / areas.sum())
        r1, r2 = rng.random(count), rng.random(count)
        s = np.sqrt(r1)
        points = np.einsum("nk,nkd->nd", np.stack([1 - s, s * (1 - r2), s * r2], 1), corners[face])
        normals = np.cross(corners[face, 1] - corners[face, 0], corners[face, 2] - corners[face, 0])
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-300)
        ahead, behind = np.split(igl.fast_winding_number(
            vertices, faces, np.concatenate([points + HIDDEN_STEP * normals, points - HIDDEN_STEP * normals])), 2)
        outer = np.minimum(ahead, behind) < OUTSIDE_WINDING
        kept_points.append(points[outer])
        kept_normals.append(normals[outer])
        n_kept += int(outer.sum())
    return np.concatenate(kept_points)[:n], np.concatenate(kept_normals)[:n]


def model_frame_transform(result):
    """(4, 4): scan coordinates -> model frame, the fit's transform without its own scale (scaled about
    the model frame's origin), and that scale."""
    unit_scale = fitting.UNITS[result.unit] / MODEL_UNIT_M
    fit_scale = float(np.cbrt(np.linalg.det(result.transform[:3, :3]))) / unit_scale
    transform = result.transform.copy()
    transform[:3] /= fit_scale
    return transform, fit_scale


def scan_samples(model, path, n_surface, n_near, n_free, rng, *, unit=None, steps=None, quality="fast",
                 n_points=10000, seed=0, progress=None):
    """One scan fitted and sampled in the model frame: a dict of the data set's arrays for it (one row
    each); PoorFitError when the fit does not explain the scan."""
    vertices, faces = read_mesh(path)
    faces = outward_faces(vertices, faces)
    points, normals = oriented_surface_samples(vertices, faces, n_surface + n_near, rng)
    result = fitting.fit(model, points, normals, neutral=True, quality=quality, steps=steps,
                         n_points=n_points, seed=seed, unit=unit, progress=progress).require_explained()
    transform, fit_scale = model_frame_transform(result)
    rotation = transform[:3, :3] / np.cbrt(np.linalg.det(transform[:3, :3]))
    in_model = vertices @ transform[:3, :3].T + transform[:3, 3]
    surface = (points @ transform[:3, :3].T + transform[:3, 3]).astype(np.float32)
    near = near_points(surface[n_surface:], rng)
    free = free_points(n_free, rng)
    # The synthetic heads' signed distance: libigl's, signed by the fast winding number (samples.py).
    sdf = _signed_distance_to(np.concatenate([near, free]).astype(np.float64), in_model, faces).astype(np.float32)
    return {"surface": surface[:n_surface], "normals": (normals[:n_surface] @ rotation.T).astype(np.float32),
            "near": near, "near_sdf": sdf[:n_near], "free": free, "free_sdf": sdf[n_near:],
            "keypoints": (model.keypoints(result.identity) / fit_scale).astype(np.float32),
            "codes": result.identity.astype(np.float32), "to_model": transform,
            "fit_scale": np.float32(fit_scale), "residual_mm": np.float32(result.residual_mm), "units": result.unit,
            "scan_names": Path(path).name}


def no_expressions(model, n_surface, n_near):
    """The data set's expression arrays, empty: what the trainer reads when a data set has none."""
    return {"exp_head": np.zeros(0, np.int32), "exp_weights": np.zeros((0, len(model.expression_names)), np.float32),
            "exp_canonical": np.zeros((0, n_surface, 3), np.float32),
            "exp_observed": np.zeros((0, n_surface, 3), np.float32),
            "exp_near": np.zeros((0, n_near, 3), np.float32), "exp_near_sdf": np.zeros((0, n_near), np.float32),
            "expression_names": np.array(model.expression_names)}


def build_scan_dataset(folder, out, model, *, n_surface=16384, n_near=16384, n_free=4096, seed=0, unit=None,
                       steps=None, quality="best", n_points=10000, progress=None):
    """Fits and samples every mesh in `folder` (MESH_SUFFIXES) and writes the data set to `out` (npz).
    Returns the summary: a row per scan (fitted or the error why not). ImHeadError when no scan is fitted.
    progress(fraction, message)."""
    scans = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in MESH_SUFFIXES and p.is_file())
    if not scans:
        raise ImHeadError(f"{folder}: no head meshes ({', '.join(MESH_SUFFIXES)} files)")
    report = progress or (lambda fraction, message: None)
    samples, rows = [], []
    for index, scan in enumerate(scans):
        # Each scan's samples come from its own stream: adding a scan leaves the others' as they were.
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
        try:
            row = scan_samples(model, scan, n_surface, n_near, n_free, rng, unit=unit, steps=steps,
                               quality=quality, n_points=n_points, seed=seed,
                               progress=lambda fraction, message, index=index, scan=scan:
                               report((index + fraction) / len(scans), f"{scan.name}: {message}"))
        except ImHeadError as error:
            rows.append({"scan": scan.name, "fitted": False, "error": str(error)})
            continue
        samples.append(row)
        rows.append({"scan": scan.name, "fitted": True, "unit": row["units"],
                     "residual_mm": round(float(row["residual_mm"]), 3),
                     "fit_scale": round(float(row["fit_scale"]), 4)})
    if not samples:
        raise ImHeadError(f"{folder}: no scan could be fitted: "
                          + "; ".join(f"{row['scan']}: {row['error']}" for row in rows))
    data = {key: np.stack([row[key] for row in samples]) for key in samples[0]}
    data.update(no_expressions(model, n_surface, n_near), keypoint_names=np.array(model.keypoint_names),
                seed=np.int64(seed), model_hash=np.array(model.hash))
    np.savez(out, **data)
    return {"scans": rows, "fitted": len(samples), "failed": len(rows) - len(samples)}


def main(argv=None):
    parser = argparse.ArgumentParser(description="Build a training data set from a folder of head meshes.")
    parser.add_argument("--scans", required=True, help=f"a folder of head meshes ({', '.join(MESH_SUFFIXES)})")
    parser.add_argument("--out", required=True, help="the data set to write (.npz)")
    parser.add_argument("--model", default="weights/imhead.npz", help="the model that fits them (default: the "
                        "bundled one); fine-tune this model on the data set")
    parser.add_argument("--unit", choices=sorted(fitting.UNITS), help="the scans' unit (default: guessed per scan)")
    parser.add_argument("--quality", choices=sorted(fitting.QUALITY_STEPS), default="best", help="the fit's")
    parser.add_argument("--steps", type=int, help="the fit's refinement steps (overrides --quality)")
    parser.add_argument("--points", type=int, default=10000, help="surface samples the fit uses")
    parser.add_argument("--surface", type=int, default=16384)
    parser.add_argument("--near", type=int, default=16384)
    parser.add_argument("--free", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    bar = progress_bar(label="Building")
    summary = build_scan_dataset(args.scans, args.out, HeadModel.load(args.model), n_surface=args.surface,
                                 n_near=args.near, n_free=args.free, seed=args.seed, unit=args.unit,
                                 quality=args.quality, steps=args.steps, n_points=args.points, progress=bar)
    for row in summary["scans"]:
        print(f"{row['scan']}: unit {row['unit']}, residual {row['residual_mm']:.3f} mm, scale {row['fit_scale']}"
              if row["fitted"] else f"{row['scan']}: left out: {row['error']}")
    print(f"{args.out}: {summary['fitted']} of {len(summary['scans'])} scans in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
