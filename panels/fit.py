"""The panel for fitting a head to a scan."""
import bpy

from ..operators.fit import IMHEAD_OT_fit_scan
from .sidebar import SidebarPanel


class IMHEAD_PT_fit_scan(SidebarPanel, bpy.types.Panel):
    bl_label = "Fit to Scan"
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        settings = context.scene.imhead_fit
        layout.prop(settings, "fit_expression")
        layout.prop(settings, "quality", expand=True)
        layout.prop(settings, "n_points")
        layout.prop(settings, "topology")
        layout.prop(settings, "resolution", expand=True)
        fit = layout.operator(IMHEAD_OT_fit_scan.bl_idname, icon='MOD_SHRINKWRAP')
        for name in ("fit_expression", "quality", "n_points", "topology", "resolution"):
            setattr(fit, name, getattr(settings, name))
