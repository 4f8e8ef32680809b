"""``depth-eval gradients INPUT_DIR GT_DIR OUT_DIR SNAPSHOTS_DIR``: the thesis' ``test_grad.py``
(gradient and joint networks' ``gradient`` output)."""

from __future__ import annotations

import argparse

from depth_eval.commands.common import (add_convention_options, add_engine_options, add_report_options, add_snapshot_folders, run_task)

NAME = "gradients"
HELP = ("evaluate gradient (and joint) snapshots' 'gradient' output against the filtered "
        "ground truth and rank them by RMSE and MVN (test_grad.py)")
DESCRIPTION = ("Evaluate the thesis' gradient and joint networks (deploy .prototxt + "
               ".caffemodel) as test_grad.py did: the 'gradient' output, zoomed to 318 x 418, "
               "against the ground truth's vertical and horizontal gradients (the fixed 3 x 3 "
               "filter), ranked by RMSE and MVN; five PNGs per image in OUT_DIR/<snapshot>/.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_snapshot_folders(parser, ground_truth=True,
                         out_help="per snapshot X_colors.png, X_grad1/2.png (prediction fitted to "
                                  "the normalised ground truth), X_gt1/2.png; results.json and "
                                  "results.csv")
    add_engine_options(parser, log=False,
                       output_help="blob to read the two-channel gradients from (default: "
                                   "gradient, else the single unconnected two-channel output)")
    add_convention_options(parser, output=False)
    add_report_options(parser)


def settings_from_args(args: argparse.Namespace):
    from depth_eval.settings import RunSettings  # numpy and OpenCV: not for --help

    return RunSettings.from_args(args, task="gradients")


# The command's work: the one run over the snapshots (depth_eval.execution.run).
run = run_task
