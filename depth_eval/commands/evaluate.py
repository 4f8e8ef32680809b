"""``depth-eval evaluate INPUT_DIR GT_DIR OUT_DIR SNAPSHOTS_DIR [--log]``: the thesis'
``test_depth.py``, and the default command."""

from __future__ import annotations

import argparse

from depth_eval import choices
from depth_eval.commands.common import (add_convention_options, add_engine_options, add_report_options, add_snapshot_folders, comma_list, run_task)

NAME = "evaluate"
HELP = ("evaluate depth snapshots on colour / ground-truth pairs and rank them by the thesis "
        "metrics (test_depth.py; the default command)")
DESCRIPTION = ("Evaluate Caffe depth-estimation snapshots (deploy .prototxt + .caffemodel) on "
               "colour / ground-truth image pairs with OpenCV's dnn module, and rank them by "
               "the thesis metrics.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_snapshot_folders(parser, ground_truth=True,
                         out_help="MVN-fitted pictures per snapshot, results.json and "
                                  "results.csv; raw pictures go to OUT_DIR_abs")
    add_engine_options(parser)
    add_convention_options(parser)
    add_scoring_options(parser)
    extra = parser.add_argument_group("depth outputs")
    extra.add_argument("--save-raw", action="store_true",
                       help="also write each upsampled prediction as float32 metres (.npy) and "
                            "16-bit millimetre PNG into OUT_DIR_abs/<snapshot>/")
    extra.add_argument("--colormap", metavar="NAME",
                       help="also write colour-mapped depth PNGs (X_depth_NAME.png) with this "
                            "matplotlib colour map")
    joint = parser.add_argument_group("joint networks")
    joint.add_argument("--with-gradients", action="store_true",
                       help="also evaluate the snapshots' 'gradient' output (joint networks) as "
                            "test_grad.py does, on the same forward pass; its metrics are keyed "
                            "grad/RMSE, grad/MVN")
    add_report_options(parser)


def add_scoring_options(parser: argparse.ArgumentParser) -> None:
    metrics = parser.add_argument_group("metrics")
    metrics.add_argument("--metrics", default=choices.DEFAULT_METRIC_SETS,
                         type=comma_list(choices.METRIC_SETS),
                         metavar="SETS",
                         help="comma list: thesis (default; the thesis' ten metrics on every "
                              "pixel) and/or standard (Eigen et al.: abs_rel, sq_rel, rmse, "
                              "rmse_log, log10, silog, d1-d3 on valid pixels)")
    metrics.add_argument("--align", default=choices.DEFAULT_ALIGNMENTS,
                         type=comma_list(choices.ALIGNMENTS),
                         metavar="METHODS",
                         help="comma list of none (default), mvn (the thesis oracle), median "
                              "(monodepth2 median scaling), lsq (least-squares scale and shift); "
                              "each adds its own set of columns")
    metrics.add_argument("--min-depth", type=float, default=choices.DEFAULT_MIN_DEPTH_M, metavar="M",
                         help="valid ground truth above this; predictions clamped to it "
                              "(default 1e-3 m)")
    metrics.add_argument("--max-depth", type=float, default=choices.DEFAULT_MAX_DEPTH_M, metavar="M",
                         help="valid ground truth below this; predictions clamped to it "
                              "(default 10 m)")
    metrics.add_argument("--crop", choices=choices.CROPS, default=choices.DEFAULT_CROP,
                         help="eigen: the Eigen NYU crop (rows 45:471, cols 41:601 of 480x640, "
                              "scaled to the ground truth) for the standard metrics")
    metrics.add_argument("--gt-encoding", choices=choices.GT_ENCODINGS,
                         default=choices.DEFAULT_GT_ENCODING,
                         help="ground-truth storage: thesis (8-bit, pixel / 255 * 10 m), mm "
                              "(16-bit millimetres, NYU toolbox), npy / float (metres); auto "
                              "decides per file and says what it assumed")
    metrics.add_argument("--depth-scale", type=float, metavar="METRES_PER_UNIT",
                         help="override the encoding's metres per stored unit")


def settings_from_args(args: argparse.Namespace):
    from depth_eval.settings import RunSettings  # numpy and OpenCV: not for --help

    return RunSettings.from_args(args, task="joint" if args.with_gradients else "depth")


# The command's work: the one run over the snapshots (depth_eval.execution.run).
run = run_task
