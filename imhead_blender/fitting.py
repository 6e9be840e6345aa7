"""Fitting heads to scans in the scene: the scan's points read out of Blender, the fit and its surface
computed without touching the scene (safe in a worker thread), and the fitted head added on the scan.

A fitted head is an ordinary imHead head (its identity in `Object.imhead`, editable afterwards), whose
mesh is the neutral face; a fitted expression becomes one exact shape key at value 1.
"""
import numpy as np
from mathutils import Matrix

from ..model import ImHeadError
from ..model.runtime import fit as model_fit
from ..model.runtime.frame import MODEL_UNIT_M
from .heads import add_head_object, write_state
from .meshes import head_surface, mesh_from_surface
from .parts import install_parts
from .shape_keys import bake_exact_expression

FITTED_EXPRESSION_KEY = "Fitted Expression"
# A fitted expression whose every value is below this is taken as neutral (no key).
EXPRESSION_THRESHOLD = 0.01


def scan_points(context, scan):
    """World-space vertices (N, 3) and vertex normals (N, 3), or None for a mesh without faces, of the
    evaluated (modifiers applied) mesh object `scan`; ImHeadError when it cannot be a head scan."""
    if scan is None:
        raise ImHeadError("select the scan to fit: a mesh or a point cloud imported as vertices")
    if scan.type != 'MESH':
        raise ImHeadError(f"{scan.name} is a {scan.type.lower()}, not a mesh: select a scanned mesh")
    evaluated = scan.evaluated_get(context.evaluated_depsgraph_get())
    mesh = evaluated.to_mesh()
    try:
        points = np.empty(3 * len(mesh.vertices), np.float32)
        mesh.vertices.foreach_get("co", points)
        normals = None
        if len(mesh.polygons):  # loose vertices have no meaningful normal
            normals = np.empty(3 * len(mesh.vertices), np.float32)
            mesh.vertices.foreach_get("normal", normals)
    finally:
        evaluated.to_mesh_clear()
    world = np.array(scan.matrix_world, np.float64)
    points = points.reshape(-1, 3).astype(np.float64) @ world[:3, :3].T + world[:3, 3]
    if normals is not None:
        normals = normals.reshape(-1, 3).astype(np.float64) @ np.linalg.inv(world[:3, :3])
    try:
        points, normals = model_fit.checked_points(points, normals)
        model_fit.guess_unit(points)  # a scan of no head's size fails here, before any fitting
    except ImHeadError as error:
        raise ImHeadError(f"{scan.name}: {error}") from error
    return points, normals


def fit_surface(model, points, normals, settings, progress=None):
    """The fit (model.runtime.fit.FitResult) and the fitted head's neutral surface (SurfaceMesh, model frame).

    settings: neutral, quality, steps (0 = as the quality says), n_points, topology, resolution. progress(fraction,
    message) may raise to stop. A fit that does not explain its scan is an ImHeadError (no head). Model
    code only: runs in a worker thread.
    """
    report = progress or (lambda fraction, message: None)
    # The fit takes most of the time; meshing the result the last tenth.
    result = model_fit.fit(model, points, normals, neutral=settings["neutral"], quality=settings["quality"],
                           steps=settings["steps"] or None, n_points=settings["n_points"],
                           progress=lambda fraction, message: report(0.9 * fraction, message)).require_explained()
    surface = head_surface(model, result.identity, settings["topology"], settings["resolution"],
                           progress=lambda fraction: report(0.9 + 0.1 * fraction, "Meshing the head"))
    if len(surface.faces) == 0:
        raise ImHeadError(f"the model in {model.path} gives no surface for the fitted head")
    return result, surface


def add_fitted_head(context, scan, model, result, surface, topology, resolution):
    """A new head object of `surface` placed on the scan (the fit's transform), selected and active."""
    head = add_head_object(context, mesh_from_surface(f"{scan.name} fit", surface))
    head.name = f"{scan.name} fit"
    install_parts(head, surface)
    # Head local = model frame * MODEL_UNIT_M; the fit maps world (the scan's points) to the model frame.
    to_model = np.diag([1 / MODEL_UNIT_M] * 3 + [1.0])
    head.matrix_world = Matrix((result.inverse_transform @ to_model).tolist())
    write_state(head, model.hash, result.identity,
                {"seed": 0, "variation": 0.0, "topology": topology, "resolution": resolution,
                 "fitted_to": scan.name})
    head.imhead["fit_residual_mm"] = result.residual_mm
    if result.expression.max(initial=0.0) >= EXPRESSION_THRESHOLD:
        bake_exact_expression(head, model, FITTED_EXPRESSION_KEY, result.expression)
        head.data.shape_keys.key_blocks[FITTED_EXPRESSION_KEY].value = 1.0
    return head
