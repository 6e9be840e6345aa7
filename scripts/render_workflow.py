"""The README's workflow pictures: random heads, one region edited three ways, six expressions on one head.

    .venv/bin/python scripts/render_workflow.py [--weights weights/imhead.npz] [--output-dir docs]

Writes workflow-random-heads.png (seeds 10-13), workflow-region-nose.png (seed 10 and three random noses)
and workflow-expressions.png (seed 10 under six expressions, by inverse warp of its neutral mesh),
rendered with Cycles in three-quarter view like the model card's pictures.
"""
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
from render_model_card import grid, picture_arguments, render_views, studio  # noqa: E402
from model import HeadModel  # noqa: E402
from model.runtime import parallel  # noqa: E402
from model.runtime.editing import no_edit, random_region_codes, set_region  # noqa: E402
from model.runtime.expressions import inverse_warp, mesh_edges  # noqa: E402
from model.runtime.frame import model_to_blender  # noqa: E402

RANDOM_SEEDS = (10, 11, 12, 13)
HEAD_SEED = 10
RESOLUTION = 160
TILE_PX = 320
# The face part of a three-quarter render (left, top, right, bottom, as fractions of the frame): noses and
# expressions are small changes, so those pictures show the face only.
FACE_CROP = (0.15, 0.05, 0.85, 0.75)
REGION = "nose"
# Two standard deviations: random noses far enough from the head's own to see at a glance.
REGION_SEEDS = (1, 2, 3)
REGION_SCALE = 2.0
EXPRESSIONS = (("jaw open", {"jawOpen": 1.0}),
               ("smile", {"mouthSmile_L": 1.0, "mouthSmile_R": 1.0}),
               ("blink", {"eyeBlink_L": 1.0, "eyeBlink_R": 1.0}),
               ("brows up", {"browInnerUp_L": 1.0, "browInnerUp_R": 1.0}),
               ("pucker", {"mouthPucker": 1.0}),
               ("jaw open + funnel", {"jawOpen": 0.6, "mouthFunnel": 0.8}))


def surface(model, identity, local_offsets=None):
    return model.extract_mesh(identity, resolution=RESOLUTION, local_offsets=local_offsets)


def render_row(bpy, surfaces, folder, crop=(0.0, 0.0, 1.0, 1.0)):
    """Three-quarter renders of (name, vertices in model units, faces), cropped to `crop` (fractions of
    the frame) and resized to TILE_PX tiles."""
    head, meshes = studio(bpy, [(name, model_to_blender(vertices), faces) for name, vertices, faces in surfaces])
    images = render_views(bpy, head, [(mesh, "three quarters") for mesh in meshes], folder)
    return [tile(image, crop) for image in images]


def tile(image, crop=(0.0, 0.0, 1.0, 1.0)):
    """The `crop` of a render (fractions of the frame), resized to a TILE_PX tile."""
    return image.crop(tuple(round(f * size) for f, size in zip(crop, image.size * 2))).resize((TILE_PX, TILE_PX),
                                                                                              Image.LANCZOS)


def random_heads(bpy, model, folder):
    heads = [surface(model, model.sample_identity(seed, 1.0)) for seed in RANDOM_SEEDS]
    images = render_row(bpy, [(f"seed {s}", h.vertices, h.faces) for s, h in zip(RANDOM_SEEDS, heads)], folder)
    return grid(images, len(images), [f"seed {seed}" for seed in RANDOM_SEEDS])


def region_edits(bpy, model, folder):
    identity = model.sample_identity(HEAD_SEED, 1.0)
    heads = [surface(model, identity)]
    for seed in REGION_SEEDS:
        offsets = set_region(no_edit(model), model, REGION, random_region_codes(model, REGION, seed, REGION_SCALE),
                             identity)
        heads.append(surface(model, identity, offsets))
    labels = [f"seed {HEAD_SEED}"] + [f"random {REGION} {seed}" for seed in REGION_SEEDS]
    images = render_row(bpy, [(label, h.vertices, h.faces) for label, h in zip(labels, heads)], folder, FACE_CROP)
    return grid(images, len(images), labels)


def expressions(bpy, model, folder):
    identity = model.sample_identity(HEAD_SEED, 1.0)
    neutral = surface(model, identity)
    weights = np.zeros((len(EXPRESSIONS), len(model.expression_names)), np.float32)
    for row, (_, values) in enumerate(EXPRESSIONS):
        for name, value in values.items():
            weights[row, model.expression_names.index(name)] = value
    positions = inverse_warp(model, identity, neutral.vertices, mesh_edges(neutral.faces), weights).positions
    labels = [label for label, _ in EXPRESSIONS]
    images = render_row(bpy, [(label, p, neutral.faces) for label, p in zip(labels, positions)], folder,
                        FACE_CROP)
    rows = [grid(images[i:i + 3], 3, labels[i:i + 3]) for i in (0, 3)]
    sheet = Image.new("RGB", (rows[0].width, 2 * rows[0].height))
    for r, row in enumerate(rows):
        sheet.paste(row, (0, r * row.height))
    return sheet


def main(argv=None):
    args, output_dir = picture_arguments(__doc__, argv)
    parallel.set_threads(1)
    import bpy

    model = HeadModel.load(args.weights)
    for name, make in (("workflow-random-heads.png", random_heads), ("workflow-region-nose.png", region_edits),
                       ("workflow-expressions.png", expressions)):
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="imhead-workflow-") as folder:
            make(bpy, model, Path(folder)).save(output_dir / name, optimize=True)
        print(f"wrote {output_dir / name} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
