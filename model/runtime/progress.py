"""A progress line on a terminal: a bar, the share done (or items done of a total), elapsed time and ETA.

The library reports progress as progress(fraction) callbacks and never draws; the command lines draw
them with progress_bar (on stderr, so that what a command prints on stdout stays clean to pipe).
"""
import math
import sys
import time

# Seconds between redraws: the callbacks come far more often (every coarse-to-fine level, every step).
REDRAW_INTERVAL = 0.25


def progress_bar(total=None, unit="", stream=None, width=30, label=""):
    """progress(fraction, message=None) that redraws one line (at most every REDRAW_INTERVAL seconds, and
    at the end) on stream (default: sys.stderr as it is when called): the bar, `round(fraction * total)/total
    unit` when a total is given, the share done, elapsed time and the ETA; `message` (or `label`) in front.
    The line ends at fraction 1."""
    stream = stream or sys.stderr
    start = time.perf_counter()
    # Clearing the rest of the line (after a longer message) is a terminal's escape; logs get none.
    clear = "\033[K" if getattr(stream, "isatty", lambda: False)() else ""
    drawn = [-math.inf]  # when the line was last drawn

    def progress(fraction, message=None):
        fraction = min(max(float(fraction), 0.0), 1.0)
        elapsed = time.perf_counter() - start
        if fraction < 1.0 and elapsed - drawn[0] < REDRAW_INTERVAL:
            return
        drawn[0] = elapsed
        eta = elapsed / fraction * (1.0 - fraction) if fraction > 0 else float("nan")
        filled = int(width * fraction)
        count = f"{round(fraction * total)}/{total} {unit} " if total is not None else ""
        title = message or label
        stream.write(f"\r{title + ' ' if title else ''}[{'#' * filled}{'.' * (width - filled)}] {count}"
                     f"{fraction:6.1%}  elapsed {_clock(elapsed)}  ETA {_clock(eta)}{clear}")
        if fraction >= 1.0:
            stream.write("\n")
        stream.flush()
    return progress


def _clock(seconds):
    if not math.isfinite(seconds):
        return "--:--"
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"
