"""What runs on a Dask worker (``--dask``): one unit, (snapshot, chunk of images), per call.

:func:`run_unit` builds the run's task from its settings (once per run and worker), takes the
snapshot's engine from a small worker-local cache keyed by the model's hashes (a worker keeps
the snapshot loaded between the chunks of it that it runs), runs the chunk with
:func:`depth_eval.execution.local.run_items` (the task writes its pictures into OUT_DIR, on the
filesystem the workers share) and returns a :class:`UnitReply`: the per-image results (metrics;
predictions only for the ``--figures`` images), the messages the task gave on the worker, and
what the task learnt (:meth:`depth_eval.tasks.base.Task.facts`).

Nothing here imports dask at module level: the functions are sent to the workers by
reference, so the workers need depth_eval installed (the client checks its version).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from depth_eval import engines, tasks
from depth_eval.execution.local import run_items
from depth_eval.inputs import limits
from depth_eval.inputs.conventions import CONVENTION_FACT

# Engines a worker keeps loaded, least recently used dropped first: the snapshot it is on and
# one more (a chunk of the previous snapshot handed to it late), so memory stays bounded.
MAX_LOADED_MODELS = 2
# Runs whose task a worker keeps (a long-lived cluster serves run after run).
MAX_RUNS = 2


@dataclass
class UnitReply:
    """What a worker sends back for a unit."""

    run: object                                    # executor.UnitRun (engine described)
    messages: list = field(default_factory=list)   # (kind, text): Console method and line
    facts: dict = field(default_factory=dict)      # Task.facts()


class CollectingConsole:
    """A Console that keeps the task's notes and warnings for the client to print."""

    quiet = False

    def __init__(self):
        self._lock = threading.Lock()
        self._messages: list[tuple[str, str]] = []

    def _keep(self, kind: str, text: str) -> None:
        with self._lock:
            self._messages.append((kind, str(text)))

    def result(self, text: str = "") -> None:
        self._keep("result", text)

    def info(self, text: str = "") -> None:
        self._keep("info", text)

    def warn(self, message: str) -> None:
        self._keep("warn", message)

    def note(self, message: str) -> None:
        self._keep("note", message)

    def error(self, message: str) -> None:
        self._keep("error", message)

    def drain(self) -> list[tuple[str, str]]:
        """The messages kept so far, forgotten here."""
        with self._lock:
            messages, self._messages = self._messages, []
        return messages


class _Loaded:
    """One engine in a worker's cache; its lock lends it to one unit at a time."""

    def __init__(self, engine, description: dict):
        self.engine, self.description = engine, description
        self.lock = threading.Lock()


_lock = threading.Lock()
_engines: OrderedDict = OrderedDict()   # model key -> _Loaded
_runs: OrderedDict = OrderedDict()      # run token -> (task, console, blob cache)


def _run_state(token: str, settings, task_name: str):
    """The run's task on this worker (made once, with its images found: ``--figures``' choice
    of images is the task's), its collecting console and the user cache."""
    with _lock:
        state = _runs.get(token)
        if state is not None:
            _runs.move_to_end(token)
            return state
    console = CollectingConsole()
    task = tasks.get(task_name)(settings, console)
    task.find_items(console)
    console.drain()  # the client said it already
    cache = engines.user_cache(settings.engine, warn=console.warn)
    state = (task, console, cache)
    with _lock:
        _runs[token] = state
        while len(_runs) > MAX_RUNS:
            _runs.popitem(last=False)
    return state


def _engine(model_key, open_engine, snapshot) -> _Loaded:
    """The snapshot's engine from the cache, or loaded (SnapshotError when it cannot be)."""
    if model_key is not None:
        with _lock:
            loaded = _engines.get(model_key)
            if loaded is not None:
                _engines.move_to_end(model_key)
                return loaded
            # Room first: the model being replaced goes before the new one is read.
            while len(_engines) >= MAX_LOADED_MODELS:
                _engines.popitem(last=False)
    engine = open_engine(snapshot)
    loaded = _Loaded(engine, engine.facts())
    if model_key is not None:
        with _lock:
            _engines[model_key] = loaded
    return loaded


def unit_threads(hosts: dict) -> int:
    """Threads for one unit on this worker: the cores this process may use, shared between
    the worker processes the client saw on this machine at the start and their Dask threads;
    one on a machine that joined later (never more threads than cores)."""
    from distributed import get_worker

    worker = get_worker()
    processes = hosts.get(host_of(worker.address))
    if not processes:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)
    return max(1, cores // (processes * max(1, worker.state.nthreads)))


def warm_up(engine_name: str) -> None:
    """Import what a unit needs (OpenCV, the engine's packages), while the client plans."""
    import cv2  # noqa: F401  (imported here: it is the slow part of a worker's first unit)

    engines.engine_class(engine_name)


def host_of(address: str) -> str:
    """The machine part of a worker's address (``tcp://10.0.0.5:39123`` -> ``10.0.0.5``)."""
    return address.split("://", 1)[-1].rsplit(":", 1)[0]


def run_unit(settings, task_name: str, token: str, snapshot, items: tuple, model_key,
             caffemodel_sha256: str | None, hosts: dict) -> UnitReply:
    """Run one chunk of one snapshot on this worker; see the module docstring.

    Parameters
    ----------
    settings : depth_eval.settings.RunSettings
        The run's settings (absolute paths).
    task_name : str
    token : str
        The run's identity (the task is made once per run and worker).
    snapshot : discover.Snapshot
    items : tuple
        The chunk's items, in order.
    model_key : tuple or None
        The model's identity for the engine cache (None: not cached, loaded for this unit).
    caffemodel_sha256 : str or None
        The weights' hash when the client has it (the engine then does not hash them again).
    hosts : dict
        Machine -> worker processes on it (:func:`unit_threads`).

    Raises
    ------
    SnapshotError
        The snapshot cannot be loaded or run (the client skips it).
    OutputError
        An output cannot be written: the run stops.
    """
    import cv2  # only where units run: the client does not need it to send them

    task, console, cache = _run_state(token, settings, task_name)
    limits.set_max_image_pixels(settings.inputs.max_image_pixels)  # per process: per unit
    threads = unit_threads(hosts)
    cv2.setNumThreads(threads)

    def opener(one):
        return engines.open_snapshot(settings.engine, task.output_rule, one,
                                     extra_rules=task.extra_output_rules, cache=cache,
                                     hasher=(lambda _path: caffemodel_sha256)
                                     if caffemodel_sha256 else None, warn=console.warn)

    loaded = _engine(model_key, opener, snapshot)
    with loaded.lock:  # an engine's forward pass is not shared between units
        engine = loaded.engine
        engine.concurrent_forwards = min(engine.concurrent_forwards, threads)
        # Read again for every unit: a cached engine's sidecar or mean file may have changed.
        engine.convention = engines.snapshot_convention(settings.engine, snapshot.caffemodel,
                                                        task.output_rule, engine.info)
        work = task.start_snapshot(snapshot.name, list(items))
        run = run_items(engine, work, items, jobs=min(settings.outputs.jobs, threads),
                        batch_size=settings.engine.batch)
    run.engine = {**loaded.description, CONVENTION_FACT: engine.convention.record()}
    return UnitReply(run, console.drain(), task.facts())
