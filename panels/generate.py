"""Panels for making heads and seeing where the active head came from."""
import bpy

from .. import imhead_blender
from ..imhead_blender import is_head
from ..operators.generate import IMHEAD_OT_generate, IMHEAD_OT_random_head
from .sidebar import SidebarPanel


class IMHEAD_PT_generate(SidebarPanel, bpy.types.Panel):
    bl_label = "New Head"

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        settings = context.scene.imhead
        layout.prop(settings, "seed")
        layout.prop(settings, "variation", slider=True)
        layout.prop(settings, "topology")
        row = layout.row()
        row.active = settings.topology == imhead_blender.IMPLICIT
        row.prop(settings, "resolution", expand=True)

        generate = layout.operator(IMHEAD_OT_generate.bl_idname, icon='USER')
        generate.seed = settings.seed
        generate.variation = settings.variation
        generate.resolution = settings.resolution
        generate.topology = settings.topology
        row = layout.row(align=True)
        random_head = row.operator(IMHEAD_OT_random_head.bl_idname, icon='FILE_REFRESH')
        random_head.variation = settings.variation
        random_head.resolution = settings.resolution
        random_head.topology = settings.topology
        mean_head = row.operator(IMHEAD_OT_generate.bl_idname, text="Mean Head")
        mean_head.variation = 0.0
        mean_head.resolution = settings.resolution
        mean_head.topology = settings.topology


class IMHEAD_PT_active_head(SidebarPanel, bpy.types.Panel):
    bl_label = "Active Head"

    @classmethod
    def poll(cls, context):
        return is_head(context.active_object)

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        state = context.active_object.imhead
        column = layout.column()
        column.enabled = False
        if state.fitted_to:
            column.prop(state, "fitted_to")
        else:
            column.prop(state, "seed")
            column.prop(state, "variation")
        column.prop(state, "topology")
        if state.topology == imhead_blender.IMPLICIT:
            column.prop(state, "resolution")
        column.prop(state, "model_hash")

        settings = context.scene.imhead
        regenerate = layout.operator(IMHEAD_OT_generate.bl_idname, text="Replace With Sidebar Settings")
        regenerate.seed = settings.seed
        regenerate.variation = settings.variation
        regenerate.resolution = settings.resolution
        regenerate.topology = settings.topology
        regenerate.replace = True
