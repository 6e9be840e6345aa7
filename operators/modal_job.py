"""Long operators, modal in the UI: their model work runs in a worker thread (model code only: nothing
there touches the scene), the status bar shows its progress, Esc cancels, and the scene is changed on
the main thread once the work is done. Fit to Scan and Bake Expressions run this way."""
import threading
import traceback
from typing import Callable, NamedTuple

from .. import imhead_blender

POLL_S = 0.1
# How long cancelling waits for the worker: it stops at its next progress report, well within this.
CANCEL_WAIT_S = 10.0
# Events that still reach the 3D View while the work runs: looking around is harmless, editing is not.
NAVIGATION_EVENTS = {'MIDDLEMOUSE', 'WHEELUPMOUSE', 'WHEELDOWNMOUSE', 'TRACKPADPAN', 'TRACKPADZOOM',
                     'MOUSEMOVE', 'INBETWEEN_MOUSEMOVE'}


class _Cancelled(Exception):
    """Raised in the worker's progress callback when the user pressed Esc."""


class WorkerJob:
    """work(progress) running in a worker thread; progress(fraction, message) is how it reports."""

    def __init__(self, work, name):
        self.fraction, self.message = 0.0, "Starting"
        self.cancelled = False
        self.outcome = self.error = None
        self.thread = threading.Thread(target=self._run, args=(work,), name=name, daemon=True)
        self.thread.start()

    def _progress(self, fraction, message):
        if self.cancelled:
            raise _Cancelled
        self.fraction, self.message = fraction, message

    def _run(self, work):
        try:
            self.outcome = work(self._progress)
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


class Then(NamedTuple):
    """What a finish() returns to go on with more work (after it changed the scene): the next worker's
    work(progress), its finish, and the report that stands if Esc stops the next work (the scene keeps
    what this finish did, as one undo step)."""
    work: Callable
    finish: Callable
    if_cancelled: tuple


class ModalSession:
    """A modal operator's work between Blender's events: the worker, its timer and the progress shown.
    When the worker is done, finish(context, outcome) changes the scene and returns the report, or a Then
    to go on (it may raise ImHeadError for a scene that changed meanwhile). handle() takes the event's
    type as the operator's modal() receives it, so a test can send what a window would (background
    Blender has no event loop). What the operator should report collects in `reports`."""

    def __init__(self, context, label, work, finish):
        self.label, self.finish = label, finish
        self.if_cancelled = None  # the scene is as it was: Esc cancels the operator
        self.reports = []
        self.job = WorkerJob(work, f"imhead-{label.lower().replace(' ', '-')}")
        window_manager = context.window_manager
        window_manager.progress_begin(0.0, 1.0)
        self.timer = window_manager.event_timer_add(POLL_S, window=context.window)

    def handle(self, context, event_type):
        """One event -> the operator's modal() status."""
        job = self.job
        if event_type == 'ESC':
            self.cancel(context)
            if self.if_cancelled is not None:
                self.reports.append(self.if_cancelled)
                return {'FINISHED'}
            self.reports.append(({'INFO'}, f"{self.label} cancelled"))
            return {'CANCELLED'}
        if event_type != 'TIMER':
            return {'PASS_THROUGH'} if event_type in NAVIGATION_EVENTS else {'RUNNING_MODAL'}
        if job.thread.is_alive():
            context.window_manager.progress_update(job.fraction)
            context.workspace.status_text_set(f"imHead: {job.message} ({100 * job.fraction:.0f}%) - Esc to cancel")
            return {'RUNNING_MODAL'}
        if self.timer is None:  # ended already (cancelled): a late event
            return {'CANCELLED'}
        try:
            if job.error is not None:
                raise job.error
            result = self.finish(context, job.outcome)
        except Exception as error:
            self._end(context)
            self.reports.append(failure_report(error, self.label))
            return {'FINISHED'} if self.if_cancelled is not None else {'CANCELLED'}
        if isinstance(result, Then):
            self.job, self.finish, self.if_cancelled = WorkerJob(result.work, job.thread.name), *result[1:]
            return {'RUNNING_MODAL'}
        self._end(context)
        self.reports.append(result)
        return {'FINISHED'}

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


class ModalOperator:
    """A mixin for operators whose invoke() starts a ModalSession (start_session) in a window, and runs
    execute() instead where there is none (background Blender, scripts)."""

    def invoke(self, context, event):
        if context.window is None:
            return self.execute(context)
        try:
            self._session = self.start_session(context)
        except Exception as error:
            self.report(*failure_report(error, self.bl_label))
            return {'CANCELLED'}
        context.window_manager.modal_handler_add(self)
        return {'RUNNING_MODAL'}

    def modal(self, context, event):
        status = self._session.handle(context, event.type)
        for report in self._session.reports:
            self.report(*report)
        self._session.reports.clear()
        return status

    def cancel(self, context):
        """Blender ends the operator (a file is loaded, the window closes)."""
        self._session.cancel(context)


def failure_report(error, label):
    """The one report of a failed operator: the reason for what the add-on checks (ImHeadError), the kind
    and message of anything else (its traceback goes to the console, for a bug report)."""
    if isinstance(error, imhead_blender.ImHeadError):
        return {'ERROR'}, str(error)
    traceback.print_exception(error)
    return {'ERROR'}, f"{label} failed: {type(error).__name__}: {error}"
