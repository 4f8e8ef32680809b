"""The ``depth-eval history`` sub-command: arguments, settings, and the run.

``depth-eval history --store PATH [METRIC] [--task T] [--last N] [--plot FILE.png]`` prints a
metric (every stored metric without METRIC) across snapshots ordered by training iteration and
across the runs the store recorded, and can draw it.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from depth_eval.console import Console
from depth_eval.errors import EXIT_OK, OutputError, UsageError
from depth_eval.report.history import DEFAULT_LAST_RUNS, chart_problem, history_table, plot_history
from depth_eval.store.database import ResultsStore

NAME = "history"
HELP = ("a metric across snapshots (by training iteration) and across the runs a results "
        "store holds")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("metric", nargs="?", metavar="METRIC",
                        help="metric as results.json names it (RMSE, median/abs_rel, ...); "
                             "default: every metric the store holds")
    parser.add_argument("--store", type=Path, required=True, metavar="PATH",
                        help="the results store (a run's --store, by default "
                             "OUT_DIR/results.sqlite)")
    parser.add_argument("--task", metavar="TASK",
                        help="only results of this task (default: all)")
    parser.add_argument("--last", type=int, default=DEFAULT_LAST_RUNS, metavar="N",
                        help=f"columns: the N newest runs that recorded the metric "
                             f"(default {DEFAULT_LAST_RUNS}; 0: all)")
    parser.add_argument("--plot", type=Path, metavar="FILE.png",
                        help="also draw the metric against iteration, one line per run "
                             "(needs METRIC)")


@dataclass(frozen=True)
class HistorySettings:
    """What ``depth-eval history`` shows; built by :func:`settings_from_args`."""

    store: Path
    metric: str | None = None
    task: str | None = None
    last: int = DEFAULT_LAST_RUNS
    plot: Path | None = None


def settings_from_args(args: argparse.Namespace) -> HistorySettings:
    """Checked settings; UsageError names the argument that is wrong."""
    store = Path(args.store)
    if not os.path.lexists(store):
        raise UsageError(f"{store}: no results store there (--store names the file a run "
                         "wrote, e.g. OUT_DIR/results.sqlite)")
    if args.last < 0:
        raise UsageError(f"--last must be 0 (all runs) or more, got {args.last}")
    plot = args.plot
    if plot is not None:
        plot = Path(plot)
        if args.metric is None:
            raise UsageError("--plot needs a METRIC (depth-eval history --store PATH METRIC "
                             "--plot FILE.png)")
        if plot.suffix.lower() != ".png":
            raise UsageError(f"{plot}: --plot writes a PNG; give a file name ending in .png")
        if not plot.parent.is_dir():
            raise UsageError(f"{plot}: --plot folder {plot.parent} does not exist")
        problem = chart_problem(plot)
        if problem is not None:
            raise UsageError(f"--plot {plot}: {problem}")
    return HistorySettings(store, args.metric, args.task, args.last, plot)


def run(settings: HistorySettings, console: Console) -> int:
    """Print the table(s), draw the chart when asked; returns the exit status."""
    # Read only: history never writes to the store (nor makes one of an empty file).
    with ResultsStore.open(settings.store, readonly=True) as store:
        by_run = store.metric_names_by_run(settings.task)
        names = sorted(set().union(*by_run.values()))
        scope = f" for task {settings.task!r}" if settings.task is not None else ""
        if not names:
            raise UsageError(f"{settings.store}: the store holds no results{scope}")
        if settings.metric is not None and settings.metric not in names:
            raise UsageError(f"{settings.store}: no metric {settings.metric!r}{scope} in the "
                             f"store; it holds: {', '.join(names)}")
        metrics = [settings.metric] if settings.metric is not None else names
        histories = store.histories(metrics, settings.task, settings.last)
        runs = store.runs({row.run for rows, _ in histories.values() for row in rows})
    console.result("\n\n".join(history_table(histories[metric][0], runs, metric, settings.last,
                                             histories[metric][1]) for metric in metrics))
    if settings.plot is not None:
        try:
            plot_history(histories[settings.metric][0], settings.metric, settings.plot,
                         settings.last)
        except OSError as error:
            raise OutputError(f"{settings.plot}: cannot write the chart: "
                              f"{error.strerror or error}") from None
        console.info(f"chart: {settings.plot}")
    return EXIT_OK
