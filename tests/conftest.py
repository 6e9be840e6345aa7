"""Shared test setup: one Blender (the bpy module) per pytest process, in a throwaway user folder.

bpy can be imported only once in a process, and it reads BLENDER_USER_RESOURCES when it is
imported: the variable is set here, before any test module can import bpy. Extensions get
installed into that folder exactly as a user's Blender installs them.
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
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


def blender_edges(mesh):
    """A Blender mesh's edges (M, 2), as the add-on reads them for baking."""
    edges = np.empty(2 * len(mesh.edges), np.int32)
    mesh.edges.foreach_get("vertices", edges)
    return edges.reshape(-1, 2)


def peak_rss_growth(setup, work):
    """Bytes by which a fresh Python's peak resident set grows while `work` runs after `setup` (both
    source code, run in the repository with tests/ importable). The resident set counts every buffer,
    torch's and BLAS's too, which tracemalloc does not see. The peak is Linux's VmHWM, the child's own:
    its ru_maxrss starts at this process's peak (Linux carries it over fork and exec). `setup` should
    not peak above what it keeps, or that peak would hide part of the work's."""
    peak = "int(next(line for line in open('/proc/self/status') if line.startswith('VmHWM')).split()[1])"
    script = f"{setup}\nbefore = {peak}\n{work}\nprint('PEAK_KB', before, {peak})"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                               cwd=ROOT, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    before, after = map(int, completed.stdout.split("PEAK_KB")[-1].split())
    return (after - before) * 1024


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


def bpy_requirement():
    """The bpy pin of requirements.txt, so that the development Blender is also tested stock."""
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.startswith("bpy=="):
            return line.strip()
    raise AssertionError("requirements.txt pins no bpy")


def python313():
    """A Python 3.13 interpreter for the Blender 5.1+ virtualenv (pyenv's on the project's machines)."""
    candidates = [os.environ.get("PYTHON313", ""), shutil.which("python3.13") or ""]
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(glob.glob(os.path.join(pyenv_root, "versions", "3.13*", "bin", "python3.13")))
    for candidate in candidates:
        if candidate and subprocess.run([candidate, "-c", "import sys; assert sys.version_info[:2] == (3, 13)"],
                                        capture_output=True).returncode == 0:
            return candidate
    raise AssertionError("the Blender 5.3 test needs Python 3.13: install one (pyenv install 3.13) or set PYTHON313")


# The Blenders an artist may have, each as a bpy-only virtualenv: (Python, requirements). The 4.2 LTS
# with the numpy 1.26.4 that Blender 4.2 ships, the development one, and the newest, whose Python is 3.13.
STOCK_BLENDERS = {
    "4.2": (lambda: sys.executable, ("bpy==4.2.23", "numpy==1.26.4")),
    "5.0": (lambda: sys.executable, (bpy_requirement(),)),
    "5.3": (python313, ("bpy==5.3.0",)),
}


def stock_python(version):
    """Python of a virtualenv with only bpy installed for a STOCK_BLENDERS version (made once, kept in .cache/)."""
    base_python, requirements = STOCK_BLENDERS[version]
    venv = ROOT / ".cache" / f"stock-blender-{version}"
    python = venv / "bin" / "python"
    stamp = venv / "requirements.txt"
    if not (python.exists() and stamp.is_file() and stamp.read_text() == "\n".join(requirements)):
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([base_python(), "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--quiet", *requirements], check=True)
        stamp.write_text("\n".join(requirements))
    return python


def stock_env():
    """The environment for a stock Blender's Python: none of this process's PYTHON* variables."""
    return {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}


def run_session(python, script, tmp_path, *args):
    """Run `script` with a stock Blender's Python in a fresh user folder; (the dict it printed after
    "RESULT ", its stderr). Asserts a clean exit: Blender 4.2 once crashed on exit (139) after the
    add-on had been enabled."""
    env = stock_env()
    env["BLENDER_USER_RESOURCES"] = str(tmp_path / "blender-user")
    completed = subprocess.run([str(python), "-I", "-c", script, *args],
                               capture_output=True, text=True, env=env, timeout=600)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    assert completed.returncode == 0 and lines, (completed.returncode, completed.stdout[-3000:] + completed.stderr[-3000:])
    return json.loads(lines[-1].removeprefix("RESULT ")), completed.stderr
