"""Where the training data and the data-set cache live: the one place that names these paths.

The repository carries its training data in `<project root>/data/`, one folder per source with
its licence beside it (`data/README.md`). The IMHEAD_DATA_DIR environment variable names another
folder laid out the same way. Built data sets are cached in `<project root>/.cache/` (git-ignored).
"""
import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR_ENV = "IMHEAD_DATA_DIR"
ICT_SOURCE = "ict-face-model"
ICT_FILE_NAME = "ict_face_model_light.npz"


class DataMissingError(FileNotFoundError):
    """The training data is not where it was looked for."""


def data_dir():
    """The folder that holds one folder per data source."""
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override)
    return PROJECT_ROOT / "data"


def data_file(source, name):
    """Path of one data file of a source; raises DataMissingError naming the path when absent."""
    path = data_dir() / source / name
    if not path.is_file():
        raise DataMissingError(
            f"training data file not found: {path}. The repository carries it in "
            f"data/{source}/; the {DATA_DIR_ENV} environment variable names another data folder."
        )
    return path


def ict_model_path():
    """Path of the ICT Face Model npz."""
    return data_file(ICT_SOURCE, ICT_FILE_NAME)


def cache_dir():
    """Folder for built data sets (created on demand)."""
    path = PROJECT_ROOT / ".cache"
    path.mkdir(exist_ok=True)
    return path
