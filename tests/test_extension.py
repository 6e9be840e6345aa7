"""The extension as a package: built, validated, installed, registered, and removed cleanly."""
import shutil
import sys
import tomllib
import zipfile

import pytest

from build import ROOT, BuildError, addon_files, validate
from conftest import build_extension


def test_zip_is_valid_and_carries_only_the_add_on(extension_zip, tiny_model):
    validate(extension_zip)
    with zipfile.ZipFile(extension_zip) as archive:
        names = archive.namelist()
        manifest = tomllib.loads(archive.read("blender_manifest.toml").decode())
        bundled_weights = archive.read("weights/imhead.npz")

    assert manifest["id"] == "imhead" and manifest["blender_version_min"] == "4.2.0"
    # One zip for every platform and Python: nothing platform-bound in it.
    assert "platforms" not in manifest and "wheels" not in manifest
    assert not any(name.endswith((".whl", ".so", ".pyd", ".dylib")) for name in names)
    assert bundled_weights == tiny_model.read_bytes()
    with zipfile.ZipFile(extension_zip) as archive:
        assert "USC Institute for Creative Technologies" in archive.read("weights/ICT-FACE-MODEL-LICENSE.txt").decode()
    assert "__init__.py" in names and "model/runtime/frame.py" in names and "imhead_blender/heads.py" in names
    # Of model/ only its __init__ and the runtime travel: no data building, training or evaluation.
    runtime = {path.relative_to(ROOT).as_posix() for path in (ROOT / "model" / "runtime").glob("*.py")}
    runtime |= {f"model/runtime/artist_topology/{name}"
                for name in ("ict_skin.npz", "ict_parts.npz", "ICT-FACE-MODEL-LICENSE.txt")}
    assert {name for name in names if name.startswith("model/")} == {"model/__init__.py", *runtime}
    for excluded in ("tests/", "bench/", "scripts/", "docs/", "configs/", "data/", ".ci/", ".venv", ".cache/", "dist/",
                     "model/data/", "model/training/", "model/evaluation/", "model/README.md"):
        assert not any(name.startswith(excluded) for name in names), excluded
    assert "build.py" not in names and not any("__pycache__" in name for name in names)
    # The allowlist: the manifest, the add-on's modules and data, the weights with their licence.
    assert set(names) == {"blender_manifest.toml", *addon_files(), "weights/imhead.npz",
                          "weights/ICT-FACE-MODEL-LICENSE.txt"}


def test_only_the_add_ons_modules_travel_whatever_else_lies_in_the_tree(tmp_path):
    for name in ("__init__.py", "model/__init__.py", "model/runtime/__init__.py", "model/runtime/fit.py",
                 "model/runtime/table.json", "imhead_blender/heads.py", "operators/__init__.py", "panels/__init__.py",
                 "model/training/network.py", "model/data/keypoints.json", "model/evaluation/metrics.py",
                 "model/README.md", "fit.obj", "scan.blend", "model/runtime/stray-scan.ply",
                 "model/runtime/__pycache__/fit.cpython-311.pyc", "operators/notes.txt", "tests/test_x.py",
                 "model/runtime/artist_topology/ict_skin.npz", "model/runtime/stray-arrays.npz"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    assert addon_files(tmp_path) == ["__init__.py", "imhead_blender/heads.py", "model/__init__.py",
                                     "model/runtime/__init__.py", "model/runtime/artist_topology/ict_skin.npz",
                                     "model/runtime/fit.py", "model/runtime/table.json",
                                     "operators/__init__.py", "panels/__init__.py"]
    (tmp_path / "panels" / "__init__.py").unlink()
    (tmp_path / "panels").rmdir()
    with pytest.raises(BuildError, match="panels is missing"):
        addon_files(tmp_path)


def test_a_broken_manifest_fails_validation(tmp_path):
    source = (ROOT / "blender_manifest.toml").read_text()
    (tmp_path / "__init__.py").write_text("")
    (tmp_path / "blender_manifest.toml").write_text(source)
    validate(tmp_path)

    (tmp_path / "blender_manifest.toml").write_text(source.replace('blender_version_min = "4.2.0"', 'blender_version_min = "soon"'))
    with pytest.raises(BuildError, match="blender_version_min"):
        validate(tmp_path)


def test_build_without_a_model_file_says_what_to_do(tmp_path):
    result = build_extension(tmp_path / "missing.npz", tmp_path)
    assert result.returncode == 1
    assert "no model file at" in result.stderr and "--weights" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.glob("*.zip"))


def _addon_classes(module_name):
    addon = sys.modules[module_name]
    return addon.operators.classes + addon.panels.classes


def test_install_registers_the_panel_and_every_operator(blender, installed_extension, extension_dir):
    bpy = blender
    assert installed_extension in bpy.context.preferences.addons
    assert (extension_dir / "weights" / "imhead.npz").is_file()
    classes = _addon_classes(installed_extension)
    assert all(cls.is_registered for cls in classes)
    assert {"IMHEAD_OT_generate", "IMHEAD_OT_random_head"} <= {cls.__name__ for cls in classes}
    assert any(cls.bl_space_type == 'VIEW_3D' and cls.bl_category == "imHead" for cls in classes
               if issubclass(cls, bpy.types.Panel))
    assert bpy.ops.imhead.generate.poll() and bpy.ops.imhead.random_head.poll()
    assert hasattr(bpy.types.Object, "imhead") and hasattr(bpy.types.Scene, "imhead")


def test_disable_and_enable_twice_leaves_no_stale_classes(blender, installed_extension):
    bpy = blender
    classes = _addon_classes(installed_extension)
    for _ in range(2):
        bpy.ops.preferences.addon_disable(module=installed_extension)
        assert not any(cls.is_registered for cls in classes)
        assert not hasattr(bpy.types.Object, "imhead") and not hasattr(bpy.types.Scene, "imhead")
        assert "generate" not in dir(bpy.ops.imhead)

        bpy.ops.preferences.addon_enable(module=installed_extension)
        classes = _addon_classes(installed_extension)
        assert all(cls.is_registered for cls in classes)
        assert hasattr(bpy.types.Object, "imhead") and bpy.ops.imhead.generate.poll()
