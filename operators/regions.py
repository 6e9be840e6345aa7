"""Editing regions of the active head: randomize, reset, copy from another head, show keypoints, re-mesh."""
import random

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from .. import imhead_blender
from .active_head import ActiveHeadOperator, scene_head
from .modal_job import ModalOperator, ModalSession, Then
from .preferences import addon_preferences, resolution_of
from .properties import RESOLUTION_ITEMS, TOPOLOGY_ITEMS

REGION_DESCRIPTION = "Region to edit (empty: the head's active region)"


class _RegionOperator(ActiveHeadOperator):
    region: StringProperty(name="Region", description=REGION_DESCRIPTION)
    resolution: EnumProperty(name="Resolution", items=RESOLUTION_ITEMS, default='PREVIEW')

    def region_of(self, head):
        return self.region or head.imhead.region


class IMHEAD_OT_randomize_region(_RegionOperator, bpy.types.Operator):
    """Give the region a random plausible shape (from the training heads' variety), keeping the rest of the head"""
    bl_idname = "imhead.randomize_region"
    bl_label = "Randomize Region"

    seed: IntProperty(name="Seed", min=0, description="Which random region (drawn anew when not set)")
    scale: FloatProperty(name="Variation", default=1.0, min=0.0, max=3.0,
                         description="Standard deviations from the average region: 1 typical, 3 extreme")

    def act(self, context, head, model, progress):
        # Drawn once, so that redoing (F9) with another variation keeps the same region.
        if not self.properties.is_property_set("seed"):
            self.seed = random.randrange(1 << 20)
        region = self.region_of(head)
        imhead_blender.randomize_region(head, model, region, self.seed, self.scale,
                                        resolution_of(context, self.resolution), progress)
        return f"Randomized the {region} of {head.name} (seed {self.seed})"


class IMHEAD_OT_reset_region(_RegionOperator, bpy.types.Operator):
    """Give the region back the head's own shape: sliders to zero, no random or copied shape"""
    bl_idname = "imhead.reset_region"
    bl_label = "Reset Region"

    def act(self, context, head, model, progress):
        region = self.region_of(head)
        imhead_blender.reset_region(head, model, region, resolution_of(context, self.resolution), progress)
        return f"Reset the {region} of {head.name}"


class IMHEAD_OT_copy_region(_RegionOperator, bpy.types.Operator):
    """Give the region the shape it has on another head (as edited there)"""
    bl_idname = "imhead.copy_region"
    bl_label = "Copy Region"

    source: StringProperty(name="From", description="Name of the head to copy the region from")

    def act(self, context, head, model, progress):
        source = context.scene.objects.get(self.source)
        if source is None:
            raise imhead_blender.ImHeadError(f"no object {self.source!r} in the scene to copy a region from")
        region = self.region_of(head)
        imhead_blender.copy_region(head, model, region, source, resolution_of(context, self.resolution), progress)
        return f"Copied the {region} of {source.name} to {head.name}"


class IMHEAD_OT_update_head(ActiveHeadOperator, ModalOperator, bpy.types.Operator):
    """Mesh the head again with its edits, at Final resolution by default (and bake its expressions
    again if the edits removed them)"""
    bl_idname = "imhead.update_head"
    bl_label = "Update Mesh"

    resolution: EnumProperty(name="Resolution", items=RESOLUTION_ITEMS, default='FINAL')
    topology: EnumProperty(name="Topology", items=TOPOLOGY_ITEMS, default=imhead_blender.IMPLICIT,
                           description="The mesh's topology (not set: the head's own)")
    bake: BoolProperty(name="Bake Expressions Again", default=True,
                       description="Bake the expression keys again if they were baked before")

    def prepare(self, context, head, model):
        """The head's re-mesh (imhead_blender.Remesh), and whether its expressions are to be baked again."""
        imhead_blender.finish_previews()  # a preview arriving later must not replace this mesh
        if not self.properties.is_property_set("topology"):
            self.topology = head.imhead.topology  # kept, so that redoing (F9) can switch it
        rebake = self.bake and (head.imhead.expressions_stale or bool(imhead_blender.expression_keys(head, model)))
        return imhead_blender.Remesh.of(head, model, resolution_of(context, self.resolution), self.topology), rebake

    def act(self, context, head, model, progress):
        remesh, rebake = self.prepare(context, head, model)
        remesh.install(head, remesh.surface(progress))
        if not rebake:
            return meshed(head, remesh)
        return meshed(head, remesh) + rebaked(imhead_blender.bake_expressions(head, model))

    def start_session(self, context):
        head = context.active_object
        model = imhead_blender.head_model(head, addon_preferences(context).model_path)
        return update_session(context, model, *self.prepare(context, head, model))


def update_session(context, model, remesh, rebake):
    """The modal Update Mesh: the surface meshed in a worker and installed, then (rebake) the expressions
    solved in a worker and written; Esc while baking keeps the new mesh."""
    def installed(context, surface):
        head = scene_head(context, remesh.head_name)
        remesh.install(head, surface)
        done = meshed(head, remesh)
        if not rebake:
            return {'INFO'}, done
        bake = imhead_blender.ExpressionBake(head, model)

        def baked(context, solved):
            return {'INFO'}, done + rebaked(bake.write(scene_head(context, bake.head_name), solved))

        return Then(lambda progress: bake.solve(lambda fraction: progress(fraction, "Baking expressions")), baked,
                    ({'WARNING'}, f"{done}; the expressions were not baked again (Esc): Bake Expressions bakes them"))

    return ModalSession(context, "Meshing",
                        lambda progress: remesh.surface(lambda fraction: progress(fraction, "Meshing the head")),
                        installed)


def meshed(head, remesh):
    return (f"Meshed {head.name} as the artist mesh" if remesh.topology == imhead_blender.ARTIST
            else f"Meshed {head.name} at resolution {remesh.resolution}")


def rebaked(summary):
    return f"; expressions baked again (residual max {summary['max']:.3f} mm)"


class IMHEAD_OT_show_keypoints(ActiveHeadOperator, bpy.types.Operator):
    """Show the keypoints of the active region as empties parented to the head (again: hide them)"""
    bl_idname = "imhead.show_keypoints"
    bl_label = "Show Region Keypoints"

    region: StringProperty(name="Region", description=REGION_DESCRIPTION)
    all_regions: BoolProperty(name="All Regions", description="Show the keypoints of every region")

    def act(self, context, head, model, progress):
        if imhead_blender.keypoint_empties(head):
            imhead_blender.hide_keypoints(head)
            return f"Hid the keypoints of {head.name}"
        region = None if self.all_regions else (self.region or head.imhead.region)
        empties = imhead_blender.show_keypoints(head, model, region)
        return f"Showing {len(empties)} keypoints of {head.name}"


classes = (IMHEAD_OT_randomize_region, IMHEAD_OT_reset_region, IMHEAD_OT_copy_region, IMHEAD_OT_update_head,
           IMHEAD_OT_show_keypoints)
