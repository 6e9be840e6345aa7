"""imHead: the implicit morphable head model (no Blender).

model/runtime/     what runs in Blender, on numpy alone (the only part of model/ in the extension zip)
model/data/        building the training data
model/training/    the torch network, training and ablations
model/evaluation/  fitting held-out heads and measuring the surfaces
"""
from .runtime import HeadModel, ImHeadError, ModelFileError

__all__ = ["HeadModel", "ImHeadError", "ModelFileError"]
