"""The model file: one .npz of plain float32/int arrays plus a JSON header; nothing in it can run code.

Contents
- header (JSON, stored as a uint8 array): format version, model config, keypoint names, region table,
  expression names, training metadata, and the content hash of everything else.
- `param/<name>`: every network tensor (state_dict), float32.
- `codes`: the identity codes learned for the training heads (H, code_dim), the source of the code
  statistics used for sampling and for the regions' principal directions.
- `template_keypoints`: (K, 3) keypoints of the template head, model frame.

A model file is data: loading never unpickles, and the header and every array are validated against the
configuration (validate_contents) before anything is built from them. The content hash is a checksum
against corruption and accidental edits, not a signature: whoever can write the file can rehash it.
"""
import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np

from .config import ModelConfig
from .errors import ModelFileError
from .numpy_network import check_parameters

# Upper bounds of a configuration's sizes: many times any trained imHead's (the paper preset's widest
# layer has 256 units), low enough that no header can have a network of gigabytes built.
CONFIG_LIMITS = {"global_dim": 4096, "n_parts": 256, "local_dim": 256, "extra_global_dim": 1024,
                 "landmark_width": 2048, "pe_bands": 16, "part_layers": 16, "part_width": 1024,
                 "part_feature": 1024, "blend_parts": 256, "fusion_layers": 16, "fusion_width": 2048,
                 "expression_dim": 512, "expression_code": 1024, "warp_identity_dim": 1024, "warp_layers": 16,
                 "warp_width": 2048}

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
        validate_contents(header, arrays)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: invalid model file: {exc}") from exc
    except ModelFileError as exc:
        raise ModelFileError(f"{path}: {exc}") from exc
    return header, arrays


def validate_contents(header, arrays):
    """ModelFileError unless the header (config already a ModelConfig) and arrays are a usable model: sizes
    within CONFIG_LIMITS, names and keypoints matching the config, every array of its shape, float32 and
    finite, nothing else."""
    c = header["config"]
    for name, limit in CONFIG_LIMITS.items():
        value = getattr(c, name)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= limit:
            raise ModelFileError(f"model config {name} = {value!r} is outside 1..{limit}")
    for name in ("sigma", "softplus_beta", "part_scale"):
        value = getattr(c, name)
        if not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
            raise ModelFileError(f"model config {name} = {value!r} must be a positive number")
    names = header["expression_names"]
    if not (isinstance(names, list) and len(names) == c.expression_dim and all(isinstance(n, str) for n in names)):
        raise ModelFileError(f"the header needs {c.expression_dim} expression names")
    regions, keypoints = header["regions"], header["keypoints"]
    if not (isinstance(regions, list) and all(isinstance(r, str) for r in regions)):
        raise ModelFileError("the header's regions must be a list of names")
    if not (isinstance(keypoints, list) and len(keypoints) == c.n_parts
            and all(isinstance(k, dict) and isinstance(k.get("name"), str) and k.get("region") in regions
                    for k in keypoints)):
        raise ModelFileError(f"the header needs {c.n_parts} keypoints, each a name and one of its regions")
    params = {name[len("param/"):]: a for name, a in arrays.items() if name.startswith("param/")}
    others = {name: a for name, a in arrays.items() if not name.startswith("param/")}
    unexpected = sorted(set(others) - {"codes", "template_keypoints"})
    if unexpected:
        raise ModelFileError(f"unexpected arrays {', '.join(unexpected)}")
    codes, template = others.get("codes"), others.get("template_keypoints")
    if codes is None or codes.ndim != 2 or codes.shape[1] != c.code_dim or len(codes) < 1:
        raise ModelFileError(f"codes must have shape (heads, {c.code_dim}), got "
                             f"{None if codes is None else codes.shape}")
    if template is None or template.shape != (c.n_parts, 3):
        raise ModelFileError(f"template_keypoints must have shape ({c.n_parts}, 3), got "
                             f"{None if template is None else template.shape}")
    check_parameters(c, params)
    for name, a in arrays.items():
        if a.dtype != np.float32:
            raise ModelFileError(f"{name} is {a.dtype}, a model file holds float32 arrays")
        if not np.isfinite(a).all():
            raise ModelFileError(f"{name} holds NaN or infinite values")


def state_dict_arrays(state_dict):
    return {f"param/{name}": t.detach().cpu().numpy().astype(np.float32) for name, t in state_dict.items()}
