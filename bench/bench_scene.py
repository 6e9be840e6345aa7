"""Writing a head's surface into the Blender scene: our bulk path against Blender's own from_pydata.

    .venv/bin/python bench/bench_scene.py --model weights/imhead.npz [--resolution 216] [--repeats 3]

The head (identity seed 0) is meshed once; then, best of --repeats, seconds for
1. a new head object (imhead_blender.meshes.mesh_from_surface + heads.add_head_object),
2. replacing the mesh of an existing head that has a material and a modifier (heads.replace_mesh),
   checking that both survive,
3. the baseline: the same mesh through `Mesh.from_pydata` (Python lists, as most add-ons write meshes).
"""
import argparse
import sys
import time
from pathlib import Path

import bpy

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
from checkout import bridge  # noqa: E402

from model import HeadModel  # noqa: E402
from model.runtime import parallel  # noqa: E402
from model.runtime.frame import model_to_blender  # noqa: E402


def best_of(repeats, action):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--resolution", type=int, default=216, help="216 gives about 100k vertices")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    imhead_blender = bridge()
    heads, meshes = imhead_blender.heads, imhead_blender.meshes
    model = HeadModel.load(args.model)
    parallel.set_threads(2)
    surface = model.extract_mesh(model.sample_identity(0), resolution=args.resolution)
    print(f"head: {len(surface.vertices):,} vertices, {len(surface.faces):,} triangles")
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    context = bpy.context

    def new_head():
        heads.add_head_object(context, meshes.mesh_from_surface("imHead", surface))

    new_seconds = best_of(args.repeats, new_head)
    head = context.active_object
    material = bpy.data.materials.new("Skin")
    head.data.materials.append(material)
    head.modifiers.new("Subdivision", 'SUBSURF')

    def replace():
        heads.replace_mesh(head, meshes.mesh_from_surface("imHead", surface))

    replace_seconds = best_of(args.repeats, replace)
    kept = head.data.materials[0] == material and head.modifiers[0].type == 'SUBSURF'

    vertices = model_to_blender(surface.vertices)

    def from_pydata():
        mesh = bpy.data.meshes.new("from_pydata")
        mesh.from_pydata(vertices.tolist(), [], surface.faces.tolist())
        mesh.update()
        mesh.shade_smooth()

    baseline_seconds = best_of(args.repeats, from_pydata)
    print(f"new head object:            {new_seconds:.3f} s")
    print(f"replace mesh of a head:     {replace_seconds:.3f} s (material and modifier kept: {kept})")
    print(f"baseline Mesh.from_pydata:  {baseline_seconds:.3f} s")
    print(f"ratio: new head {baseline_seconds / new_seconds:.1f}x, replace {baseline_seconds / replace_seconds:.1f}x "
          f"faster than from_pydata")


if __name__ == "__main__":
    main()
