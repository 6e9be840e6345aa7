"""Derive the artist topology that ships in the extension from the vendored ICT Face Model data.

    python scripts/make_artist_topology.py

Writes model/runtime/artist_topology/ict_skin.npz (read by model/runtime/artist_mesh.py): the ICT
skin (parts face, head_neck, mouth_socket, eye_socket_l/r: vertices 0-14,061 of the 26,719) as
- `vertices` (14062, 3) float32: the neutral template, model frame (model/runtime/frame.py);
- `quads` (14034, 4) int32: its polygons (every skin polygon is a quad), ICT's winding (outward);
- `quad_uv` (14034, 4) int32: each quad corner's index into `uv`;
- `uv` (14629, 2) float32: ICT's UDIM coordinates (tiles 1001-1002), seams split;
- `part_starts` (5,) int32 and `part_names`: where each skin part's vertices begin.
and model/runtime/artist_topology/ict_parts.npz: the parts beyond the skin that the artist mesh
places by the same keypoints (artist_mesh.PARTS: eyeballs, teeth, gums and tongue, lashes), each as
`<part>_vertices` (V, 3) float32 neutral template, model frame; `<part>_faces` (F, 4) int32, ICT's
polygons (quads, and triangles whose fourth corner is -1) into the part's own vertices; `<part>_face_uv`
(F, 4) int32 into `<part>_uv` (U, 2) float32, UDIM (-1 where the face has no fourth corner);
`<part>_anchors` (V, artist_mesh.ANCHORS) int16, the skin vertices nearest each vertex on the template,
and `<part>_anchor_weights` (V, ANCHORS) float16, their weights exp(-(d^2 - d_nearest^2) / (2 sigma^2))
(sigma artist_mesh.ANCHOR_SIGMA), summing to 1; `<part>_expressions` (E, V, 3) float16, the part's
vertices' offsets at weight 1 (model units, model frame) of the `expression_names` (E,), ICT's 53
ARKit-named expressions: ICT's own shapes of the part (the lower teeth and tongue open with jawOpen, the
lashes close with eyeBlink; the eyeballs' are zero: artist_mesh turns them). ICT's lacrimal, eye-blend and
eye-occlusion shells (render helpers of its eyes) are left out. The ICT licence (MIT) is copied beside
them.
"""
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.data.data_paths import ICT_SOURCE, data_file, ict_model_path  # noqa: E402
from model.data.heads import N_EXPRESSION, SKIN_PARTS  # noqa: E402
from model.runtime.artist_mesh import (ANCHOR_SIGMA, ANCHORS, PARTS, PARTS_PATH, TOPOLOGY_DIR,  # noqa: E402
                                       TOPOLOGY_PATH)
from model.runtime.frame import MM, MODEL_UNIT_M, ict_to_model, ict_vectors_to_model  # noqa: E402


def skin_topology():
    """The arrays of ict_skin.npz, from the ICT model and topology files."""
    with np.load(ict_model_path()) as ict:
        names = [str(n) for n in ict["part_names"]]
        ranges = ict["part_ranges"]
        skin_ranges = [ranges[names.index(part)] for part in SKIN_PARTS]
        n_skin = int(skin_ranges[-1][1]) + 1
        vertices = ict_to_model(ict["neutral"][:n_skin])
    with np.load(data_file(ICT_SOURCE, "ict_topology.npz")) as topology:
        polygons, polygon_uv, uv = topology["polygons"], topology["polygon_uv"], topology["uv"]
    skin = ((polygons >= 0) & (polygons < n_skin)).all(1)
    quads, quad_uv = polygons[skin], polygon_uv[skin]
    used_uv, quad_uv = np.unique(quad_uv, return_inverse=True)
    return {
        "vertices": vertices.astype(np.float32),
        "quads": quads.astype(np.int32),
        "quad_uv": quad_uv.reshape(quads.shape).astype(np.int32),
        "uv": uv[used_uv].astype(np.float32),
        "part_starts": np.array([r[0] for r in skin_ranges], np.int32),
        "part_names": np.array(SKIN_PARTS),
    }


def skin_anchors(skin, points):
    """The ANCHORS skin vertices (indices into skin (S, 3)) nearest each of points (N, 3), nearest first,
    and their weights (N, ANCHORS). Exact float64 distances (no BLAS sums), so the result is the same on
    every machine."""
    # Only skin vertices near the part's box can be nearest (the box grown by 20 mm holds them all).
    low, high = points.min(0) - 20 * MM, points.max(0) + 20 * MM
    candidates = np.flatnonzero(((skin >= low) & (skin <= high)).all(1))
    anchors, squared = [], []
    for chunk in np.array_split(points, max(1, len(points) // 256)):
        distances = np.square(chunk[:, None, :] - skin[None, candidates, :]).sum(-1)
        order = np.lexsort((np.broadcast_to(candidates, distances.shape), distances))[:, :ANCHORS]
        anchors.append(candidates[order])
        squared.append(np.take_along_axis(distances, order, 1))
    squared = np.concatenate(squared)
    weights = np.exp(-(squared - squared[:, :1]) / (2 * ANCHOR_SIGMA ** 2))
    return np.concatenate(anchors).astype(np.int16), (weights / weights.sum(1, keepdims=True)).astype(np.float16)


def parts_topology():
    """The arrays of ict_parts.npz, from the ICT model and topology files."""
    with np.load(ict_model_path()) as ict:
        ranges = dict(zip([str(n) for n in ict["part_names"]], ict["part_ranges"].tolist()))
        neutral = ict["neutral"]
        skin = ict_to_model(neutral[:ranges[SKIN_PARTS[-1]][1] + 1]).astype(np.float64)
        expression_basis, expression_names = ict["exp_basis"][:N_EXPRESSION], ict["exp_names"][:N_EXPRESSION]
    with np.load(data_file(ICT_SOURCE, "ict_topology.npz")) as topology:
        polygons, polygon_uv, uv = topology["polygons"], topology["polygon_uv"], topology["uv"]
    arrays = {"expression_names": expression_names}
    for part in PARTS:
        first, last = ranges[part]
        corner = polygons >= 0  # a triangle's fourth corner is -1, in polygon_uv too
        inside = np.where(corner, (polygons >= first) & (polygons <= last), True).all(1)
        faces, face_uv = polygons[inside], polygon_uv[inside]
        used_uv, uv_index = np.unique(face_uv[corner[inside]], return_inverse=True)
        face_uv = np.full(face_uv.shape, -1, np.int32)
        face_uv[corner[inside]] = uv_index
        arrays[f"{part}_vertices"] = ict_to_model(neutral[first:last + 1]).astype(np.float32)
        arrays[f"{part}_anchors"], arrays[f"{part}_anchor_weights"] = skin_anchors(
            skin, arrays[f"{part}_vertices"].astype(np.float64))
        arrays[f"{part}_faces"] = np.where(corner[inside], faces - first, -1).astype(np.int32)
        arrays[f"{part}_face_uv"] = face_uv
        arrays[f"{part}_uv"] = uv[used_uv].astype(np.float32)
        shapes_cm = expression_basis[:, first:last + 1].astype(np.float32)
        arrays[f"{part}_expressions"] = (ict_vectors_to_model(shapes_cm) * (0.01 / MODEL_UNIT_M)).astype(np.float16)
    return arrays


def main():
    TOPOLOGY_DIR.mkdir(exist_ok=True)
    np.savez_compressed(TOPOLOGY_PATH, **skin_topology())
    np.savez_compressed(PARTS_PATH, **parts_topology())
    shutil.copyfile(data_file(ICT_SOURCE, "LICENSE"), TOPOLOGY_DIR / "ICT-FACE-MODEL-LICENSE.txt")
    for path in (TOPOLOGY_PATH, PARTS_PATH):
        print(f"{path} ({path.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
