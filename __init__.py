"""imHead: an implicit morphable head model in the 3D View sidebar (N panel, "imHead" tab)."""


def _subpackages():
    # Imported here rather than at the top: the repository root is this package, and pytest
    # imports this file outside Blender when it collects the tests.
    from . import operators, panels
    return operators, panels


def register():
    for subpackage in _subpackages():
        subpackage.register()


def unregister():
    for subpackage in reversed(_subpackages()):
        subpackage.unregister()
