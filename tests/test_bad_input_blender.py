"""Bad input, in the artist's Blender: the zip installed into a stock bpy 5.0 (bpy only, in a process of
its own) is handed scans and files that cannot make a head. Every case ends with a report or a correct
result; a refused operator leaves the scene as it was; nothing prints a traceback; a pickled payload in
a model or animation file is never run; undo after each operator brings the scene back; disabling and
enabling the add-on twice leaves it working. The in-process tests (test_network, test_fit) prove the
reasons one by one; this proves them through the installed operators.
"""
import numpy as np

from conftest import ADDON_MODULE, run_session, stock_python

SESSION = """
import json, sys
import numpy as np
import bpy

zip_path, module, files = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
preferences = lambda: bpy.context.preferences.addons[module].preferences
preferences().preview_resolution = 48
result = {}

def digest():
    return sorted((o.name, o.type, o.data.name if o.data else "", len(o.data.vertices) if o.type == 'MESH' else 0)
                  for o in bpy.data.objects) + sorted((m.name, len(m.vertices)) for m in bpy.data.meshes)

def undo():
    with bpy.context.temp_override(window=bpy.context.window_manager.windows[0]):
        bpy.ops.ed.undo()

def run(case, operator, **options):
    # A finished operator is undone (what the run needs later is made again); a refused one pushed no
    # undo step, so undoing it would take back the step before.
    before = digest()
    bpy.ops.ed.undo_push(message="before " + case)
    try:
        outcome = sorted(operator('EXEC_DEFAULT', True, **options))  # True: push an undo step, as the UI does
    except RuntimeError as error:  # an ERROR report, or a poll that says why not
        outcome = str(error).strip()
    after = digest()
    entry = {"outcome": outcome, "unchanged": after == before}
    if outcome == ["FINISHED"]:
        entry["active"] = bpy.context.active_object.name
        entry["fitted_to"] = bpy.context.active_object.imhead.fitted_to
        undo()
        entry["undone"] = digest() == before
    result[case] = entry

def add_scan(name, points, faces=(), scale=1.0):
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(points))
    mesh.vertices.foreach_set("co", np.asarray(points, np.float32).ravel())
    if len(faces):
        mesh.loops.add(3 * len(faces))
        mesh.loops.foreach_set("vertex_index", np.asarray(faces, np.int32).ravel())
        mesh.polygons.add(len(faces))
        mesh.polygons.foreach_set("loop_start", np.arange(0, 3 * len(faces), 3, dtype=np.int32))
    mesh.update()
    scan = bpy.data.objects.new(name, mesh)
    bpy.context.collection.objects.link(scan)
    scan.scale = (scale,) * 3
    for other in bpy.context.view_layer.objects:
        other.select_set(False)
    bpy.context.view_layer.objects.active = scan
    bpy.context.view_layer.update()
    return scan

fit = lambda *call: bpy.ops.imhead.fit_scan(*call, n_points=2000, steps=10)

run("generate", bpy.ops.imhead.generate, seed=5)
bpy.ops.imhead.generate(seed=5)
head_name = bpy.context.active_object.name  # by name: undo replaces every object
head_points = np.array([v.co for v in bpy.context.active_object.data.vertices]) * 1000.0  # a scan in millimetres
rng = np.random.default_rng(0)
run("bake", bpy.ops.imhead.bake_expressions)
bpy.context.view_layer.objects.active = bpy.data.objects[head_name]
bpy.ops.imhead.bake_expressions()

add_scan("Empty", np.zeros((0, 3))); run("scan empty", fit)
add_scan("Few", head_points[:10]); run("scan too small", fit)
nan = head_points.copy(); nan[7] = np.nan
add_scan("NaN", nan); run("scan non-finite", fit)
line = np.zeros((3000, 3)); line[:, 0] = np.linspace(0.0, 200.0, 3000)
add_scan("Line", line); run("scan on a line", fit)
plane = rng.uniform(0.0, 200.0, (3000, 3)); plane[:, 2] = 0.0
add_scan("Plane", plane); run("scan on a plane", fit)
add_scan("Coincident", np.ones((3000, 3))); run("scan in one point", fit)
add_scan("Giant", head_points * 1e6); run("scan absurdly large", fit)
add_scan("Speck", head_points * 1e-6); run("scan absurdly small", fit)
add_scan("Scaled", head_points, scale=1e5); run("scan absurd object scale", fit)
add_scan("Huge", np.repeat(head_points, 1 + 1_000_000 // len(head_points), axis=0)
         + rng.normal(0.0, 0.2, (len(head_points) * (1 + 1_000_000 // len(head_points)), 3)))
run("scan huge", fit)

for name, path in files["models"].items():
    preferences().model_path = path
    bpy.context.view_layer.objects.active = bpy.data.objects[head_name]
    run("model " + name + " generate", bpy.ops.imhead.generate, seed=1)
    run("model " + name + " bake", bpy.ops.imhead.bake_expressions)
preferences().property_unset("model_path")

bpy.context.view_layer.objects.active = bpy.data.objects[head_name]
for name, path in files["animations"].items():
    run("animation " + name, bpy.ops.imhead.import_expression_animation, filepath=path)

for _ in range(2):
    bpy.ops.preferences.addon_disable(module=module)
    bpy.ops.preferences.addon_enable(module=module)
run("generate after disable and enable twice", bpy.ops.imhead.generate, seed=6)
print("RESULT " + json.dumps(result))
"""


class Payload:
    """Pickles into a call that creates `marker`: any unpickling of a file that holds one runs it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, "w")


def bad_files(tiny_model, tmp_path):
    """Model and animation files that are no such thing, by name and path."""
    marker = tmp_path / "payload-ran"
    payload = np.array([Payload(str(marker))], dtype=object)
    model_bytes = tiny_model.read_bytes()
    truncated, empty, text, pickled = (tmp_path / name for name in ("truncated.npz", "empty.npz", "text.npz", "pickled.npz"))
    truncated.write_bytes(model_bytes[: len(model_bytes) // 2])
    empty.write_bytes(b"")
    text.write_text("not a model, whatever the extension says\n")
    with np.load(tiny_model) as npz:
        np.savez(pickled, payload=payload, **{key: npz[key] for key in npz.files})
    pickled_npy, binary_csv, text_json = tmp_path / "pickled.npy", tmp_path / "binary.csv", tmp_path / "text.json"
    np.save(pickled_npy, payload)
    binary_csv.write_bytes(bytes(range(256)) * 8)
    text_json.write_text("{ not json")
    models = {"truncated": truncated, "empty": empty, "not a zip": text, "pickle": pickled, "missing": tmp_path / "gone.npz"}
    animations = {"pickle": pickled_npy, "binary csv": binary_csv, "broken json": text_json, "missing": tmp_path / "gone.csv",
                  "model file as npy": tiny_model}
    return marker, {"models": {k: str(v) for k, v in models.items()}, "animations": {k: str(v) for k, v in animations.items()}}


def test_bad_input_through_the_installed_extension_ends_in_a_report_with_the_scene_unchanged(extension_zip, tiny_model, tmp_path):
    import json

    marker, files = bad_files(tiny_model, tmp_path)
    result, stderr = run_session(stock_python("5.0"), SESSION, tmp_path, str(extension_zip), ADDON_MODULE, json.dumps(files))

    print(json.dumps(result, indent=1))  # the reports, for the record (pytest -s)
    assert "Traceback" not in stderr and "Warning" not in stderr, (stderr[-4000:], result)
    assert not marker.exists()  # no pickle was loaded, so the payload never ran
    for case, entry in result.items():
        if entry["outcome"] == ["FINISHED"]:  # a correct result, and undo takes it back
            assert entry["undone"], case
            if case.startswith("scan"):
                assert entry["fitted_to"], case
        else:  # a report saying why, and nothing changed
            assert isinstance(entry["outcome"], str) and entry["outcome"], (case, entry)
            assert entry["unchanged"], (case, entry)
    for case in ("generate", "bake", "scan huge", "generate after disable and enable twice"):
        assert result[case]["outcome"] == ["FINISHED"], (case, result[case])
    refused = [case for case in result if case.startswith(("scan", "model", "animation")) and case != "scan huge"]
    assert all(result[case]["outcome"] != ["FINISHED"] for case in refused), {case: result[case] for case in refused}
