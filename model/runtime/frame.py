"""The coordinate frames, and the one place where points move between them.

- ICT frame: the data set's own, centimetres, Y up, face toward +Z.
- Blender frame: metres, Z up, face toward -Y, relative to the head object's origin.
- Model frame: the Blender frame's axes, centred on the template head, in units of
  MODEL_UNIT_M, so that every head fits comfortably inside [-1, 1]^3.
- Anny frame: metres with the Blender frame's axes; each Anny head is first moved rigidly onto
  the ICT template's keypoints (model/data/anny_heads.py), then scaled like the Blender frame.

A head object's local coordinates are the model frame scaled by MODEL_UNIT_M: the object
origin is the model origin (the centre of the template head).
"""
import numpy as np

MODEL_UNIT_M = 0.2
MM = 0.001 / MODEL_UNIT_M  # one millimetre in model units
# Centre of the ICT neutral template's bounding box, in the ICT frame (cm).
TEMPLATE_CENTRE_ICT_CM = np.array([0.0, -2.40185, 1.92802], dtype=np.float64)


def ict_to_model(points_cm):
    """ICT points (cm, Y up, face +Z) to the model frame (Z up, face -Y)."""
    p = (np.asarray(points_cm, dtype=np.float64) - TEMPLATE_CENTRE_ICT_CM) * 0.01
    out = np.stack([p[..., 0], -p[..., 2], p[..., 1]], axis=-1) / MODEL_UNIT_M
    return out.astype(np.float32)


def ict_vectors_to_model(vectors):
    """Directions (normals) from the ICT frame to the model frame; lengths are kept."""
    v = np.asarray(vectors)
    return np.stack([v[..., 0], -v[..., 2], v[..., 1]], axis=-1).astype(np.float32)


def model_to_blender(points):
    """Model frame to the head object's local space (metres)."""
    return (np.asarray(points, dtype=np.float32) * MODEL_UNIT_M).astype(np.float32)


def blender_to_model(points_m):
    """The head object's local space (metres) to the model frame."""
    return (np.asarray(points_m, dtype=np.float32) / MODEL_UNIT_M).astype(np.float32)


def model_to_mm(distances):
    """Lengths in model units to millimetres."""
    return np.asarray(distances) * (MODEL_UNIT_M * 1000.0)


def model_to_file(points):
    """Model frame to the frame of the mesh files imHead writes: metres, Y up, face toward +Z (glTF's
    frame, and OBJ's as Blender and most tools import it: Blender's OBJ and glTF importers give back the
    head object's frame; for PLY choose Y up in Blender's importer)."""
    p = np.asarray(points, dtype=np.float32) * np.float32(MODEL_UNIT_M)
    return np.stack([p[..., 0], p[..., 2], -p[..., 1]], axis=-1)


def model_directions_to_file(vectors):
    """Directions (normals) from the model frame to the mesh files' frame (model_to_file); lengths are kept."""
    v = np.asarray(vectors, dtype=np.float32)
    return np.stack([v[..., 0], v[..., 2], -v[..., 1]], axis=-1)
