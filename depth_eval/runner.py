"""One evaluation (or prediction) run over all snapshots: the work behind the command line.

Loads each snapshot in turn (one model in memory at a time), evaluates it on the image pairs,
reports what was skipped and why, writes results.json / results.csv (and the optional figures
and per-image table), applies the CI gate, and returns the exit status.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np
import scipy

from . import __version__, discover, gate, gt_encoding, outputs, report, standard_metrics
from . import io as io_module
from .errors import CaffeFormatError
from .net import OpenCVNetwork, SnapshotError
from .pipeline import (EvaluationOptions, GroundTruthOptions, ScoringOptions, evaluate_snapshot,
                       predict_snapshot)
from .progress import Progress

EXIT_OK, EXIT_PARTIAL, EXIT_NOTHING, EXIT_GATE = 0, 1, 2, 3
# Translated ONNX models, keyed by the snapshot's hashes, kept beside the results for reruns.
ONNX_CACHE_DIR = ".depth_eval-cache"


class UsageError(Exception):
    """A problem with the command line or its folders: nothing can be evaluated."""


def abs_dir_of(out_dir: Path) -> Path:
    """``OUT_DIR_abs`` beside OUT_DIR (a trailing slash on OUT_DIR does not move it inside)."""
    resolved = Path(os.path.abspath(out_dir))
    return resolved.with_name(resolved.name + "_abs")


def library_versions() -> dict[str, str]:
    return {"depth_eval": __version__, "python": platform.python_version(),
            "opencv": cv2.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "scikit-image": metadata.version("scikit-image")}


class Console:
    """Where messages go: results on stdout, warnings and errors on stderr (one line each)."""

    def __init__(self, quiet: bool):
        self.quiet = quiet

    def warn(self, message: str) -> None:
        if not self.quiet:
            print(f"warning: {message}", file=sys.stderr)

    def error(self, message: str) -> None:
        print(f"error: {message}", file=sys.stderr)

    def note(self, message: str) -> None:
        if not self.quiet:
            print(f"note: {message}", file=sys.stderr)


def check_folders(args, inputs: dict[str, Path]) -> None:
    for label, path in {**inputs, "SNAPSHOTS_DIR": args.snapshots_dir}.items():
        if not path.exists():
            raise UsageError(f"{path}: {label} does not exist")
        if not path.is_dir():
            raise UsageError(f"{path}: {label} is not a folder")
    for path in (args.out_dir, abs_dir_of(args.out_dir)):
        if path.exists() and not path.is_dir():
            raise UsageError(f"{path}: exists and is not a folder (OUT_DIR and OUT_DIR_abs "
                             "must be folders)")
    if args.prototxt is not None and not args.prototxt.is_file():
        raise UsageError(f"{args.prototxt}: --prototxt file does not exist")
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {args.jobs}")
    if args.batch < 1:
        raise UsageError(f"--batch must be at least 1, got {args.batch}")
    if args.device != "cpu" and args.engine != "onnxruntime":
        raise UsageError(f"--device {args.device} needs --engine onnxruntime")


def find_snapshots(args) -> list[discover.Snapshot]:
    snapshots = discover.find_snapshots(args.snapshots_dir, args.prototxt)
    if not snapshots:
        raise UsageError(f"{args.snapshots_dir}: no *.caffemodel snapshot in SNAPSHOTS_DIR")
    return snapshots


def open_network(snapshot: discover.Snapshot, args):
    """Load one snapshot into the chosen engine; raises SnapshotError (and kin) when it cannot."""
    if snapshot.prototxt is None:
        raise SnapshotError(f"{snapshot.caffemodel}: no {snapshot.name}.prototxt beside it and "
                            "no --prototxt given; snapshot skipped")
    if args.engine == "onnxruntime":
        from .engine_onnx import EngineUnavailableError, OnnxRuntimeNetwork

        try:
            # On the CPU, one thread per forward pass and one pass per core (see stream()).
            return OnnxRuntimeNetwork(snapshot.prototxt, snapshot.caffemodel, args.output_blob,
                                      threads=1 if args.device == "cpu" else None,
                                      device=args.device, require_depth_output=True,
                                      cache_dir=Path(args.out_dir) / ONNX_CACHE_DIR)
        except EngineUnavailableError as error:
            raise UsageError(str(error)) from None
        except (SnapshotError, CaffeFormatError):
            raise
        except ValueError as error:  # a layer or weights the translation cannot take
            raise SnapshotError(f"{snapshot.caffemodel}: {error}") from None
    return OpenCVNetwork(snapshot.prototxt, snapshot.caffemodel, args.output_blob)


def snapshot_entry(snapshot: discover.Snapshot) -> dict:
    return {"status": "skipped", "caffemodel": {"path": str(snapshot.caffemodel)},
            "prototxt": {"path": str(snapshot.prototxt)} if snapshot.prototxt else None}


def loaded_networks(snapshots, args, console: Console, entries: dict):
    """Yield (snapshot, entry, network) for each snapshot that loads; report the others."""
    for snapshot in snapshots:
        entry = entries[snapshot.name] = snapshot_entry(snapshot)
        try:
            network = open_network(snapshot, args)
        except (SnapshotError, CaffeFormatError, OSError) as error:
            message = str(error) if not isinstance(error, OSError) else \
                f"{error.filename or snapshot.caffemodel}: {error.strerror or error}"
            console.error(f"snapshot {snapshot.name} skipped: {message}")
            entry["error"] = message
            continue
        entry["prototxt"]["sha256"] = network.prototxt_sha256
        entry["caffemodel"]["sha256"] = network.caffemodel_sha256
        entry.update(engine=network.engine, output_blob=network.info.output_blob,
                     input_name=network.info.input_name, input_size=list(network.input_hw))
        yield snapshot, entry, network
        del network  # before the next snapshot loads: one model in memory at a time


def each_snapshot_run(args, console: Console, snapshots, entries: dict, bad_images: dict,
                      items, work):
    """Yield (snapshot, entry, run) for each snapshot that loads and runs.

    ``work(snapshot, network, items(), on_image)`` runs one snapshot with a progress display;
    a snapshot whose network fails is reported and recorded in its entry, and each image that
    fails is reported once (``bad_images``).
    """
    for snapshot, entry, network in loaded_networks(snapshots, args, console, entries):
        todo = items()
        progress = Progress(snapshot.name, len(todo), "off" if args.quiet else "auto")
        try:
            run = work(snapshot, network, todo, progress.update)
        except SnapshotError as error:
            console.error(f"snapshot {snapshot.name} skipped: {error}")
            entry["error"] = str(error)
            continue
        finally:
            progress.close()
            del network
        report_skipped_images(console, run.skipped, bad_images)
        yield snapshot, entry, run


def report_skipped_images(console: Console, skipped: dict, bad_images: dict) -> None:
    """One error line per image the first time it fails; later snapshots skip it silently."""
    for name, reason in skipped.items():
        if name not in bad_images:
            console.error(f"image skipped: {reason}")
    bad_images.update(skipped)


def _output_folder(path: Path) -> outputs.OutputFolder:
    try:
        return outputs.OutputFolder(path)
    except (NotADirectoryError, FileExistsError) as error:
        raise SnapshotError(f"{path}: exists and is not a folder") from error


def evaluation_options(args) -> EvaluationOptions:
    if args.min_depth <= 0 or args.max_depth <= args.min_depth:
        raise UsageError(f"--min-depth {args.min_depth} and --max-depth {args.max_depth}: need "
                         "0 < min < max")
    if args.depth_scale is not None and not args.depth_scale > 0:
        raise UsageError(f"--depth-scale must be positive, got {args.depth_scale}")
    if args.colormap:
        from .figures import check_colormap

        try:
            check_colormap(args.colormap)
        except ValueError as error:
            raise UsageError(f"--colormap: {error}") from None
    return EvaluationOptions(
        log_encoded=args.log, png_strategy=args.png_strategy,
        scoring=ScoringOptions(args.metrics, args.align, args.min_depth, args.max_depth, args.crop),
        ground_truth=GroundTruthOptions(args.gt_encoding, args.depth_scale),
        save_raw=args.save_raw, colormap=args.colormap, batch_size=args.batch)


def gate_setup(args, options: EvaluationOptions):
    """The baseline and --fail-if rules, checked before any work is done."""
    if args.fail_if and args.baseline is None:
        raise UsageError("--fail-if needs --baseline RESULTS_JSON")
    if args.best:
        known = report.metric_directions(_all_metric_keys(options.scoring))
        if args.best not in known:
            raise UsageError(f"--best {args.best!r}: not a metric of this run "
                             f"({', '.join(known)})")
    if args.baseline is None:
        return None, []
    try:
        baseline = gate.load_results(args.baseline)
        directions = report.metric_directions(_all_metric_keys(options.scoring))
        rules = [gate.parse_rule(text, directions) for text in args.fail_if]
    except ValueError as error:
        raise UsageError(str(error)) from None
    return baseline, rules


def _all_metric_keys(scoring: ScoringOptions) -> list[str]:
    """Every metric key a run with these options reports (for rule directions)."""
    sets = {"thesis": [m.title for m in report.THESIS_METRICS],
            "standard": list(standard_metrics.STANDARD_METRIC_TITLES)}
    keys = []
    for align in scoring.alignments:
        prefix = "" if align == "none" else f"{align}/"
        keys += [prefix + title for name in scoring.metric_sets for title in sets[name]]
    return keys


def figure_stems(pairs, count: int) -> list[str]:
    """``count`` image stems spread evenly over the pairs (first and last included)."""
    if count <= 0 or not pairs:
        return []
    picks = np.unique(np.linspace(0, len(pairs) - 1, min(count, len(pairs))).round().astype(int))
    return [pairs[i].stem for i in picks]


@dataclasses.dataclass
class Tally:
    """What a run over the snapshots found: results.json's entries and what the printout needs."""

    entries: dict = dataclasses.field(default_factory=dict)
    means: dict = dataclasses.field(default_factory=dict)       # evaluated snapshots only
    images: dict = dataclasses.field(default_factory=dict)      # images evaluated per snapshot
    bad_images: dict = dataclasses.field(default_factory=dict)  # input file -> reason
    encodings: set = dataclasses.field(default_factory=set)     # ground-truth encodings read
    kept: dict = dataclasses.field(default_factory=dict)        # stem -> snapshot -> prediction
    started: float = dataclasses.field(default_factory=time.time)


def find_pairs(args, console: Console) -> tuple[discover.PairSearch, list[str]]:
    """The image pairs, after one warning listing the files left out; none is a usage error."""
    search = discover.find_pairs(args.input_dir, args.gt_dir)
    left_out = ([f"{n} (no ground truth in {args.gt_dir})" for n in search.without_ground_truth]
                + [f"{n} (not an image named *_colors)" for n in search.not_inputs]
                + [f"{n} (another file has the same stem)" for n in search.duplicates])
    if left_out:
        console.warn(f"{len(left_out)} file(s) in INPUT_DIR/GT_DIR not evaluated: "
                     + "; ".join(left_out))
    if not search.pairs:
        raise UsageError(f"{args.input_dir}: no <stem>_colors image with a <stem>_depth ground "
                         f"truth in {args.gt_dir}")
    return search, left_out


def evaluate_snapshots(args, console: Console, snapshots, pairs, options: EvaluationOptions,
                       jobs: int) -> Tally:
    """Each snapshot in turn over the pairs; an image that fails once is skipped afterwards."""
    tally = Tally(kept={stem: {} for stem in options.keep_predictions or ()})
    out_dir, abs_dir = Path(args.out_dir), abs_dir_of(args.out_dir)

    def report_encoding(name: str, encoding: str) -> None:
        if encoding not in tally.encodings:
            tally.encodings.add(encoding)
            if args.gt_encoding == "auto":
                console.note(f"ground truth {name}: read as {gt_encoding.describe(encoding)}; "
                             "--gt-encoding to choose")

    def evaluate(snapshot, network, todo, on_image):
        return evaluate_snapshot(
            network.forward, network.input_hw, todo,
            _output_folder(out_dir / snapshot.name), _output_folder(abs_dir / snapshot.name),
            dataclasses.replace(options, forward_workers=network.concurrent_forwards),
            jobs=jobs, on_image=on_image, on_encoding=report_encoding)

    def pairs_not_failed():
        return [p for p in pairs if p.color_path.name not in tally.bad_images]

    for snapshot, entry, run in each_snapshot_run(args, console, snapshots, tally.entries,
                                                  tally.bad_images, pairs_not_failed, evaluate):
        entry.update(images_skipped=dict(tally.bad_images), images_evaluated=len(run.results),
                     seconds=round(run.seconds, 3))
        if not run.results:
            entry["error"] = "no image could be evaluated"
            continue
        entry["status"] = "evaluated"
        entry["metrics"] = tally.means[snapshot.name] = run.mean_metrics()
        entry["per_image"] = {r.stem: r.metrics for r in run.results}
        tally.images[snapshot.name] = len(run.results)
        for result in run.results:
            if result.prediction is not None:
                tally.kept[result.stem][snapshot.name] = result.prediction
    return tally


def results_document(args, tally: Tally, search, left_out: list[str], jobs: int) -> dict:
    """results.json (see the README for the schema)."""
    return {
        "schema_version": report.RESULTS_SCHEMA_VERSION,
        "tool": "depth_eval",
        "versions": library_versions(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(tally.started)),
        "seconds": round(time.time() - tally.started, 3),
        "options": {"input_dir": str(args.input_dir), "gt_dir": str(args.gt_dir),
                    "out_dir": str(args.out_dir), "out_abs_dir": str(abs_dir_of(args.out_dir)),
                    "snapshots_dir": str(args.snapshots_dir), "log": args.log,
                    "prototxt": str(args.prototxt) if args.prototxt else None,
                    "output_blob": args.output_blob, "engine": args.engine,
                    "device": args.device, "jobs": jobs, "batch": args.batch,
                    "png_strategy": args.png_strategy,
                    "metrics": list(args.metrics), "align": list(args.align),
                    "min_depth": args.min_depth, "max_depth": args.max_depth,
                    "crop": args.crop, "gt_encoding": args.gt_encoding,
                    "depth_scale": args.depth_scale, "save_raw": args.save_raw},
        "ground_truth_encodings": sorted(tally.encodings),
        "images_found": len(search.pairs),
        "files_not_evaluated": left_out,
        "snapshots": tally.entries,
    }


def print_results(args, tally: Tally, document: dict, baseline, rules, console: Console) -> list:
    """Rankings, table, the gate's comparison and --best on stdout; returns the violations."""
    markdown = args.format == "markdown"
    print(report.format_rankings(tally.means))
    if not args.quiet:
        print()
        print(report.format_table(tally.means, tally.images, markdown=markdown))
        print(f"\nresults: {Path(args.out_dir) / 'results.json'}, "
              f"{Path(args.out_dir) / 'results.csv'}")
    violations = []
    if baseline is not None:
        violations = gate.compare(document, baseline, rules)
        shown = list(dict.fromkeys(r.metric for r in rules)) or list(next(iter(tally.means.values())))
        if not args.quiet:
            print()
            print(gate.comparison_table(document, baseline, shown, markdown=markdown,
                                        violations=violations if rules else None))
        for violation in violations:
            console.error(f"gate: snapshot {violation.snapshot} broke '{violation.rule_text}': "
                          f"{violation.reason}")
    if args.best:
        lower_is_better = report.metric_directions([args.best])[args.best]
        print(gate.best_snapshot(tally.entries, args.best, lower_is_better))
    return violations


def run_evaluate(args) -> int:
    console = Console(args.quiet)
    check_folders(args, {"INPUT_DIR": args.input_dir, "GT_DIR": args.gt_dir})
    options = evaluation_options(args)
    baseline, rules = gate_setup(args, options)
    snapshots = find_snapshots(args)
    search, left_out = find_pairs(args, console)
    jobs = args.jobs or os.cpu_count() or 1
    results_folder = outputs.OutputFolder(Path(args.out_dir))
    figure_picks = figure_stems(search.pairs, args.figures_max) if args.figures else []
    options = dataclasses.replace(options, keep_predictions=frozenset(figure_picks))

    tally = evaluate_snapshots(args, console, snapshots, search.pairs, options, jobs)
    document = results_document(args, tally, search, left_out, jobs)
    problems = write_results(results_folder, document)
    if args.per_image is not None:
        problems += write_file(args.per_image, report.per_image_csv(tally.entries))
    if args.figures and tally.means:
        problems += write_figures(Path(args.out_dir) / "figures", search.pairs, tally.kept,
                                  tally.means, options)
    for problem in problems:
        console.error(problem)
    if not tally.means:
        console.error("nothing could be evaluated")
        return EXIT_NOTHING
    if print_results(args, tally, document, baseline, rules, console):
        return EXIT_GATE
    everything = all(e["status"] == "evaluated" for e in tally.entries.values())
    return EXIT_OK if everything and not tally.bad_images and not problems else EXIT_PARTIAL


def write_file(path: Path, data: bytes) -> list[str]:
    """Write one file the user named, unless a file of that name exists that the tool did not write."""
    try:
        folder = outputs.OutputFolder(path.parent if str(path.parent) else Path("."))
    except OSError as error:
        return [f"{path}: cannot write ({error})"]
    if folder.claim([path.name]):
        return [f"{path}: exists and was not written by depth_eval; left untouched"]
    folder.write(path.name, data)
    return []


def write_figures(folder_path: Path, pairs, kept, means, options: EvaluationOptions) -> list[str]:
    """Per-image comparison figures and the metric charts into OUT_DIR/figures/."""
    from . import figures, metrics
    from .pipeline import load_ground_truth, resize_ground_truth

    folder = outputs.OutputFolder(folder_path)
    by_stem = {pair.stem: pair for pair in pairs}
    problems = []
    names = [f"{stem}.png" for stem in kept] + ["metrics.png", "metrics_curve.png"]
    taken = set(folder.claim(names))
    problems += [f"{folder.path / name}: exists and was not written by depth_eval; left untouched"
                 for name in sorted(taken)]
    for stem, predictions in kept.items():
        if not predictions or f"{stem}.png" in taken:
            continue
        pair = by_stem[stem]
        try:
            rgb = io_module.as_rgb(io_module.read_image(pair.color_path))
            gt_unit, encoding = load_ground_truth(pair.depth_path, options.ground_truth)
        except Exception as error:  # an image that failed is already reported
            problems.append(f"figure for {stem} not drawn: {error}")
            continue
        gt_m = resize_ground_truth(gt_unit, encoding) * metrics.DEPTH_RANGE_M
        panels = {name: (raw * metrics.DEPTH_RANGE_M,
                         metrics.mvn_fit(raw, gt_m / metrics.DEPTH_RANGE_M) * metrics.DEPTH_RANGE_M)
                  for name, raw in predictions.items()}
        figures.image_figure(folder.path / f"{stem}.png", rgb, gt_m, panels, title=pair.color_path.name)
    if "metrics.png" not in taken:
        directions = report.metric_directions(next(iter(means.values())))
        charted = {name: {k: v for k, v in values.items() if k in directions}
                   for name, values in means.items()}
        figures.metrics_figure(folder.path / "metrics.png", charted, directions)
    return problems


def write_results(folder: outputs.OutputFolder, document: dict) -> list[str]:
    """results.json and results.csv, unless a file of that name is not the tool's."""
    files = {"results.json": report.results_json(document),
             "results.csv": report.results_csv(document["snapshots"])}
    conflicts = folder.claim(list(files))
    for name, data in files.items():
        if name not in conflicts:
            folder.write(name, data)
    return [f"{folder.path / name}: exists and was not written by depth_eval; left untouched, "
            "results not saved there" for name in conflicts]


def run_predict(args) -> int:
    console = Console(args.quiet)
    check_folders(args, {"INPUT_DIR": args.input_dir})
    snapshots = find_snapshots(args)
    images = sorted((p for p in args.input_dir.iterdir()
                     if p.is_file() and discover.is_image(p) and not p.name.startswith(".")),
                    key=lambda p: p.name)
    if not images:
        raise UsageError(f"{args.input_dir}: no image in INPUT_DIR")
    jobs = args.jobs or os.cpu_count() or 1
    abs_dir = abs_dir_of(args.out_dir)
    entries: dict[str, dict] = {}
    bad_images: dict[str, str] = {}
    def predict(snapshot, network, todo, on_image):
        return predict_snapshot(network.forward, network.input_hw, todo,
                                _output_folder(abs_dir / snapshot.name), log_encoded=args.log,
                                jobs=jobs, png_strategy=args.png_strategy, batch_size=args.batch,
                                forward_workers=network.concurrent_forwards, on_image=on_image)

    for snapshot, entry, run in each_snapshot_run(args, console, snapshots, entries, bad_images,
                                                  lambda: images, predict):
        if run.results:
            entry["status"] = "evaluated"
            print(f"{snapshot.name}: {len(run.results)} depth maps in {abs_dir / snapshot.name}")
    if not any(e["status"] == "evaluated" for e in entries.values()):
        console.error("nothing could be predicted")
        return EXIT_NOTHING
    everything = all(e["status"] == "evaluated" for e in entries.values()) and not bad_images
    return EXIT_OK if everything else EXIT_PARTIAL
