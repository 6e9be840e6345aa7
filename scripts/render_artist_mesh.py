"""The README's artist-mesh picture: two heads in the Artist Mesh topology under one UV checker, with their
eyes, teeth, gums and lashes, the second also with baked expressions set.

    .venv/bin/python scripts/render_artist_mesh.py [--weights weights/imhead.npz] [--output-dir docs]

Writes workflow-artist-mesh.png. The heads are what an artist gets: the extension is built with the weights
and installed into a fresh Blender user folder (as scripts/demo.py does), and its operators make them:
Generate Head (Artist Mesh, seeds SEEDS at variation 2) and, on the second, Bake Expressions, whose keys
are then set to EXPRESSION. Both skins get one material, Blender's generated colour grid through the UV
layer "UVMap", so the same squares land on the same anatomy. The parts keep the add-on's materials, whose
viewport colours are made their base colours here (the add-on sets only the viewport colours). Rendered
like the workflow pictures (Cycles, three quarters): each head whole, and its face.
"""
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
from build import build  # noqa: E402
from demo import frame_head, install_extension  # noqa: E402
from render_model_card import grid, picture_arguments, render_still, setup_tiles  # noqa: E402
from render_workflow import FACE_CROP, tile  # noqa: E402

# Far apart, at variation 2 (a striking head), so that the two heads clearly differ.
SEEDS = (42, 1000)
VARIATION = 2.0
EXPRESSION = {"jawOpen": 0.5, "mouthSmile_L": 0.7, "mouthSmile_R": 0.7}
EXPRESSION_LABEL = "jawOpen 0.5, mouthSmile_L/R 0.7"
UV_LAYER = "UVMap"  # the artist mesh's UV layer (imhead_blender.meshes.UV_LAYER_NAME)
# Repeats of Blender's colour grid (8 x 8 cells) across one UDIM tile.
GRID_REPEATS = 2.0


def uv_checker(bpy):
    """One skin material for every head: Blender's generated colour grid, mapped through UV_LAYER."""
    material = bpy.data.materials.new("UV Checker")
    nodes, links = material.node_tree.nodes, material.node_tree.links
    uv = nodes.new("ShaderNodeUVMap")
    uv.uv_map = UV_LAYER
    scale = nodes.new("ShaderNodeVectorMath")
    scale.operation = 'SCALE'
    scale.inputs["Scale"].default_value = GRID_REPEATS
    texture = nodes.new("ShaderNodeTexImage")
    texture.image = bpy.data.images.new("UV Grid", 1024, 1024)
    texture.image.generated_type = 'COLOR_GRID'
    shader = nodes["Principled BSDF"]
    shader.inputs["Roughness"].default_value = 0.55
    links.new(uv.outputs["UV"], scale.inputs[0])
    links.new(scale.outputs["Vector"], texture.inputs["Vector"])
    links.new(texture.outputs["Color"], shader.inputs["Base Color"])
    return material


def run(operator, **settings):
    if operator(**settings) != {'FINISHED'}:
        raise SystemExit(f"render_artist_mesh: {operator.idname()} {settings} failed")


def show_only(heads, head):
    """Render `head` and its parts, none of the other heads."""
    for other in heads:
        for obj in (other, *other.children):
            obj.hide_render = other is not head


def main(argv=None):
    args, output_dir = picture_arguments(__doc__, argv)
    output = output_dir / "workflow-artist-mesh.png"
    started = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="imhead-artist-") as folder:
        folder = Path(folder)
        package = build(args.weights, output_dir=folder)
        # Set before bpy is imported: the extension is installed into a fresh user folder.
        os.environ["BLENDER_USER_RESOURCES"] = str(folder / "blender-user")
        import bpy

        bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
        install_extension(bpy, package)
        checker = uv_checker(bpy)
        heads = []
        for seed in SEEDS:
            run(bpy.ops.imhead.generate, seed=seed, variation=VARIATION, topology='ARTIST')
            head = bpy.context.active_object
            head.data.materials.append(checker)
            heads.append(head)
        print(f"generated {len(heads)} artist heads in {time.perf_counter() - started:.0f} s")

        frame_head(bpy, max(heads, key=lambda head: head.dimensions.z))  # the whole of every head in view
        setup_tiles(bpy, folder)
        renders = []
        for i, head in enumerate(heads):
            show_only(heads, head)
            renders.append(render_still(bpy, folder / f"head-{i}.png"))
        expressive = heads[-1]
        bpy.context.view_layer.objects.active = expressive
        run(bpy.ops.imhead.bake_expressions)
        for name, value in EXPRESSION.items():
            expressive.data.shape_keys.key_blocks[name].value = value
        renders.append(render_still(bpy, folder / "expression.png"))

    labels = [f"seed {seed}, variation {VARIATION:g}" for seed in SEEDS]
    labels.append(EXPRESSION_LABEL)
    tiles = [tile(image) for image in renders] + [tile(image, FACE_CROP) for image in renders]
    # 256 colours look the same here and keep the file small: the colour grid's lettering compresses badly.
    grid(tiles, len(renders), labels).quantize(256).save(output, optimize=True)
    print(f"wrote {output} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
