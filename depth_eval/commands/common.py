"""Options shared by the commands that run snapshots (evaluate, predict, gradients)."""

from __future__ import annotations

import argparse
from pathlib import Path

from depth_eval import choices, engines
from depth_eval.inputs import convention_names as names
from depth_eval.thesis import DEPTH_RANGE_M, INPUT_MEAN, INPUT_RAW_SCALE



def comma_list(allowed):
    """argparse type: a comma list of values from ``allowed``, as a tuple without repeats."""
    def parse(text: str) -> tuple[str, ...]:
        values = tuple(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))
        wrong = [v for v in values if v not in allowed]
        if wrong or not values:
            raise argparse.ArgumentTypeError(
                f"{text!r}: expected a comma list of {', '.join(allowed)}")
        return values
    return parse


def add_snapshot_folders(parser: argparse.ArgumentParser, ground_truth: bool,
                         out_help: str) -> None:
    parser.add_argument("input_dir", type=Path, metavar="INPUT_DIR",
                        help="colour inputs named <stem>_colors.<ext>" if ground_truth
                        else "colour images, any names")
    if ground_truth:
        parser.add_argument("gt_dir", type=Path, metavar="GT_DIR",
                            help="ground truths named <stem>_depth.<ext> (thesis 8-bit encoding)")
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help=out_help)
    parser.add_argument("snapshots_dir", type=Path, metavar="SNAPSHOTS_DIR",
                        help="every *.caffemodel here is a snapshot; its definition is the same "
                             "stem with .prototxt")
    parser.add_argument("--max-image-pixels", type=int, default=choices.DEFAULT_MAX_IMAGE_PIXELS,
                        metavar="N",
                        help="refuse images with more pixels than this, read from the file's "
                             "header before decoding (decompression bombs; default "
                             f"{choices.DEFAULT_MAX_IMAGE_PIXELS:,})")


# --output-blob's help for the depth commands.
DEPTH_OUTPUT_HELP = ("blob to read the output from (default: depth-refine, else depth, else the "
                     "single one-channel output)")


def add_engine_options(parser: argparse.ArgumentParser, log: bool = True,
                       output_help: str = DEPTH_OUTPUT_HELP) -> None:
    if log:
        parser.add_argument("--log", action="store_true",
                            help="the networks output log-encoded depth (exp((o - 1) / 0.179581)"
                                 "); the same as --output-kind log")
    parser.add_argument("--prototxt", type=Path, metavar="FILE",
                        help="deploy definition for snapshots without a .prototxt of their own")
    parser.add_argument("--output-blob", metavar="NAME", help=output_help)
    parser.add_argument("--engine", choices=tuple(engines.ENGINES), default=engines.DEFAULT_ENGINE,
                        help="inference engine: opencv (the reference, default) or onnxruntime "
                             "(faster; pip install 'depth_eval[fast]')")
    parser.add_argument("--device", choices=choices.DEVICES, default=choices.DEFAULT_DEVICE,
                        help="onnxruntime device (cuda needs onnxruntime-gpu)")
    parser.add_argument("--batch", type=int, default=choices.DEFAULT_BATCH, metavar="N",
                        help="images per forward pass (default 1, as the original; larger "
                             "batches can be faster, same numbers within float rounding)")
    parser.add_argument("--jobs", type=int, metavar="N",
                        help="worker threads for reading, upsampling, scoring and writing "
                             "(default: the number of cores)")
    parser.add_argument("--png-strategy", choices=choices.PNG_STRATEGY_NAMES,
                        default=choices.DEFAULT_PNG_STRATEGY,
                        help="zlib strategy of the PNGs (compression level 8 either way): 'rle' "
                             "(default) is 20x faster, 'default' writes the original's files "
                             "byte for byte; the pixels are identical")
    parser.add_argument("--cache-dir", type=Path, metavar="DIR",
                        help="the user cache of derived files (onnxruntime translations; "
                             "default $XDG_CACHE_HOME/depth_eval, else ~/.cache/depth_eval)")
    parser.add_argument("--quiet", action="store_true",
                        help="print only the results (no table, progress or warnings)")
    parser.add_argument("--dask", metavar="ADDRESS",
                        help="run the snapshots x images on a Dask cluster: a running "
                             "scheduler's address (tcp://HOST:8786) or local:N (N worker "
                             "processes on this machine); every folder must be at the same "
                             "path on every worker (a shared filesystem; pip install "
                             "'depth_eval[dask]')")


def number_list(text: str) -> list:
    """argparse type: a comma list of numbers (``2,1,0``, ``104,117,123``)."""
    try:
        return names.parse_number_list(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_convention_options(parser: argparse.ArgumentParser, output: bool = True) -> None:
    """The network's input convention, named as Caffe's classify.py names it, and (``output``)
    its output's meaning; a snapshot's ``<stem>.depth_eval.toml`` overrides them."""
    group = parser.add_argument_group(
        "input convention and output meaning",
        "how the snapshots were trained to read images and what they output (defaults: the "
        f"thesis', RGB x {INPUT_RAW_SCALE:g} - {INPUT_MEAN:g}, depth / {DEPTH_RANGE_M:g}); a "
        f"snapshot's <stem>{names.SIDECAR_SUFFIX} beside its caffemodel overrides them, keys "
        "named as these options without '--'")
    group.add_argument(f"--{names.CHANNEL_SWAP}", type=number_list, metavar="I,J,K",
                       help="channel order taken from the RGB image (2,1,0: BGR, as "
                            "classify.py's --channel_swap)")
    group.add_argument(f"--{names.RAW_SCALE}", type=float, metavar="F",
                       help=f"multiplies the [0, 1] image (default {INPUT_RAW_SCALE:g})")
    group.add_argument(f"--{names.MEAN_FILE}", type=Path, metavar="FILE",
                       help="mean image subtracted after the raw scale: .binaryproto (Caffe's "
                            "compute_image_mean) or .npy, C x H x W in the swapped order, the "
                            "network input's size (another size is refused)")
    group.add_argument(f"--{names.MEAN_VALUES}", type=number_list, metavar="A,B,C",
                       help=f"one mean per channel (or one for all; default {INPUT_MEAN:g})")
    group.add_argument(f"--{names.INPUT_SCALE}", type=float, metavar="F",
                       help="multiplies the input after the mean (default none)")
    group.add_argument(f"--{names.TRANSFORM_FROM}", type=Path, metavar="TRAIN_VAL.prototxt",
                       help="read the TEST-phase data layer's transform_param (mean_file or "
                            "mean_value, scale) of a training prototxt: BGR, x 255, minus its "
                            "mean, times its scale; the options above replace what it states")
    if output:
        group.add_argument(f"--{names.OUTPUT_KIND}", choices=names.OUTPUT_KINDS,
                           help="the output is depth (M * o, default), log (the thesis' "
                                "encoding, M * exp((o - 1) / 0.179581); --log is --output-kind "
                                "log) or inverse depth (M / o)")
        group.add_argument(f"--{names.OUTPUT_SCALE}", type=float, metavar="M",
                           help=f"M in metres (default {DEPTH_RANGE_M:g}: the thesis' depth / "
                                f"{DEPTH_RANGE_M:g}; 1 for an output in metres)")


def add_report_options(parser: argparse.ArgumentParser) -> None:
    """--per-image, --figures, the results store and the CI gate: every scored task has them."""
    store = parser.add_argument_group("results store")
    store.add_argument("--store", type=Path, metavar="PATH",
                       help="SQLite file of every (snapshot, image) result, reused by later "
                            "runs (default OUT_DIR/results.sqlite)")
    store.add_argument("--recompute", action="store_true",
                       help="evaluate every snapshot on every image again and replace the "
                            "stored results")
    extra = parser.add_argument_group("outputs")
    extra.add_argument("--per-image", type=Path, metavar="FILE.csv",
                       help="one row per snapshot x image with every metric")
    extra.add_argument("--figures", action="store_true",
                       help="OUT_DIR/figures/: per-image comparison figures and metric charts")
    extra.add_argument("--figures-max", type=int, default=choices.DEFAULT_FIGURES_MAX, metavar="N",
                       help="images that get a figure, chosen evenly (default 8)")
    checks = parser.add_argument_group("CI gate")
    checks.add_argument("--baseline", type=Path, metavar="RESULTS_JSON",
                        help="compare this run to a previous results.json")
    checks.add_argument("--fail-if", action="append", default=[], metavar="RULE",
                        help="e.g. 'RMSE>+2%%' or 'Threshold 1.25<-0.01': exit 3 when a snapshot "
                             "got worse than the baseline by more than that (repeatable)")
    checks.add_argument("--best", metavar="METRIC",
                        help="print the best snapshot's name alone on the last line")
    checks.add_argument("--format", choices=choices.TABLE_FORMATS,
                        default=choices.DEFAULT_TABLE_FORMAT,
                        help="tables as plain text (default) or GitHub Markdown")
    add_verdict_options(checks)


def add_verdict_options(checks) -> None:
    """Intervals, significance and the CI report files (docs/ci.md)."""
    checks.add_argument("--confidence", type=float, default=choices.DEFAULT_CONFIDENCE,
                        metavar="LEVEL",
                        help="level of the bootstrap intervals of every mean and change "
                             f"(default {choices.DEFAULT_CONFIDENCE})")
    checks.add_argument("--interval-method", choices=choices.INTERVAL_METHODS,
                        default=choices.DEFAULT_INTERVAL_METHOD,
                        help="bootstrap interval: BCa (default) or percentile")
    checks.add_argument("--significant", action="store_true",
                        help="a --fail-if rule fails only when the change also lies outside "
                             "the noise: its paired interval (per image, against the baseline) "
                             "entirely on the worse side")
    checks.add_argument("--report", type=Path, metavar="FILE.html",
                        help="the browser report (default OUT_DIR/report.html)")
    checks.add_argument("--junit", type=Path, metavar="FILE.xml",
                        help="JUnit XML of the gate: one test per snapshot and rule, and per "
                             "skipped snapshot or image")


def run_task(settings, console) -> int:
    """``run`` of the commands that run snapshots through a task (evaluate, predict, gradients)."""
    from depth_eval.execution.run import run  # numpy and OpenCV: not for --help

    return run(settings, console)
