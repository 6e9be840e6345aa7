"""What every panel of the "imHead" sidebar tab shares."""
from .. import imhead_blender
from ..operators.preferences import addon_preferences


class SidebarPanel:
    bl_space_type = 'VIEW_3D'
    bl_region_type = 'UI'
    bl_category = "imHead"


def head_model_or_message(context):
    """(the active head's model, None) or (None, why it cannot be used)."""
    try:
        return imhead_blender.head_model(context.active_object, addon_preferences(context).model_path), None
    except imhead_blender.ImHeadError as error:
        return None, str(error)


class HeadPanel(SidebarPanel):
    """A panel for the active imHead head that needs its model: says why when the model cannot be used,
    else draws `draw_head`."""

    @classmethod
    def poll(cls, context):
        return imhead_blender.is_head(context.active_object)

    def draw(self, context):
        model, problem = head_model_or_message(context)
        if model is None:
            self.layout.label(text=problem, icon='ERROR')
            return
        self.draw_head(context, context.active_object, model)
