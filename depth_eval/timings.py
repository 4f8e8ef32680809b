"""Where a run's time goes: ``DEPTH_EVAL_TIMINGS=1`` prints one line of phase times on stderr.

The phases are timed where they happen (:func:`phase`); :func:`report` prints them once the run
is over, e.g. ``timings: start-up 0.03 s, settings 0.16 s, hash 0.19 s, model read 0.00 s,
session 0.00 s, first forward 0.13 s, image loop 1.07 s, total 1.56 s``.  ``start-up``: from
the process's start to the command line being parsed (the interpreter, the first imports);
``settings``: the options checked, with the imports a run needs; ``hash``: the files' sha256
(the caffemodel's and the images', for the results store); ``model read``: the prototxt and,
where it is read, the caffemodel checked; ``translate`` / ``optimise`` / ``session``: the
engine's translation, its optimised graph, the model loaded; ``first forward`` (inside the
image loop): the first pass, which allocates; ``total``: the process so far (what is not
listed: the results store, results.json, the printout).  Unset, :func:`phase` costs a
dictionary update and nothing is printed.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager

ENV_VARIABLE = "DEPTH_EVAL_TIMINGS"

_totals: dict[str, float] = {}
_lock = threading.Lock()


def enabled() -> bool:
    return os.environ.get(ENV_VARIABLE, "") not in ("", "0")


def add(name: str, seconds: float) -> None:
    """Count ``seconds`` more for phase ``name`` (phases keep their first-seen order)."""
    with _lock:
        _totals[name] = _totals.get(name, 0.0) + seconds


@contextmanager
def phase(name: str):
    """Time the ``with`` block as (part of) phase ``name``."""
    started = time.perf_counter()
    try:
        yield
    finally:
        add(name, time.perf_counter() - started)


def process_seconds() -> float | None:
    """Seconds since this process started (Linux: its start time in clock ticks since boot,
    10 ms resolution), or None where that is not known."""
    try:
        with open("/proc/self/stat", "rb") as stream:
            fields = stream.read().rsplit(b")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime
        return time.clock_gettime(time.CLOCK_BOOTTIME) - started
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def start() -> None:
    """Forget earlier phases and record the start-up (call when the command line is parsed)."""
    with _lock:
        _totals.clear()
    seconds = process_seconds() if enabled() else None
    if seconds is not None:
        add("start-up", seconds)


def summary() -> str:
    with _lock:
        parts = [f"{name} {seconds:.2f} s" for name, seconds in _totals.items()]
    total = process_seconds()
    if total is not None:
        parts.append(f"total {total:.2f} s")
    return "timings: " + ", ".join(parts)


def report() -> None:
    """Print the one line on stderr when ``DEPTH_EVAL_TIMINGS`` is set."""
    if enabled():
        print(summary(), file=sys.stderr, flush=True)
