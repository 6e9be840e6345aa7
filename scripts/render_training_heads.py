"""A grid of 16 training heads of the all-ages data set (docs/images/training-heads.png).

    .venv/bin/python scripts/render_training_heads.py [--out docs/images/training-heads.png]

The heads are the true surfaces the data set samples (model/data/build_dataset.py, configs/v2.json):
the first training candidates of the Anny stream that fall in each age group (babies under 3,
children 3-12, adults, people over 60; 3 each, in stream order) and the first 4 ICT heads, all
with the flat neck cut, rendered headless with Blender's Workbench engine at one scale (a
baby's head is drawn a baby's size), three-quarter view. Takes about a minute.
"""
import argparse
import sys
import tempfile
from pathlib import Path

import bpy
import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from model.data.anny_heads import AnnyHeadData  # noqa: E402
from model.data.build_dataset import anny_candidate, ict_candidate  # noqa: E402
from model.data.heads import HeadData  # noqa: E402
from model.data.neck import NeckCutError  # noqa: E402
from model.runtime.frame import model_to_blender  # noqa: E402

AGE_GROUPS = (("baby", 0.0, 3.0), ("child", 3.0, 12.0), ("adult", 12.0, 60.0), ("old", 60.0, 91.0))
PER_GROUP = 3
ICT_HEADS = 4
TILE_PX = 320
ORTHO_SCALE_M = 0.34  # an adult head with its neck fills the tile; all tiles share it


def pick_heads():
    """16 (label, Head) of training candidates: Anny's by age group, then ICT's."""
    anny, ict = AnnyHeadData(), HeadData(flat_neck_cut=True)
    picked = {name: [] for name, _, _ in AGE_GROUPS}
    index = 0
    while any(len(v) < PER_GROUP for v in picked.values()):
        identity = anny_candidate(anny, 0, index)
        group = next(name for name, low, high in AGE_GROUPS if low <= identity.age_years < high)
        if len(picked[group]) < PER_GROUP:
            try:
                head, _ = anny.head_and_keypoints(identity)
                lead = ("African", "Asian", "Caucasian")[int(np.argmax([identity.african, identity.asian, identity.caucasian]))]
                sex = "female" if identity.gender > 0.5 else "male"
                picked[group].append((f"Anny #{index}: {identity.age_years:.0f} y, {lead}, {sex}", head))
            except NeckCutError:
                pass
        index += 1
    heads = [h for name, _, _ in AGE_GROUPS for h in picked[name]]
    index = 0
    while len(heads) < len(AGE_GROUPS) * PER_GROUP + ICT_HEADS:
        try:
            heads.append((f"ICT #{index}: adult", ict.head(ict_candidate(0, index))))
        except NeckCutError:
            pass
        index += 1
    return heads


def render(head, path):
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    scene = bpy.context.scene
    mesh = bpy.data.meshes.new("head")
    mesh.from_pydata(model_to_blender(head.vertices).tolist(), [], head.faces.tolist())
    mesh.update()
    obj = bpy.data.objects.new("head", mesh)
    scene.collection.objects.link(obj)
    camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    camera.data.type = "ORTHO"
    camera.data.ortho_scale = ORTHO_SCALE_M
    direction = np.array([-0.55, -1.0, 0.15])  # three quarters: the head's right cheek, a little above
    camera.location = (direction / np.linalg.norm(direction) * 1.5 + [0.0, 0.0, 0.045]).tolist()
    camera.rotation_euler = (np.radians(82.0), 0.0, np.radians(-28.8))
    scene.collection.objects.link(camera)
    scene.camera = camera
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.shading.light = "STUDIO"
    scene.display.shading.color_type = "SINGLE"
    scene.display.shading.single_color = (0.8, 0.62, 0.52)
    scene.render.resolution_x = scene.render.resolution_y = TILE_PX
    scene.world = bpy.data.worlds.new("background")
    scene.world.color = (0.92, 0.92, 0.92)  # the Workbench engine draws the world colour behind
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "images" / "training-heads.png"))
    args = parser.parse_args(argv)
    heads = pick_heads()
    grid = Image.new("RGB", (4 * TILE_PX, 4 * (TILE_PX + 20)), "white")
    draw = ImageDraw.Draw(grid)
    with tempfile.TemporaryDirectory() as folder:
        for i, (label, head) in enumerate(heads):
            tile = Path(folder) / f"{i}.png"
            render(head, tile)
            x, y = (i % 4) * TILE_PX, (i // 4) * (TILE_PX + 20)
            grid.paste(Image.open(tile).convert("RGB"), (x, y + 20))
            draw.text((x + 6, y + 4), label, fill="black")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    grid.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
