"""The Edit Regions panel: the active region's sliders and buttons."""
import bpy

from .. import imhead_blender
from ..operators.regions import (IMHEAD_OT_copy_region, IMHEAD_OT_randomize_region, IMHEAD_OT_reset_region,
                                 IMHEAD_OT_show_keypoints, IMHEAD_OT_update_head)
from .sidebar import HeadPanel


class IMHEAD_PT_edit_regions(HeadPanel, bpy.types.Panel):
    bl_label = "Edit Regions"

    def draw_head(self, context, head, model):
        layout = self.layout
        state = head.imhead
        layout.prop(state, "region")
        column = layout.column(align=True)
        for i in range(imhead_blender.region_slider_count(model, state.region) if state.region else 0):
            column.prop(state, "region_sliders", index=i, text=f"Direction {i + 1}", slider=True)

        row = layout.row(align=True)
        row.operator(IMHEAD_OT_randomize_region.bl_idname, text="Randomize", icon='FILE_REFRESH')
        row.operator(IMHEAD_OT_reset_region.bl_idname, text="Reset", icon='LOOP_BACK')
        row = layout.row(align=True)
        row.prop(context.scene.imhead, "region_source", text="")
        source = context.scene.imhead.region_source
        copy = row.operator(IMHEAD_OT_copy_region.bl_idname, text="Copy Region")
        copy.source = source.name if source else ""

        shown = bool(imhead_blender.keypoint_empties(head))
        layout.operator(IMHEAD_OT_show_keypoints.bl_idname, text="Hide Keypoints" if shown else "Show Keypoints",
                        icon='EMPTY_DATA', depress=shown)

        if head.name in imhead_blender.live.errors:
            layout.label(text=imhead_blender.live.errors[head.name], icon='ERROR')
        elif head.name in imhead_blender.live.pending():
            layout.label(text="Updating preview...", icon='TIME')
        elif not imhead_blender.mesh_is_current(head):
            layout.label(text="The mesh does not show the latest edits", icon='INFO')
        row = layout.row(align=True)
        row.operator(IMHEAD_OT_update_head.bl_idname, text="Update Mesh (Final)", icon='MESH_DATA')
        # The other topology, for this head from now on.
        other = imhead_blender.IMPLICIT if state.topology == imhead_blender.ARTIST else imhead_blender.ARTIST
        switch = row.operator(IMHEAD_OT_update_head.bl_idname,
                              text="As Artist Mesh" if other == imhead_blender.ARTIST else "As Implicit")
        switch.topology = other
