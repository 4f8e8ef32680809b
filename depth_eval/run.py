"""One run over all snapshots: the work behind ``evaluate``, ``predict`` and every task.

Finds the snapshots and the task's images, hands each snapshot to the executor as one unit,
reports what was skipped and why, keeps results.json / results.csv up to date after every
snapshot, then prints the rankings and applies the CI gate.  Returns the exit status.

A scored task with a results store (``--store``) computes only the units the store lacks and
builds its results from the store (:mod:`depth_eval.reuse`).
"""

from __future__ import annotations

from functools import partial

from . import discover, engines, guards, per_image, tasks
from .console import one_line
from .errors import (EXIT_GATE, EXIT_NOTHING, EXIT_OK, EXIT_PARTIAL, SnapshotError, UsageError,
                     exit_status_of)
from .executor import LocalExecutor, Unit, UnitRun
from .progress import Progress
from .tasks.base import SnapshotWork
from .results import ResultsFiles, Tally, results_document


def find_snapshots(inputs, reserved=frozenset()) -> list[discover.Snapshot]:
    snapshots = discover.find_snapshots(inputs.snapshots_dir, inputs.prototxt, reserved)
    if not snapshots:
        raise UsageError(f"{inputs.snapshots_dir}: no *.caffemodel snapshot in SNAPSHOTS_DIR")
    return snapshots


def open_engine(engine_settings, rule, snapshot: discover.Snapshot, extra_rules=(), cache=None,
                hasher=None, warn=None):
    """Load one snapshot into the chosen engine; raises SnapshotError when it cannot.

    ``cache``: the user cache (engines that use one); ``hasher``: the run's FileHasher, whose
    caffemodel hash the engine then need not compute again; ``warn`` takes a one-line warning
    (a network with large activations).
    """
    if snapshot.problem is not None:
        raise SnapshotError(f"{snapshot.caffemodel}: {snapshot.problem}; rename the file")
    if snapshot.prototxt is None:
        raise SnapshotError(f"{snapshot.caffemodel}: no {snapshot.name}.prototxt beside it and "
                            "no --prototxt given; snapshot skipped")
    try:
        known = hasher(snapshot.caffemodel) if hasher is not None else None
    except OSError as error:  # the engine would say the same when reading it
        raise SnapshotError(f"{snapshot.caffemodel}: cannot read "
                            f"({error.strerror or error})") from None
    try:
        return engines.load_engine(engine_settings, snapshot.prototxt, snapshot.caffemodel, rule,
                                   extra_rules, cache=cache, caffemodel_sha256=known, warn=warn)
    except OSError as error:
        raise SnapshotError(f"{error.filename or snapshot.caffemodel}: "
                            f"{error.strerror or error}") from None


def snapshot_entry(snapshot: discover.Snapshot) -> dict:
    return {"status": "skipped", "caffemodel": {"path": str(snapshot.caffemodel)},
            "prototxt": {"path": str(snapshot.prototxt)} if snapshot.prototxt else None}


def _describe(entry: dict, engine: dict) -> None:
    """Record the loaded engine's facts in a snapshot's results.json entry."""
    entry["prototxt"]["sha256"] = engine["prototxt_sha256"]
    entry["caffemodel"]["sha256"] = engine["caffemodel_sha256"]
    entry.update({k: v for k, v in engine.items() if not k.endswith("_sha256")})


def run_snapshots(task, executor, snapshots, items, console, tally: Tally, on_snapshot=None,
                  stored=None):
    """Each snapshot in turn over the items; an image that fails once is skipped afterwards.

    ``stored``: the run's :class:`depth_eval.reuse.StoredRun`; only the units it lacks run.
    """
    quiet = task.settings.outputs.quiet
    for snapshot in snapshots:
        entry = tally.entries[snapshot.name] = snapshot_entry(snapshot)
        todo = tuple(item for item in items
                     if executor_input_name(item) not in tally.bad_images)
        plan = stored.plan(snapshot, todo) if stored is not None else None
        work = plan.compute if plan is not None else todo
        if plan is not None and plan.reused:
            console.note(f"{snapshot.name}: {len(plan.reused)} of {len(todo)} images reused "
                         "from the results store")
        progress = Progress(snapshot.name, len(work), "off" if quiet else "auto")
        try:
            if plan is not None and plan.reused and not work:  # the network is not loaded
                run = UnitRun(engine=stored.describe(plan, task.settings.engine))
            else:
                run = executor.run(Unit(snapshot, work), progress.update,
                                   on_result=stored.saver(plan) if plan is not None else None)
        except SnapshotError as error:
            console.error(f"snapshot {snapshot.name} skipped: {error}")
            entry["error"] = str(error)
            continue
        finally:
            progress.close()
        if plan is not None:
            run = stored.complete(plan, run)
        _describe(entry, run.engine)
        for name, reason in run.skipped.items():
            if name not in tally.bad_images:
                console.error(f"image skipped: {reason}")
        tally.bad_images.update(run.skipped)
        if task.scored:
            tally.record(snapshot.name, entry, run, task.summarise(run.results),
                         reused=len(plan.reused) if plan is not None else 0)
        elif run.results:
            entry["status"] = "evaluated"
            console.result(one_line(f"{snapshot.name}: {len(run.results)} depth maps in "
                                    f"{task.settings.outputs.abs_dir / snapshot.name}"))
        if on_snapshot is not None:
            on_snapshot()


def executor_input_name(item) -> str:
    return SnapshotWork.input_path(item).name


def run(settings, console) -> int:
    """Run the settings' task over every snapshot; the exit status."""
    task = tasks.get(settings.task)(settings, console)
    guards.set_max_image_pixels(settings.inputs.max_image_pixels)
    snapshots = find_snapshots(settings.inputs, settings.outputs.reserved_names())
    items = task.find_items(console)
    cache = None
    if engines.engine_class(settings.engine.name).uses_cache:
        from .cache import BlobCache

        cache = BlobCache(settings.engine.cache_dir, warn=console.warn)
    # OUT_DIR first: a folder that cannot be made is named as such, before the store in it.
    files = ResultsFiles(settings.outputs.out_dir) if task.scored else None
    stored = None
    if task.scored and settings.outputs.store is not None:
        from .reuse import StoredRun

        stored = StoredRun.open(settings, task, items)
    executor = LocalExecutor(
        partial(open_engine, settings.engine, task.output_rule,
                extra_rules=task.extra_output_rules, cache=cache,
                hasher=stored.hasher if stored is not None else None, warn=console.warn),
        task.start_snapshot, settings.outputs.jobs, settings.engine.batch)
    status = EXIT_NOTHING
    try:
        status = _run(settings, console, task, executor, snapshots, items, stored, files)
        return status
    except BaseException as error:  # Ctrl-C included: the store records 130
        status = exit_status_of(error)
        raise
    finally:
        if stored is not None:
            stored.close(status)


def _run(settings, console, task, executor, snapshots, items, stored, files) -> int:
    tally = Tally()
    if not task.scored:
        run_snapshots(task, executor, snapshots, items, console, tally)
        if not any(e["status"] == "evaluated" for e in tally.entries.values()):
            console.error("nothing could be predicted")
            return EXIT_NOTHING
        everything = all(e["status"] == "evaluated" for e in tally.entries.values())
        return EXIT_OK if everything and not tally.bad_images else EXIT_PARTIAL

    def save() -> dict:
        document = results_document(settings, task, tally, len(items))
        files.write(document)
        return document

    run_snapshots(task, executor, snapshots, items, console, tally, on_snapshot=save,
                  stored=stored)
    document = save()
    problems = list(files.problems)
    if settings.outputs.per_image is not None:
        from .report import per_image_csv

        problems += per_image.write(settings.outputs.per_image, settings.outputs.out_dir,
                                    per_image_csv(tally.entries))
    problems += task.after_run(items, tally.kept, tally.means, console)
    for problem in problems:
        console.error(problem)
    if not tally.means:
        console.error("nothing could be evaluated")
        return EXIT_NOTHING
    from .summary import print_results

    if print_results(settings, tally, document, console):
        return EXIT_GATE
    everything = all(e["status"] == "evaluated" for e in tally.entries.values())
    return EXIT_OK if everything and not tally.bad_images and not problems else EXIT_PARTIAL
