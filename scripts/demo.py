"""The artist's path, end to end: build the extension, install it into a fresh Blender, generate
a head with the operator, frame it with a camera and lights, save the .blend and a Cycles render.

    .venv/bin/python scripts/demo.py [--output-dir demo] [--seed 7] [--resolution FINAL] [--weights PATH]
"""
import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from build import DEFAULT_WEIGHTS, BuildError, build  # noqa: E402

ADDON_MODULE = "bl_ext.user_default.imhead"
SKIN = (0.58, 0.38, 0.29, 1.0)


def install_extension(bpy, package):
    result = bpy.ops.extensions.package_install_files(filepath=str(package), repo="user_default", enable_on_install=True)
    if result != {'FINISHED'} or ADDON_MODULE not in bpy.context.preferences.addons:
        raise SystemExit(f"demo: installing {package} failed")


def skin_material(bpy):
    material = bpy.data.materials.new("Skin")  # Blender 5 gives new materials a Principled BSDF
    shader = material.node_tree.nodes["Principled BSDF"]
    shader.inputs["Base Color"].default_value = SKIN
    shader.inputs["Roughness"].default_value = 0.55
    shader.inputs["Subsurface Weight"].default_value = 0.15
    shader.inputs["Subsurface Radius"].default_value = (0.012, 0.005, 0.003)
    return material


def add_light(bpy, name, location, target, energy, size):
    from mathutils import Vector

    light = bpy.data.lights.new(name, 'AREA')
    light.energy = energy
    light.size = size
    obj = bpy.data.objects.new(name, light)
    obj.location = location
    obj.rotation_euler = (Vector(target) - Vector(location)).to_track_quat('-Z', 'Y').to_euler()
    bpy.context.collection.objects.link(obj)
    return obj


def frame_head(bpy, head):
    """A portrait lens looking at the face from the front, three quarters to the side and a little above."""
    from mathutils import Vector

    corners = [head.matrix_world @ Vector(corner) for corner in head.bound_box]
    centre = sum(corners, Vector()) / 8
    height = max(c.z for c in corners) - min(c.z for c in corners)

    camera_data = bpy.data.cameras.new("Camera")
    camera_data.lens = 85.0
    camera = bpy.data.objects.new("Camera", camera_data)
    half_view = math.atan(camera_data.sensor_width / 2 / camera_data.lens)
    distance = 0.62 * height / math.tan(half_view)  # the head fills about 80 % of the frame
    azimuth = math.radians(35.0)  # the face looks toward -Y; turn toward the head's left cheek
    direction = Vector((math.sin(azimuth), -math.cos(azimuth), 0.18)).normalized()
    camera.location = centre + direction * distance
    camera.rotation_euler = (-direction).to_track_quat('-Z', 'Y').to_euler()
    bpy.context.collection.objects.link(camera)
    bpy.context.scene.camera = camera

    add_light(bpy, "Key", centre + Vector((-0.9, -1.0, 0.8)), centre, 60.0, 0.8)
    add_light(bpy, "Fill", centre + Vector((1.1, -0.6, 0.1)), centre, 8.0, 1.2)
    add_light(bpy, "Rim", centre + Vector((0.3, 1.0, 0.7)), centre, 40.0, 0.5)


def setup_render(bpy, image_path):
    scene = bpy.context.scene
    scene.render.engine = 'CYCLES'
    scene.cycles.device = 'CPU'
    scene.cycles.samples = 32
    scene.cycles.use_denoising = True
    scene.render.resolution_x = scene.render.resolution_y = 640
    scene.render.image_settings.file_format = 'PNG'
    scene.render.filepath = str(image_path)
    world = bpy.data.worlds.new("World")
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.05, 0.055, 0.065, 1.0)
    scene.world = world


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", default=str(ROOT / "demo"))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--resolution", choices=("PREVIEW", "FINAL"), default="FINAL")
    parser.add_argument("--weights", default=str(DEFAULT_WEIGHTS), help="the model file to bundle")
    args = parser.parse_args(argv)
    output_dir = Path(args.output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    try:
        package = build(args.weights)
    except BuildError as error:
        raise SystemExit(f"demo: {error}")
    print(f"built {package.name} in {time.perf_counter() - started:.0f} s")

    # A fresh Blender user folder, set before bpy is imported: the extension is installed the way
    # Preferences > Get Extensions > Install from Disk installs it.
    os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="imhead-demo-blender-")
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    started = time.perf_counter()
    install_extension(bpy, package)
    print(f"installed in {time.perf_counter() - started:.0f} s")

    started = time.perf_counter()
    bpy.ops.imhead.generate(seed=args.seed, variation=1.0, resolution=args.resolution)
    head = bpy.context.active_object
    print(f"generated {head.name}: {len(head.data.vertices)} vertices in {time.perf_counter() - started:.0f} s")
    head.data.materials.append(skin_material(bpy))

    frame_head(bpy, head)
    setup_render(bpy, output_dir / "head.png")
    bpy.ops.wm.save_as_mainfile(filepath=str(output_dir / "head.blend"))
    started = time.perf_counter()
    bpy.ops.render.render(write_still=True)
    print(f"rendered {output_dir / 'head.png'} in {time.perf_counter() - started:.0f} s")
    print(f"saved {output_dir / 'head.blend'}")


if __name__ == "__main__":
    main()
