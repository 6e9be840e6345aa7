"""The model card's pictures: sampled heads, and a held-out head next to its fit, rendered with Cycles.

    .venv/bin/python scripts/render_model_card.py [--weights weights/imhead.npz] [--output-dir docs]

Writes sampled-heads.png (seeds 0-3, front and side) and held-out-fit.png (an ICT adult and an Anny
child the model never saw, each beside the fit to 10,000 points on it, front and three quarters).
"""
import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
from checkout import bridge  # noqa: E402
from demo import frame_head, setup_render, skin_material  # noqa: E402
from model import HeadModel  # noqa: E402
from model.evaluation.evaluate import CHILD_AGE_YEARS, evaluation_heads, scan_points  # noqa: E402
from model.runtime import parallel  # noqa: E402
from model.runtime.fit import fit  # noqa: E402
from model.runtime.frame import model_to_blender  # noqa: E402

SAMPLED_SEEDS = (0, 1, 2, 3)
SAMPLED_RESOLUTION = 192
FIT_RESOLUTION = 256
TILE_PX = 448
SAMPLES = 16
# frame_head puts the camera 35 degrees toward the head's left cheek; turning the head about Z
# instead of moving the camera keeps the lights where they are relative to the view.
CAMERA_AZIMUTH = 35.0
VIEWS = {"front": CAMERA_AZIMUTH, "side": CAMERA_AZIMUTH - 90.0, "three quarters": 0.0}


def studio(bpy, surfaces):
    """An empty scene with one head object, framed on the first surface; returns it and the meshes.

    surfaces: (name, vertices in metres, faces) for each mesh the head object will show in turn."""
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    material = skin_material(bpy)
    meshes = [bridge().meshes.mesh_from_arrays(*surface) for surface in surfaces]
    for mesh in meshes:
        mesh.materials.append(material)
    head = bpy.data.objects.new("Head", meshes[0])
    bpy.context.collection.objects.link(head)
    bpy.context.view_layer.update()
    frame_head(bpy, head)
    return head, meshes


def setup_tiles(bpy, folder):
    """The demo's Cycles set-up at the pictures' samples, exposure and tile size, writing into `folder`."""
    scene = bpy.context.scene
    setup_render(bpy, folder / "view.png")
    scene.cycles.samples = SAMPLES
    scene.view_settings.exposure = -0.5  # the demo's lights bleach the skin at a glance-sized tile
    scene.render.resolution_x = scene.render.resolution_y = TILE_PX


def render_still(bpy, path):
    """Render the scene to `path`; returns the image as a Pillow RGB image."""
    bpy.context.scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    return Image.open(path).convert("RGB")


def render_views(bpy, head, mesh_views, folder):
    """Render each (mesh, view) pair; returns the images as Pillow RGB images."""
    setup_tiles(bpy, folder)
    images = []
    for i, (mesh, view) in enumerate(mesh_views):
        head.data = mesh
        head.rotation_euler = (0.0, 0.0, math.radians(VIEWS[view]))
        images.append(render_still(bpy, folder / f"view-{i}.png"))
    return images


def grid(images, columns, column_labels=(), row_labels=()):
    """Tile equally sized images row by row, with optional labels in the top-left corners."""
    width, height = images[0].size
    rows = math.ceil(len(images) / columns)
    sheet = Image.new("RGB", (columns * width, rows * height))
    for i, image in enumerate(images):
        sheet.paste(image, ((i % columns) * width, (i // columns) * height))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=max(14, width // 24))
    for c, label in enumerate(column_labels):
        draw.text((c * width + 10, 8), label, fill=(225, 225, 225), font=font)
    for r, label in enumerate(row_labels):
        draw.text((10, (r + 1) * height - 10), label, fill=(160, 160, 160), font=font, anchor="ld")
    return sheet


def sampled_heads(bpy, model, folder):
    surfaces = []
    for seed in SAMPLED_SEEDS:
        surface = model.extract_mesh(model.sample_identity(seed, 1.0), resolution=SAMPLED_RESOLUTION)
        surfaces.append((f"seed {seed}", model_to_blender(surface.vertices), surface.faces))
    head, meshes = studio(bpy, surfaces)
    images = render_views(bpy, head, [(mesh, view) for view in ("front", "side") for mesh in meshes], folder)
    return grid(images, len(meshes), [f"seed {seed}" for seed in SAMPLED_SEEDS], ["front", "side"])


def held_out_fit(bpy, model, folder):
    """The first held-out ICT adult and Anny child (as model.evaluation.evaluate takes them) and the fits to
    10,000 points on each, in metres, model axes."""
    heads = evaluation_heads(model, 1, anny_heads=3, n_train=0)
    age, child = next((identity.age_years, head) for identity, head in heads["anny"]
                      if identity.age_years < CHILD_AGE_YEARS)
    surfaces, labels = [], []
    for label, truth in (("ICT adult", heads["ict"][0][1]), (f"Anny child, {age:.0f} years", child)):
        points, normals = scan_points(truth, 10000, seed=0)
        result = fit(model, points, normals, quality="fast", neutral=True)
        fitted = result.to_input(model.extract_mesh(result.identity, resolution=FIT_RESOLUTION))
        print(f"{label} fit: residual {result.residual_mm:.3f} mm in {result.seconds:.1f} s")
        surfaces += [(label, model_to_blender(truth.vertices), truth.faces), ("fit", fitted.vertices, fitted.faces)]
        labels.append(label)
    head, meshes = studio(bpy, surfaces)
    images = render_views(bpy, head, [(mesh, view) for pair in (meshes[:2], meshes[2:])
                                      for view in ("front", "three quarters") for mesh in pair], folder)
    return grid(images, 4, ["held out, front", "its fit, front", "held out, 3/4", "its fit, 3/4"], labels)


def picture_arguments(doc, argv=None):
    """The picture scripts' command line (--weights, --output-dir) -> (args, the output folder, made)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--weights", default=str(ROOT / "weights" / "imhead.npz"))
    parser.add_argument("--output-dir", default=str(ROOT / "docs"))
    args = parser.parse_args(argv)
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    return args, output_dir


def main(argv=None):
    args, output_dir = picture_arguments(__doc__, argv)
    torch.set_num_threads(1)
    parallel.set_threads(1)
    import bpy

    model = HeadModel.load(args.weights)
    for name, make in (("sampled-heads.png", sampled_heads), ("held-out-fit.png", held_out_fit)):
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="imhead-card-") as folder:
            make(bpy, model, Path(folder)).save(output_dir / name, optimize=True)
        print(f"wrote {output_dir / name} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
