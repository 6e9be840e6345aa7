"""Building the zip and installing it as an artist does, against installing an empty extension.

    .venv/bin/python bench/bench_install.py [--weights weights/imhead.npz] [--repeats 3]

Builds the zip with build.py (timed), then, best of --repeats, seconds for
1. installing it into a fresh Blender user folder (Preferences > Install from Disk:
   bpy.ops.extensions.package_install_files, enabled on install),
2. disabling and enabling it again,
3. the baseline: installing an extension of one empty __init__.py, what Blender's install costs anyway.
Run on its own: bpy reads the user folder once, when it is imported.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from build import DEFAULT_WEIGHTS, MANIFEST, build  # noqa: E402

os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="imhead-bench-install-")
import bpy  # noqa: E402

MODULE = "bl_ext.user_default.imhead"


def empty_extension(folder):
    """A valid extension zip with the add-on's manifest and an empty __init__.py."""
    path = Path(folder) / "empty.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(MANIFEST, (ROOT / MANIFEST).read_text().replace('id = "imhead"', 'id = "imhead_empty"'))
        archive.writestr("__init__.py", "def register():\n    pass\n\n\ndef unregister():\n    pass\n")
    return path


def install_seconds(package, module):
    started = time.perf_counter()
    result = bpy.ops.extensions.package_install_files(filepath=str(package), repo="user_default",
                                                      enable_on_install=True)
    seconds = time.perf_counter() - started
    assert result == {"FINISHED"} and module in bpy.context.preferences.addons, result
    return seconds


def uninstall(name):
    repo = next(r for r in bpy.context.preferences.extensions.repos if r.module == "user_default")
    bpy.ops.extensions.package_uninstall(repo_directory=repo.directory, pkg_id=name)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="imhead-bench-dist-")
    started = time.perf_counter()
    package = build(args.weights, folder)
    print(f"build.py: {time.perf_counter() - started:.2f} s, {package.name} {package.stat().st_size / 1e6:.1f} MB")
    empty = empty_extension(folder)
    installs, toggles, baselines = [], [], []
    for _ in range(args.repeats):
        installs.append(install_seconds(package, MODULE))
        started = time.perf_counter()
        bpy.ops.preferences.addon_disable(module=MODULE)
        bpy.ops.preferences.addon_enable(module=MODULE)
        toggles.append(time.perf_counter() - started)
        uninstall("imhead")
        baselines.append(install_seconds(empty, "bl_ext.user_default.imhead_empty"))
        uninstall("imhead_empty")
    install, toggle, baseline = min(installs), min(toggles), min(baselines)
    print(f"install: {install:.2f} s (empty extension {baseline:.2f} s, {install / baseline:.1f}x); "
          f"disable + enable: {toggle:.2f} s; best of {args.repeats}")
    shutil.rmtree(folder)


if __name__ == "__main__":
    main()
