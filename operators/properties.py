"""The add-on's data: the imHead state of each head object and the sidebar's settings."""
import bpy
from bpy.props import EnumProperty, FloatProperty, IntProperty, StringProperty

RESOLUTION_ITEMS = (
    ('PREVIEW', "Preview", "The Preview resolution of the add-on preferences (fast)"),
    ('FINAL', "Final", "The Final resolution of the add-on preferences (fine detail, slower)"),
)
SEED_DESCRIPTION = "Which random head: the same seed always gives the same head"
VARIATION_DESCRIPTION = "How far the head strays from the mean head: 0 is the mean head, 1 a typical head, 2 a striking one"


class ImHeadObjectState(bpy.types.PropertyGroup):
    """Where a head object came from (Object.imhead); empty model_hash: not an imHead head.

    The identity code is stored beside these as the array custom property "identity".
    """
    model_hash: StringProperty(name="Model", description="Content hash of the model file that made this head")
    seed: IntProperty(name="Seed", description=SEED_DESCRIPTION)
    variation: FloatProperty(name="Variation", description=VARIATION_DESCRIPTION)
    resolution: IntProperty(name="Resolution", description="Grid size the surface was extracted at")


class ImHeadSceneSettings(bpy.types.PropertyGroup):
    """The sidebar's settings for the next head (Scene.imhead)."""
    seed: IntProperty(name="Seed", min=0, description=SEED_DESCRIPTION)
    variation: FloatProperty(name="Variation", default=1.0, min=0.0, max=2.0, description=VARIATION_DESCRIPTION)
    resolution: EnumProperty(name="Resolution", items=RESOLUTION_ITEMS, default='PREVIEW')
