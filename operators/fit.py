"""Fitting a head to the active scan: modal in the UI (the fit runs in a worker thread, Esc cancels),
synchronous when run from a script."""
import threading
import traceback

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty

from .. import imhead_blender
from ..imhead_blender import fitting
from .preferences import addon_preferences, resolution_of
from .properties import RESOLUTION_ITEMS, TOPOLOGY_ITEMS

QUALITY_ITEMS = (
    ('fast', "Fast", "Fewer refinement steps: a good fit in seconds to a minute"),
    ('best', "Best", "More refinement steps: a closer fit, a few times slower"),
)
POLL_S = 0.1
# How long cancelling waits for the worker: it stops at its next progress report, well within this.
CANCEL_WAIT_S = 10.0
# Events that still reach the 3D View while fitting: looking around is harmless, editing is not.
NAVIGATION_EVENTS = {'MIDDLEMOUSE', 'WHEELUPMOUSE', 'WHEELDOWNMOUSE', 'TRACKPADPAN', 'TRACKPADZOOM',
                     'MOUSEMOVE', 'INBETWEEN_MOUSEMOVE'}


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


class _Cancelled(Exception):
    """Raised in the worker's progress callback when the user pressed Esc."""


class FitJob:
    """The fit running in a worker thread: model code only, so nothing there touches the scene."""

    def __init__(self, model, points, normals, settings):
        self.fraction, self.message = 0.0, "Starting"
        self.cancelled = False
        self.outcome = self.error = None
        self.thread = threading.Thread(target=self._run, args=(model, points, normals, settings),
                                       name="imhead-fit", daemon=True)
        self.thread.start()

    def _progress(self, fraction, message):
        if self.cancelled:
            raise _Cancelled
        self.fraction, self.message = fraction, message

    def _run(self, model, points, normals, settings):
        try:
            self.outcome = fitting.fit_surface(model, points, normals, settings, self._progress)
        except _Cancelled:
            pass
        except Exception as error:  # handed to the main thread, which reports it
            self.error = error

    def cancel(self):
        """Ask the worker to stop and wait for it (at most CANCEL_WAIT_S: it is a daemon thread, and
        whatever it still computes is never used); True when it has stopped."""
        self.cancelled = True
        self.thread.join(CANCEL_WAIT_S)
        return not self.thread.is_alive()


class FitSession:
    """A modal fit between Blender's events: the worker, its timer, the progress shown, and the head it
    adds when the worker is done. handle() takes the event's type as the operator's modal() receives
    it, so a test can send what a window would (background Blender has no event loop). What the
    operator should report collects in `reports`."""

    def __init__(self, context, model, points, normals, settings):
        self.scan_name = context.active_object.name
        self.model, self.settings = model, settings
        self.reports = []
        self.job = FitJob(model, points, normals, settings)
        window_manager = context.window_manager
        window_manager.progress_begin(0.0, 1.0)
        self.timer = window_manager.event_timer_add(POLL_S, window=context.window)

    def handle(self, context, event_type):
        """One event -> the operator's modal() status."""
        job = self.job
        if event_type == 'ESC':
            self.cancel(context)
            self.reports.append(({'INFO'}, "Fitting cancelled"))
            return {'CANCELLED'}
        if event_type != 'TIMER':
            return {'PASS_THROUGH'} if event_type in NAVIGATION_EVENTS else {'RUNNING_MODAL'}
        if job.thread.is_alive():
            context.window_manager.progress_update(job.fraction)
            context.workspace.status_text_set(f"imHead: {job.message} ({100 * job.fraction:.0f}%) - Esc to cancel")
            return {'RUNNING_MODAL'}
        self._end(context)
        scan = context.scene.objects.get(self.scan_name)
        try:
            if job.error is not None:
                raise job.error
            if scan is None:
                raise imhead_blender.ImHeadError(f"the scan {self.scan_name} is no longer in the scene")
            self.reports.append(add_head(context, scan, self.model, *job.outcome, self.settings))
            return {'FINISHED'}
        except Exception as error:
            self.reports.append(failure_report(error))
            return {'CANCELLED'}

    def cancel(self, context):
        """Stop the worker (Esc, or Blender ending the operator: a file is loaded, the window closes) and
        take the timer, progress and status text away."""
        self.job.cancel()
        self._end(context)

    def _end(self, context):
        if self.timer is None:
            return
        window_manager = context.window_manager
        window_manager.event_timer_remove(self.timer)
        self.timer = None
        window_manager.progress_end()
        context.workspace.status_text_set(None)


class IMHEAD_OT_fit_scan(_FitOptions, bpy.types.Operator):
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
            self.report(*failure_report(error))
            return {'CANCELLED'}
        finally:
            window_manager.progress_end()

    def invoke(self, context, event):
        if context.window is None:  # no window to run modally in (background Blender)
            return self.execute(context)
        try:
            self._session = FitSession(context, *self.prepare(context))
        except Exception as error:
            self.report(*failure_report(error))
            return {'CANCELLED'}
        context.window_manager.modal_handler_add(self)
        return {'RUNNING_MODAL'}

    def modal(self, context, event):
        status = self._session.handle(context, event.type)
        self._forward_reports()
        return status

    def cancel(self, context):
        """Blender ends the operator (a file is loaded, the window closes)."""
        self._session.cancel(context)

    def _forward_reports(self):
        for report in self._session.reports:
            self.report(*report)
        self._session.reports.clear()


def add_head(context, scan, model, result, surface, settings):
    """The fitted head into the scene beside `scan` -> the report saying how well it fits."""
    head = fitting.add_fitted_head(context, scan, model, result, surface, settings["topology"],
                                   settings["resolution"])
    return ({'INFO'}, f"Fitted {head.name} to {scan.name}: {result.within_5mm:.0%} of the scan within 5 mm, "
                      f"mean distance {result.residual_mm:.2f} mm (scan unit {result.unit})")


def failure_report(error):
    """The one report of a failed fit: the reason for what the add-on checks (ImHeadError), the kind
    and message of anything else (its traceback goes to the console, for a bug report)."""
    if isinstance(error, imhead_blender.ImHeadError):
        return {'ERROR'}, str(error)
    traceback.print_exception(error)
    return {'ERROR'}, f"Fit to Scan failed: {type(error).__name__}: {error}"


classes = (ImHeadFitSettings, IMHEAD_OT_fit_scan)
