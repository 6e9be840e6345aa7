"""Where the training data and the data-set cache live: the one place that names these paths.

The ICT Face Model is read from `../shared/data/ict-face-model/` next to the project root
(the folder holding `model/`), or from the folder named by the IMHEAD_DATA_DIR environment
variable. Built data sets are cached in `<project root>/.cache/` (git-ignored).
"""
import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR_ENV = "IMHEAD_DATA_DIR"
ICT_FILE_NAME = "ict_face_model_light.npz"


class DataMissingError(FileNotFoundError):
    """The training data is not where it was looked for."""


def ict_data_dir():
    """The folder that holds the ICT Face Model npz."""
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override)
    return PROJECT_ROOT.parent / "shared" / "data" / "ict-face-model"


def ict_model_path():
    """Path of the ICT Face Model npz; raises DataMissingError naming the path when absent."""
    path = ict_data_dir() / ICT_FILE_NAME
    if not path.is_file():
        raise DataMissingError(
            f"ICT Face Model data not found at {path}. It is expected at "
            f"../shared/data/ict-face-model/ beside the project root, or in the folder "
            f"named by the {DATA_DIR_ENV} environment variable."
        )
    return path


def cache_dir():
    """Folder for built data sets (created on demand)."""
    path = PROJECT_ROOT / ".cache"
    path.mkdir(exist_ok=True)
    return path
