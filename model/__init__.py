"""imHead: the implicit morphable head model (torch + numpy, no Blender)."""
from .errors import ImHeadError, ModelFileError
from .head_model import HeadModel

__all__ = ["HeadModel", "ImHeadError", "ModelFileError"]
