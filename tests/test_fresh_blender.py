"""The zip in Blenders that have nothing but themselves.

Virtualenvs that hold only bpy (Blender's own Python packages, numpy among them; no torch, no
scikit-image), like a stock Blender 4.2 LTS, 5.0 and 5.3. The extension is installed there from its
zip into a fresh user folder, in a process of its own, and does what an artist does: generates a head,
edits a region, bakes the expressions, fits a scan and generates an artist mesh (with its eyes, teeth,
gums and lashes, which move with its baked expressions and go when the head is deleted). This proves that the
add-on needs nothing a stock Blender lacks, on every path (the test process itself has the dev venv's
packages, so it cannot see what the zip lacks), and that Blender exits cleanly afterwards. The command
line's runtime verbs (python -m imhead) run there too. The virtualenvs are made once and kept in .cache/.
"""
import json
import subprocess

import numpy as np
import pytest

from conftest import ADDON_MODULE, ROOT, STOCK_BLENDERS, run_session, stock_env, stock_python
from model.runtime.mesh_io import read_points

SESSION = """
import json, sys
import numpy as np

result = {}
try:
    import torch
    result["torch_before_install"] = torch.__file__
except ImportError:
    result["torch_before_install"] = None

import bpy
bpy.ops.extensions.package_install_files(filepath=sys.argv[1], repo="user_default", enable_on_install=True)
bpy.context.preferences.addons[sys.argv[2]].preferences.preview_resolution = 64
result["generate"] = sorted(bpy.ops.imhead.generate(seed=5, variation=1.0))

mesh = bpy.context.active_object.data
loop_edges = np.empty(len(mesh.loops), dtype=np.int32)
mesh.loops.foreach_get("edge_index", loop_edges)
result["faces"] = len(mesh.polygons)
result["closed"] = bool(np.all(np.bincount(loop_edges, minlength=len(mesh.edges)) == 2))
result["corrected"] = mesh.validate()

head = bpy.context.active_object
result["randomize_region"] = sorted(bpy.ops.imhead.randomize_region(region="nose", seed=3, scale=2.0))
result["edited_regions"] = sorted(head.imhead["region_codes"].keys())
result["bake"] = sorted(bpy.ops.imhead.bake_expressions())
result["shape_keys"] = len(head.data.shape_keys.key_blocks) if head.data.shape_keys else 0

# A scan in millimetres, turned and moved: the generated head's mesh, as an artist imports one.
mesh = head.data  # the edit gave the head a new mesh
scan_mesh = bpy.data.meshes.new("Scan")
scan_mesh.from_pydata([tuple(1000.0 * v.co) for v in mesh.vertices], [], [tuple(p.vertices) for p in mesh.polygons])
scan = bpy.data.objects.new("Scan", scan_mesh)
bpy.context.collection.objects.link(scan)
scan.location = (0.3, -0.2, 1.1)
scan.rotation_euler = (0.0, 0.0, 1.5708)
scan.scale = (0.001, 0.001, 0.001)
bpy.data.objects.remove(head)
bpy.context.view_layer.objects.active = scan
bpy.context.view_layer.update()
result["fit"] = sorted(bpy.ops.imhead.fit_scan(n_points=2000, steps=40))
fitted = bpy.context.active_object
result["fitted_to"] = fitted.imhead.fitted_to
result["fitted_dimensions"] = list(fitted.dimensions)
result["fitted_location"] = list(fitted.matrix_world.translation)
result["artist"] = sorted(bpy.ops.imhead.generate(seed=6, topology='ARTIST'))
artist = bpy.context.active_object.data
result["artist_mesh"] = [len(artist.vertices), len(artist.polygons), [layer.name for layer in artist.uv_layers]]
parts = [obj for obj in bpy.context.active_object.children if "imhead_part" in obj]
result["artist_parts"] = sorted([obj["imhead_part"], len(obj.data.vertices), len(obj.data.polygons)] for obj in parts)
result["part_materials"] = sorted({obj.data.materials[0].name for obj in parts})
# The viewport colour is the render's too: the Principled BSDF's base colour (4.2 makes the node tree, 5.x has one).
result["part_colours_rendered"] = all(
    list(node.inputs["Base Color"].default_value) == list(obj.data.materials[0].diffuse_color)
    for obj in parts for node in obj.data.materials[0].node_tree.nodes if node.bl_idname == "ShaderNodeBsdfPrincipled")
result["artist_bake"] = sorted(bpy.ops.imhead.bake_expressions())
result["part_keys"] = sorted({len(obj.data.shape_keys.key_blocks) for obj in parts})


def shown(obj):
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    mesh = evaluated.to_mesh()
    co = np.empty(3 * len(mesh.vertices), np.float32)
    mesh.vertices.foreach_get("co", co)
    evaluated.to_mesh_clear()
    return co.reshape(-1, 3)


teeth = next(obj for obj in parts if obj["imhead_part"] == "teeth")
closed = shown(teeth)
bpy.context.active_object.data.shape_keys.key_blocks["jawOpen"].value = 1.0  # the head's key drives the teeth's
result["teeth_drop_mm"] = float(1000 * (closed - shown(teeth))[:, 2].max())
bpy.data.objects.remove(bpy.context.active_object)
bpy.context.view_layer.update()
result["parts_left"] = [len([obj for obj in bpy.data.objects if "imhead_part" in obj]),
                        len([m for m in bpy.data.materials if m.name.startswith("imHead")])]
result["python"] = list(sys.version_info[:2])
result["numpy"] = np.__version__
result["heavy_modules"] = sorted({name.split(".")[0] for name in sys.modules} & {"torch", "scipy", "skimage", "igl"})
print("RESULT " + json.dumps(result))
"""


@pytest.fixture(scope="session", params=sorted(STOCK_BLENDERS), ids=lambda version: f"blender-{version}")
def stock_blender_python(request):
    """Python of a virtualenv with only bpy installed, for each stock Blender."""
    return request.param, stock_python(request.param)


def test_the_zip_generates_edits_bakes_and_fits_in_a_stock_blender(stock_blender_python, extension_zip, tmp_path):
    version, python = stock_blender_python
    result, _ = run_session(python, SESSION, tmp_path, str(extension_zip), ADDON_MODULE)

    assert result["torch_before_install"] is None  # the stock Blender really has no torch
    assert result["python"] == ([3, 13] if version == "5.3" else [3, 11])
    assert result["numpy"].startswith("2." if version == "5.3" else "1.26")
    assert result["heavy_modules"] == []  # everything below ran on numpy alone
    assert result["generate"] == ["FINISHED"]
    assert result["faces"] > 1000 and result["closed"] and result["corrected"] is False
    assert result["randomize_region"] == ["FINISHED"] and result["edited_regions"] == ["nose"]
    assert result["bake"] == ["FINISHED"] and result["shape_keys"] == 54  # the basis and 53 expressions
    assert result["fit"] == ["FINISHED"] and result["fitted_to"] == "Scan"
    # The fitted head lies where the scan is, at the scan's (metre) size.
    assert all(0.1 < size < 0.5 for size in result["fitted_dimensions"]), result["fitted_dimensions"]
    assert max(abs(a - b) for a, b in zip(result["fitted_location"], (0.3, -0.2, 1.1))) < 0.1
    assert result["artist"] == ["FINISHED"] and result["artist_mesh"] == [14062, 14034, ["UVMap"]]
    assert result["artist_parts"] == [["eyeball_l", 1570, 1598], ["eyeball_r", 1570, 1598], ["gums_tongue", 2977, 2972],
                                      ["lashes_l", 684, 540], ["lashes_r", 684, 540], ["teeth", 4412, 4490]]
    assert result["part_materials"] == ["imHead Eye", "imHead Eyelashes", "imHead Gums and Tongue", "imHead Teeth"]
    assert result["part_colours_rendered"]
    assert result["artist_bake"] == ["FINISHED"] and result["part_keys"] == [54]
    assert result["teeth_drop_mm"] > 5  # the lower teeth open with the jaw
    assert result["parts_left"] == [0, 0]  # removed with their head


def test_the_runtime_verbs_run_without_torch(stock_blender_python, tiny_model, tmp_path):
    """python -m imhead's runtime verbs in a Python with numpy and nothing of training's (no torch, no
    libigl, no scipy): generate a head, edit its nose, give it a smile, bake its expressions, mesh it,
    then fit the generated head's vertices."""
    _, python = stock_blender_python
    env = stock_env()

    def imhead(*args):
        completed = subprocess.run([str(python), "-m", "imhead", *args, "--model", str(tiny_model), "--quiet"],
                                   cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
        assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
        return completed.stdout

    head, params = tmp_path / "head.obj", tmp_path / "head.json"
    imhead("generate", "--seed", "5", "--resolution", "48", "--out-mesh", str(head), "--out-json", str(params))
    imhead("edit", "--params", str(params), "--region", "nose", "--randomize", "3", "--out-json", str(params))
    imhead("express", "--params", str(params), "--preset", "smile", "--out-json", str(params))
    imhead("bake", "--params", str(params), "--out", str(tmp_path / "keys.glb"))
    imhead("mesh", "--params", str(params), "--out-mesh", str(tmp_path / "smile.ply"))
    assert (tmp_path / "keys.glb").stat().st_size > 0 and (tmp_path / "smile.ply").stat().st_size > 0
    scan = tmp_path / "scan.npy"  # the head's vertices (metres in the file) as a scan in millimetres
    np.save(scan, read_points(head)[0] * 1000.0)
    fitted = tmp_path / "fit.json"
    printed = imhead("fit", "--input", str(scan), "--steps", "20", "--points", "2000", "--out-json", str(fitted))
    assert "within" in printed and json.loads(fitted.read_text())["fit"]["within_5mm"] > 0.9
    no_torch = subprocess.run([str(python), "-c", "import torch"], capture_output=True, env=env)
    assert no_torch.returncode != 0  # and that Python really has no torch
