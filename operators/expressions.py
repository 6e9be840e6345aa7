"""Expressions of the active head: bake them into shape keys, set them, import their animation."""
import bpy
from bpy.props import EnumProperty, FloatProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from .. import imhead_blender
from .active_head import ActiveHeadOperator, scene_head
from .modal_job import ModalOperator, ModalSession
from .preferences import addon_preferences


class IMHEAD_OT_bake_expressions(ActiveHeadOperator, ModalOperator, bpy.types.Operator):
    """Turn every expression into a shape key of the head's mesh; the keys' values are the expression sliders"""
    bl_idname = "imhead.bake_expressions"
    bl_label = "Bake Expressions"

    def act(self, context, head, model, progress):
        return baked_report(head, imhead_blender.bake_expressions(head, model, progress), model)

    def start_session(self, context):
        head = context.active_object
        return bake_session(context, head, imhead_blender.head_model(head, addon_preferences(context).model_path))


def bake_session(context, head, model):
    """The modal bake of `head`: the inverse warp in a worker, the keys written when it is done."""
    bake = imhead_blender.ExpressionBake(head, model)

    def finish(context, solved):
        head = scene_head(context, bake.head_name)
        return {'INFO'}, baked_report(head, bake.write(head, solved), model)

    return ModalSession(context, "Baking", lambda progress: bake.solve(
        lambda fraction: progress(fraction, "Baking expressions")), finish)


def baked_report(head, summary, model):
    return (f"Baked {len(model.expression_names)} expression keys on {head.name}: residual max "
            f"{summary['max']:.3f} mm, mean {summary['mean']:.4f} mm")


class _BakedOperator(ActiveHeadOperator):
    """Operators on the baked expression keys."""

    @classmethod
    def poll(cls, context):
        if not super().poll(context):
            return False
        if context.active_object.data.shape_keys is None or context.active_object.imhead.expressions_stale:
            cls.poll_message_set("Bake the head's expressions first")
            return False
        return True


class IMHEAD_OT_bake_current_expression(_BakedOperator, bpy.types.Operator):
    """Bake the current mix of expressions exactly, as one shape key of its own (value 0)"""
    bl_idname = "imhead.bake_current_expression"
    bl_label = "Bake Current Expression"

    name: StringProperty(name="Name", default="Expression", description="Name of the new shape key")

    def act(self, context, head, model, progress):
        values = imhead_blender.expression_values(head, model)
        summary = imhead_blender.bake_exact_expression(head, model, self.name, values)
        return f"Baked the current expression as {self.name!r}: residual max {summary['max']:.3f} mm"


class IMHEAD_OT_reset_expressions(_BakedOperator, bpy.types.Operator):
    """Set every expression back to 0 (the neutral face)"""
    bl_idname = "imhead.reset_expressions"
    bl_label = "Reset Expressions"

    def act(self, context, head, model, progress):
        imhead_blender.set_expression_values(head, model, [0.0] * len(model.expression_names))
        return f"{head.name} has a neutral face"


class IMHEAD_OT_expression_preset(_BakedOperator, bpy.types.Operator):
    """Set the expressions to a preset (the others to 0)"""
    bl_idname = "imhead.expression_preset"
    bl_label = "Expression Preset"

    preset: EnumProperty(name="Preset", items=[(name, name.title(), f"A {name} expression")
                                               for name in imhead_blender.EXPRESSION_PRESETS])

    def act(self, context, head, model, progress):
        imhead_blender.set_expression_values(head, model, imhead_blender.preset_weights(model, self.preset))
        return f"{head.name}: {self.preset}"


class IMHEAD_OT_import_expression_animation(_BakedOperator, ImportHelper, bpy.types.Operator):
    """Keyframe the expressions from a face-capture CSV (ARKit blendshapes, e.g. Live Link Face) or a
    JSON/NPY file of coefficients per frame"""
    bl_idname = "imhead.import_expression_animation"
    bl_label = "Import Expression Animation"

    filter_glob: StringProperty(default="*.csv;*.json;*.npy", options={'HIDDEN'})
    capture_fps: FloatProperty(name="Capture Frame Rate", default=60.0, min=1.0, max=1000.0,
                               description="Frames per second of the file, when it does not say "
                                           "(Live Link Face records at 60)")
    frame_start: IntProperty(name="Start Frame", default=1, description="Scene frame of the file's first frame")

    def invoke(self, context, event):
        if not self.properties.is_property_set("frame_start"):
            self.frame_start = context.scene.frame_start
        return ImportHelper.invoke(self, context, event)

    def act(self, context, head, model, progress):
        render = context.scene.render
        frames, unused = imhead_blender.import_expression_animation(
            head, model, self.filepath, self.capture_fps, self.frame_start, render.fps / render.fps_base)
        message = f"Keyframed {frames} frames of expressions on {head.name}"
        if unused:
            self.report({'WARNING'}, f"Not driving any expression: {', '.join(unused)}")
        return message


classes = (IMHEAD_OT_bake_expressions, IMHEAD_OT_bake_current_expression, IMHEAD_OT_reset_expressions,
           IMHEAD_OT_expression_preset, IMHEAD_OT_import_expression_animation)
