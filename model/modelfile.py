"""The model file: one .npz of plain float32/int arrays plus a JSON header; nothing in it can run code.

Contents
- header (JSON, stored as a uint8 array): format version, model config, keypoint names, region table,
  expression names, training metadata, and the content hash of everything else.
- `param/<name>`: every network tensor (state_dict), float32.
- `codes`: the identity codes learned for the training heads (H, code_dim), the source of the code
  statistics used for sampling and for the regions' principal directions.
- `template_keypoints`: (K, 3) keypoints of the template head, model frame.
"""
import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np

from .config import ModelConfig
from .errors import ModelFileError

FORMAT = "imhead-model"
FORMAT_VERSION = 1
HEADER_KEY = "header"


def content_hash(header, arrays):
    """sha256 over the header (without its hash) and every array's name, dtype, shape and bytes."""
    digest = hashlib.sha256()
    header = {k: v for k, v in header.items() if k != "hash"}
    digest.update(json.dumps(header, sort_keys=True).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{a.dtype.str}|{a.shape}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def save_model_file(path, header, arrays):
    """Write header + arrays; returns the content hash written into the header."""
    header = dict(header, format=FORMAT, format_version=FORMAT_VERSION)
    header["hash"] = content_hash(header, arrays)
    encoded = np.frombuffer(json.dumps(header, sort_keys=True).encode(), dtype=np.uint8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **{HEADER_KEY: encoded}, **arrays)
    tmp.replace(path)
    return header["hash"]


def load_model_file(path):
    """(header, arrays) of a model file; ModelFileError naming the problem for anything unusable."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise ModelFileError(f"{path} is not a readable imHead model file (truncated or corrupt): {exc}") from exc
    if HEADER_KEY not in arrays:
        raise ModelFileError(f"{path} has no imHead header: not an imHead model file")
    try:
        header = json.loads(arrays.pop(HEADER_KEY).tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: the header is not valid JSON ({exc})") from exc
    if header.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not an imHead model file (format {header.get('format')!r})")
    if header.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{path}: model file version {header.get('format_version')} is not supported "
                             f"(this imHead reads version {FORMAT_VERSION})")
    if header.get("hash") != content_hash(header, arrays):
        raise ModelFileError(f"{path}: content hash mismatch: the file is corrupt or was edited")
    try:
        header["config"] = ModelConfig.from_dict(header["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: invalid model configuration: {exc}") from exc
    return header, arrays


def state_dict_arrays(state_dict):
    return {f"param/{name}": t.detach().cpu().numpy().astype(np.float32) for name, t in state_dict.items()}
