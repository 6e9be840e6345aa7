"""Surface metrics of the paper's Table 1, point-to-surface as the spec defines them, in millimetres.

Each surface gets N area-uniform samples (fixed seed); every sample's distance is to the other
surface's triangles (its closest point), not to the other surface's samples.
"""
import igl
import numpy as np

from ..runtime.frame import model_to_mm

N_SAMPLES = 100_000
F_SCORE_MM = (1.0, 5.0)


def sample_surface(vertices, faces, n, seed):
    """n area-uniform points on a triangle mesh with their (unit) face normals."""
    corners = vertices[faces].astype(np.float64)
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    area = np.linalg.norm(cross, axis=1)
    rng = np.random.default_rng(seed)
    face = rng.choice(len(faces), size=n, p=area / area.sum())
    u, v = rng.random(n), rng.random(n)
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    c = corners[face]
    points = c[:, 0] + u[:, None] * (c[:, 1] - c[:, 0]) + v[:, None] * (c[:, 2] - c[:, 0])
    normals = cross[face] / np.maximum(area[face], 1e-30)[:, None]
    return points, normals


def distance_to_mesh(points, normals, vertices, faces):
    """Distance of each point to the mesh (model units) and |cos| between its normal and the nearest face's."""
    vertices = np.ascontiguousarray(vertices, np.float64)
    faces = np.ascontiguousarray(faces, np.int64)
    squared, face, _ = igl.point_mesh_squared_distance(np.ascontiguousarray(points), vertices, faces)
    c = vertices[faces[face]]
    face_normals = np.cross(c[:, 1] - c[:, 0], c[:, 2] - c[:, 0])
    face_normals /= np.maximum(np.linalg.norm(face_normals, axis=1, keepdims=True), 1e-30)
    return np.sqrt(squared), np.abs((normals * face_normals).sum(1))


def compare_surfaces(pred_vertices, pred_faces, true_vertices, true_faces, n_samples=N_SAMPLES, seed=0):
    """Chamfer (mm), normal consistency and F-scores of a predicted mesh against the truth (model frame)."""
    pred_points, pred_normals = sample_surface(pred_vertices, pred_faces, n_samples, seed)
    true_points, true_normals = sample_surface(true_vertices, true_faces, n_samples, seed + 1)
    to_true, cos_pred = distance_to_mesh(pred_points, pred_normals, true_vertices, true_faces)
    to_pred, cos_true = distance_to_mesh(true_points, true_normals, pred_vertices, pred_faces)
    to_true_mm, to_pred_mm = model_to_mm(to_true), model_to_mm(to_pred)
    result = {
        "chamfer_mm": 0.5 * (to_true_mm.mean() + to_pred_mm.mean()),
        "normal_consistency": 0.5 * (cos_pred.mean() + cos_true.mean()),
    }
    for tau in F_SCORE_MM:
        precision, recall = (to_true_mm < tau).mean(), (to_pred_mm < tau).mean()
        result[f"f_score_{tau:g}mm"] = 2 * precision * recall / max(precision + recall, 1e-12)
    return {k: float(v) for k, v in result.items()}
