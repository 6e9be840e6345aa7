"""How the numpy runtime uses the cores: batches side by side in worker threads, each with
single-threaded matmuls.

numpy releases the GIL in its matmuls and ufuncs, so worker threads evaluating batches of points run
side by side. The network's matmuls are small (a few thousand rows by 32-200 columns); OpenBLAS, which
PyPI's numpy wheels carry, splits each of them over all cores anyway, which costs more than it gains:
100k SDF queries on one worker took 0.96 s with one BLAS thread against 1.88 s with two (2-core
machine, loaded). So the workers run with one BLAS thread each. numpy has no API for this and reads
its thread count only at import, so the OpenBLAS numpy loaded is asked directly (what threadpoolctl
does, which Blender does not ship). A numpy built on another BLAS (Accelerate on recent macOS wheels)
is left as it is.
"""
import ctypes
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np

# The folders where numpy's wheels keep their OpenBLAS: numpy.libs beside the package (Linux
# auditwheel, Windows delvewheel), numpy/.dylibs (macOS delocate).
_NUMPY_DIR = Path(np.__file__).parent
_LIBRARY_DIRS = (_NUMPY_DIR.parent / "numpy.libs", _NUMPY_DIR / ".dylibs")
# The same function under each build's symbol suffix: 64-bit integer builds end in 64_, numpy 2's
# scipy-openblas adds a prefix.
_PREFIXES = ("openblas", "scipy_openblas")
_SUFFIXES = ("64_", "", "_64")


def _openblas_functions():
    """(get, set) of the OpenBLAS that numpy uses, or None."""
    for folder in _LIBRARY_DIRS:
        for path in sorted(folder.glob("*openblas*")) if folder.is_dir() else ():
            try:
                library = ctypes.CDLL(str(path))  # already loaded by numpy: the same library
            except OSError:
                continue
            for prefix in _PREFIXES:
                for suffix in _SUFFIXES:
                    getter = getattr(library, f"{prefix}_get_num_threads{suffix}", None)
                    setter = getattr(library, f"{prefix}_set_num_threads{suffix}", None)
                    if getter is not None and setter is not None:
                        getter.restype = ctypes.c_int
                        setter.argtypes = [ctypes.c_int]
                        return getter, setter
    return None


_FUNCTIONS = _openblas_functions()


_blas_lock = threading.Lock()
_blas_holders = 0     # jobs inside single_threaded_blas, in any thread
_blas_before = None   # the thread count they found


@contextmanager
def single_threaded_blas():
    """Within: numpy's matmuls run on one thread each (where numpy's BLAS can be told). The setting is
    process-wide, so jobs inside at once (a live preview meshing while a query runs, nested calls)
    share it: the first one in sets it, the last one out puts back what the first one found."""
    global _blas_holders, _blas_before
    if _FUNCTIONS is None:
        yield
        return
    get, set_ = _FUNCTIONS
    with _blas_lock:
        if _blas_holders == 0:
            _blas_before = get()
            set_(1)
        _blas_holders += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_holders -= 1
            if _blas_holders == 0:
                set_(_blas_before)


def _available_cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


_threads = _available_cores()
# Points per batch of in_batches: the network's own batch (numpy_network.POINT_BATCH).
BATCH = 8192


def threads():
    """How many workers evaluate batches side by side (default: the cores this process may use)."""
    return _threads


def set_threads(count):
    """Sets threads() for the whole process (benchmarks, tests, a user's preference)."""
    global _threads
    if int(count) < 1:
        raise ValueError(f"threads must be at least 1, got {count}")
    _threads = int(count)


def use_one_core():
    """For the rest of this process: one worker and one BLAS thread, everywhere (not only inside
    worker_map). For a worker process among others that share the cores (python -m imhead fit
    --processes), where a second thread per process only contends with the other processes."""
    set_threads(1)
    if _FUNCTIONS is not None:
        _FUNCTIONS[1](1)


@contextmanager
def worker_map():
    """Within: map(function, items) -> the results in the items' order, computed on threads() workers
    side by side (each with one BLAS thread), or on this thread when threads() is 1. Leaving early (an
    exception while reading results) drops the batches not yet started."""
    count = threads()
    with single_threaded_blas():
        if count == 1:
            yield map
            return
        pool = ThreadPoolExecutor(count, thread_name_prefix="imhead-worker")
        try:
            yield pool.map
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def in_batches(function, points, batch=BATCH):
    """function(points[i:i + batch]) for every batch, on the workers side by side, concatenated."""
    chunks = [points[start:start + batch] for start in range(0, len(points), batch)]
    if not chunks:
        return function(points)
    with worker_map() as map_:
        return np.concatenate(list(map_(function, chunks)))
