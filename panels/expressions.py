"""The Expressions panel: bake, presets, one slider per expression (grouped), animation import."""
import bpy

from .. import imhead_blender
from ..operators.expressions import (IMHEAD_OT_bake_current_expression, IMHEAD_OT_bake_expressions,
                                     IMHEAD_OT_expression_preset, IMHEAD_OT_import_expression_animation,
                                     IMHEAD_OT_reset_expressions)
from .sidebar import HeadPanel, SidebarPanel, head_model_or_message

GROUP_LABELS = tuple(label for label, _ in imhead_blender.EXPRESSION_GROUPS) + ("Other",)


def _baked_keys(context):
    """The active head's expression keys, {} when not baked (or no usable model)."""
    model, _ = head_model_or_message(context)
    return (model, imhead_blender.expression_keys(context.active_object, model)) if model else (None, {})


class IMHEAD_PT_expressions(HeadPanel, bpy.types.Panel):
    bl_label = "Expressions"

    def draw_head(self, context, head, model):
        layout = self.layout
        state = head.imhead
        if state.expressions_stale:
            box = layout.box()
            box.label(text="The shape changed: expression keys were removed", icon='ERROR')
            box.label(text="Bake again (values and animation are kept)")
        keys = imhead_blender.expression_keys(head, model)
        layout.operator(IMHEAD_OT_bake_expressions.bl_idname, icon='SHAPEKEY_DATA',
                        text="Bake Expressions Again" if keys or state.expressions_stale else "Bake Expressions")
        if not keys:
            return
        layout.label(text=f"Baked: residual {state.bake_residual_mm:.3f} mm")
        row = layout.row(align=True)
        for preset in imhead_blender.EXPRESSION_PRESETS:
            row.operator(IMHEAD_OT_expression_preset.bl_idname, text=preset.title()).preset = preset
        row = layout.row(align=True)
        row.operator(IMHEAD_OT_reset_expressions.bl_idname, text="Reset", icon='LOOP_BACK')
        row.operator(IMHEAD_OT_bake_current_expression.bl_idname, text="Bake Current", icon='SHAPEKEY_DATA')
        layout.operator(IMHEAD_OT_import_expression_animation.bl_idname, text="Import Animation...", icon='IMPORT')


def _group_panel(label):
    """A sub-panel with the sliders (shape key values) of one group of expressions."""

    def draw(self, context):
        model, keys = _baked_keys(context)
        groups = dict(imhead_blender.expression_groups(model.expression_names)) if model else {}
        column = self.layout.column(align=True)
        for name in groups.get(label, []):
            if name in keys:
                column.prop(keys[name], "value", text=name, slider=True)

    @classmethod
    def poll(cls, context):
        return imhead_blender.is_head(context.active_object) and bool(_baked_keys(context)[1])

    return type(f"IMHEAD_PT_expressions_{label.lower()}", (SidebarPanel, bpy.types.Panel), {
        "bl_label": label, "bl_parent_id": IMHEAD_PT_expressions.__name__, "bl_options": {'DEFAULT_CLOSED'},
        "poll": poll, "draw": draw,
    })


group_panels = tuple(_group_panel(label) for label in GROUP_LABELS)
