"""Running units of work, (snapshot, images), on this machine: the executor.

The executor loads a snapshot's engine, streams the images through the task's ``prepare`` and
``finish`` on a small thread pool while the forward passes run on threads of their own, and
hands back the per-image results in the images' order.  It knows nothing of metrics or files:
those are the task's (:mod:`depth_eval.tasks`).

Every executor has the interface the run (:mod:`depth_eval.execution.run`) uses:
``run_all(units, on_item, on_result)`` yields ``(unit, UnitRun or SnapshotError)`` for the
units it was given or for parts of them (a snapshot's images in chunks: the parts' items
together are the unit's, each part's in order), in the order they complete; ``on_item(unit,
stem)`` and ``on_result(unit, item, result)`` are called on the calling thread before the part
that holds the item is yielded.  ``parallel`` says whether several units may be in flight (the
run then plans every unit before the first completes).  :class:`LocalExecutor` runs one unit
at a time, lazily, so that one model is in memory at a time;
:class:`depth_eval.execution.dask_cluster.DaskExecutor` runs chunks on a Dask cluster.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np

from depth_eval import timings
from depth_eval.errors import ImageError, SnapshotError, describe


@dataclass(frozen=True)
class Unit:
    """One piece of work: a snapshot and the images to run it on (in result order)."""

    snapshot: object   # discover.Snapshot
    items: tuple


@dataclass
class UnitRun:
    """What a unit gave: per-image results in order, the images skipped (name -> reason), the
    engine's description (results.json) and the seconds it took."""

    results: list = field(default_factory=list)
    skipped: dict = field(default_factory=dict)
    engine: dict = field(default_factory=dict)
    seconds: float = 0.0


class LocalExecutor:
    """Runs units here, one snapshot in memory at a time.

    Parameters
    ----------
    open_engine : callable
        ``open_engine(snapshot)`` -> a loaded engine; raises SnapshotError when it cannot.
    start_work : callable
        ``start_work(snapshot_name, items)`` -> the task's per-snapshot work (``prepare(item,
        input_hw)``, ``finish(prepared, maps)``, ``input_path(item)``).
    jobs : int
        Threads for reading, scoring and writing.
    batch_size : int
        Images per forward pass.
    """

    parallel = False   # one unit at a time: the next is taken once the last was handled

    def __init__(self, open_engine: Callable, start_work: Callable, jobs: int = 2,
                 batch_size: int = 1):
        self.open_engine, self.start_work = open_engine, start_work
        self.jobs, self.batch_size = jobs, batch_size

    def run_all(self, units: Iterable[Unit], on_item: Callable | None = None,
                on_result: Callable | None = None) -> Iterator[tuple[Unit, object]]:
        """Each unit in turn, taken from ``units`` only after the last one was yielded; see
        the module docstring.  A unit whose snapshot cannot run gives its SnapshotError."""
        for unit in units:
            try:
                run = self.run(unit, _bound(on_item, unit), _bound(on_result, unit))
            except SnapshotError as error:
                yield unit, error
                continue
            yield unit, run

    def close(self) -> None:
        """Nothing to let go of (a cluster executor closes its client here)."""

    def run(self, unit: Unit, on_item: Callable[[str], None] | None = None,
            on_result: Callable | None = None) -> UnitRun:
        """Load the unit's snapshot and run it over the unit's images (see :func:`run_items`)."""
        engine = self.open_engine(unit.snapshot)
        try:
            work = self.start_work(unit.snapshot.name, list(unit.items))
            run = run_items(engine, work, unit.items, jobs=self.jobs,
                            batch_size=self.batch_size, on_item=on_item, on_result=on_result)
            run.engine = engine.facts()
            return run
        finally:
            del engine  # before the next snapshot loads: one model in memory at a time


def run_items(engine, work, items: Iterable, *, jobs: int = 2, batch_size: int = 1,
              on_item: Callable[[str], None] | None = None,
              on_result: Callable | None = None) -> UnitRun:
    """One loaded engine over ``items`` with the task's per-snapshot ``work``.

    ``on_item(stem)`` is called for every item done, ``on_result(item, result)`` for every
    item that gave a result, both in the items' order on the calling thread, after the task's
    ``finish`` returned (its files are written).
    """
    started = time.perf_counter()
    first = [True]

    def forward(prepared: list) -> list[np.ndarray]:
        blobs = [p.blob for p in prepared]
        began = time.perf_counter()
        output = engine.forward(blobs[0] if len(blobs) == 1 else np.concatenate(blobs))
        if first[0]:  # allocates the network's buffers (DEPTH_EVAL_TIMINGS)
            first[0] = False
            timings.add("first forward", time.perf_counter() - began)
        return [_decoded(engine, output, i, work.input_path(one.item))
                for i, one in enumerate(prepared)]

    def prepare(item):  # the blob by the snapshot's input convention
        return work.prepare(item, engine.input_hw, engine.convention)

    outcomes = stream(list(items), prepare, forward,
                      work.finish, jobs, batch_size, engine.concurrent_forwards)
    run = UnitRun()
    for item, result in outcomes:
        path = work.input_path(item)
        if isinstance(result, Exception):
            run.skipped[path.name] = describe(result)
        else:
            run.results.append(result)
            if on_result is not None:
                on_result(item, result)
        if on_item is not None:
            on_item(path.stem)
    run.seconds = time.perf_counter() - started
    timings.add("image loop", run.seconds)
    return run


def _decoded(engine, output, index: int, path):
    """Image ``index``'s maps, or the ImageError (naming its file) refusing that image alone."""
    try:
        if isinstance(output, tuple):  # several outputs: each image gets a tuple of maps
            return engine.decode_outputs(output, index)
        return engine.decode(output[index:index + 1])
    except ImageError as error:
        return ImageError(f"{path}: {error}")


def stream(items: Iterable, prepare: Callable, forward: Callable, finish: Callable,
           jobs: int = 2, batch_size: int = 1,
           forward_workers: int = 1) -> Iterator[tuple[object, object]]:
    """Run ``finish(prepared, output)`` over items, the forward passes overlapped with the rest.

    ``prepare(item)`` and ``finish(prepared, output)`` run on a pool of ``jobs`` threads;
    ``forward(list of prepared)`` returns one output per prepared item and runs ``batch_size``
    items at a time (fewer at the end) on ``forward_workers`` threads of its own (more than one
    only for an engine whose forward pass may run concurrently).  The network never waits for
    file I/O, and the items in flight are bounded, so memory does not grow with their number.
    Yields ``(item, result)`` in the items' order; an ImageError or OSError raised for one item
    is yielded as its result.  Any other error (an OutputError: the disk is full) stops the
    stream: it is raised, and the items not started are dropped.
    """
    lookahead = max(2, 2 * jobs, 2 * batch_size * forward_workers)

    def failed(error: Exception) -> Future:
        future: Future = Future()
        future.set_exception(error)
        return future

    def outcome(future: Future):
        try:
            return future.result()
        except (ImageError, OSError) as error:
            return error

    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="depth_eval")
    nets = ThreadPoolExecutor(max_workers=forward_workers, thread_name_prefix="forward")
    try:
        loading: deque = deque()
        finishing: deque = deque()
        batch: list = []
        item_iter = iter(items)

        def refill():
            while len(loading) < lookahead:
                item = next(item_iter, _END)
                if item is _END:
                    return
                loading.append((item, pool.submit(prepare, item)))

        def forward_then_finish(prepared: list, results: list[Future]) -> None:
            try:
                outputs = forward(prepared)
            except BaseException as error:  # the network failed: every item of the batch fails
                for result in results:
                    result.set_exception(error)
                return
            for one, output, result in zip(prepared, outputs, results):
                if isinstance(output, ImageError):  # this image's output was refused
                    result.set_exception(output)
                    continue
                pool.submit(finish, one, output).add_done_callback(
                    lambda done, result=result: _copy_outcome(done, result))

        def run_batch():
            if batch:
                results = [Future() for _ in batch]
                nets.submit(forward_then_finish, [prepared for _, prepared in batch], results)
                finishing.extend((item, result) for (item, _), result in zip(batch, results))
                batch.clear()

        refill()
        while loading:
            item, future = loading.popleft()
            refill()
            prepared = outcome(future)
            if isinstance(prepared, Exception):
                run_batch()  # keep the order: the batch so far goes first
                finishing.append((item, failed(prepared)))
            else:
                batch.append((item, prepared))
                if len(batch) >= batch_size or not loading:
                    run_batch()
            while len(finishing) > lookahead or (finishing and finishing[0][1].done()):
                item, done = finishing.popleft()
                yield item, outcome(done)
        run_batch()
        while finishing:
            item, done = finishing.popleft()
            yield item, outcome(done)
    finally:
        # Stopped early (Ctrl-C, SIGTERM, an output that cannot be written): the work queued
        # is dropped, only what is running finishes; after a full run nothing is queued.
        nets.shutdown(wait=True, cancel_futures=True)
        pool.shutdown(wait=True, cancel_futures=True)


def _bound(callback: Callable | None, unit: Unit) -> Callable | None:
    return None if callback is None else (lambda *args: callback(unit, *args))


def _copy_outcome(source: Future, target: Future) -> None:
    if source.cancelled():  # the stream stopped (Ctrl-C, a full disk): nobody waits for it
        target.cancel()
        return
    error = source.exception()
    if error is not None:
        target.set_exception(error)
    else:
        target.set_result(source.result())



_END = object()
