"""Command line: ``test_depth.py INPUT_DIR GT_DIR OUT_DIR SNAPSHOTS_DIR [--log]`` and
``depth-eval predict INPUT_DIR OUT_DIR SNAPSHOTS_DIR [--log]``.

Exit status: 0 when every snapshot and image was evaluated, 1 when something was skipped (the
message says what and why), 2 when nothing could be evaluated.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import scipy
import skimage

from . import __version__, caffe_proto, discover, outputs, report
from .net import OpenCVNetwork, SnapshotError
from .pipeline import evaluate_snapshot, predict_snapshot
from .progress import Progress

EXIT_OK, EXIT_PARTIAL, EXIT_NOTHING = 0, 1, 2
ENGINES = ("opencv", "onnxruntime")


class UsageError(Exception):
    """A problem with the command line or its folders: nothing can be evaluated."""


def _add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log", action="store_true",
                        help="the networks output log-encoded depth (exp((o - 1) / 0.179581))")
    parser.add_argument("--prototxt", type=Path, metavar="FILE",
                        help="deploy definition for snapshots without a .prototxt of their own")
    parser.add_argument("--output-blob", metavar="NAME",
                        help="blob to read the depth from (default: depth-refine, else depth, "
                             "else the single one-channel output)")
    parser.add_argument("--engine", choices=ENGINES, default="opencv",
                        help="inference engine: opencv (the reference, default) or onnxruntime "
                             "(faster; pip install 'depth_eval[fast]')")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="onnxruntime device (cuda needs onnxruntime-gpu)")
    parser.add_argument("--jobs", type=int, metavar="N",
                        help="worker threads for reading, upsampling, scoring and writing "
                             "(default: the number of cores)")
    parser.add_argument("--png-strategy", choices=sorted(outputs.PNG_STRATEGIES), default="rle",
                        help="zlib strategy of the PNGs (compression level 8 either way): 'rle' "
                             "(default) is 20x faster, 'default' writes the original's files "
                             "byte for byte; the pixels are identical")
    parser.add_argument("--quiet", action="store_true",
                        help="print only the results (no table, progress or warnings)")
    parser.add_argument("--version", action="version", version=f"depth_eval {__version__}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="test_depth.py",
        description="Evaluate Caffe depth-estimation snapshots (deploy .prototxt + .caffemodel) "
                    "on colour / ground-truth image pairs with OpenCV's dnn module, and rank them "
                    "by the thesis metrics. 'depth-eval predict ...' makes depth maps without "
                    "ground truth.")
    parser.add_argument("input_dir", type=Path, metavar="INPUT_DIR",
                        help="colour inputs named <stem>_colors.<ext>")
    parser.add_argument("gt_dir", type=Path, metavar="GT_DIR",
                        help="ground truths named <stem>_depth.<ext> (thesis 8-bit encoding)")
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR",
                        help="MVN-fitted pictures per snapshot, results.json and results.csv; "
                             "raw pictures go to OUT_DIR_abs")
    parser.add_argument("snapshots_dir", type=Path, metavar="SNAPSHOTS_DIR",
                        help="every *.caffemodel here is a snapshot; its definition is the same "
                             "stem with .prototxt")
    _add_common_options(parser)
    return parser


def build_predict_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="depth-eval predict",
        description="Depth maps of every image in INPUT_DIR by every snapshot, without ground "
                    "truth (the thesis' get_depth.py): OUT_DIR_abs/<snapshot>/X_depth.png "
                    "(visualisation), X_depth.npy (float32 metres), X_depth_mm.png (16-bit mm).")
    parser.add_argument("input_dir", type=Path, metavar="INPUT_DIR", help="colour images, any names")
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR",
                        help="the maps go to OUT_DIR_abs/<snapshot>/, as test_depth.py's raw maps")
    parser.add_argument("snapshots_dir", type=Path, metavar="SNAPSHOTS_DIR",
                        help="every *.caffemodel here is a snapshot")
    _add_common_options(parser)
    return parser


def abs_dir_of(out_dir: Path) -> Path:
    """``OUT_DIR_abs`` beside OUT_DIR (a trailing slash on OUT_DIR does not move it inside)."""
    resolved = Path(os.path.abspath(out_dir))
    return resolved.with_name(resolved.name + "_abs")


def library_versions() -> dict[str, str]:
    return {"depth_eval": __version__, "python": platform.python_version(),
            "opencv": cv2.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "scikit-image": skimage.__version__}


class Console:
    """Where messages go: results on stdout, warnings and errors on stderr (one line each)."""

    def __init__(self, quiet: bool):
        self.quiet = quiet

    def warn(self, message: str) -> None:
        if not self.quiet:
            print(f"warning: {message}", file=sys.stderr)

    def error(self, message: str) -> None:
        print(f"error: {message}", file=sys.stderr)


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
            return OnnxRuntimeNetwork(snapshot.prototxt, snapshot.caffemodel, args.output_blob,
                                      device=args.device, cache_dir=Path(args.out_dir) / ".cache")
        except EngineUnavailableError as error:
            raise UsageError(str(error)) from None
    if args.device != "cpu":
        raise UsageError("--device cuda needs --engine onnxruntime")
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
        except (SnapshotError, caffe_proto.CaffeFormatError, OSError) as error:
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


def _output_folder(path: Path) -> outputs.OutputFolder:
    try:
        return outputs.OutputFolder(path)
    except (NotADirectoryError, FileExistsError) as error:
        raise SnapshotError(f"{path}: exists and is not a folder") from error


def run_evaluate(args) -> int:
    console = Console(args.quiet)
    check_folders(args, {"INPUT_DIR": args.input_dir, "GT_DIR": args.gt_dir})
    snapshots = find_snapshots(args)
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
    jobs = args.jobs or os.cpu_count() or 1
    out_dir, abs_dir = Path(args.out_dir), abs_dir_of(args.out_dir)
    results_folder = outputs.OutputFolder(out_dir)
    entries: dict[str, dict] = {}
    means: dict[str, dict[str, float]] = {}
    images: dict[str, int] = {}
    bad_images: dict[str, str] = {}
    started = time.time()
    for snapshot, entry, network in loaded_networks(snapshots, args, console, entries):
        pairs = [p for p in search.pairs if p.color_path.name not in bad_images]
        progress = Progress(snapshot.name, len(pairs), "off" if args.quiet else "auto")
        try:
            snapshot_run = evaluate_snapshot(
                network.forward, network.input_hw, pairs,
                _output_folder(out_dir / snapshot.name), _output_folder(abs_dir / snapshot.name),
                log_encoded=args.log, jobs=jobs, png_strategy=args.png_strategy,
                on_image=progress.update)
        except SnapshotError as error:
            console.error(f"snapshot {snapshot.name} skipped: {error}")
            entry["error"] = str(error)
            continue
        finally:
            progress.close()
            del network
        for name, reason in snapshot_run.skipped.items():
            if name not in bad_images:
                console.error(f"image skipped: {reason}")
        bad_images.update(snapshot_run.skipped)
        entry["images_skipped"] = dict(bad_images)
        entry["images_evaluated"] = len(snapshot_run.results)
        entry["seconds"] = round(snapshot_run.seconds, 3)
        if not snapshot_run.results:
            entry["error"] = "no image could be evaluated"
            continue
        entry["status"] = "evaluated"
        entry["metrics"] = means[snapshot.name] = snapshot_run.mean_metrics()
        entry["per_image"] = {r.stem: r.metrics for r in snapshot_run.results}
        images[snapshot.name] = len(snapshot_run.results)

    document = {
        "schema_version": report.RESULTS_SCHEMA_VERSION,
        "tool": "depth_eval",
        "versions": library_versions(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 3),
        "options": {"input_dir": str(args.input_dir), "gt_dir": str(args.gt_dir),
                    "out_dir": str(out_dir), "out_abs_dir": str(abs_dir),
                    "snapshots_dir": str(args.snapshots_dir), "log": args.log,
                    "prototxt": str(args.prototxt) if args.prototxt else None,
                    "output_blob": args.output_blob, "engine": args.engine,
                    "device": args.device, "jobs": jobs, "png_strategy": args.png_strategy},
        "images_found": len(search.pairs),
        "files_not_evaluated": left_out,
        "snapshots": entries,
    }
    problems = write_results(results_folder, document)
    for problem in problems:
        console.error(problem)

    if means:
        print(report.format_rankings(means))
        if not args.quiet:
            print()
            print(report.format_table(means, images))
            print(f"\nresults: {out_dir / 'results.json'}, {out_dir / 'results.csv'}")
    if not means:
        console.error("nothing could be evaluated")
        return EXIT_NOTHING
    everything = all(e["status"] == "evaluated" for e in entries.values()) and not bad_images
    return EXIT_OK if everything and not problems else EXIT_PARTIAL


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
    for snapshot, entry, network in loaded_networks(snapshots, args, console, entries):
        progress = Progress(snapshot.name, len(images), "off" if args.quiet else "auto")
        try:
            run = predict_snapshot(network.forward, network.input_hw, images,
                                   _output_folder(abs_dir / snapshot.name), log_encoded=args.log,
                                   jobs=jobs, png_strategy=args.png_strategy,
                                   on_image=progress.update)
        except SnapshotError as error:
            console.error(f"snapshot {snapshot.name} skipped: {error}")
            continue
        finally:
            progress.close()
            del network
        for name, reason in run.skipped.items():
            if name not in bad_images:
                console.error(f"image skipped: {reason}")
        bad_images.update(run.skipped)
        if run.results:
            entry["status"] = "evaluated"
            print(f"{snapshot.name}: {len(run.results)} depth maps in {abs_dir / snapshot.name}")
    if not any(e["status"] == "evaluated" for e in entries.values()):
        console.error("nothing could be predicted")
        return EXIT_NOTHING
    everything = all(e["status"] == "evaluated" for e in entries.values()) and not bad_images
    return EXIT_OK if everything else EXIT_PARTIAL


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    predicting = bool(argv) and argv[0] == "predict"
    parser = build_predict_parser() if predicting else build_parser()
    args = parser.parse_args(argv[1:] if predicting else argv)
    try:
        return run_predict(args) if predicting else run_evaluate(args)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_NOTHING
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
