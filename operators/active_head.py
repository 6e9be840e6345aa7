"""What every operator on the active head shares: its poll, and turning errors into reports."""
from .. import imhead_blender
from .preferences import addon_preferences


class ActiveHeadOperator:
    """A mixin (Blender operator classes must not inherit from one another): subclasses define
    act(context, head, model) -> message, which raises ImHeadError before changing anything."""
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        if context.mode != 'OBJECT':
            cls.poll_message_set("Heads are edited in Object Mode")
            return False
        if not imhead_blender.is_head(context.active_object):
            cls.poll_message_set("Select a head made by imHead")
            return False
        return True

    def execute(self, context):
        head = context.active_object
        window_manager = context.window_manager
        window_manager.progress_begin(0.0, 1.0)
        try:
            model = imhead_blender.head_model(head, addon_preferences(context).model_path)
            message = self.act(context, head, model, window_manager.progress_update)
        except imhead_blender.ImHeadError as error:
            self.report({'ERROR'}, str(error))
            return {'CANCELLED'}
        finally:
            window_manager.progress_end()
        self.report({'INFO'}, message)
        return {'FINISHED'}


def scene_head(context, name):
    """The head `name` of the scene; ImHeadError when it went while a modal operator worked on it."""
    head = context.scene.objects.get(name)
    if head is None:
        raise imhead_blender.ImHeadError(f"the head {name} is no longer in the scene")
    return head
