"""One run over all snapshots: the work behind ``evaluate``, ``predict`` and every task.

Finds the snapshots and the task's images, hands each snapshot's work to the executor as one
unit (this machine's :class:`~depth_eval.execution.local.LocalExecutor`, or with ``--dask`` a
cluster's, which runs it in chunks), assembles each snapshot's results in the items' order,
reports what was skipped and why, keeps results.json / results.csv up to date after every
snapshot, then decides the CI gate's verdict and hands the finished run to every reporter
(:mod:`depth_eval.report.reporters`).  Returns the exit status.

A scored task with a results store (``--store``) computes only the units the store lacks and
builds its results from the store (:mod:`depth_eval.execution.stored_units`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from functools import partial

from depth_eval.inputs import discover, limits
from depth_eval import engines, tasks
from depth_eval.console import one_line
from depth_eval.inputs.conventions import CONVENTION_FACT
from depth_eval.errors import (EXIT_GATE, EXIT_NOTHING, EXIT_OK, EXIT_PARTIAL, SnapshotError, UsageError, exit_status_of)
from depth_eval.execution.local import LocalExecutor, Unit, UnitRun
from depth_eval.inputs.hashing import FileHasher
from depth_eval.scoring import upsample
from depth_eval.store.hash_memo import HashMemo
from depth_eval.store.user_cache import default_cache_dir
from depth_eval.progress import Progress
from depth_eval.tasks.base import SnapshotWork
from depth_eval.report.reporters import FinishedRun, run_reporters
from depth_eval.report.results import ResultsFiles, Tally, results_document
from depth_eval.report.verdict import Verdict, decide


def find_snapshots(inputs, reserved=frozenset()) -> list[discover.Snapshot]:
    snapshots = discover.find_snapshots(inputs.snapshots_dir, inputs.prototxt, reserved)
    if not snapshots:
        raise UsageError(f"{inputs.snapshots_dir}: no *.caffemodel snapshot in SNAPSHOTS_DIR")
    return snapshots


def snapshot_entry(snapshot: discover.Snapshot) -> dict:
    return {"status": "skipped", "caffemodel": {"path": str(snapshot.caffemodel)},
            "prototxt": {"path": str(snapshot.prototxt)} if snapshot.prototxt else None}


def _describe(entry: dict, engine: dict) -> None:
    """Record the loaded engine's facts in a snapshot's results.json entry."""
    entry["prototxt"]["sha256"] = engine["prototxt_sha256"]
    entry["caffemodel"]["sha256"] = engine["caffemodel_sha256"]
    entry.update({k: v for k, v in engine.items() if not k.endswith("_sha256")})


@dataclass
class SnapshotJob:
    """One snapshot on its way through the run: its plan and the parts of its work done."""

    snapshot: object                 # discover.Snapshot
    entry: dict                      # its results.json entry
    todo: tuple                      # the items not skipped before it was planned
    plan: object = None              # reuse.SnapshotPlan (with a results store)
    work: tuple = ()                 # the items to compute, in order
    parts: list = field(default_factory=list)   # (first item's index in work, UnitRun)
    left: int = 0                    # items of work not yet handed back
    answered: bool = False           # the executor answered (or nothing was asked of it)
    error: SnapshotError | None = None
    progress: Progress | None = None
    save: object = None              # the store's on_result for this snapshot
    positions: dict | None = None    # item name -> index in work (made when needed)

    @property
    def done(self) -> bool:
        return self.answered and self.left <= 0

    def add(self, unit: Unit, outcome) -> None:
        """A part of the work came back: its UnitRun, or the SnapshotError that stopped it."""
        self.answered = True
        self.left -= len(unit.items)
        if isinstance(outcome, SnapshotError):
            self.error = self.error or outcome
        else:
            if self.positions is None:
                self.positions = {SnapshotWork.input_name(item): i
                                  for i, item in enumerate(self.work)}
            first = self.positions[SnapshotWork.input_name(unit.items[0])] if unit.items else 0
            self.parts.append((first, outcome))

    def assembled(self) -> UnitRun:
        """The parts as one UnitRun, in the items' order."""
        run = UnitRun()
        for _, part in sorted(self.parts, key=lambda pair: pair[0]):
            run.results += part.results
            run.skipped.update(part.skipped)
            run.engine = run.engine or part.engine
            run.seconds += part.seconds
        return run


def run_snapshots(task, executor, snapshots, items, console, tally: Tally, on_snapshot=None,
                  stored=None):
    """Every snapshot over the items; an image that fails once is skipped afterwards.

    Snapshots are recorded (``tally``, ``on_snapshot``) in their order as each completes.
    ``stored``: the run's :class:`depth_eval.execution.stored_units.StoredRun`; only the units it lacks run.
    A parallel executor gets every snapshot's work at once and one progress bar over it all;
    the local one gets one snapshot at a time, planned after the last one was recorded.
    """
    mode = "off" if task.settings.outputs.quiet else "auto"
    waiting: deque[SnapshotJob] = deque()   # planned, in order, not yet recorded
    jobs: dict[str, SnapshotJob] = {}
    bars: list[Progress] = []

    def record_done() -> None:
        while waiting and waiting[0].done:
            job = waiting.popleft()
            if job.progress is not None:
                job.progress.close()
            _record(task, job, stored, tally, console)
            if on_snapshot is not None:
                on_snapshot()

    def units():
        for snapshot in snapshots:
            record_done()
            job = _plan(task, snapshot, items, tally, stored, console)
            waiting.append(job)
            jobs[snapshot.name] = job
            if job.answered:  # everything reused: the network is not loaded
                continue
            if not executor.parallel:
                job.progress = Progress(snapshot.name, len(job.work), mode)
                bars.append(job.progress)
            yield Unit(snapshot, job.work)
        if executor.parallel:
            bars.append(Progress(f"{len(snapshots)} snapshots",
                                 sum(len(job.work) for job in jobs.values()), mode))

    def on_item(unit, stem):
        job = jobs[unit.snapshot.name]
        bar = job.progress or (bars[-1] if executor.parallel and bars else None)
        if bar is not None:
            bar.update(stem)

    def on_result(unit, item, result):
        job = jobs[unit.snapshot.name]
        if job.save is not None:
            job.save(item, result)

    try:
        for unit, outcome in executor.run_all(units(), on_item, on_result):
            jobs[unit.snapshot.name].add(unit, outcome)
            record_done()
        record_done()
    finally:
        for bar in bars:
            bar.close()


def _plan(task, snapshot, items, tally: Tally, stored, console) -> SnapshotJob:
    """A snapshot's job: its items not skipped so far, and what the store has of them."""
    todo = tuple(item for item in items if SnapshotWork.input_name(item) not in tally.bad_images)
    job = SnapshotJob(snapshot, snapshot_entry(snapshot), todo)
    job.plan = stored.plan(snapshot, job.todo) if stored is not None else None
    job.work = job.plan.compute if job.plan is not None else job.todo
    job.left = len(job.work)
    if job.plan is not None:
        job.save = stored.saver(job.plan)
        if job.plan.reused:
            console.note(f"{snapshot.name}: {len(job.plan.reused)} of {len(job.todo)} images "
                         "reused from the results store")
        if job.plan.reused and not job.work:
            try:
                job.add(Unit(snapshot, ()),
                        UnitRun(engine=stored.describe(job.plan, task.settings.engine)))
            except SnapshotError as error:
                job.add(Unit(snapshot, ()), error)
    return job


def _record(task, job: SnapshotJob, stored, tally: Tally, console) -> None:
    """A completed snapshot into the tally: errors reported, results in the items' order."""
    snapshot, entry = job.snapshot, job.entry
    tally.entries[snapshot.name] = entry  # results.json lists the snapshots recorded so far
    if job.error is not None:
        console.error(f"snapshot {snapshot.name} skipped: {job.error}")
        entry["error"] = str(job.error)
        return
    run = job.assembled()
    if job.plan is not None:
        run = stored.complete(job.plan, run)
    _describe(entry, run.engine)
    convention = entry.get(CONVENTION_FACT) or {}
    if convention.get("from"):  # a sidecar or a train_val: say which files were applied
        console.note(f"{snapshot.name}: input convention and output meaning from "
                     f"{', '.join(convention['from'])}")
    # Planned before earlier snapshots were recorded (a parallel executor): an image that
    # failed there is left out here too, so every snapshot's means cover the same images.
    earlier = {SnapshotWork.input_name(item): SnapshotWork.input_path(item).stem
               for item in job.todo if SnapshotWork.input_name(item) in tally.bad_images}
    if earlier:
        stems = set(earlier.values())
        run.results = [result for result in run.results if result.stem not in stems]
    for name, reason in run.skipped.items():
        if name not in tally.bad_images:
            console.error(f"image skipped: {reason}")
            tally.bad_images[name] = reason
    if task.scored:
        reused = 0 if job.plan is None else len(set(job.plan.reused) - set(earlier))
        tally.record(snapshot.name, entry, run, task.summarise(run.results), reused=reused)
    elif run.results:
        entry["status"] = "evaluated"
        console.result(one_line(f"{snapshot.name}: {len(run.results)} depth maps in "
                                f"{task.settings.outputs.abs_dir / snapshot.name}"))


def run(settings, console) -> int:
    """Run the settings' task over every snapshot; the exit status."""
    task = tasks.get(settings.task)(settings, console)
    limits.set_max_image_pixels(settings.inputs.max_image_pixels)
    cache_folder = user_cache_folder(settings)
    upsample.keep_matrices_in(cache_folder)  # before the task's warm-up looks for them
    snapshots = find_snapshots(settings.inputs, settings.outputs.reserved_names())
    items = task.find_items(console)
    settings = task.settings = settings.sized_to(len(items))
    executor = stored = None
    status = EXIT_NOTHING
    try:
        if settings.executor.dask is not None:  # the cluster answers before anything is made
            from depth_eval.execution.dask_cluster import DaskExecutor

            executor = DaskExecutor.start(settings, task, console)
        # OUT_DIR first: a folder that cannot be made is named as such, before the store in it.
        files = ResultsFiles(settings.outputs.out_dir) if task.scored else None
        # Hashes remembered in the user cache: a fresh OUT_DIR does not read unchanged files.
        memo = None if cache_folder is None else HashMemo.in_cache(cache_folder, console.warn)
        if task.scored and settings.outputs.store is not None:
            from depth_eval.execution.stored_units import StoredRun

            stored = StoredRun.open(settings, task, items, memo)
        hasher = stored.hasher if stored is not None else (
            FileHasher(memo=memo) if engines.engine_class(settings.engine.name).uses_cache
            else None)  # OpenCV hashes while it reads the model: no hasher is faster there
        if executor is None:
            executor = local_executor(settings, task, console, hasher)
        elif hasher is not None:
            executor.hasher = hasher  # the store's: the snapshots are hashed once
        status = _run(settings, console, task, executor, snapshots, items, stored, files)
        return status
    except BaseException as error:  # Ctrl-C included: the store records 130
        status = exit_status_of(error)
        raise
    finally:
        upsample.keep_matrices_in(None)  # this run's folder only
        try:
            if executor is not None:
                executor.close()
        finally:
            if stored is not None:
                stored.close(status)


def user_cache_folder(settings):
    """``--cache-dir``, else the user cache folder; None without a home folder."""
    try:
        return settings.engine.cache_dir or default_cache_dir()
    except RuntimeError:
        return None


def local_executor(settings, task, console, hasher=None) -> LocalExecutor:
    """This machine's executor, the engines loaded with the user cache where they use one."""
    cache = engines.user_cache(settings.engine, warn=console.warn)
    return LocalExecutor(
        partial(engines.open_snapshot, settings.engine, task.output_rule,
                extra_rules=task.extra_output_rules, cache=cache, hasher=hasher,
                warn=console.warn),
        task.start_snapshot, settings.outputs.jobs, settings.engine.batch)


def _run(settings, console, task, executor, snapshots, items, stored, files) -> int:
    tally = Tally(confidence=settings.gate.confidence)
    if not task.scored:
        run_snapshots(task, executor, snapshots, items, console, tally)
        if not any(e["status"] == "evaluated" for e in tally.entries.values()):
            console.error("nothing could be predicted")
            return EXIT_NOTHING
        everything = all(e["status"] == "evaluated" for e in tally.entries.values())
        return EXIT_OK if everything and not tally.bad_images and not task.left_out \
            else EXIT_PARTIAL

    def save() -> dict:
        document = results_document(settings, task, tally, len(items))
        files.write(document)
        return document

    run_snapshots(task, executor, snapshots, items, console, tally, on_snapshot=save,
                  stored=stored)
    document = results_document(settings, task, tally, len(items))
    # The verdict first: every reporter shows the one decided here.
    verdict = decide(settings, document, tally.means) if tally.means else Verdict()
    finished = FinishedRun(settings, task, items, tally, document, verdict, files)
    problems = run_reporters(finished, console, printing=False)
    for problem in problems:
        console.error(problem)
    if not tally.means:
        console.error("nothing could be evaluated")
        return EXIT_NOTHING
    run_reporters(finished, console, printing=True)
    if verdict.failed:
        return EXIT_GATE
    everything = all(e["status"] == "evaluated" for e in tally.entries.values())
    return EXIT_OK if everything and not tally.bad_images and not problems else EXIT_PARTIAL
