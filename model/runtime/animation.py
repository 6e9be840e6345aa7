"""Expression animation from files: per-frame coefficients (frames, E) over the model's expressions.

Formats
- CSV from iPhone face-capture apps (Live Link Face and others): one row per captured frame, ARKit
  blendshape columns in CamelCase with Left/Right suffixes (EyeBlinkLeft, JawOpen, BrowInnerUp, ...);
  other columns (Timecode, BlendShapeCount, head and eye rotations) are ignored.
- JSON: {"fps": 60, "names": [...], "frames": [[...], ...]}, or {"frames": [{name: value, ...}, ...]},
  or just the list of frames.
- NPY: an array (frames, E) in the model's expression order.
Names are the model's (eyeBlink_L) or ARKit's (EyeBlinkLeft, eyeBlinkLeft). ARKit's single browInnerUp
and cheekPuff drive both sides; ARKit shapes the model lacks (tongueOut) are reported as unused.
"""
import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ImHeadError

# Live Link Face records at 60 frames per second.
DEFAULT_CAPTURE_FPS = 60.0
# Columns of face-capture CSVs that are not blendshapes: not reported as unused.
NON_BLENDSHAPE_COLUMNS = {"Timecode", "BlendShapeCount", "HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw",
                          "LeftEyePitch", "LeftEyeRoll", "RightEyeYaw", "RightEyePitch", "RightEyeRoll"}


@dataclass
class ExpressionTrack:
    values: np.ndarray                 # (frames, E) coefficients in the model's expression order
    fps: float | None                  # frames per second when the file says so
    unused: list = field(default_factory=list)  # names or columns in the file that drive no expression


def model_names_for(name, expression_names):
    """The model's expressions a file's name drives: itself, or the ARKit name mapped (EyeBlinkLeft ->
    eyeBlink_L, BrowInnerUp -> browInnerUp_L and _R); [] when none."""
    name = name.strip()
    if not name:
        return []
    camel = name[:1].lower() + name[1:]
    if camel in expression_names:  # also ARKit's MouthLeft, JawRight: whole shapes, not sides
        return [camel]
    stem, side = re.fullmatch(r"(.+?)(Left|Right)?", camel).groups()
    candidates = [f"{stem}_{side[0]}"] if side else [f"{stem}_L", f"{stem}_R"]
    return [c for c in candidates if c in expression_names]


def _track_from_columns(names, rows, expression_names, fps=None, source="file"):
    """rows (frames, len(names)) -> ExpressionTrack, mapping each column's name."""
    index = {n: i for i, n in enumerate(expression_names)}
    values = np.zeros((len(rows), len(expression_names)), np.float32)
    unused, mapped = [], 0
    for column, name in enumerate(names):
        targets = model_names_for(str(name), expression_names)
        if not targets:
            unused.append(str(name))
        for target in targets:
            values[:, index[target]] = rows[:, column]
            mapped += 1
    if mapped == 0:
        raise ImHeadError(f"{source} has no expression names (ARKit blendshape names or "
                          f"{expression_names[0]}, ...)")
    return ExpressionTrack(values, fps, unused)


def read_face_capture_csv(path, expression_names):
    """An ExpressionTrack from a face-capture CSV (see the module docstring)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            table = list(csv.reader(f))
    except (UnicodeDecodeError, csv.Error) as error:  # a binary file named .csv
        raise ImHeadError(f"{path} is not a text CSV file ({error})") from error
    if len(table) < 2:
        raise ImHeadError(f"{path} has no frames")
    header, body = [h.strip() for h in table[0]], [row for row in table[1:] if any(cell.strip() for cell in row)]
    keep = [i for i, name in enumerate(header) if model_names_for(name, expression_names)]
    ignored = [name for name in header if not model_names_for(name, expression_names)]
    try:
        rows = np.array([[float(row[i]) for i in keep] for row in body], np.float32).reshape(len(body), len(keep))
    except (ValueError, IndexError) as error:
        raise ImHeadError(f"{path}: a blendshape value is not a number or a row is short ({error})") from error
    track = _track_from_columns([header[i] for i in keep], rows, expression_names, source=str(path))
    track.unused = [name for name in ignored if name not in NON_BLENDSHAPE_COLUMNS]
    return track


def read_coefficients_json(path, expression_names):
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ImHeadError(f"{path} is not valid JSON ({error})") from error
    header = data if isinstance(data, dict) else {}
    frames = header.get("frames", data if isinstance(data, list) else None)
    if not frames or not isinstance(frames, list):
        raise ImHeadError(f"{path} has no frames (expected a list of frames or {{\"frames\": [...]}})")
    fps = header.get("fps")
    if fps is not None and not (_is_number(fps) and fps > 0):
        raise ImHeadError(f"{path}: fps must be a positive number, got {fps!r}")
    fps = fps and float(fps)
    if all(isinstance(frame, dict) for frame in frames):
        return _track_from_named_frames(path, frames, expression_names, fps)
    names = header.get("names", expression_names)
    if not (isinstance(names, list) and all(isinstance(name, str) for name in names)):
        raise ImHeadError(f"{path}: names must be a list of expression names")
    if not all(isinstance(frame, list) and len(frame) == len(names) and all(map(_is_number, frame))
               for frame in frames):
        raise ImHeadError(f"{path}: frames must all be lists of {len(names)} numbers, one per name "
                          "(or all {name: number} objects)")
    rows = _finite_rows(path, np.array(frames, np.float32))
    return _track_from_columns(names, rows, expression_names, fps, source=str(path))


def _track_from_named_frames(path, frames, expression_names, fps):
    """Frames as {name: value}: a name missing from a frame is 0 there."""
    index = {n: i for i, n in enumerate(expression_names)}
    values = np.zeros((len(frames), len(expression_names)), np.float32)
    unused = set()
    for number, (row, frame) in enumerate(zip(values, frames)):
        for name, value in frame.items():
            if not _is_number(value):
                raise ImHeadError(f"{path}: frame {number}: the value of {name!r} is not a number ({value!r})")
            targets = model_names_for(name, expression_names)
            unused.update([] if targets else [name])
            row[[index[t] for t in targets]] = float(value)
    if not values.any() and unused:
        raise ImHeadError(f"{path} has no expression names (ARKit blendshape names or {expression_names[0]}, ...)")
    return ExpressionTrack(_finite_rows(path, values), fps, sorted(unused))


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite_rows(path, rows):
    bad = int(np.count_nonzero(~np.isfinite(rows).all(axis=1)))
    if bad:
        raise ImHeadError(f"{path}: {bad} of {len(rows)} frames have NaN or infinite values")
    return rows


def read_coefficients_npy(path, expression_names):
    path = Path(path)
    try:
        rows = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ImHeadError(f"{path} is not a readable .npy array ({error})") from error
    if rows.ndim != 2 or rows.shape[1] != len(expression_names):
        raise ImHeadError(f"{path}: expected an array (frames, {len(expression_names)}), got {rows.shape}")
    if not (np.issubdtype(rows.dtype, np.floating) or np.issubdtype(rows.dtype, np.integer)):
        raise ImHeadError(f"{path}: expected numbers, got an array of {rows.dtype}")
    return ExpressionTrack(_finite_rows(path, rows.astype(np.float32)), None)


READERS = {".csv": read_face_capture_csv, ".json": read_coefficients_json, ".npy": read_coefficients_npy}


def read_expression_track(path, expression_names):
    """An ExpressionTrack from a .csv, .json or .npy file (chosen by the extension)."""
    path = Path(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise ImHeadError(f"{path}: unknown animation file type; use {', '.join(READERS)}")
    if not path.is_file():
        raise ImHeadError(f"animation file not found: {path}")
    return reader(path, list(expression_names))


def resample(values, source_fps, target_fps):
    """Per-frame values (F, E) at source_fps, linearly interpolated at target_fps: (F', E), the first
    frame at time 0 and the last at or before the end of the source."""
    values = np.asarray(values, np.float32)
    if len(values) < 2 or source_fps == target_fps:
        return values.copy()
    duration = (len(values) - 1) / source_fps
    times = np.arange(int(np.floor(duration * target_fps + 1e-6)) + 1) / target_fps
    position = times * source_fps
    lower = np.minimum(np.floor(position).astype(int), len(values) - 2)
    t = (position - lower)[:, None].astype(np.float32)
    return (1 - t) * values[lower] + t * values[lower + 1]
