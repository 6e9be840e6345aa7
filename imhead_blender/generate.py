"""Generating a head from the model: a sampled identity meshed and put in the scene, or given to the
active head (whose baked expression keys are set aside to bake again)."""
from ..model import ImHeadError
from .heads import HEAD_NAME, add_head_object, is_head, replace_mesh, write_state
from .meshes import head_surface, mesh_from_surface
from .models import load_model
from .parts import install_parts
from .shape_keys import set_aside_expressions


def generate_head(context, settings, progress=None):
    """Generate a head and put it in the scene; returns its object.

    settings: model_path ("" = bundled), seed, variation (0 = mean head .. 2), topology (meshes.IMPLICIT
    or meshes.ARTIST), resolution (marching-cubes grid size, for IMPLICIT) and replace (give the active head
    the new shape instead of adding a head at the 3D cursor). progress: optional callable(fraction).
    Raises ImHeadError before touching the scene when the model cannot be used.
    """
    return place_head(context, settings, *sample_head(settings, progress))


def sample_head(settings, progress=None):
    """The model, the identity and the surface of the head `settings` give (generate_head's): model code
    only, which may run in a worker thread."""
    model = load_model(settings["model_path"])
    identity = model.sample_identity(settings["seed"], settings["variation"])
    surface = head_surface(model, identity, settings["topology"], settings["resolution"], progress=progress)
    if len(surface.faces) == 0:
        raise ImHeadError(f"The model in {model.path} gives no surface for this head: is it a trained model?")
    return model, identity, surface


def place_head(context, settings, model, identity, surface):
    """A sampled head (sample_head) into the scene, or given to the active head; returns its object."""
    mesh = mesh_from_surface(HEAD_NAME, surface)
    head = context.active_object if settings["replace"] and is_head(context.active_object) else None
    if head is None:
        head = add_head_object(context, mesh)
    else:
        set_aside_expressions(head, model)
        replace_mesh(head, mesh)
    install_parts(head, surface)
    write_state(head, model.hash, identity, settings)
    return head
