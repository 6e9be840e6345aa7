"""imHead: an implicit morphable head model in the 3D View sidebar (N panel, "imHead" tab)."""
from . import operators, panels

_subpackages = (operators, panels)


def register():
    for subpackage in _subpackages:
        subpackage.register()


def unregister():
    for subpackage in reversed(_subpackages):
        subpackage.unregister()
