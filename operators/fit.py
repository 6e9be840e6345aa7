"""Fitting a head to the active scan: modal in the UI (the fit runs in a worker thread, Esc cancels),
synchronous when run from a script."""
import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty

from .. import imhead_blender
from ..imhead_blender import fitting
from .modal_job import ModalOperator, ModalSession, failure_report
from .preferences import addon_preferences, resolution_of
from .properties import RESOLUTION_ITEMS, TOPOLOGY_ITEMS

QUALITY_ITEMS = (
    ('fast', "Fast", "Fewer refinement steps: a good fit in seconds to a minute"),
    ('best', "Best", "More refinement steps: a closer fit, a few times slower"),
)


class _FitOptions:
    """The options of a fit, shared by the operator and the sidebar's settings (a mixin)."""
    fit_expression: BoolProperty(name="Fit Expression", default=True,
                                 description="Fit the scan's expression too (as a shape key); off: a neutral face")
    quality: EnumProperty(name="Quality", items=QUALITY_ITEMS, default='fast')
    n_points: IntProperty(name="Points", default=10000, min=300, soft_max=100000,
                          description="How many of the scan's points the fit uses (chosen at random)")
    topology: EnumProperty(name="Topology", items=TOPOLOGY_ITEMS, default=imhead_blender.IMPLICIT)
    resolution: EnumProperty(name="Resolution", items=RESOLUTION_ITEMS, default='PREVIEW')


class ImHeadFitSettings(_FitOptions, bpy.types.PropertyGroup):
    """The sidebar's settings for the next fit (Scene.imhead_fit)."""


def fit_session(context, model, points, normals, settings):
    """The modal fit of the active object: the fit in a worker, the head added beside the scan when done."""
    scan_name = context.active_object.name

    def finish(context, outcome):
        scan = context.scene.objects.get(scan_name)
        if scan is None:
            raise imhead_blender.ImHeadError(f"the scan {scan_name} is no longer in the scene")
        return add_head(context, scan, model, *outcome, settings)

    return ModalSession(context, "Fitting",
                        lambda progress: fitting.fit_surface(model, points, normals, settings, progress), finish)


class IMHEAD_OT_fit_scan(_FitOptions, ModalOperator, bpy.types.Operator):
    """Fit an imHead head to the active object, a scanned mesh or point cloud in any unit and placement:
    adds an editable head lying on the scan (the scan itself is not changed)"""
    bl_idname = "imhead.fit_scan"
    bl_label = "Fit to Scan"
    bl_options = {'REGISTER', 'UNDO'}

    steps: IntProperty(name="Steps", default=0, min=0, options={'HIDDEN', 'SKIP_SAVE'},
                       description="Refinement steps (0: as the quality says); for scripts and tests")

    @classmethod
    def poll(cls, context):
        scan = context.active_object
        if context.mode != 'OBJECT':
            cls.poll_message_set("Scans are fitted in Object Mode")
            return False
        if scan is None or scan.type != 'MESH' or len(scan.data.vertices) == 0:
            cls.poll_message_set("Select the scan to fit: a mesh with vertices")
            return False
        return True

    def prepare(self, context):
        """(model, points, normals, settings) for the fit; ImHeadError for input that cannot be fitted."""
        settings = {"neutral": not self.fit_expression, "quality": self.quality, "steps": self.steps,
                    "n_points": self.n_points, "topology": self.topology,
                    "resolution": resolution_of(context, self.resolution)}
        points, normals = fitting.scan_points(context, context.active_object)
        model = imhead_blender.load_model(addon_preferences(context).model_path)
        return model, points, normals, settings

    def execute(self, context):
        window_manager = context.window_manager
        window_manager.progress_begin(0.0, 1.0)
        try:
            model, points, normals, settings = self.prepare(context)
            result, surface = fitting.fit_surface(
                model, points, normals, settings, lambda fraction, _message: window_manager.progress_update(fraction))
            self.report(*add_head(context, context.active_object, model, result, surface, settings))
            return {'FINISHED'}
        except Exception as error:
            self.report(*failure_report(error, self.bl_label))
            return {'CANCELLED'}
        finally:
            window_manager.progress_end()

    def start_session(self, context):
        return fit_session(context, *self.prepare(context))


def add_head(context, scan, model, result, surface, settings):
    """The fitted head into the scene beside `scan` -> the report saying how well it fits."""
    head = fitting.add_fitted_head(context, scan, model, result, surface, settings["topology"],
                                   settings["resolution"])
    return ({'INFO'}, f"Fitted {head.name} to {scan.name}: {result.within_5mm:.0%} of the scan within 5 mm, "
                      f"mean distance {result.residual_mm:.2f} mm (scan unit {result.unit})")


classes = (ImHeadFitSettings, IMHEAD_OT_fit_scan)
