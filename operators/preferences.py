"""User settings of the add-on (Preferences > Add-ons > imHead)."""
import bpy
from bpy.props import IntProperty, StringProperty

# The extension's own package ("bl_ext.<repository>.imhead"): Blender finds the preferences by it.
ADDON_PACKAGE = __package__.rpartition(".")[0]


class ImHeadPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    model_path: StringProperty(
        name="Model File", subtype='FILE_PATH',
        description="An imHead model file to use instead of the bundled model (empty: bundled model)",
    )
    preview_resolution: IntProperty(
        name="Preview Resolution", default=128, min=32, max=512,
        description="Grid size for Preview heads: fast, for exploring",
    )
    final_resolution: IntProperty(
        name="Final Resolution", default=256, min=32, max=1024,
        description="Grid size for Final heads: fine detail, slower",
    )

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "model_path")
        row = layout.row()
        row.prop(self, "preview_resolution")
        row.prop(self, "final_resolution")


def addon_preferences(context):
    return context.preferences.addons[ADDON_PACKAGE].preferences


def resolution_of(context, preset):
    """The grid size of a resolution preset ('PREVIEW' or 'FINAL')."""
    preferences = addon_preferences(context)
    return preferences.final_resolution if preset == 'FINAL' else preferences.preview_resolution


def preview_settings(context):
    """Where live previews take the model from, and their grid size."""
    preferences = addon_preferences(context)
    return {"model_path": preferences.model_path, "resolution": preferences.preview_resolution}
