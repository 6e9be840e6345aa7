"""Adding heads: a chosen one (seed and variation) or a random one."""
import random

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty

from .. import imhead_blender
from .modal_job import ModalOperator, ModalSession
from .preferences import addon_preferences, resolution_of
from .properties import RESOLUTION_ITEMS, SEED_DESCRIPTION, TOPOLOGY_ITEMS, VARIATION_DESCRIPTION


class _HeadSettings:
    """What both operators take, and how they make the head (a mixin: Blender operator classes
    must not inherit from one another)."""
    bl_options = {'REGISTER', 'UNDO'}

    seed: IntProperty(name="Seed", min=0, description=SEED_DESCRIPTION)
    variation: FloatProperty(name="Variation", default=1.0, min=0.0, max=2.0, description=VARIATION_DESCRIPTION)
    topology: EnumProperty(name="Topology", items=TOPOLOGY_ITEMS, default=imhead_blender.IMPLICIT)
    resolution: EnumProperty(name="Resolution", items=RESOLUTION_ITEMS, default='PREVIEW')
    replace: BoolProperty(
        name="Replace Active Head",
        description="Give the active imHead head this shape instead of adding a new head",
    )

    @classmethod
    def poll(cls, context):
        if context.mode != 'OBJECT':
            cls.poll_message_set("Heads are added in Object Mode")
            return False
        return True

    def settings(self, context):
        return {
            "model_path": addon_preferences(context).model_path,
            "seed": self.seed,
            "variation": self.variation,
            "topology": self.topology,
            "resolution": resolution_of(context, self.resolution),
            "replace": self.replace,
        }

    def execute(self, context):
        self.choose_seed(context)
        window_manager = context.window_manager
        window_manager.progress_begin(0.0, 1.0)
        try:
            head = imhead_blender.generate_head(context, self.settings(context), window_manager.progress_update)
        except imhead_blender.ImHeadError as error:
            self.report({'ERROR'}, str(error))
            return {'CANCELLED'}
        finally:
            window_manager.progress_end()
        self.report({'INFO'}, made(head, self.seed, self.variation))
        return {'FINISHED'}

    def start_session(self, context):
        self.choose_seed(context)
        return generate_session(context, self.settings(context))

    def choose_seed(self, context):
        """The seed, where the operator chooses it."""


def generate_session(context, settings):
    """The modal Generate: the head sampled and meshed in a worker, put in the scene when done."""
    def place(context, sampled):
        return {'INFO'}, made(imhead_blender.place_head(context, settings, *sampled), settings["seed"],
                              settings["variation"])

    return ModalSession(context, "Generating", lambda progress: imhead_blender.sample_head(
        settings, lambda fraction: progress(fraction, "Meshing the head")), place)


def made(head, seed, variation):
    return f"Made {head.name} (seed {seed}, variation {variation:.2f})"


class IMHEAD_OT_generate(_HeadSettings, ModalOperator, bpy.types.Operator):
    """Add a head made by the imHead model at the 3D cursor (variation 0: the mean head)"""
    bl_idname = "imhead.generate"
    bl_label = "Generate Head"


class IMHEAD_OT_random_head(_HeadSettings, ModalOperator, bpy.types.Operator):
    """Add a random head at the 3D cursor: a new seed, which the sidebar then shows"""
    bl_idname = "imhead.random_head"
    bl_label = "Random Head"

    def choose_seed(self, context):
        # Drawn once, so that redoing (F9) with another variation keeps the same head.
        if not self.properties.is_property_set("seed"):
            self.seed = random.randrange(1 << 20)
        context.scene.imhead.seed = self.seed
