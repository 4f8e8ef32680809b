"""One validated settings object per run, built once from the parsed command line.

Every rule that involves the command line alone or its folders is checked here, before any
work (:func:`RunSettings.from_args`); nothing below the command line sees an argparse
Namespace.  The tree: inputs (folders, ground-truth encoding), engine (which, where, ``--log``,
output blob, batch), scoring (metrics, alignments, bounds, crop), outputs (OUT_DIR and what
goes into it), gate (baseline, rules, ``--best``).
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from depth_eval import choices, engines, tasks
from depth_eval.report import gate, html, junit, per_image
from depth_eval.inputs import limits
from depth_eval.errors import SnapshotError, UsageError
from depth_eval.execution import clusters
from depth_eval.caffe.conventions import expand
from depth_eval.inputs.conventions import (MEAN_FILE, OPTION_NAMES, OUTPUT_KIND, TRANSFORM_FROM,
                                           ConventionOptions, ConventionValueError,
                                           options_from_values)
from depth_eval.report.results import RESULTS_CSV, RESULTS_JSON
from depth_eval.writing import MANIFEST_NAME
from depth_eval.inputs.ground_truth import GroundTruthSettings
from depth_eval.scoring.keys import MetricKey, ranked
from depth_eval.scoring.score import ScoringSettings
from depth_eval.scoring.uncertainty import Confidence

# The results store's file in OUT_DIR when --store names none.
STORE_NAME = "results.sqlite"
# The --figures folder in OUT_DIR (tasks/depth.py, DepthTask.after_run).
FIGURES_DIR = "figures"


def abs_dir_of(out_dir: Path) -> Path:
    """``OUT_DIR_abs`` beside OUT_DIR (a trailing slash on OUT_DIR does not move it inside)."""
    resolved = Path(os.path.abspath(out_dir))
    return resolved.with_name(resolved.name + "_abs")


@dataclass(frozen=True)
class InputSettings:
    """The folders read: colour inputs, ground truths (None for predict), snapshots."""

    input_dir: Path
    snapshots_dir: Path
    gt_dir: Path | None = None
    prototxt: Path | None = None   # --prototxt: the definition of snapshots without their own
    ground_truth: GroundTruthSettings = GroundTruthSettings()
    max_image_pixels: int = limits.DEFAULT_MAX_IMAGE_PIXELS  # larger images are refused


@dataclass(frozen=True)
class EngineSettings:
    """Which engine runs the snapshots, and how their output is read."""

    name: str = engines.DEFAULT_ENGINE
    device: str = choices.DEFAULT_DEVICE
    log_encoded: bool = False          # --log: decoded by the engine (Engine.decode)
    output_blob: str | None = None
    batch: int = choices.DEFAULT_BATCH
    cache_dir: Path | None = None      # --cache-dir; None: the user cache (depth_eval.store.user_cache)
    # --channel-swap ... --output-kind: a snapshot's sidecar overrides them (caffe.conventions)
    convention: ConventionOptions = ConventionOptions()

    def convention_options(self) -> ConventionOptions:
        """The command line's convention options, ``--log`` as ``--output-kind log``."""
        if self.log_encoded and self.convention.output_kind is None:
            return replace(self.convention, output_kind="log")
        return self.convention


@dataclass(frozen=True)
class ExecutorSettings:
    """Where the units of work run: here (``dask`` None) or on a Dask cluster (``--dask``)."""

    dask: str | None = None            # a scheduler's address, or KIND:ARGUMENT (clusters.py)

    @property
    def cluster(self) -> tuple[clusters.ClusterKind, object] | None:
        """(kind, its argument's value) of the cluster ``--dask KIND:ARGUMENT`` makes for the
        run; None for a scheduler's address (or no ``--dask``)."""
        found = clusters.cluster_kind(self.dask) if self.dask is not None else None
        return None if found is None else (found[0], found[0].parse(found[1]))


# A scheduler's address: [SCHEME://]HOST:PORT, the schemes distributed can connect with.
_SCHEDULER_ADDRESS = re.compile(
    r"^(?:(tcp|tls|ws|wss|ucx)://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


@dataclass(frozen=True)
class OutputSettings:
    """OUT_DIR and what is written there and printed."""

    out_dir: Path
    jobs: int = 1
    png_strategy: str = choices.DEFAULT_PNG_STRATEGY
    save_raw: bool = False
    per_image: Path | None = None
    figures: bool = False
    figures_max: int = choices.DEFAULT_FIGURES_MAX
    colormap: str | None = None
    table_format: str = choices.DEFAULT_TABLE_FORMAT
    quiet: bool = False
    store: Path | None = None          # the results store (None: none, everything computed)
    recompute: bool = False            # --recompute: compute every unit, replace stored ones
    report: Path | None = None         # --report; None: OUT_DIR/report.html
    junit: Path | None = None          # --junit: the gate as JUnit XML

    @property
    def report_path(self) -> Path:
        """Where the browser report goes."""
        return self.report if self.report is not None else self.out_dir / html.REPORT_HTML

    @property
    def abs_dir(self) -> Path:
        return abs_dir_of(self.out_dir)

    def reserved_names(self, with_per_image: bool = True) -> frozenset[str]:
        """The tool's own names in OUT_DIR, which no snapshot's folder may take (and, but for
        itself, no --per-image file)."""
        names = {RESULTS_JSON, RESULTS_CSV, MANIFEST_NAME, STORE_NAME,
                 f"{STORE_NAME}-wal", f"{STORE_NAME}-shm", html.REPORT_HTML}
        for path in (self.report, self.junit):
            if path is not None and per_image.in_out_dir(path, self.out_dir):
                names.add(path.name)
        if self.figures:
            names.add(FIGURES_DIR)
        if (with_per_image and self.per_image is not None
                and per_image.in_out_dir(self.per_image, self.out_dir)):
            names.add(self.per_image.name)
        return frozenset(names)


@dataclass(frozen=True)
class GateSettings:
    """The CI gate: a baseline results.json, the --fail-if rules, --best, and how sure a
    change must be (--confidence, --significant)."""

    baseline_path: Path | None = None
    baseline: dict | None = None
    rules: tuple = ()
    best: MetricKey | None = None
    confidence: Confidence = Confidence()
    significant: bool = False          # a rule fails only on a change its interval is sure of


@dataclass(frozen=True)
class RunSettings:
    """Everything one run needs; see the module docstring."""

    task: str
    inputs: InputSettings
    outputs: OutputSettings
    engine: EngineSettings = EngineSettings()
    scoring: ScoringSettings = ScoringSettings()
    gate: GateSettings = field(default_factory=GateSettings)
    executor: ExecutorSettings = ExecutorSettings()

    @classmethod
    def from_args(cls, args, task: str) -> "RunSettings":
        """Build and check the settings of an ``evaluate`` / ``predict`` / task command."""
        task_class = tasks.get(task)
        executor = ExecutorSettings(getattr(args, "dask", None))
        _check_executor(executor)
        # A cluster's workers have other working folders: they get absolute paths.
        where = _absolute if executor.dask is not None else Path
        inputs = InputSettings(
            input_dir=where(args.input_dir), snapshots_dir=where(args.snapshots_dir),
            gt_dir=where(args.gt_dir) if getattr(args, "gt_dir", None) is not None else None,
            prototxt=where(args.prototxt) if args.prototxt is not None else None,
            ground_truth=GroundTruthSettings(
                getattr(args, "gt_encoding", GroundTruthSettings.encoding),
                getattr(args, "depth_scale", GroundTruthSettings.depth_scale)),
            max_image_pixels=getattr(args, "max_image_pixels", InputSettings.max_image_pixels))
        out_dir = where(args.out_dir)
        cache_dir = getattr(args, "cache_dir", None)
        engine = EngineSettings(name=args.engine, device=args.device,
                                log_encoded=getattr(args, "log", False),
                                output_blob=args.output_blob, batch=args.batch,
                                cache_dir=where(cache_dir) if cache_dir is not None else None,
                                convention=_convention_options(args, where))
        scoring = ScoringSettings(
            metric_sets=getattr(args, "metrics", ScoringSettings.metric_sets),
            alignments=getattr(args, "align", ScoringSettings.alignments),
            min_depth=getattr(args, "min_depth", ScoringSettings.min_depth),
            max_depth=getattr(args, "max_depth", ScoringSettings.max_depth),
            crop=getattr(args, "crop", ScoringSettings.crop))
        outputs = OutputSettings(
            out_dir=out_dir, jobs=args.jobs or os.cpu_count() or 1,
            png_strategy=args.png_strategy, save_raw=getattr(args, "save_raw", False),
            per_image=getattr(args, "per_image", None), figures=getattr(args, "figures", False),
            figures_max=getattr(args, "figures_max", OutputSettings.figures_max),
            colormap=getattr(args, "colormap", None),
            table_format=getattr(args, "format", OutputSettings.table_format), quiet=args.quiet,
            store=_store_path(args, out_dir, task_class.scored),
            recompute=getattr(args, "recompute", False),
            report=getattr(args, "report", None), junit=getattr(args, "junit", None))
        _check_inputs(inputs)
        _check_engine(engine)
        _check_scoring(scoring, inputs.ground_truth)
        _check_outputs(outputs, args.jobs)
        settings = cls(task, inputs, outputs, engine, scoring, executor=executor)
        gate_settings = _gate(args, task_class(settings).metric_keys())
        return replace(settings, gate=gate_settings)

    def sized_to(self, images: int) -> "RunSettings":
        """These settings for a run over ``images`` inputs: ``--batch`` at most that many (a
        batch is never fuller than the images there are, so the memory check and the unit
        keys see the batch that runs)."""
        if self.engine.batch <= max(1, images):
            return self
        return replace(self, engine=replace(self.engine, batch=max(1, images)))

    def numbers_options(self) -> dict:
        """Every option that can change a number a unit records (the results store's unit keys).

        Left out, because they change no number: folders and file names (units are keyed by file
        contents), ``--jobs`` (threads; tests/test_store_run.py shows the values are bit-identical),
        ``--png-strategy`` (same pixels), ``--quiet``, pictures and reports.  ``--batch`` is in:
        onnxruntime's batched convolutions differ from single ones in the last bits.  A
        snapshot's input convention and output meaning (its sidecar's, a mean file's contents)
        are added per snapshot by the results store (``StoredRun.snapshot_options``).
        """
        engine, scoring, ground_truth = self.engine, self.scoring, self.inputs.ground_truth
        return {"log": engine.log_encoded, "output_blob": engine.output_blob,
                "engine": engine.name, "device": engine.device, "batch": engine.batch,
                "metrics": list(scoring.metric_sets), "align": list(scoring.alignments),
                "min_depth": float(scoring.min_depth), "max_depth": float(scoring.max_depth),
                "crop": scoring.crop, "gt_encoding": ground_truth.encoding,
                "depth_scale": None if ground_truth.depth_scale is None
                else float(ground_truth.depth_scale)}

    def without_gate(self) -> "RunSettings":
        """The settings a worker gets: the gate is the client's alone."""
        return replace(self, gate=GateSettings())


def _absolute(path) -> Path:
    """``path`` made absolute without resolving links (the name the user's folders have)."""
    return Path(os.path.abspath(path))


def _store_path(args, out_dir: Path, scored: bool) -> Path | None:
    """--store, else OUT_DIR/results.sqlite; None for a task without numbers (predict)."""
    if not scored:
        return None
    store = getattr(args, "store", None)
    return Path(store) if store is not None else out_dir / STORE_NAME


def _check_inputs(inputs: InputSettings) -> None:
    folders = {"INPUT_DIR": inputs.input_dir, "GT_DIR": inputs.gt_dir,
               "SNAPSHOTS_DIR": inputs.snapshots_dir}
    for label, path in folders.items():
        if path is None:
            continue
        if not path.is_dir():
            what = limits.describe(path)
            raise UsageError(f"{path}: {label} does not exist" if what == "missing"
                             else f"{path}: {label} is {what}, not a folder")
    if inputs.prototxt is not None:
        what = limits.describe(inputs.prototxt)
        if what != "a regular file":
            raise UsageError(f"{inputs.prototxt}: --prototxt file does not exist" if what == "missing"
                             else f"{inputs.prototxt}: --prototxt is {what}, not a file")
    if inputs.max_image_pixels < 1:
        raise UsageError(f"--max-image-pixels must be at least 1, got {inputs.max_image_pixels}")


def _convention_options(args, where) -> ConventionOptions:
    """The command line's convention options, checked (its files read once, so that a bad
    one stops the run before any work); ``--log`` with another ``--output-kind`` refused."""
    values = {name: getattr(args, name.replace("-", "_")) for name in OPTION_NAMES
              if getattr(args, name.replace("-", "_"), None) is not None}
    if getattr(args, "log", False) and values.get(OUTPUT_KIND, "log") != "log":
        raise UsageError(f"--log is --{OUTPUT_KIND} log; it contradicts --{OUTPUT_KIND} "
                         f"{values[OUTPUT_KIND]}")
    for name in (MEAN_FILE, TRANSFORM_FROM):
        if name in values:
            what = limits.describe(Path(values[name]))
            if what != "a regular file":
                raise UsageError(f"{values[name]}: --{name} " + (
                    "file does not exist" if what == "missing" else f"is {what}, not a file"))
            values[name] = str(where(values[name]))
    try:
        options = options_from_values(values)
        expand(options, checking=True)
    except ConventionValueError as error:
        raise UsageError(f"--{error.key}: {error.reason}") from None
    except SnapshotError as error:
        raise UsageError(str(error)) from None
    return options


def _check_executor(executor: ExecutorSettings) -> None:
    """--dask: the address's or the cluster's form (nothing is contacted or started before the
    run starts), and the packages it needs installed."""
    text = executor.dask
    if text is None:
        return
    found = clusters.cluster_kind(text)
    needs: tuple[str, ...] = ("distributed",)
    if found is not None:
        kind, argument = found
        try:
            kind.parse(argument)
        except ValueError as error:
            raise UsageError(f"--dask {text}: {kind.name}:{kind.argument} needs "
                             f"{kind.argument} to be {error}") from None
        needs = kind.needs
    else:
        match = _SCHEDULER_ADDRESS.match(text)
        if match is None or not 0 < int(match[3]) < 65536:
            raise UsageError(f"--dask {text}: expected a scheduler's address, "
                             "[tcp://]HOST:PORT (e.g. tcp://10.0.0.5:8786), or one of "
                             f"{clusters.usage()}")
    for module in needs:
        if importlib.util.find_spec(module) is None:
            raise UsageError(f"--dask {text} needs {module}, which is not installed: "
                             "pip install 'depth_eval[dask]'")


def _check_engine(engine: EngineSettings) -> None:
    if engine.batch < 1:
        raise UsageError(f"--batch must be at least 1, got {engine.batch}")
    devices = engines.devices(engine.name)
    if engine.device not in devices:
        needs = [name for name in engines.ENGINES if engine.device in engines.devices(name)]
        raise UsageError(f"--device {engine.device} needs --engine {' or '.join(needs)}")


def _check_scoring(scoring: ScoringSettings, ground_truth: GroundTruthSettings) -> None:
    low, high = scoring.min_depth, scoring.max_depth
    if not (math.isfinite(low) and math.isfinite(high) and 0 < low < high):
        raise UsageError(f"--min-depth {low} and --max-depth {high}: need 0 < min < max")
    scale = ground_truth.depth_scale
    if scale is not None and not (math.isfinite(scale) and scale > 0):
        raise UsageError(f"--depth-scale must be positive, got {scale}")


def _check_outputs(outputs: OutputSettings, jobs: int | None) -> None:
    if jobs is not None and jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    if outputs.figures_max < 0:
        raise UsageError(f"--figures-max must be 0 or more, got {outputs.figures_max}")
    for path in (outputs.out_dir, outputs.abs_dir):
        if path.exists() and not path.is_dir():
            raise UsageError(f"{path}: exists and is not a folder (OUT_DIR and OUT_DIR_abs "
                             "must be folders)")
    _check_store(outputs)
    per_image.check(outputs.per_image, outputs.out_dir, outputs.reserved_names(False))
    own = outputs.reserved_names(False) - {p.name for p in (outputs.report, outputs.junit) if p}
    if outputs.report is not None:
        html.REPORT_FILE.check(outputs.report, outputs.out_dir, own)
    junit.JUNIT_FILE.check(outputs.junit, outputs.out_dir, own)
    named = [p for p in (outputs.per_image, outputs.report, outputs.junit) if p is not None]
    if len({os.path.abspath(p) for p in named}) < len(named):
        raise UsageError("--per-image, --report and --junit must name different files")
    if outputs.colormap:
        from depth_eval.pictures import check_colormap  # matplotlib: only with --colormap

        try:
            check_colormap(outputs.colormap)
        except ValueError as error:
            raise UsageError(f"--colormap: {error}") from None


def _check_store(outputs: OutputSettings) -> None:
    """Refuse, before any work, a --store that is not a results store this tool made, or that
    is (or would share a -wal with) another file the run writes."""
    store = outputs.store
    if store is None:
        return
    if store.is_dir():
        raise UsageError(f"{store}: --store is a folder; give the store's file "
                         f"(e.g. {store / STORE_NAME})")
    from depth_eval.report.results import RESULTS_CSV, RESULTS_JSON
    from depth_eval.store import store_file
    from depth_eval.store.database import ResultsStore
    from depth_eval.writing import MANIFEST_NAME

    written = {os.path.realpath(outputs.out_dir / name): f"OUT_DIR's {name}"
               for name in (RESULTS_JSON, RESULTS_CSV, MANIFEST_NAME)}
    if outputs.per_image is not None:
        written[os.path.realpath(outputs.per_image)] = "the --per-image file"
    for path in (store, *store_file.companions(store)):
        if os.path.realpath(path) in written:
            raise UsageError(f"--store {store}: {path} is {written[os.path.realpath(path)]}, "
                             "which the run writes; give the store a file of its own")
    # OUT_DIR is made by the run: its default store needs no folder yet.
    if not store.parent.exists() and os.path.realpath(store.parent) == os.path.realpath(
            outputs.out_dir):
        return
    if store_file.check_store_path(store):
        ResultsStore.open(store, readonly=True).close()  # a store, of a schema this reads


def _gate(args, keys: list[MetricKey]) -> GateSettings:
    """The baseline and --fail-if rules, checked before any work is done."""
    fail_if, baseline_path = getattr(args, "fail_if", []), getattr(args, "baseline", None)
    best = getattr(args, "best", None)
    try:
        confidence = Confidence(level=getattr(args, "confidence", Confidence.level),
                                method=getattr(args, "interval_method", Confidence.method))
    except ValueError as error:
        raise UsageError(f"--confidence: {error}") from None
    significant = getattr(args, "significant", False)
    if significant and not fail_if:
        raise UsageError("--significant qualifies the --fail-if rules: give at least one")
    directions = {str(key): lower for key, lower in ranked(keys).items()}
    if fail_if and baseline_path is None:
        raise UsageError("--fail-if needs --baseline RESULTS_JSON")
    best_key = None
    if best:
        if best not in directions:
            raise UsageError(f"--best {best!r}: not a metric of this run "
                             f"({', '.join(directions)})")
        best_key = MetricKey.parse(best)
    if baseline_path is None:
        return GateSettings(best=best_key, confidence=confidence)
    try:
        baseline = gate.load_results(baseline_path)
        rules = tuple(gate.parse_rule(text, directions) for text in fail_if)
        gate.check_rules(rules, directions, baseline, baseline_path)
    except ValueError as error:
        raise UsageError(str(error)) from None
    return GateSettings(baseline_path, baseline, rules, best_key, confidence, significant)
