"""imHead: an implicit morphable head model in the 3D View sidebar (N panel, "imHead" tab)."""
import atexit
import sys


def _subpackages():
    # Imported here rather than at the top: the repository root is this package, and pytest
    # imports this file outside Blender when it collects the tests.
    from . import operators, panels
    return operators, panels


def register():
    import bpy

    for subpackage in _subpackages():
        subpackage.register()
    if bpy.app.version < (5, 0, 0):
        atexit.register(_release_before_python_exits)


def unregister():
    atexit.unregister(_release_before_python_exits)
    for subpackage in reversed(_subpackages()):
        subpackage.unregister()


def _release_before_python_exits():
    """Blender 4.x as a Python module (bpy) shuts itself down when Python frees the bpy module, and
    crashes on exit when that never happens: the Python callbacks of properties (get/set, items, poll)
    outlive their classes inside Blender, and their modules' globals hold bpy. So, as the process
    exits with the add-on still enabled, it is disabled and its modules' globals are dropped.
    Blender itself disables add-ons before it quits, which removes this hook first."""
    unregister()
    package = __name__
    for name, module in list(sys.modules.items()):
        if name.startswith(package + "."):
            vars(module).clear()
    vars(sys.modules[package]).clear()
