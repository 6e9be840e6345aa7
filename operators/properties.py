"""The add-on's data: the imHead state of each head object and the sidebar's settings."""
import bpy
from bpy.props import (BoolProperty, EnumProperty, FloatProperty, FloatVectorProperty, IntProperty,
                       PointerProperty, StringProperty)

from .. import imhead_blender
from .preferences import addon_preferences, preview_settings

RESOLUTION_ITEMS = (
    ('PREVIEW', "Preview", "The Preview resolution of the add-on preferences (fast)"),
    ('FINAL', "Final", "The Final resolution of the add-on preferences (fine detail, slower)"),
)
TOPOLOGY_ITEMS = (
    (imhead_blender.IMPLICIT, "Implicit", "The implicit surface meshed by marching cubes at the chosen resolution: "
                                          "every detail, a new triangulation for every head (for exploring)"),
    (imhead_blender.ARTIST, "Artist Mesh", "The ICT head topology (14,062 vertices, quads, UVs) laid onto the "
                                           "implicit surface: the same vertices and UVs for every head (for "
                                           "texturing, rigging, export)"),
)
SEED_DESCRIPTION = "Which random head: the same seed always gives the same head"
VARIATION_DESCRIPTION = "How far the head strays from the mean head: 0 is the mean head, 1 a typical head, 2 a striking one"


# Blender keeps only pointers to the strings of dynamic enum items: they must stay referenced here.
_region_item_cache = {}


def _region_items(_self, context):
    try:
        model = imhead_blender.load_model(addon_preferences(context or bpy.context).model_path)
    except imhead_blender.ImHeadError:
        return []
    names = tuple(imhead_blender.region_names(model))
    if names not in _region_item_cache:
        _region_item_cache[names] = [(n, n.replace("_", " ").title(), f"Edit the {n.replace('_', ' ')}")
                                     for n in names]
    return _region_item_cache[names]


def _get_region_sliders(self):
    return imhead_blender.read_sliders(self.id_data, self.region)


def _set_region_sliders(self, values):
    head = self.id_data
    if not self.region:
        return
    imhead_blender.write_sliders(head, self.region, values)
    imhead_blender.request_preview(head, preview_settings(bpy.context))


class ImHeadObjectState(bpy.types.PropertyGroup):
    """Where a head object came from (Object.imhead); empty model_hash: not an imHead head.

    The identity code is stored beside these as the array custom property "identity".
    """
    model_hash: StringProperty(name="Model", description="Content hash of the model file that made this head")
    seed: IntProperty(name="Seed", description=SEED_DESCRIPTION)
    variation: FloatProperty(name="Variation", description=VARIATION_DESCRIPTION)
    resolution: IntProperty(name="Resolution", description="Grid size the surface was extracted at")
    topology: EnumProperty(name="Topology", items=TOPOLOGY_ITEMS, default=imhead_blender.IMPLICIT,
                           description="The head mesh's topology")
    fitted_to: StringProperty(name="Fitted To",
                              description="The scan this head was fitted to (empty: generated from its seed)")
    # Region edits: the sliders show the active region's values, kept per region in the custom-property
    # group "slider_values" (imhead_blender.editing); a change re-meshes the head at Preview resolution.
    region: EnumProperty(name="Region", items=_region_items, description="The region the sliders and buttons edit")
    region_sliders: FloatVectorProperty(
        name="Region Shape", size=imhead_blender.REGION_SLIDERS, soft_min=-3.0, soft_max=3.0,
        get=_get_region_sliders, set=_set_region_sliders,
        description="Standard deviations along the region's principal directions over the training heads",
    )
    expressions_stale: BoolProperty(
        name="Expressions Need Baking",
        description="The shape changed after the expressions were baked: their keys were removed with the old "
                    "mesh; values and animation are kept for the next bake",
    )
    bake_residual_mm: FloatProperty(
        name="Bake Residual", unit='NONE', precision=4,
        description="Largest distance (mm) between a baked vertex warped back and its neutral position",
    )
    expression_action: PointerProperty(
        type=bpy.types.Action, name="Expression Animation",
        description="The action animating the expression keys, kept while they are baked again",
    )


class ImHeadSceneSettings(bpy.types.PropertyGroup):
    """The sidebar's settings for the next head (Scene.imhead)."""
    seed: IntProperty(name="Seed", min=0, description=SEED_DESCRIPTION)
    variation: FloatProperty(name="Variation", default=1.0, min=0.0, max=2.0, description=VARIATION_DESCRIPTION)
    resolution: EnumProperty(name="Resolution", items=RESOLUTION_ITEMS, default='PREVIEW')
    topology: EnumProperty(name="Topology", items=TOPOLOGY_ITEMS, default=imhead_blender.IMPLICIT)
    region_source: PointerProperty(
        type=bpy.types.Object, name="Copy From", poll=lambda _self, obj: imhead_blender.is_head(obj),
        description="The head whose region Copy Region takes",
    )
