"""imHead: the implicit morphable head model (no Blender). What runs in Blender runs on numpy; torch
trains the network and is the reference it is tested against."""
from .errors import ImHeadError, ModelFileError
from .head_model import HeadModel

__all__ = ["HeadModel", "ImHeadError", "ModelFileError"]
