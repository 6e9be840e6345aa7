"""Model files: the bundled one, and every loaded model kept until its file changes."""
import os

import bpy

from ..model import HeadModel, ModelFileError

_EXTENSION_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Loading takes seconds, generating a head often less: keep each model file loaded, keyed by
# its path and dropped when the file's modification time changes.
_loaded = {}


def bundled_model_path():
    """The model file shipped inside the extension."""
    return os.path.join(_EXTENSION_DIR, "weights", "imhead.npz")


def load_model(path=""):
    """The HeadModel in `path` (a Blender path, "//" = next to the .blend; empty = the bundled model).

    Raises ModelFileError, naming the path, when the file is missing or not a model file.
    """
    path = os.path.abspath(bpy.path.abspath(path)) if path else bundled_model_path()
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError as error:
        raise ModelFileError(f"Cannot read the model file {path}: {error.strerror}") from error
    cached = _loaded.get(path)
    if cached is not None and cached[0] == mtime:
        return cached[1]
    model = HeadModel.load(path)
    _loaded[path] = (mtime, model)
    return model
