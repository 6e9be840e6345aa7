"""The bridge between the imHead model and Blender's scene (no UI here)."""
from ..model import ImHeadError
from .heads import generate_head, is_head, read_identity
from .models import bundled_model_path, load_model

__all__ = ["ImHeadError", "bundled_model_path", "generate_head", "is_head", "load_model", "read_identity"]
