"""Command line: ``test_depth.py INPUT_DIR GT_DIR OUT_DIR SNAPSHOTS_DIR [--log]`` and
``depth-eval predict INPUT_DIR OUT_DIR SNAPSHOTS_DIR [--log]``: arguments only; the run itself
is :mod:`depth_eval.runner`.

Exit status: 0 when every snapshot and image was evaluated, 1 when something was skipped (the
message says what and why), 2 when nothing could be evaluated, 3 when a --fail-if rule broke.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import __version__, gt_encoding, outputs, standard_metrics
from .runner import EXIT_NOTHING, UsageError, run_evaluate, run_predict
from .runner import EXIT_GATE, EXIT_OK, EXIT_PARTIAL  # noqa: F401 (the statuses, for callers)

METRIC_SETS = ("thesis", "standard")
ENGINES = ("opencv", "onnxruntime")


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
    parser.add_argument("--batch", type=int, default=1, metavar="N",
                        help="images per forward pass (default 1, as the original; larger "
                             "batches can be faster, same numbers within float rounding)")
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
    metrics = parser.add_argument_group("metrics")
    metrics.add_argument("--metrics", default="thesis", type=_choices(METRIC_SETS), metavar="SETS",
                         help="comma list: thesis (default; the thesis' ten metrics on every "
                              "pixel) and/or standard (Eigen et al.: abs_rel, sq_rel, rmse, "
                              "rmse_log, log10, silog, d1-d3 on valid pixels)")
    metrics.add_argument("--align", default="none", type=_choices(standard_metrics.ALIGNMENTS),
                         metavar="METHODS",
                         help="comma list of none (default), mvn (the thesis oracle), median "
                              "(monodepth2 median scaling), lsq (least-squares scale and shift); "
                              "each adds its own set of columns")
    metrics.add_argument("--min-depth", type=float, default=standard_metrics.DEFAULT_MIN_DEPTH_M,
                         metavar="M", help="valid ground truth above this; predictions clamped "
                                           "to it (default 1e-3 m)")
    metrics.add_argument("--max-depth", type=float, default=standard_metrics.DEFAULT_MAX_DEPTH_M,
                         metavar="M", help="valid ground truth below this; predictions clamped "
                                           "to it (default 10 m)")
    metrics.add_argument("--crop", choices=standard_metrics.CROPS, default="none",
                         help="eigen: the Eigen NYU crop (rows 45:471, cols 41:601 of 480x640, "
                              "scaled to the ground truth) for the standard metrics")
    metrics.add_argument("--gt-encoding", choices=gt_encoding.ENCODINGS, default="auto",
                         help="ground-truth storage: thesis (8-bit, pixel / 255 * 10 m), mm "
                              "(16-bit millimetres, NYU toolbox), npy / float (metres); auto "
                              "decides per file and says what it assumed")
    metrics.add_argument("--depth-scale", type=float, metavar="METRES_PER_UNIT",
                         help="override the encoding's metres per stored unit")
    extra = parser.add_argument_group("outputs")
    extra.add_argument("--save-raw", action="store_true",
                       help="also write each upsampled prediction as float32 metres (.npy) and "
                            "16-bit millimetre PNG into OUT_DIR_abs/<snapshot>/")
    extra.add_argument("--per-image", type=Path, metavar="FILE.csv",
                       help="one row per snapshot x image with every metric")
    extra.add_argument("--figures", action="store_true",
                       help="OUT_DIR/figures/: per-image comparison figures and metric charts")
    extra.add_argument("--figures-max", type=int, default=8, metavar="N",
                       help="images that get a figure, chosen evenly (default 8)")
    extra.add_argument("--colormap", metavar="NAME",
                       help="also write colour-mapped depth PNGs (X_depth_NAME.png) with this "
                            "matplotlib colour map")
    checks = parser.add_argument_group("CI gate")
    checks.add_argument("--baseline", type=Path, metavar="RESULTS_JSON",
                        help="compare this run to a previous results.json")
    checks.add_argument("--fail-if", action="append", default=[], metavar="RULE",
                        help="e.g. 'RMSE>+2%%' or 'Threshold 1.25<-0.01': exit 3 when a snapshot "
                             "got worse than the baseline by more than that (repeatable)")
    checks.add_argument("--best", metavar="METRIC",
                        help="print the best snapshot's name alone on the last line")
    checks.add_argument("--format", choices=("text", "markdown"), default="text",
                        help="tables as plain text (default) or GitHub Markdown")
    return parser


def _choices(allowed):
    """argparse type: a comma list of values from ``allowed``, as a tuple without repeats."""
    def parse(text: str) -> tuple[str, ...]:
        values = tuple(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))
        wrong = [v for v in values if v not in allowed]
        if wrong or not values:
            raise argparse.ArgumentTypeError(
                f"{text!r}: expected a comma list of {', '.join(allowed)}")
        return values
    return parse


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
    except Exception as error:  # a bug: one line, the traceback only on request
        if os.environ.get("DEPTH_EVAL_DEBUG"):
            raise
        print(f"error: unexpected {type(error).__name__}: {error} (set DEPTH_EVAL_DEBUG=1 for "
              "the traceback, and please report it)", file=sys.stderr)
        return EXIT_NOTHING


if __name__ == "__main__":
    sys.exit(main())
