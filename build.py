"""Build the installable extension: one zip for one platform, with the weights and the wheels.

    python build.py [--platform linux-x64] [--weights weights/imhead.npz] [--output-dir dist]

Blender's own extension builder (blender_ext.py, shipped inside the bpy package) does the
packing and the validation. A stock Blender has numpy but neither torch nor scikit-image: the
zip carries them as cp311 wheels for its platform (the manifest's `wheels`), which Blender
unpacks itself when the extension is installed, with no network.

Steps: the add-on's files (ADDON_PATHS, an allowlist), the weights with their licences and the
platform's wheels are copied into a staging folder, with a manifest naming the platform, the
wheels and, in its [build] `paths`, every file that travels; the staging folder is built into the
zip, which is then validated. Wheels are downloaded
once per platform into .cache/wheels/<platform>/ (the machine's own platform offline here,
from pip's local wheel folders).
"""
import argparse
import importlib.util
import os
import platform
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
# What travels besides the weights and wheels: the add-on's packages, only their Python modules and
# JSON data. An allowlist, so that nothing else lying in the tree (a scan, a .blend, caches) travels.
ADDON_PATHS = ("__init__.py", "model", "imhead_blender", "operators", "panels")
ADDON_SUFFIXES = {".py", ".json"}

# What model/ needs at run time beyond a stock Blender's Python (3.11 with numpy), measured in a
# Python that has only bpy by running every operator (tests/test_fresh_blender.py; README,
# "Dependencies inside Blender"): torch, for Fit to Scan's gradients only (the rest runs on numpy).
# sympy and mpmath: torch's optimizers import torch._dynamo, which imports sympy (without them Fit to
# Scan failed in every stock Blender).
PYTHON_VERSION = "3.11"
TORCH_VERSION = "2.13.0"
WHEELS = ("typing_extensions==4.16.0", "sympy==1.14.0", "mpmath==1.3.0")

# Blender platform -> (pip platform tags, torch release). PyPI's Linux torch is a CUDA build of
# several GB; the CPU build (a local "+cpu" release) is named exactly so pip never substitutes it.
# Not served: macos-x64 (torch has no Intel-Mac wheels since 2.2) and linux-arm64 (PyPI's aarch64
# torch 2.13 is a CUDA build). torch 2.13 for macOS needs macOS 14 or newer.
PLATFORMS = {
    "linux-x64": (("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"), f"{TORCH_VERSION}+cpu"),
    "windows-x64": (("win_amd64",), TORCH_VERSION),
    "macos-arm64": (("macosx_14_0_arm64",), TORCH_VERSION),
}


class BuildError(Exception):
    """A build step failed; the message says which and why."""


def this_platform():
    """The Blender platform name of this machine (as blender_ext names it)."""
    machine = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64"}.get(platform.machine().lower(), platform.machine().lower())
    system = {"darwin": "macos"}.get(platform.system().lower(), platform.system().lower())
    return f"{system}-{machine}"


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


def platform_requirements(blender_platform):
    _, torch_release = PLATFORMS[blender_platform]
    return [f"torch=={torch_release}", *WHEELS]


def fetch_wheels(blender_platform, cache_dir=CACHE_DIR):
    """The platform's wheels, downloaded once into the cache (again when the list above changes)."""
    if blender_platform not in PLATFORMS:
        raise BuildError(f"unknown platform {blender_platform!r}; known: {', '.join(PLATFORMS)}")
    pip_platforms, _ = PLATFORMS[blender_platform]
    requirements = platform_requirements(blender_platform)
    wheel_dir = Path(cache_dir) / "wheels" / blender_platform
    stamp = wheel_dir / "requirements.txt"
    if stamp.is_file() and stamp.read_text().split() == requirements:
        return sorted(wheel_dir.glob("*.whl"))
    # Downloaded beside the cache entry and then swapped in, so that builds running at the same
    # time never see a half-filled folder.
    wheel_dir.parent.mkdir(parents=True, exist_ok=True)
    download_dir = Path(tempfile.mkdtemp(prefix=f".{blender_platform}-", dir=wheel_dir.parent))
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
        "--python-version", PYTHON_VERSION, "--implementation", "cp",
        "--abi", "cp" + PYTHON_VERSION.replace(".", ""), "--abi", "abi3", "--abi", "none",
        *[arg for tag in pip_platforms for arg in ("--platform", tag)],
        "--dest", str(download_dir), *requirements,
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        shutil.rmtree(download_dir)
        raise BuildError(
            f"could not get the {blender_platform} wheels ({' '.join(requirements)}):\n{result.stderr}"
        )
    (download_dir / stamp.name).write_text("\n".join(requirements) + "\n")
    shutil.rmtree(wheel_dir, ignore_errors=True)
    try:
        download_dir.rename(wheel_dir)
    except OSError:  # another build swapped in the same wheels first
        shutil.rmtree(download_dir)
    return sorted(wheel_dir.glob("*.whl"))


def addon_files(root=ROOT):
    """The add-on's files under ADDON_PATHS, relative to `root`, "/"-separated and sorted."""
    files = []
    for name in ADDON_PATHS:
        path = root / name
        if not path.exists():
            raise BuildError(f"{path} is missing: build from a complete checkout of the add-on")
        candidates = [path] if path.is_file() else path.rglob("*")
        files += [file.relative_to(root).as_posix() for file in candidates
                  if file.is_file() and file.suffix in ADDON_SUFFIXES and "__pycache__" not in file.parts]
    return sorted(files)


def manifest_for_platform(manifest_text, blender_platform, wheel_names, paths):
    """The source manifest with `platforms` and `wheels` for one platform added as top-level keys, and
    a [build] table whose `paths` name every file that travels (the manifest and wheels are implicit)."""
    generated = (
        f'platforms = ["{blender_platform}"]\n'
        "wheels = [\n" + "".join(f'    "./wheels/{name}",\n' for name in wheel_names) + "]\n\n"
    )
    # Top-level keys must come before the first table ("[permissions]", ...).
    head, table, tail = manifest_text.partition("\n[")
    text = (head + "\n\n" + generated + table.lstrip("\n") + tail).rstrip("\n") + "\n\n[build]\npaths = [\n"
    text += "".join(f'    "{path}",\n' for path in paths) + "]\n"
    parsed = tomllib.loads(text)
    if parsed["platforms"] != [blender_platform] or len(parsed["wheels"]) != len(wheel_names):
        raise BuildError(f"the generated manifest for {blender_platform} does not read back as written")
    return text


def link_or_copy(source, target):
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def build(blender_platform, weights=DEFAULT_WEIGHTS, output_dir=ROOT / "dist", cache_dir=CACHE_DIR):
    """Build and validate the extension zip for `blender_platform`; returns its path."""
    weights = Path(weights)
    if not weights.is_file():
        raise BuildError(
            f"no model file at {weights}: train one first (python -m model.train --config "
            "configs/compact.json --out weights/imhead.npz) or name another with --weights PATH"
        )
    wheels = fetch_wheels(blender_platform, cache_dir)
    version = tomllib.loads((ROOT / MANIFEST).read_text())["version"]

    (Path(cache_dir) / "build").mkdir(parents=True, exist_ok=True)
    stage_root = Path(tempfile.mkdtemp(prefix=f"{blender_platform}-", dir=Path(cache_dir) / "build"))
    try:
        return _build_in(stage_root, blender_platform, weights, wheels, Path(output_dir), version)
    finally:
        shutil.rmtree(stage_root)


def _build_in(stage_root, blender_platform, weights, wheels, output_dir, version):
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
    (stage / "wheels").mkdir()
    for wheel in wheels:
        link_or_copy(wheel, stage / "wheels" / wheel.name)
    (stage / MANIFEST).write_text(
        manifest_for_platform((ROOT / MANIFEST).read_text(), blender_platform, [w.name for w in wheels], files)
    )

    output_dir.mkdir(parents=True, exist_ok=True)
    package = output_dir / f"imhead-{version}-{blender_platform}.zip"
    run_blender_ext("build", "--source-dir", str(stage), "--output-filepath", str(package))
    validate(package)
    return package


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--platform", default=this_platform(), choices=sorted(PLATFORMS),
                        help="the Blender platform to build for (default: this machine's)")
    parser.add_argument("--weights", default=str(DEFAULT_WEIGHTS),
                        help="the model file to bundle (default: weights/imhead.npz)")
    parser.add_argument("--output-dir", default=str(ROOT / "dist"), help="where the zip goes (default: dist/)")
    args = parser.parse_args(argv)
    try:
        package = build(args.platform, args.weights, args.output_dir)
    except BuildError as error:
        print(f"build.py: {error}", file=sys.stderr)
        return 1
    print(f"{package} ({package.stat().st_size / 1e6:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
