"""python -m imhead: every verb on the tiny model at a low resolution, and what each writes read back
with other readers (trimesh for OBJ and PLY, Blender's importer for glTF, json and struct for the rest).
"""
import base64
import json
import struct
import subprocess
import sys

import numpy as np
import pytest
import trimesh
from scipy.spatial import cKDTree

from conftest import ROOT
from imhead.cli import main
from model import HeadModel
from model.runtime import editing
from model.runtime.expressions import PRESETS
from model.runtime.frame import model_to_file
from model.runtime.head_state import HeadState, neutral_mesh

RESOLUTION = 40


@pytest.fixture(scope="module")
def model(tiny_model):
    return HeadModel.load(tiny_model)


@pytest.fixture(scope="module")
def generated(tiny_model, tmp_path_factory):
    """`generate --seed 3`: (mesh file, parameters file)."""
    folder = tmp_path_factory.mktemp("generated")
    mesh, params = folder / "head.obj", folder / "head.json"
    assert imhead(tiny_model, "generate", "--seed", "3", "--resolution", str(RESOLUTION),
                  "--out-mesh", str(mesh), "--out-json", str(params)) == 0
    return mesh, params


def imhead(tiny_model, *args):
    """The command line, in this process, on the tiny model, without progress bars."""
    return main([*args, "--model", str(tiny_model), "--quiet"])


def run(*args):
    """The command line as a user runs it: its own process, from the repository root."""
    return subprocess.run([sys.executable, "-m", "imhead", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)


def load_mesh(path):
    return trimesh.load(path, process=False, force="mesh")


def test_generate_writes_the_seeds_head_and_its_parameters(model, generated):
    mesh_path, params = generated
    state = HeadState.load(params)
    assert (state.seed, state.variation, state.resolution, state.model_hash) == (3, 1.0, RESOLUTION, model.hash)
    np.testing.assert_array_equal(state.identity, model.sample_identity(3, 1.0))
    expected = model.extract_mesh(state.identity, resolution=RESOLUTION)
    written = load_mesh(mesh_path)
    # In metres, Y up (OBJ writes 6 decimals: a micrometre).
    np.testing.assert_allclose(written.vertices, model_to_file(expected.vertices), atol=1e-6)
    np.testing.assert_array_equal(written.faces, expected.faces)
    assert written.is_watertight and 0.15 < np.ptp(written.vertices[:, 1]) < 0.6  # a head's height in metres


def test_ply_output_is_a_binary_ply_and_an_unknown_extension_is_an_error(tiny_model, model, generated, tmp_path):
    ply = tmp_path / "head.ply"
    assert imhead(tiny_model, "mesh", "--params", str(generated[1]), "--out-mesh", str(ply)) == 0
    assert ply.read_bytes().startswith(b"ply\nformat binary_little_endian 1.0\n")
    written, obj = load_mesh(ply), load_mesh(generated[0])
    np.testing.assert_allclose(written.vertices, obj.vertices, atol=1e-6)
    np.testing.assert_array_equal(written.faces, obj.faces)

    stl = tmp_path / "head.stl"
    completed = run("mesh", "--params", str(generated[1]), "--out-mesh", str(stl), "--model", str(tiny_model))
    assert completed.returncode == 1 and not stl.exists()
    assert completed.stderr.count("\n") == 1 and ".stl" in completed.stderr and ".ply" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_edit_randomizes_copies_slides_and_resets_a_region(tiny_model, model, generated, tmp_path):
    params = str(generated[1])
    nose, nose_mesh = tmp_path / "nose.json", tmp_path / "nose.obj"
    assert imhead(tiny_model, "edit", "--params", params, "--region", "nose", "--randomize", "7", "--scale", "2",
                  "--out-json", str(nose), "--out-mesh", str(nose_mesh)) == 0
    edited = HeadState.load(nose)
    np.testing.assert_array_equal(edited.region_codes["nose"],
                                  editing.random_region_codes(model, "nose", 7, 2.0).ravel())
    assert edited.slider_values["nose"] == [0.0] * editing.REGION_SLIDERS
    np.testing.assert_array_equal(edited.identity, HeadState.load(params).identity)  # the rest is the head's
    edited_vertices, head_vertices = load_mesh(nose_mesh).vertices, load_mesh(generated[0]).vertices
    # A different mesh (a tiny model's two meshes once had the same vertex count: 3318)
    assert edited_vertices.shape != head_vertices.shape or not np.allclose(edited_vertices, head_vertices)

    # Another head takes this nose as edited; sliders go on top.
    other, copied = tmp_path / "other.json", tmp_path / "copied.json"
    assert imhead(tiny_model, "generate", "--seed", "4", "--out-json", str(other)) == 0
    assert imhead(tiny_model, "edit", "--params", str(other), "--region", "nose", "--copy-from", str(nose),
                  "--out-json", str(copied)) == 0
    assert imhead(tiny_model, "edit", "--params", str(copied), "--region", "jaw", "--sliders", "1.5", "-1",
                  "--out-json", str(copied)) == 0
    state = HeadState.load(copied)
    np.testing.assert_allclose(state.region_codes["nose"],
                               editing.edited_region_codes(model, "nose", edited.identity,
                                                           edited.local_offsets(model)).ravel())
    assert state.slider_values["jaw"] == [1.5, -1.0] + [0.0] * (editing.REGION_SLIDERS - 2)
    parts = list(editing.region_basis(model, "nose").parts)
    np.testing.assert_allclose((model.local_codes(state.identity) + state.local_offsets(model))[parts],
                               (model.local_codes(edited.identity) + edited.local_offsets(model))[parts], atol=1e-6)

    assert imhead(tiny_model, "edit", "--params", str(copied), "--region", "nose", "--reset",
                  "--out-json", str(copied)) == 0
    assert "nose" not in HeadState.load(copied).region_codes and "jaw" in HeadState.load(copied).slider_values


def test_edit_of_an_unknown_region_names_the_regions(tiny_model, model, generated, capsys):
    assert imhead(tiny_model, "edit", "--params", str(generated[1]), "--region", "tail", "--reset",
                  "--out-json", "unused.json") == 1
    error = capsys.readouterr().err
    assert "'tail'" in error and all(region in error for region in model.regions)


def test_express_sets_a_preset_and_coefficients_on_the_heads_own_mesh(tiny_model, model, generated, tmp_path):
    smile, smile_mesh = tmp_path / "smile.json", tmp_path / "smile.obj"
    assert imhead(tiny_model, "express", "--params", str(generated[1]), "--preset", "smile", "--set", "jawOpen=0.5",
                  "--out-json", str(smile), "--out-mesh", str(smile_mesh)) == 0
    wanted = {name: value for name, value in PRESETS["smile"].items() if name in model.expression_names}
    assert HeadState.load(smile).expression_values == pytest.approx({**wanted, "jawOpen": 0.5})
    neutral, expressed = load_mesh(generated[0]), load_mesh(smile_mesh)
    np.testing.assert_array_equal(expressed.faces, neutral.faces)  # the neutral head's vertices, moved
    moved = np.linalg.norm(expressed.vertices - neutral.vertices, axis=1)
    assert moved.max() > 1e-4 and np.median(moved) < moved.max()

    assert imhead(tiny_model, "express", "--params", str(generated[1]), "--set", "jawOpen=2",
                  "--out-json", str(smile)) == 1
    assert imhead(tiny_model, "express", "--params", str(generated[1]), "--set", "grin=0.5",
                  "--out-json", str(smile)) == 1


def read_glb(path):
    """(document, binary chunk) of a .glb file, by the container's layout."""
    data = path.read_bytes()
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    assert (magic, version, length) == (b"glTF", 2, len(data))
    json_length, json_kind = struct.unpack_from("<I4s", data, 12)
    assert json_kind == b"JSON"
    document = json.loads(data[20:20 + json_length])
    bin_length, bin_kind = struct.unpack_from("<I4s", data, 20 + json_length)
    assert bin_kind == b"BIN\0"
    return document, data[28 + json_length:28 + json_length + bin_length]


def accessor_array(document, blob, index):
    accessor = document["accessors"][index]
    view = document["bufferViews"][accessor["bufferView"]]
    dtype = {5126: "<f4", 5125: "<u4"}[accessor["componentType"]]
    width = {"VEC3": 3, "SCALAR": 1}[accessor["type"]]
    array = np.frombuffer(blob, dtype, accessor["count"] * width, view["byteOffset"])
    return array.reshape(accessor["count"], width) if width > 1 else array


def test_bake_writes_one_mesh_per_expression_or_a_gltf_with_morph_targets(tiny_model, model, generated, tmp_path):
    params = str(generated[1])
    folder, glb, gltf = tmp_path / "keys", tmp_path / "keys.glb", tmp_path / "keys.gltf"
    for out in (folder, glb, gltf):
        assert imhead(tiny_model, "bake", "--params", params, "--out", str(out)) == 0
    names = list(model.expression_names)
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{n}.obj" for n in ["neutral", *names])
    neutral = load_mesh(folder / "neutral.obj")
    np.testing.assert_allclose(neutral.vertices, load_mesh(generated[0]).vertices, atol=1e-6)
    jaw = load_mesh(folder / "jawOpen.obj")
    np.testing.assert_array_equal(jaw.faces, neutral.faces)
    assert np.abs(jaw.vertices - neutral.vertices).max() > 1e-4

    document, blob = read_glb(glb)
    (mesh,) = document["meshes"]
    (primitive,) = mesh["primitives"]
    assert mesh["extras"]["targetNames"] == names and len(primitive["targets"]) == len(names)
    base = accessor_array(document, blob, primitive["attributes"]["POSITION"])
    np.testing.assert_allclose(base, neutral.vertices, atol=1e-6)
    np.testing.assert_array_equal(accessor_array(document, blob, primitive["indices"]).reshape(-1, 3), neutral.faces)
    jaw_delta = accessor_array(document, blob, primitive["targets"][names.index("jawOpen")]["POSITION"])
    np.testing.assert_allclose(base + jaw_delta, jaw.vertices, atol=2e-6)
    accessor = document["accessors"][primitive["targets"][0]["POSITION"]]
    delta = accessor_array(document, blob, primitive["targets"][0]["POSITION"])
    np.testing.assert_allclose([accessor["min"], accessor["max"]], [delta.min(0), delta.max(0)])

    text = json.loads(gltf.read_text())
    uri = text["buffers"][0]["uri"]
    assert uri.startswith("data:application/octet-stream;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]) == blob and text["accessors"] == document["accessors"]

    assert imhead(tiny_model, "bake", "--params", params, "--out", str(tmp_path / "keys.fbx")) == 1


def test_blender_imports_the_baked_gltf_as_a_head_with_53_shape_keys(tiny_model, model, generated, tmp_path):
    import bpy

    glb = tmp_path / "keys.glb"
    assert imhead(tiny_model, "bake", "--params", str(generated[1]), "--out", str(glb)) == 0
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    assert bpy.ops.import_scene.gltf(filepath=str(glb)) == {'FINISHED'}
    (head,) = [obj for obj in bpy.data.objects if obj.type == 'MESH']
    keys = head.data.shape_keys.key_blocks
    assert [key.name for key in keys][1:] == list(model.expression_names)
    # Back in Blender's frame (metres, Z up): the add-on's head object's coordinates.
    state = HeadState.load(generated[1])
    surface = neutral_mesh(model, state, RESOLUTION)
    world = np.array(head.matrix_world)
    vertices = np.array([world[:3, :3] @ np.array(v.co) + world[:3, 3] for v in head.data.vertices])
    tree = cKDTree(vertices)
    assert tree.query(surface.vertices * 0.2)[0].max() < 1e-5


def test_fit_writes_the_head_on_the_scan_with_its_parameters_and_shows_progress(tiny_model, model, generated,
                                                                                  tmp_path):
    scan = tmp_path / "scan.npy"  # the generated head in millimetres, moved
    points = load_mesh(generated[0]).vertices * 1000.0 + [30.0, -500.0, 1200.0]
    np.save(scan, points)
    mesh, params = tmp_path / "fit.ply", tmp_path / "fit.json"
    completed = run("fit", "--input", str(scan), "--steps", "30", "--points", "2000", "--resolution",
                    str(RESOLUTION), "--out-mesh", str(mesh), "--out-json", str(params), "--model", str(tiny_model))
    assert completed.returncode == 0, completed.stderr
    assert "ETA" in completed.stderr and "residual" in completed.stdout
    state = HeadState.load(params)
    assert state.fitted_to == "scan.npy" and state.fit["unit"] == "mm" and state.fit["within_5mm"] > 0.9
    assert np.array(state.fit["transform"]).shape == (4, 4) and state.resolution == RESOLUTION
    distance, _ = cKDTree(load_mesh(mesh).vertices).query(points[::10])
    assert np.median(distance) < 3.0  # on the scan, in its millimetres
    # The parameters are a head like any other: they mesh, edit, bake.
    assert imhead(tiny_model, "mesh", "--params", str(params), "--out-mesh", str(tmp_path / "again.obj")) == 0

    quiet = run("fit", "--input", str(scan), "--steps", "5", "--points", "2000", "--out-json", str(params),
                "--model", str(tiny_model), "--quiet")
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_fitting_a_folder_reports_the_scans_it_cannot_fit_and_fits_the_others(tiny_model, generated, tmp_path):
    scans, out = tmp_path / "scans", tmp_path / "fitted"
    scans.mkdir()
    np.save(scans / "head.npy", load_mesh(generated[0]).vertices * 1000.0)
    rng = np.random.default_rng(0)
    ball = rng.normal(size=(3000, 3))
    np.save(scans / "ball.npy", ball / np.linalg.norm(ball, axis=1, keepdims=True)
            * 0.13 * rng.random((3000, 1)) ** (1 / 3))  # a solid ball of a head's size: no surface to fit
    np.save(scans / "few.npy", rng.normal(size=(10, 3)))
    (scans / "notes.txt").write_text("not a scan")
    completed = run("fit", "--input", str(scans), "--out", str(out), "--steps", "20", "--points", "2000",
                    "--resolution", str(RESOLUTION), "--model", str(tiny_model), "--quiet")
    assert completed.returncode == 1, completed.stderr
    summary = json.loads((out / "summary.json").read_text())
    rows = {row["scan"]: row for row in summary["scans"]}
    assert sorted(rows) == ["ball.npy", "few.npy", "head.npy"] and (summary["fitted"], summary["failed"]) == (1, 2)
    assert rows["head.npy"]["fitted"] and rows["head.npy"]["within_5mm"] > 0.9
    assert "within 5 mm of only" in rows["ball.npy"]["error"] and "at least 300" in rows["few.npy"]["error"]
    assert sorted(p.name for p in out.iterdir()) == ["head.json", "head.obj", "summary.json"]
    assert HeadState.load(out / "head.json").fitted_to == "head.npy"
    assert "ball.npy: not fitted" in completed.stdout and "1 of 3 scans fitted" in completed.stdout


def test_fitting_a_folder_on_two_processes_writes_what_one_process_writes(tiny_model, model, tmp_path):
    """Each worker process fits on one thread: bit for bit what one process fits with --threads 1."""
    scans = tmp_path / "scans"
    scans.mkdir()
    for seed in (3, 5, 8):
        head = model.extract_mesh(model.sample_identity(seed, 1.0), resolution=RESOLUTION)
        np.save(scans / f"head{seed}.npy", model_to_file(head.vertices) * 1000.0)
    np.save(scans / "few.npy", np.random.default_rng(0).normal(size=(10, 3)))  # fails; the others go on
    options = ("--steps", "20", "--points", "2000", "--resolution", str(RESOLUTION), "--model", str(tiny_model))
    one = run("fit", "--input", str(scans), "--out", str(tmp_path / "one"), "--threads", "1", "--quiet", *options)
    two = run("fit", "--input", str(scans), "--out", str(tmp_path / "two"), "--processes", "2", *options)
    assert one.returncode == two.returncode == 1, two.stderr
    assert "4/4 scans" in two.stderr and "few.npy: not fitted" in two.stdout and "3 of 4 scans fitted" in two.stdout

    def without_seconds(row):
        return {key: value for key, value in row.items() if key != "seconds"}
    summaries = [json.loads((tmp_path / run_name / "summary.json").read_text()) for run_name in ("one", "two")]
    assert [without_seconds(row) for row in summaries[0]["scans"]] == [without_seconds(row) for row in
                                                                        summaries[1]["scans"]]
    assert [row["scan"] for row in summaries[1]["scans"]] == ["few.npy", "head3.npy", "head5.npy", "head8.npy"]
    for seed in (3, 5, 8):
        assert (tmp_path / "one" / f"head{seed}.obj").read_bytes() == (tmp_path / "two" / f"head{seed}.obj").read_bytes()
        params = [json.loads((tmp_path / run_name / f"head{seed}.json").read_text()) for run_name in ("one", "two")]
        for fitted in params:
            del fitted["fit"]["seconds"]
        assert params[0] == params[1] and params[0]["fit"]["within_5mm"] > 0.9

    completed = run("fit", "--input", str(scans), "--out", str(tmp_path / "three"), "--processes", "2",
                    "--threads", "2", *options)
    assert completed.returncode == 1 and "--processes or --threads" in completed.stderr


def test_bad_input_is_one_line_and_exit_1(tiny_model, tmp_path):
    few = tmp_path / "few.npy"
    np.save(few, np.ones((10, 3)))
    not_json = tmp_path / "head.json"
    not_json.write_text("{")
    for args in (("fit", "--input", str(few), "--out-json", str(tmp_path / "f.json")),
                 ("mesh", "--params", str(not_json), "--out-mesh", str(tmp_path / "m.obj")),
                 ("generate", "--out-json", str(tmp_path / "missing" / "g.json"))):
        completed = run(*args, "--model", str(tiny_model))
        assert completed.returncode == 1 and completed.stderr.count("\n") == 1, completed.stderr
        assert completed.stderr.startswith(f"imhead {args[0]}: error: ")
    completed = run("generate", "--out-json", str(tmp_path / "g.json"), "--model", str(tmp_path / "none.npz"))
    assert completed.returncode == 1 and "none.npz" in completed.stderr and "Traceback" not in completed.stderr


def test_train_build_data_evaluate_and_ablation_are_the_modules_commands(tmp_path):
    trained = tmp_path / "tiny.npz"
    assert main(["train", "--config", "configs/tiny.json", "--out", str(trained)]) == 0
    assert HeadModel.load(trained).config.code_dim > 0

    data = tmp_path / "data.npz"
    assert main(["build-data", "--out", str(data), "--heads", "1", "--surface", "256", "--near", "256",
                 "--free", "128", "--expressions", "1", "--workers", "1"]) == 0
    assert np.load(data)["surface"].shape == (1, 256, 3)

    evaluation = tmp_path / "evaluation"
    assert main(["evaluate", "--model", str(trained), "--out", str(evaluation), "--heads", "1", "--anny-heads", "0",
                 "--robustness-heads", "0", "--resolution", "32", "--points", "500", "--quality", "fast"]) == 0
    assert len(json.loads(evaluation.with_suffix(".json").read_text())["held_out_fit"]) == 1

    ablation = tmp_path / "ablation"
    assert main(["ablation", "--config", "configs/tiny.json", "--out", str(ablation), "--runs", str(tmp_path / "runs"),
                 "--variants", "full", "--steps", "5", "--heads", "1", "--resolution", "32"]) == 0
    assert len(json.loads(ablation.with_suffix(".json").read_text())["rows"]) == 1


def test_the_runtime_verbs_import_nothing_of_training(tiny_model, generated, tmp_path):
    """What Blender's Python lacks (torch, scipy, scikit-image, libigl) is never imported by the runtime
    verbs, though this Python has all of it (tests/test_fresh_blender.py runs them where it is absent)."""
    script = (
        "import sys\nfrom imhead.cli import main\n"
        f"model, params, out = {str(tiny_model)!r}, {str(generated[1])!r}, {str(tmp_path)!r}\n"
        "for args in (['generate', '--resolution', '32', '--out-mesh', out + '/g.ply'],\n"
        "             ['edit', '--params', params, '--region', 'nose', '--randomize', '1', '--out-json', out + '/e.json'],\n"
        "             ['express', '--params', params, '--preset', 'blink', '--out-json', out + '/x.json'],\n"
        "             ['bake', '--params', params, '--out', out + '/b.glb'],\n"
        "             ['mesh', '--params', params, '--out-mesh', out + '/m.obj'],\n"
        "             ['fit', '--input', out + '/g.ply', '--steps', '2', '--points', '500', '--out-json', out + '/f.json']):\n"
        "    assert main(args + ['--model', model, '--quiet']) in (0, 1)\n"
        "print(sorted({name.split('.')[0] for name in sys.modules} & {'torch', 'scipy', 'skimage', 'igl', 'trimesh'}))\n")
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines()[-1] == "[]"  # after what the verbs print
