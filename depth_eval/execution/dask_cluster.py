"""Running the units on a Dask cluster (``--dask ADDRESS``, or ``--dask KIND:ARGUMENT``: a
cluster made for the run, :mod:`depth_eval.execution.clusters`).

:class:`DaskExecutor` has the executor interface of :mod:`depth_eval.execution.local`: it cuts each
snapshot's work into chunks of images (about four per worker over the run, :func:`chunk_size`),
submits every chunk as a future at once, snapshot after snapshot (Dask runs them roughly in
that order, so a worker keeps one model loaded through a run of chunks of its snapshot), and
yields each chunk's results as it completes.  The workers run
:func:`depth_eval.execution.dask_worker.run_unit`; the results, the task's messages (printed here, once
each) and what the task learnt come back to this process, which alone writes the results
store, results.json and the rankings.  A chunk whose worker dies is run again by Dask; its
results are stored when its future completes, so once.  Pictures are written by the workers:
every folder must be at the same path on every worker (a shared filesystem), which
:meth:`DaskExecutor.start` checks.

A made cluster is waited for (every worker it asked for, or those there after
:func:`~depth_eval.execution.clusters.workers_timeout_s`), and closed with the run: its
workers shut down, its batch jobs cancelled.

dask is imported only here and in the clusters' makers, and this module only with ``--dask``.
"""

from __future__ import annotations

import math
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator

from depth_eval.console import one_line
from depth_eval.execution.clusters import WORKERS_TIMEOUT_ENV, workers_timeout_s
from depth_eval.execution.dask_worker import UnitReply, host_of, run_unit, warm_up
from depth_eval.errors import SnapshotError, UsageError
from depth_eval.execution.local import Unit
from depth_eval.inputs.hashing import FileHasher

# Chunks per worker over the run: enough that a worker that finishes early takes more and a
# lost worker costs little, few enough that each chunk is worth its model load.
CHUNKS_PER_WORKER = 4
# Seconds to wait for a scheduler to answer before the run gives up.
CONNECT_TIMEOUT_S = 30
# Seconds between two looks at the workers that have joined (and at a Ctrl-C meanwhile).
WORKERS_POLL_S = 0.2


class Stopped(Exception):
    """The run ended (:meth:`DaskExecutor.close`) while its cluster was being made."""


def _client_within(distributed, address: str, timeout_s: float):
    """A client of the scheduler at ``address``, or TimeoutError after ``timeout_s``:
    distributed's own timeout bounds the connection, not the handshake (a service that
    accepts and never answers would hold the run for ever)."""
    outcome: list = []

    def connect():
        try:
            outcome.append(distributed.Client(address, timeout=timeout_s))
        except BaseException as error:  # noqa: BLE001 - handed to the waiting thread
            outcome.append(error)

    thread = threading.Thread(target=connect, name="dask-connect", daemon=True)
    thread.start()
    thread.join(timeout_s + 1)
    if not outcome:
        raise TimeoutError(f"no Dask handshake from {address} in {timeout_s:g} s")
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def _why_not_up(error: Exception, made: bool) -> str:
    """One line for a scheduler that cannot be reached or a cluster that cannot be made."""
    if made:
        return f"cannot start the cluster ({one_line(error)})"
    if isinstance(error, OSError):  # nothing there, refused, timed out (distributed's OSErrors)
        return f"cannot reach the scheduler ({one_line(error)})"
    # Something answered, but not with Dask's protocol (a web server, another service): what
    # distributed makes of its bytes is a MemoryError, a ValueError...
    return (f"what answers there is not a Dask scheduler ({type(error).__name__} reading its "
            "reply); check the address and port")


def chunk_size(images: int, workers: int, batch: int) -> int:
    """Images per chunk for a run of ``images`` (snapshot, image) units in all: about
    :data:`CHUNKS_PER_WORKER` chunks per worker, a whole number of batches (each batch then
    holds the images it holds on one machine: the same numbers)."""
    size = max(1, math.ceil(images / (CHUNKS_PER_WORKER * max(1, workers))))
    return batch * math.ceil(size / batch)


def submission_order(per_snapshot: list[list], workers: int) -> list:
    """Every snapshot's chunks in the order to submit them, so that few workers load each
    snapshot.

    Position p goes to worker p mod W (a hint to Dask: :meth:`DaskExecutor.run_all`).
    Snapshots are taken in groups of at most W; in a group of g, each round of W positions
    gives each snapshot a block of about W / g consecutive positions, so each worker meets the
    same snapshot round after round (one load) instead of every worker loading every
    snapshot.  A chunk that runs elsewhere (stolen by an idle worker, or its worker lost)
    costs a load at most.
    """
    order: list = []
    workers = max(1, workers)
    for start in range(0, len(per_snapshot), workers):
        group = [list(chunks_of) for chunks_of in per_snapshot[start:start + workers]]
        blocks = [workers // len(group) + (index < workers % len(group))
                  for index in range(len(group))]
        while any(group):
            for queue, block in zip(group, blocks):
                order += queue[:block]
                del queue[:block]
    return order


def chunks(unit: Unit, size: int) -> list[Unit]:
    """The unit's items in consecutive chunks of ``size`` (one empty unit stays one)."""
    if not unit.items:
        return [unit]
    return [Unit(unit.snapshot, unit.items[start:start + size])
            for start in range(0, len(unit.items), size)]


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise UsageError("--dask needs dask's distributed scheduler, which is not installed: "
                         "pip install 'depth_eval[dask]'") from None
    return distributed


class DaskExecutor:
    """Runs chunks of units on a Dask cluster; see the module docstring.

    Parameters
    ----------
    settings : depth_eval.settings.RunSettings
    task : depth_eval.tasks.base.Task
        The run's task (its ``add_facts`` takes what the workers' tasks learnt).
    console : depth_eval.console.Console
    hasher : callable, optional
        The run's FileHasher (the results store's); one of its own otherwise.

    Attributes
    ----------
    client : distributed.Client
    cluster : distributed.deploy.Cluster or None
        The cluster made for ``--dask KIND:ARGUMENT``, closed with the client.
    """

    parallel = True

    def __init__(self, settings, task, console, hasher=None):
        # The workers need neither the gate (a baseline can be large) nor anything relative.
        self.settings = settings.without_gate()
        self.task, self.console = task, console
        self.hasher = hasher if hasher is not None else FileHasher()
        self.token = uuid.uuid4().hex
        self.cluster = self._client = self._pending = None
        self._stopping = threading.Event()
        self._said: set[tuple[str, str]] = set()

    @classmethod
    def start(cls, settings, task, console, hasher=None) -> "DaskExecutor":
        """Reach the scheduler, wait for a worker and check the workers (:func:`check_workers`)
        before returning; a cluster made for the run (``--dask KIND:ARGUMENT``) likewise, or,
        for a kind made meanwhile (``local:N``), on a thread while this process hashes and
        plans, joined when first needed."""
        executor = cls(settings, task, console, hasher)
        distributed = _import_distributed()
        made = settings.executor.cluster
        if made is not None and made[0].prepare is not None:
            made[0].prepare()
        if made is None or not made[0].meanwhile:
            executor._connect(distributed)
        else:
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="made-cluster")
            executor._pending = pool.submit(executor._connect, distributed)
            pool.shutdown(wait=False)
        return executor

    def _connect(self, distributed) -> None:
        text = self.settings.executor.dask
        made = self.settings.executor.cluster
        try:
            timeout_s = workers_timeout_s() if made is not None else None
        except ValueError as error:
            raise UsageError(f"--dask {text}: {error}") from None
        try:
            if made is not None:
                kind, argument = made
                cluster = kind.make(argument)
                self.cluster, wanted = cluster.cluster, cluster.workers
                self._client = distributed.Client(self.cluster)
            else:
                self._client = _client_within(distributed, text, CONNECT_TIMEOUT_S)
                wanted = 1
        except Exception as error:  # noqa: BLE001 - whatever stopped it, said in one line
            self._let_go()
            raise UsageError(f"--dask {text}: {_why_not_up(error, made is not None)}") from None
        except BaseException:
            self._let_go()
            raise
        try:
            self._wait_for_workers(wanted, timeout_s)
            check_workers(self._client, self.settings)
            # Each worker imports what a chunk needs while this process hashes and plans.
            distributed.fire_and_forget([
                self._client.submit(warm_up, self.settings.engine.name, workers=[worker],
                                    pure=False, key=f"depth_eval_warm_up-{index}-{self.token}")
                for index, worker in enumerate(self._client.scheduler_info()["workers"])])
        except BaseException:
            self._let_go()
            raise

    def _wait_for_workers(self, wanted: int, timeout_s: float | None) -> None:
        """Until ``wanted`` workers have joined; after ``timeout_s``, on with those there, or a
        UsageError when none is.  Stops (:class:`Stopped`) when :meth:`close` is called."""
        text = self.settings.executor.dask

        def present() -> int:
            return len(self._client.scheduler_info()["workers"])

        joined = present()
        if joined < wanted:
            what = "a worker" if wanted == 1 else f"{wanted - joined} of {wanted} workers"
            self.console.note(f"--dask {text}: waiting for {what} to join")
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while joined < wanted:
            if self._stopping.wait(WORKERS_POLL_S):
                raise Stopped()
            joined = present()
            if deadline is not None and time.monotonic() >= deadline and joined < wanted:
                if not joined:
                    raise UsageError(
                        f"--dask {text}: no worker joined in {timeout_s:g} s (a batch queue "
                        "that has not started the jobs says why: squeue, qstat); "
                        f"{WORKERS_TIMEOUT_ENV}=SECONDS waits longer")
                self.console.note(f"--dask {text}: {joined} of {wanted} workers joined in "
                                  f"{timeout_s:g} s; running on them (those joining later "
                                  "take chunks from them)")
                return

    @property
    def client(self):
        """The connected client (the made cluster's, once it is up)."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()  # what making it raised, raised here
        return self._client

    def close(self) -> None:
        """Let go of the scheduler and stop a cluster made for the run (its batch jobs
        cancelled), a cluster still being made included."""
        self._stopping.set()
        if self._pending is not None:
            try:
                self.client
            except BaseException:  # noqa: BLE001 - the run is ending for another reason
                pass
        self._let_go()

    def _let_go(self) -> None:
        try:
            if self._client is not None:
                if self.cluster is not None:
                    # The workers end now, not when they notice the scheduler has gone (an SSH
                    # worker lingers for seconds; a batch job would run on to its walltime).
                    try:
                        self._client.shutdown()
                    except Exception:  # noqa: BLE001 - closing the cluster ends them anyway
                        pass
                self._client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()
            self._client = self.cluster = None

    # -- the executor interface ------------------------------------------------------------

    def run_all(self, units: Iterable[Unit], on_item: Callable | None = None,
                on_result: Callable | None = None) -> Iterator[tuple[Unit, object]]:
        """Submit every unit's chunks, then yield ``(chunk, UnitRun or SnapshotError)`` as
        they complete (see :mod:`depth_eval.execution.local`).  Stopped early (Ctrl-C, an error that
        stops the run), the chunks not done are cancelled; those done are kept."""
        distributed = _import_distributed()
        futures: dict = {}
        try:
            units = list(units)  # every snapshot planned: the chunks' size is the run's
            check_out_dir(self.client, self.settings)
            info = self.client.scheduler_info()["workers"]
            hosts: dict[str, int] = {}
            for address in info:
                hosts[host_of(address)] = hosts.get(host_of(address), 0) + 1
            size = chunk_size(sum(len(unit.items) for unit in units), len(info),
                              self.settings.engine.batch)
            keys = {unit.snapshot.name: self._model_key(unit.snapshot) for unit in units}
            workers = sorted(info)
            order = submission_order([chunks(unit, size) for unit in units], len(workers))
            for position, chunk in enumerate(order):
                key = keys[chunk.snapshot.name]
                # A hint, not a rule: the chunk's worker by its place in the order; Dask
                # runs it elsewhere when that worker is gone, and idle workers steal.
                futures[self.client.submit(
                    run_unit, self.settings, self.task.name, self.token, chunk.snapshot,
                    chunk.items, key, key[0] if key else None, hosts, pure=False,
                    key=f"depth_eval_chunk-{position}-{self.token}",
                    workers=[workers[position % len(workers)]], allow_other_workers=True,
                    priority=-position)] = chunk  # in this order, after other clients' work
            for future in distributed.as_completed(list(futures)):
                chunk = futures.pop(future, None)
                if chunk is None:  # cancelled with its snapshot's other chunks
                    continue
                try:
                    reply: UnitReply = future.result()
                except SnapshotError as error:
                    yield from self._fail_snapshot(chunk, error, futures)
                    continue
                except distributed.KilledWorker:  # died on every worker Dask tried it on
                    yield from self._fail_snapshot(chunk, SnapshotError(
                        f"{chunk.snapshot.caffemodel}: the workers running it died (out of "
                        "memory?)"), futures)
                    continue
                self._say(reply.messages)
                self.task.add_facts(reply.facts)
                self._hand_over(chunk, reply, on_item, on_result)
                yield chunk, reply.run
        finally:
            if futures:
                try:
                    self.client.cancel(list(futures))
                except Exception:  # noqa: BLE001 - the scheduler is gone: nothing runs anyway
                    pass

    def _model_key(self, snapshot):
        """The model's identity in the workers' engine caches (None: a file the client cannot
        read; the worker that loads it says why)."""
        try:
            return (self.hasher(snapshot.caffemodel), str(snapshot.caffemodel),
                    self.hasher(snapshot.prototxt) if snapshot.prototxt else None,
                    str(snapshot.prototxt), self.settings.engine, self.task.name)
        except OSError:
            return None

    def _fail_snapshot(self, chunk: Unit, error: SnapshotError, futures: dict):
        """The chunk's snapshot cannot run: its other chunks are cancelled, all give the error."""
        name = chunk.snapshot.name
        others = [future for future, other in futures.items() if other.snapshot.name == name]
        if others:
            self.client.cancel(others)
        yield chunk, error
        for future in others:
            yield futures.pop(future), error

    def _hand_over(self, chunk: Unit, reply: UnitReply, on_item, on_result) -> None:
        """``on_result`` for every result and ``on_item`` for every item, in the chunk's order."""
        from depth_eval.tasks.base import SnapshotWork

        results = {result.stem: result for result in reply.run.results}
        for item in chunk.items:
            stem = SnapshotWork.input_path(item).stem
            if on_result is not None and stem in results:
                on_result(chunk, item, results[stem])
            if on_item is not None:
                on_item(chunk, stem)

    def _say(self, messages) -> None:
        """The workers' messages, each once in the run."""
        for kind, text in messages:
            if (kind, text) not in self._said:
                self._said.add((kind, text))
                getattr(self.console, kind)(text)


def check_workers(client, settings) -> None:
    """Every worker runs this version of depth_eval and sees every folder of the run at the
    same path; else a UsageError naming the worker and the folder."""
    from depth_eval import __version__

    def version():
        import depth_eval

        return depth_eval.__version__

    for worker, answer in client.run(version, on_error="return").items():
        if isinstance(answer, BaseException) or answer != __version__:
            what = (f"cannot import depth_eval ({one_line(answer)})"
                    if isinstance(answer, BaseException) else f"runs depth_eval {answer}")
            raise UsageError(f"--dask: worker {worker} {what}; install depth_eval "
                             f"{__version__} there")
    inputs = settings.inputs
    _check_folders(client, {"INPUT_DIR": inputs.input_dir, "GT_DIR": inputs.gt_dir,
                            "SNAPSHOTS_DIR": inputs.snapshots_dir,
                            "OUT_DIR's parent folder": settings.outputs.out_dir.parent})


def check_out_dir(client, settings) -> None:
    """OUT_DIR, once this process made it (scored tasks): seen by every worker, or a
    UsageError (a folder of the same path on a disk that is not shared)."""
    if settings.outputs.out_dir.is_dir():
        _check_folders(client, {"OUT_DIR": settings.outputs.out_dir})


def _check_folders(client, folders: dict) -> None:
    for label, path in folders.items():
        if path is None:
            continue
        for worker, seen in client.run(os.path.isdir, str(path)).items():
            if not seen:
                raise UsageError(f"{path}: worker {worker} cannot see {label} (every worker "
                                 "needs the run's folders at the same path: a shared "
                                 "filesystem)")
