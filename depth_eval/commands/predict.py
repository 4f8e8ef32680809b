"""``depth-eval predict INPUT_DIR OUT_DIR SNAPSHOTS_DIR [--log]``: depth maps without ground
truth (the thesis' ``get_depth.py``)."""

from __future__ import annotations

import argparse

from depth_eval.commands.common import add_convention_options, add_engine_options, add_snapshot_folders, run_task

NAME = "predict"
HELP = "depth maps of every image by every snapshot, without ground truth (get_depth.py)"
DESCRIPTION = ("Depth maps of every image in INPUT_DIR by every snapshot, without ground "
               "truth (the thesis' get_depth.py): OUT_DIR_abs/<snapshot>/X_depth.png "
               "(visualisation), X_depth.npy (float32 metres), X_depth_mm.png (16-bit mm).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_snapshot_folders(parser, ground_truth=False,
                         out_help="the maps go to OUT_DIR_abs/<snapshot>/, as test_depth.py's "
                                  "raw maps")
    add_engine_options(parser)
    add_convention_options(parser)


def settings_from_args(args: argparse.Namespace):
    from depth_eval.settings import RunSettings  # numpy and OpenCV: not for --help

    return RunSettings.from_args(args, task="predict")


# The command's work: the one run over the snapshots (depth_eval.execution.run).
run = run_task
