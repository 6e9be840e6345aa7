"""The bridge (imhead_blender) of this checkout, for scripts and benches that run bpy without installing
the extension: the repository root is imported as the package `imhead_checkout`, since the bridge's
imports are relative to the extension package."""
import importlib
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "imhead_checkout"


def bridge():
    """The imhead_blender package of this checkout (imports bpy)."""
    if PACKAGE not in sys.modules:
        spec = importlib.util.spec_from_file_location(PACKAGE, ROOT / "__init__.py",
                                                      submodule_search_locations=[str(ROOT)])
        sys.modules[PACKAGE] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return importlib.import_module(f"{PACKAGE}.imhead_blender")
