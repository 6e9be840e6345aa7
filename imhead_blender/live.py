"""Live preview: heads re-meshed at Preview resolution while their sliders move, without freezing Blender.

A slider change calls request_preview(). A timer waits until the sliders have been still for DEBOUNCE_S,
then meshes the head in a worker thread (model code only, no bpy there) while Blender keeps running;
a second timer installs the mesh on the main thread when it is ready, unless the head's edits changed
meanwhile (a newer request is then already waiting). Background Blender runs no timers: there, and
whenever a result is needed now, finish_previews() does the pending work at once.

The timers are persistent: a file loaded while a head is meshed must not drop the timer that finishes
the job (the preview would then wait forever). Requests name objects of the file they were made in, so
loading another file forgets them; the loaded file's stale heads are requested anew after it loads.
"""
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import bpy

from ..model import ImHeadError
from . import editing
from .heads import is_head

DEBOUNCE_S = 0.25
POLL_S = 0.05

_executor = None  # the worker thread, from register() to unregister()
_requests = {}   # head object name -> settings {"model_path", "resolution"}
_running = None  # the _Job being meshed
_settings = None  # callable() -> settings, for heads found stale after undo, redo or loading a file
errors = {}      # head object name -> the last preview's error message (shown in the sidebar)


@dataclass
class _Job:
    remesh: editing.Remesh
    future: object

    @property
    def head_name(self):
        return self.remesh.head_name


def request_preview(head, settings):
    """Re-mesh `head` at settings["resolution"] once its sliders have been still for DEBOUNCE_S."""
    _requests[head.name] = dict(settings)
    if bpy.app.timers.is_registered(_start_next):
        bpy.app.timers.unregister(_start_next)
    bpy.app.timers.register(_start_next, first_interval=DEBOUNCE_S, persistent=True)


def pending():
    """Names of the heads waiting for or being given a preview."""
    return set(_requests) | ({_running.head_name} if _running else set())


def finish_previews():
    """Do every pending preview now, on this thread (background Blender, tests, operators)."""
    for timer in (_start_next, _install_finished):
        if bpy.app.timers.is_registered(timer):
            bpy.app.timers.unregister(timer)
    if _running is not None:
        _running.future.exception()  # waits
        _install(_running)
    while _requests:
        job = _submit(*_requests.popitem())
        if job is not None:
            job.future.exception()
            _install(job)


def _submit(head_name, settings):
    """Start meshing a head in the worker thread; None when there is nothing to mesh."""
    head = bpy.data.objects.get(head_name)
    if not is_head(head):
        return None
    try:
        remesh = editing.Remesh.of(head, editing.head_model(head, settings["model_path"]), settings["resolution"])
    except ImHeadError as error:
        errors[head_name] = str(error)
        return None
    return _Job(remesh, _executor.submit(remesh.surface, remember=True))


def _install(job):
    global _running
    _running = None
    head = bpy.data.objects.get(job.head_name)
    if not is_head(head) or editing.edits_digest(head) != job.remesh.digest:
        return  # deleted, or edited again: a newer request covers it
    error = job.future.exception()
    if error is not None:
        errors[job.head_name] = str(error)
        return
    errors.pop(job.head_name, None)
    job.remesh.install(head, job.future.result())


def _start_next():
    global _running
    if _running is not None:
        return POLL_S  # one head at a time
    while _requests and _running is None:
        _running = _submit(*_requests.popitem())
    if _running is not None:
        bpy.app.timers.register(_install_finished, first_interval=POLL_S, persistent=True)
    return None


def _install_finished():
    if not _running.future.done():
        return POLL_S
    _install(_running)
    if _requests:
        bpy.app.timers.register(_start_next, first_interval=0.0, persistent=True)
    return None


@bpy.app.handlers.persistent
def _refresh_stale_meshes(*_args):
    """After undo, redo or loading a file a head's mesh may not show its edits (the undo step was
    stored before the preview arrived): mesh those heads again."""
    if _settings is None:
        return
    for head in bpy.data.objects:
        if is_head(head) and not editing.mesh_is_current(head):
            request_preview(head, _settings())


@bpy.app.handlers.persistent
def _forget_requests(*_args):
    """Before another file loads: the waiting requests name objects of the file being closed."""
    _requests.clear()


_HANDLERS = ((bpy.app.handlers.undo_post, _refresh_stale_meshes), (bpy.app.handlers.redo_post, _refresh_stale_meshes),
             (bpy.app.handlers.load_pre, _forget_requests), (bpy.app.handlers.load_post, _refresh_stale_meshes))


def register(settings):
    """Watch undo, redo and file loading; settings() gives the model path and preview resolution."""
    global _settings, _executor
    _settings = settings
    _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="imhead-preview")
    for handlers, handler in _HANDLERS:
        handlers.append(handler)
    # Enabled in a running Blender (not at startup, where load_post follows): a preview that disabling
    # dropped is requested again, so no head keeps a mesh older than its edits.
    if isinstance(bpy.data, bpy.types.BlendData):
        _refresh_stale_meshes()


def unregister():
    """Stop watching, drop every request and the job being meshed, and end the worker thread."""
    global _settings, _executor, _running
    for handlers, handler in _HANDLERS:
        if handler in handlers:
            handlers.remove(handler)
    for timer in (_start_next, _install_finished):
        if bpy.app.timers.is_registered(timer):
            bpy.app.timers.unregister(timer)
    _settings = None
    _requests.clear()
    errors.clear()
    _running = None
    _executor.shutdown(wait=True, cancel_futures=True)
    _executor = None
