"""The results store in a run: which (snapshot, image) units to reuse, and storing the others
as they finish.

A run of a scored task with a store (:func:`depth_eval.execution.run.run`) goes:

1. :meth:`StoredRun.open`: the store opened, the run recorded (``begin_run``), every item's
   input and ground truth hashed once (:class:`~depth_eval.inputs.hashing.FileHasher`; the store
   spares later runs reading unchanged files again).
2. Per snapshot, :meth:`StoredRun.plan`: the snapshot's two files hashed and each item's unit
   key made (:func:`~depth_eval.store.database.unit_key` over the task, the four hashes and
   :meth:`~depth_eval.settings.RunSettings.numbers_options`, and the snapshot's effective input
   convention and output meaning where it is not the thesis': a sidecar's, a mean file's
   contents).  A unit is reused when the store has it and
   every file the task writes for it is on disk as written for that key
   (``keys_with_files``); the others go to the executor.  With nothing to compute the network
   is not loaded: :meth:`StoredRun.describe` reads the prototxt alone for results.json.
3. :meth:`StoredRun.saver`: each computed unit is committed as the executor hands it over, on
   the run's thread, in the items' order, after the task's ``finish`` wrote its files.  Why
   there and not on the worker threads: the store and the executor stay unaware of each
   other, and a unit waits at most for the few items ahead of it in the executor's window
   (``executor.stream``'s lookahead), which is all a SIGKILL can lose besides the items in
   flight anyway.
4. :meth:`StoredRun.complete`: the snapshot's results rebuilt from the store's values in the
   items' order (so its summary is bit for bit that of a fresh run), reused units recorded.
5. :meth:`StoredRun.close`: the run marked finished with its exit status.

Images that fail and snapshots that cannot be loaded are not units: nothing is stored for them.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field

from depth_eval import engines
from depth_eval.caffe import proto as caffe_proto
from depth_eval.engines.base import describe_outputs, network_facts
from depth_eval.errors import SnapshotError
from depth_eval.execution.local import UnitRun
from depth_eval.inputs.conventions import (CONVENTION_FACT, ConventionOptions, sidecar_path,
                                           thesis_convention)
from depth_eval.inputs.hashing import FileHasher
from depth_eval.scoring.keys import MetricKey, as_text
from depth_eval.report.results import options_document
from depth_eval.store.database import ResultsStore, SnapshotRef, unit_key
from depth_eval.tasks.base import ImageResult, SnapshotWork

__all__ = ["SnapshotPlan", "StoredRun"]


@dataclass
class SnapshotPlan:
    """One snapshot's units: their keys, those reused, and the items left to compute."""

    snapshot: object                  # discover.Snapshot
    ref: SnapshotRef | None           # None: its files cannot be hashed (the executor says why)
    items: tuple                      # the snapshot's items, in the run's order
    keys: dict = field(default_factory=dict)       # item name -> unit key
    reused: dict = field(default_factory=dict)     # item name -> stored metrics (text keys)
    compute: tuple = ()                            # items to run, in order
    computed: dict = field(default_factory=dict)   # item name -> ImageResult, as they finish
    replace: set = field(default_factory=set)      # keys of stored units not trusted


class StoredRun:
    """One run's use of a results store; see the module docstring.

    Parameters
    ----------
    store : ResultsStore
    run_id : int
        The run's row (``begin_run``).
    task : depth_eval.tasks.base.Task
    items : list
        Every item the run found, in order (a unit's position is its item's index).
    recompute : bool
        ``--recompute``: reuse nothing, replace what is stored.
    hasher : FileHasher
    """

    def __init__(self, store: ResultsStore, run_id: int, task, items: list, recompute: bool,
                 hasher: FileHasher):
        self.store, self.run_id, self.task = store, run_id, task
        self.recompute, self.hasher = recompute, hasher
        self.warn = task.console.warn if task.console is not None else (lambda message: None)
        self.options = task.settings.numbers_options()
        self.positions = {SnapshotWork.input_name(item): index for index, item in enumerate(items)}
        self.inputs: dict[str, tuple[str, str | None]] = {}
        for item in items:
            try:
                image, truth = task.unit_inputs(item)
                self.inputs[SnapshotWork.input_name(item)] = (hasher(image),
                                                None if truth is None else hasher(truth))
            except OSError:  # unreadable: not a unit; the executor reports the image
                pass

    @classmethod
    def open(cls, settings, task, items: list, memo=None) -> "StoredRun":
        """Open ``settings.outputs.store`` and record the run's start; ``memo``: file hashes
        remembered beyond the store (:class:`depth_eval.store.hash_memo.HashMemo`)."""
        store = ResultsStore.open(settings.outputs.store)
        try:
            run_id = store.begin_run(options_document(settings))
            return cls(store, run_id, task, items, settings.outputs.recompute,
                       FileHasher(store, memo=memo))
        except BaseException:
            store.close()
            raise

    def close(self, exit_status: int) -> None:
        """Mark the run finished (130: interrupted) and close the store."""
        try:
            self.store.finish_run(self.run_id, exit_status)
        finally:
            self.store.close()

    # -- per snapshot ------------------------------------------------------------------------

    def snapshot_ref(self, snapshot) -> SnapshotRef | None:
        if snapshot.prototxt is None:
            return None
        try:
            return SnapshotRef(snapshot.name, self.hasher(snapshot.caffemodel),
                               self.hasher(snapshot.prototxt))
        except OSError:
            return None

    def snapshot_options(self, snapshot) -> dict | None:
        """The options of the snapshot's unit keys: the run's, and its convention where that
        is not the run's thesis default (None: it cannot be resolved; the executor says why).

        The convention is the one the engine will use: fitted to the network's input (which
        data layer of a train_val, a mean image's crop); without a sidecar or convention
        options nothing is read.
        """
        settings = self.task.settings.engine
        if (settings.convention == ConventionOptions()
                and not os.path.lexists(sidecar_path(snapshot.caffemodel))):
            return self.options  # the thesis' (or --log's): the keys of earlier runs
        try:
            info, _ = self._network_info(snapshot.prototxt, settings)
            convention = engines.snapshot_convention(settings, snapshot.caffemodel,
                                                     self.task.output_rule, info)
        except SnapshotError:
            return None
        if convention.same_numbers(thesis_convention(settings.log_encoded)):
            return self.options  # the keys of runs before conventions existed stay valid
        return {**self.options, CONVENTION_FACT: convention.key_record()}

    def _network_info(self, prototxt, engine_settings):
        """The deploy definition's input and outputs (:func:`describe_outputs`)."""
        if prototxt is None:
            raise SnapshotError("no prototxt")
        try:
            definition = caffe_proto.read_prototxt(prototxt)
        except OSError as error:
            raise SnapshotError(f"{prototxt}: {error.strerror or error}") from None
        return describe_outputs(definition, engine_settings.output_blob, str(prototxt),
                                self.task.output_rule, self.task.extra_output_rules)

    def plan(self, snapshot, items) -> SnapshotPlan:
        """The snapshot's unit keys and which units are reused (see the module docstring)."""
        plan = SnapshotPlan(snapshot, self.snapshot_ref(snapshot), tuple(items))
        by_name = {SnapshotWork.input_name(item): item for item in items}
        options = self.snapshot_options(snapshot) if plan.ref is not None else None
        if options is not None:
            for name, item in by_name.items():
                hashes = self.inputs.get(name)
                if hashes is not None:
                    plan.keys[name] = unit_key(self.task.settings.task, plan.ref.caffemodel_sha256,
                                               plan.ref.prototxt_sha256, *hashes, options)
        stored, damaged = ({}, {}) if self.recompute else self.store.checked(plan.keys.values())
        expected_names = {str(key) for key in self.task.image_keys()}
        plan.replace = set(damaged)
        for key, metrics in list(stored.items()):
            problem = incomplete(metrics, expected_names)
            if problem is not None or not all(map(math.isfinite, metrics.values())):
                # A NaN is computed again without a word here: the run's own warning about
                # the undefined metric is then said again, as in the first run.
                plan.replace.add(key)
                del stored[key]
                if problem is not None:
                    damaged[key] = problem
        for name, key in plan.keys.items():
            if key in damaged:
                self.warn(f"{self.store.path}: stored unit of {snapshot.name} on {name} "
                          f"(key {key}) {damaged.pop(key)}; it is computed again")
        candidates = {name: key for name, key in plan.keys.items()
                      if key in stored and self.task.reusable(by_name[name])}
        expected: dict[str, list] = {}
        for name, key in candidates.items():  # identical pairs share a key: all their files
            expected.setdefault(key, []).extend(self.task.unit_files(snapshot.name,
                                                                     by_name[name]))
        on_disk = self.store.keys_with_files(expected) if expected else set()
        plan.reused = {name: stored[key] for name, key in candidates.items() if key in on_disk}
        plan.compute = tuple(item for item in items if SnapshotWork.input_name(item) not in plan.reused)
        return plan

    def saver(self, plan: SnapshotPlan):
        """``on_result(item, result)`` for the executor: commit each unit as it is handed over."""
        last = [time.perf_counter()]

        def save(item, result: ImageResult) -> None:
            name = SnapshotWork.input_name(item)
            plan.computed[name] = result
            key = plan.keys.get(name)
            if key is None:
                return
            now = time.perf_counter()
            seconds, last[0] = now - last[0], now  # the run's time per unit, not one pass's
            self.store.put(key, plan.ref, result.stem, as_text(result.metrics),
                           task=self.task.settings.task, run_id=self.run_id,
                           position=self.positions[name], seconds=seconds,
                           replace=self.recompute or key in plan.replace,
                           files=self.task.unit_files(plan.snapshot.name, item))

        return save

    def describe(self, plan: SnapshotPlan, engine_settings) -> dict:
        """results.json's engine facts of a snapshot that is not loaded (everything reused)."""
        info, extra_info = self._network_info(plan.snapshot.prototxt, engine_settings)
        convention = engines.snapshot_convention(engine_settings, plan.snapshot.caffemodel,
                                                 self.task.output_rule, info)
        return {**network_facts(engines.engine_class(engine_settings.name).engine, info,
                                extra_info, plan.ref.prototxt_sha256, plan.ref.caffemodel_sha256),
                CONVENTION_FACT: convention.record()}

    def complete(self, plan: SnapshotPlan, run: UnitRun) -> UnitRun:
        """The snapshot's results in the items' order, every stored unit's values read back
        from the store (reused and computed alike); the reused units recorded for this run."""
        if plan.reused:
            self.store.record_reused(self.run_id, plan.ref, [
                (self.positions[name], SnapshotWork.input_path(item).stem, plan.keys[name])
                for item in plan.items if (name := SnapshotWork.input_name(item)) in plan.reused])
        done = [name for name in map(SnapshotWork.input_name, plan.items)
                if name in plan.reused or name in plan.computed]
        values = self.store.get(plan.keys[name] for name in done if name in plan.keys)
        order = self.task.image_keys()
        results = []
        for item in plan.items:
            name = SnapshotWork.input_name(item)
            computed = plan.computed.get(name)
            if name not in plan.reused and computed is None:
                continue  # failed: not a unit
            stored = values.get(plan.keys.get(name))
            if computed is None:
                self.task.unit_reused(item)
            stem = SnapshotWork.input_path(item).stem if computed is None else computed.stem
            metrics = computed.metrics if stored is None else ordered(stored, order)
            results.append(ImageResult(stem, metrics, computed.kept if computed else None))
        return UnitRun(results, run.skipped, run.engine, run.seconds)


def incomplete(metrics: dict[str, float], expected: set[str]) -> str | None:
    """Why a stored unit cannot stand for a fresh one, or None: it must hold exactly the
    metrics the task reports per image now (its keys equal ``Task.image_keys()``)."""
    missing = sorted(expected - set(metrics))
    if missing:
        return f"lacks {', '.join(missing)}"
    extra = sorted(set(metrics) - expected)
    if extra:
        return f"holds {', '.join(extra)}, which this run does not compute"
    return None


def ordered(stored: dict[str, float], order: list[MetricKey]) -> dict[MetricKey, float]:
    """Stored metrics (text keys, sorted) in the task's report order, as a fresh run has them."""
    keys = [key for key in order if str(key) in stored]
    keys += [MetricKey.parse(text) for text in stored if text not in {str(k) for k in keys}]
    return {key: stored[str(key)] for key in keys}
