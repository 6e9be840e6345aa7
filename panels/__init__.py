"""The "imHead" tab in the 3D View sidebar."""
import bpy

from .generate import IMHEAD_PT_active_head, IMHEAD_PT_generate

classes = (IMHEAD_PT_generate, IMHEAD_PT_active_head)
register, unregister = bpy.utils.register_classes_factory(classes)
