"""The "imHead" tab in the 3D View sidebar."""
import bpy

from .editing import IMHEAD_PT_edit_regions
from .expressions import IMHEAD_PT_expressions, group_panels
from .fit import IMHEAD_PT_fit_scan
from .generate import IMHEAD_PT_active_head, IMHEAD_PT_generate

classes = (IMHEAD_PT_generate, IMHEAD_PT_active_head, IMHEAD_PT_edit_regions, IMHEAD_PT_expressions, *group_panels,
           IMHEAD_PT_fit_scan)
register, unregister = bpy.utils.register_classes_factory(classes)
