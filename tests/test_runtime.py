"""The numpy runtime as Blender runs it: without torch, and giving the meshes the torch network gives."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

from model import HeadModel
from model.runtime.head_model import HEAD_BOUNDS, box_sdf
from model.runtime.meshing import connected_components, extract_surface, is_closed
from model.training.network import denormals_flushed, network_from_model_file

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "weights" / "imhead.npz"

WITHOUT_TORCH = """
import json, sys
sys.modules["torch"] = None  # `import torch` raises ImportError from here on
import numpy as np
from model import HeadModel
from model.runtime import editing, expressions
from model.runtime.meshing import connected_components, is_closed

model = HeadModel.load(sys.argv[1])
identity = model.sample_identity(1, 1.0)
mesh = model.extract_mesh(identity, resolution=64)
offsets = editing.slider_offsets(model, {"nose": [2.0]})
edited = model.extract_mesh(identity, resolution=64, local_offsets=offsets, remember=True)
jaw_open = np.eye(len(model.expression_names), dtype=np.float32)[[model.expression_names.index("jawOpen")]]
keys = expressions.inverse_warp(model, identity, mesh.vertices, expressions.mesh_edges(mesh.faces), jaw_open)
print(json.dumps({"vertices": len(mesh.vertices), "closed": is_closed(mesh), "pieces": connected_components(mesh),
                  "edit_moves": float(np.abs(edited.vertices.mean(0) - mesh.vertices.mean(0)).max()),
                  "jaw_moves": float(np.abs(keys.positions[0] - mesh.vertices).max()),
                  "torch_loaded": sys.modules["torch"] is not None}))
"""


def test_the_runtime_meshes_edits_and_bakes_where_torch_cannot_be_imported():
    result = subprocess.run([sys.executable, "-c", WITHOUT_TORCH, str(BUNDLED)], capture_output=True, text=True,
                            cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["vertices"] > 1000 and outcome["closed"] and not outcome["torch_loaded"]
    assert outcome["edit_moves"] > 0 and outcome["jaw_moves"] > 0.01


def test_final_mesh_is_the_torch_networks_mesh():
    """At Final (256^3), the bundled model's head meshed through the numpy runtime and through the torch
    reference network (the same coarse-to-fine lattice, fed by each field): the same mesh."""
    model = HeadModel.load(BUNDLED)
    identity = model.sample_identity(2, 1.0)
    runtime = model.extract_mesh(identity, resolution=256)

    net = network_from_model_file(model.header, model.arrays)
    with torch.no_grad():
        local, extra = net.split_code(torch.from_numpy(identity[None]))
        keypoints = net.keypoints(local)

    def torch_field(points):
        with torch.no_grad(), denormals_flushed():
            values = net.identity_sdf(torch.from_numpy(points)[None], local, keypoints, extra)[0].numpy()
        return np.maximum(values, box_sdf(points))

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the meshing workers run side by side
    try:
        reference = extract_surface(torch_field, 256, HEAD_BOUNDS)
    finally:
        torch.set_num_threads(threads)
    assert is_closed(runtime) and len(runtime.vertices) > 100_000
    assert runtime.vertices.shape == reference.vertices.shape and runtime.faces.shape == reference.faces.shape
    assert connected_components(runtime) == connected_components(reference)
    # Not the same arrays: the two fields differ by up to 1e-6, so a lattice value within that of zero
    # can take the other sign. Its vertices then sit on other edges of that lattice point, at the same
    # place (a value that small puts them on the point), and are listed in another order. So: every
    # vertex of each mesh has one of the other within a hundredth of a voxel (measured: 0.0045).
    voxel = float((HEAD_BOUNDS[1] - HEAD_BOUNDS[0]).max()) / 256
    for mesh, other in ((runtime, reference), (reference, runtime)):
        distance, _ = cKDTree(other.vertices).query(mesh.vertices)
        assert distance.max() < 0.01 * voxel
