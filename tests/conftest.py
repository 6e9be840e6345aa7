"""Shared test setup: one Blender (the bpy module) per pytest process, in a throwaway user folder.

bpy can be imported only once in a process, and it reads BLENDER_USER_RESOURCES when it is
imported: the variable is set here, before any test module can import bpy. Extensions get
installed into that folder exactly as a user's Blender installs them.
"""
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ADDON_MODULE = "bl_ext.user_default.imhead"

_BLENDER_USER_DIR = tempfile.mkdtemp(prefix="imhead-blender-user-")
os.environ["BLENDER_USER_RESOURCES"] = _BLENDER_USER_DIR


def pytest_unconfigure(config):
    shutil.rmtree(_BLENDER_USER_DIR, ignore_errors=True)


def build_extension(weights, output_dir):
    """Run build.py as a developer would; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, str(ROOT / "build.py"), "--weights", str(weights), "--output-dir", str(output_dir)],
        capture_output=True, text=True,
    )


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A real model file, trained for a few seconds on a few heads (configs/tiny.json)."""
    from model.training.train import load_config, train

    path = tmp_path_factory.mktemp("model") / "tiny.npz"
    train(load_config(ROOT / "configs" / "tiny.json"), path)
    return path


@pytest.fixture(scope="session")
def extension_zip(tiny_model, tmp_path_factory):
    """The extension, built by build.py with the tiny model bundled."""
    output_dir = tmp_path_factory.mktemp("dist")
    result = build_extension(tiny_model, output_dir)
    assert result.returncode == 0, result.stderr
    (package,) = output_dir.glob("imhead-*.zip")
    return package


@pytest.fixture(scope="session")
def installed_extension(extension_zip):
    """The extension installed from its zip into this process's Blender, as a user installs it."""
    import bpy

    result = bpy.ops.extensions.package_install_files(
        filepath=str(extension_zip), repo="user_default", enable_on_install=True,
    )
    assert result == {'FINISHED'}
    return ADDON_MODULE


@pytest.fixture
def blender(installed_extension):
    """bpy with the extension enabled, an empty factory scene and default add-on preferences.

    read_homefile(use_factory_startup=True) rather than read_factory_settings(): the latter also
    resets the preferences, which disables every extension, and Blender then deletes the unpacked
    wheels (unpacking them again on the next enable takes ~17 s).
    """
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    if installed_extension not in bpy.context.preferences.addons:
        bpy.ops.preferences.addon_enable(module=installed_extension)
    preferences = bpy.context.preferences.addons[installed_extension].preferences
    for name in ("model_path", "preview_resolution", "final_resolution"):
        preferences.property_unset(name)
    return bpy


@pytest.fixture
def preferences(blender, installed_extension):
    """The extension's add-on preferences (reset to defaults for each test)."""
    return blender.context.preferences.addons[installed_extension].preferences


@pytest.fixture
def extension_dir(installed_extension):
    """Where Blender unpacked the extension."""
    return Path(_BLENDER_USER_DIR) / "extensions" / "user_default" / "imhead"
