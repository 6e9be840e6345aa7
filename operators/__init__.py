"""The add-on's operators, PropertyGroups and preferences."""
import bpy
from bpy.props import PointerProperty

from .. import imhead_blender
from . import expressions, fit, regions
from .generate import IMHEAD_OT_generate, IMHEAD_OT_random_head
from .preferences import ImHeadPreferences, preview_settings
from .properties import ImHeadObjectState, ImHeadSceneSettings

classes = (
    ImHeadPreferences,
    ImHeadObjectState,
    ImHeadSceneSettings,
    IMHEAD_OT_generate,
    IMHEAD_OT_random_head,
    *regions.classes,
    *expressions.classes,
    *fit.classes,
)
_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register():
    _register_classes()
    bpy.types.Object.imhead = PointerProperty(type=ImHeadObjectState)
    bpy.types.Scene.imhead = PointerProperty(type=ImHeadSceneSettings)
    bpy.types.Scene.imhead_fit = PointerProperty(type=fit.ImHeadFitSettings)
    imhead_blender.live.register(lambda: preview_settings(bpy.context))
    imhead_blender.parts.register()


def unregister():
    imhead_blender.parts.unregister()
    imhead_blender.live.unregister()
    del bpy.types.Scene.imhead_fit
    del bpy.types.Scene.imhead
    del bpy.types.Object.imhead
    _unregister_classes()
