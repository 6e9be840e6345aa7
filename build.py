"""Build the installable extension: one zip for every platform and every Blender from 4.2 LTS to 5.3.

    python build.py [--weights weights/imhead.npz] [--output-dir dist]

What runs inside Blender is Python on numpy, which every Blender ships (1.26 in 4.x, 2.x in 5.x), so
the zip carries no wheels and names no platform: the same file installs on Linux, Windows and macOS,
under Python 3.11 and 3.13.

Blender's own extension builder (blender_ext.py, shipped inside the bpy package) does the packing and
the validation. Steps: the add-on's files (ADDON_PATHS, an allowlist) and the weights with their
licences are copied into a staging folder, with a manifest whose [build] `paths` name every file that
travels; the staging folder is built into the zip, which is then validated.
"""
import argparse
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent
MANIFEST = "blender_manifest.toml"
DEFAULT_WEIGHTS = ROOT / "weights" / "imhead.npz"
# The weights are learned from the ICT Face Model (MIT licence): its licence travels with them.
WEIGHTS_LICENCE = ROOT / "weights" / "ICT-FACE-MODEL-LICENSE.txt"
CACHE_DIR = ROOT / ".cache"
# What travels besides the weights: the add-on's packages, only their Python modules and JSON data, and
# the data folders taken whole (the artist topology: an npz of arrays and the ICT licence). An allowlist,
# so that nothing else lying in the tree (a scan, a .blend, caches) travels. Of model/ only what Blender
# runs travels (model/runtime/): building data, training and evaluation stay behind.
ADDON_PATHS = ("__init__.py", "model/__init__.py", "model/runtime", "imhead_blender", "operators", "panels")
ADDON_SUFFIXES = {".py", ".json"}
ADDON_DATA = ("model/runtime/artist_topology",)


class BuildError(Exception):
    """A build step failed; the message says which and why."""


def blender_ext_cli():
    """Path of Blender's extension command line tool inside the installed bpy package."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or spec.origin is None:
        raise BuildError(f"bpy is not installed for {sys.executable}: make .venv with `bash scripts/demo.sh` "
                         "or `bash scripts/test.sh`, then use .venv/bin/python")
    found = sorted(Path(spec.origin).parent.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not found:
        raise BuildError(f"blender_ext.py not found in the bpy package at {Path(spec.origin).parent}")
    return found[-1]


def run_blender_ext(*args):
    """Run blender_ext.py; raises BuildError with its output when it fails."""
    result = subprocess.run([sys.executable, str(blender_ext_cli()), *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"blender_ext {args[0]} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def validate(path):
    """Validate an extension zip or source folder with Blender's own rules; raises BuildError."""
    run_blender_ext("validate", str(path))


def addon_files(root=ROOT):
    """The add-on's files under ADDON_PATHS (files, or folders taken whole), relative to `root`,
    "/"-separated and sorted."""
    files = set()
    for name in (*ADDON_PATHS, *ADDON_DATA):
        path = root / name
        if not path.exists():
            raise BuildError(f"{path} is missing: build from a complete checkout of the add-on")
        candidates = [path] if path.is_file() else path.rglob("*")
        files |= {file.relative_to(root).as_posix() for file in candidates
                  if file.is_file() and (name in ADDON_DATA or file.suffix in ADDON_SUFFIXES)
                  and "__pycache__" not in file.parts}
    return sorted(files)


def manifest_for_build(manifest_text, paths):
    """The source manifest with a [build] table whose `paths` name every file that travels (the manifest
    itself is implicit)."""
    text = manifest_text.rstrip("\n") + "\n\n[build]\npaths = [\n" + "".join(f'    "{path}",\n' for path in paths) + "]\n"
    if tomllib.loads(text)["build"]["paths"] != list(paths):
        raise BuildError("the generated manifest does not read back as written")
    return text


def build(weights=DEFAULT_WEIGHTS, output_dir=ROOT / "dist", cache_dir=CACHE_DIR):
    """Build and validate the extension zip; returns its path."""
    weights = Path(weights)
    if not weights.is_file():
        raise BuildError(
            f"no model file at {weights}: train one first (python -m model.training.train --config "
            "configs/compact.json --out weights/imhead.npz) or name another with --weights PATH"
        )
    version = tomllib.loads((ROOT / MANIFEST).read_text())["version"]
    (Path(cache_dir) / "build").mkdir(parents=True, exist_ok=True)
    stage_root = Path(tempfile.mkdtemp(prefix="stage-", dir=Path(cache_dir) / "build"))
    try:
        return _build_in(stage_root, weights, Path(output_dir), version)
    finally:
        shutil.rmtree(stage_root)


def _build_in(stage_root, weights, output_dir, version):
    stage = stage_root / "imhead"
    files = addon_files()
    for name in files:
        (stage / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, stage / name)
    # Only the chosen model file travels, not what else weights/ holds (checkpoints, other runs).
    (stage / "weights").mkdir()
    shutil.copyfile(weights, stage / "weights" / "imhead.npz")
    shutil.copyfile(WEIGHTS_LICENCE, stage / "weights" / WEIGHTS_LICENCE.name)
    files += ["weights/imhead.npz", f"weights/{WEIGHTS_LICENCE.name}"]
    (stage / MANIFEST).write_text(manifest_for_build((ROOT / MANIFEST).read_text(), files))

    output_dir.mkdir(parents=True, exist_ok=True)
    package = output_dir / f"imhead-{version}.zip"
    run_blender_ext("build", "--source-dir", str(stage), "--output-filepath", str(package))
    validate(package)
    return package


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=str(DEFAULT_WEIGHTS),
                        help="the model file to bundle (default: weights/imhead.npz)")
    parser.add_argument("--output-dir", default=str(ROOT / "dist"), help="where the zip goes (default: dist/)")
    args = parser.parse_args(argv)
    try:
        package = build(args.weights, args.output_dir)
    except BuildError as error:
        print(f"build.py: {error}", file=sys.stderr)
        return 1
    print(f"{package} ({package.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
