"""What runs inside Blender: model files, the numpy network and its gradients, meshing, editing,
expressions, animation, fitting, and mesh file I/O. Imports numpy and the standard library only, and
nothing of this project outside model/runtime/ (this folder is the part of model/ that travels in the
extension zip)."""
from .errors import ImHeadError, ModelFileError
from .head_model import HeadModel

__all__ = ["HeadModel", "ImHeadError", "ModelFileError"]
