"""The artist head's parts beyond the skin (eyeballs, teeth, gums and tongue, lashes:
model/runtime/artist_mesh.PARTS), each a mesh object parented to its head with a material named for
what it is. They are given new vertices whenever the head's mesh is replaced (generate, fit, region
edits, Update Mesh), are removed when the head is meshed as the implicit surface, and go when the head
goes: a deleted head leaves neither their objects, meshes nor materials behind (unused). A head duplicated
alone (Shift+D or Alt+D of the head without its children) gets copies of its original's parts, driven by
its own expression keys."""
import bpy

from ..model.runtime.frame import model_to_blender
from .heads import is_head
from .meshes import mesh_from_surface

PART_TAG = "imhead_part"  # custom property of a part object: its ICT part name
HEAD_TAG = "imhead_head"  # custom property of a part object: its head's name, to tell a deleted head
MATERIAL_TAG = "imhead_material"  # custom property of the materials made here
# Custom property of a head with parts: its name. Blender copies it with the object, so a duplicate's
# names its original, whose parts it then gets.
OWNER_TAG = "imhead_parts_owner"
# ICT part name -> (object name after the head's, material name, viewport colour).
PART_LOOKS = {
    "eyeball_l": ("Eye L", "imHead Eye", (0.9, 0.9, 0.88, 1.0)),
    "eyeball_r": ("Eye R", "imHead Eye", (0.9, 0.9, 0.88, 1.0)),
    "teeth": ("Teeth", "imHead Teeth", (0.85, 0.8, 0.7, 1.0)),
    "gums_tongue": ("Gums and Tongue", "imHead Gums and Tongue", (0.7, 0.3, 0.3, 1.0)),
    "lashes_l": ("Lashes L", "imHead Eyelashes", (0.05, 0.04, 0.03, 1.0)),
    "lashes_r": ("Lashes R", "imHead Eyelashes", (0.05, 0.04, 0.03, 1.0)),
}


def part_objects(head):
    """The head's part objects."""
    return [child for child in head.children if PART_TAG in child]


def install_parts(head, surface):
    """Give `head` the parts of `surface` (an artist_mesh.ArtistMesh's; a marching-cubes surface has none):
    existing part objects get the new vertices (their topology is fixed) and lose their expression keys
    (the head's went with its old mesh: shape_keys.py), missing ones are made."""
    placed = getattr(surface, "parts", {})
    head[OWNER_TAG] = head.name
    existing = {obj[PART_TAG]: obj for obj in part_objects(head)}
    for name, obj in existing.items():
        if name not in placed:
            remove_part(obj)
    for name, part in placed.items():
        obj = existing.get(name)
        if obj is None:
            _add_part(head, name, part)
        else:
            if obj.data.shape_keys is not None:
                obj.shape_key_clear()
            obj.data.vertices.foreach_set("co", model_to_blender(part.vertices).ravel())
            obj.data.update()
            obj[HEAD_TAG] = head.name


def _add_part(head, name, part):
    label, material_name, colour = PART_LOOKS[name]
    obj = bpy.data.objects.new(f"{head.name} {label}", mesh_from_surface(f"{head.data.name} {label}", part))
    obj.data.materials.append(_material(material_name, colour))
    obj[PART_TAG] = name
    obj[HEAD_TAG] = head.name
    obj.parent = head
    for collection in head.users_collection:
        collection.objects.link(obj)


def _material(name, colour):
    """The material `name` made here, shared by every head's parts of that kind."""
    material = bpy.data.materials.get(name)
    if material is None or MATERIAL_TAG not in material:
        material = bpy.data.materials.new(name)
        material[MATERIAL_TAG] = True
        material.diffuse_color = colour
        # The colour in renders too (Cycles, EEVEE), not only in the viewport's solid mode. Blender 4.x
        # makes a material without nodes; 5.x always gives it a node tree (and warns on use_nodes).
        if material.node_tree is None:
            material.use_nodes = True
        principled = next(node for node in material.node_tree.nodes if node.bl_idname == "ShaderNodeBsdfPrincipled")
        principled.inputs["Base Color"].default_value = colour
    return material


def _copy_parts(original, head):
    """Give `head`, a duplicate of `original` made without its parts, copies of them, their expression keys
    driven by the duplicate's keys (the duplicate's mesh has copies of the original's)."""
    original_keys, keys = original.data.shape_keys, head.data.shape_keys
    for part in part_objects(original):
        label = PART_LOOKS[part[PART_TAG]][0]
        obj = part.copy()
        obj.data = part.data.copy()
        obj.name, obj.data.name = f"{head.name} {label}", f"{head.data.name} {label}"
        obj[HEAD_TAG] = head.name
        obj.parent = head
        obj.matrix_parent_inverse = part.matrix_parent_inverse.copy()
        for collection in head.users_collection:
            collection.objects.link(obj)
        animation = obj.data.shape_keys and obj.data.shape_keys.animation_data
        for curve in animation.drivers if animation else ():
            for variable in curve.driver.variables:
                for target in variable.targets:
                    if original_keys is not None and target.id == original_keys:
                        target.id = keys


def remove_part(obj):
    """Remove a part object, its mesh and, once no object uses them, its materials."""
    mesh = obj.data
    materials = [material for material in mesh.materials if material is not None]
    bpy.data.objects.remove(obj)
    if mesh.users == 0:
        bpy.data.meshes.remove(mesh)
    for material in materials:
        if material.users == 0 and MATERIAL_TAG in material:
            bpy.data.materials.remove(material)


@bpy.app.handlers.persistent
def _keep_parts_with_their_heads(_scene, depsgraph):
    """After the scene changed: parts whose head was deleted (Blender unparents them) go with it, and a head
    duplicated without its parts gets copies of its original's. The parts of a head renamed, or duplicated
    with it, are named after it."""
    if not depsgraph.id_type_updated('OBJECT'):
        return
    for obj in [obj for obj in bpy.data.objects if PART_TAG in obj and obj.parent is None]:
        if not is_head(bpy.data.objects.get(obj.get(HEAD_TAG, ""))):
            remove_part(obj)
    for head in [obj for obj in bpy.data.objects if obj.get(OWNER_TAG, obj.name) != obj.name]:
        original = bpy.data.objects.get(head[OWNER_TAG])
        if is_head(head) and not part_objects(head) and is_head(original):
            _copy_parts(original, head)
        for part in part_objects(head):
            part[HEAD_TAG] = head.name
            part.name = f"{head.name} {PART_LOOKS[part[PART_TAG]][0]}"
        head[OWNER_TAG] = head.name


def register():
    bpy.app.handlers.depsgraph_update_post.append(_keep_parts_with_their_heads)


def unregister():
    if _keep_parts_with_their_heads in bpy.app.handlers.depsgraph_update_post:
        bpy.app.handlers.depsgraph_update_post.remove(_keep_parts_with_their_heads)
