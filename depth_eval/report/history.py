"""``depth-eval history``: one metric across snapshots (by training iteration) and stored runs.

Builds the text table from :meth:`depth_eval.store.database.ResultsStore.history` rows and, on request,
a chart (matplotlib is imported only then).  Rows are snapshots ordered by the iteration in
their names (``_iter_N``; names without one come last), columns are stored runs, oldest first.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

from depth_eval.scoring.keys import MetricKey, lower_is_better
from depth_eval.inputs.discover import snapshot_iteration
from depth_eval.store.database import HistoryRow, iteration_of

__all__ = ["DEFAULT_LAST_RUNS", "shown_runs", "history_table", "plot_history"]

# Columns shown by default: a CI store gains a run per job; older runs rarely differ.
DEFAULT_LAST_RUNS = 5
# Chart size (inches at figures.DPI) and the legend's limit before it is left out.
PLOT_SIZE_IN = (8.0, 4.5)
MAX_LEGEND_ENTRIES = 12
# The text chunk every chart carries: --plot replaces a file only when it holds this (a chart
# an earlier history wrote), never a user's own file.
CHART_TEXT = {"Software": "depth_eval history"}


def shown_runs(rows: Sequence[HistoryRow], last: int = DEFAULT_LAST_RUNS) -> list[int]:
    """Ids of the runs that recorded the metric, oldest first: the ``last`` newest (0: all)."""
    runs = sorted({row.run for row in rows})
    return runs[-last:] if last > 0 else runs


def _direction(metric: str) -> str:
    lower = lower_is_better(MetricKey.parse(metric))
    return "" if lower is None else (" (lower is better)" if lower else " (higher is better)")


def _run_line(run: dict) -> str:
    started = str(run["started"]).replace("T", " ").split(".")[0]
    state = (f"finished, exit status {run['exit_status']}" if run.get("finished")
             else "not finished (killed, or still running)")
    return f"run {run['id']}: started {started} UTC, {state}, depth_eval {run['tool_version']}"


def history_table(rows: Sequence[HistoryRow], runs: Sequence[dict], metric: str,
                  last: int = DEFAULT_LAST_RUNS, total_runs: int | None = None) -> str:
    """The table: a title line, one line per snapshot, one column per shown run, run legend.

    Values have 4 decimals (as the run's own table); ``-`` where a run has no value.
    ``total_runs``: how many runs recorded the metric when ``rows`` hold only the shown ones
    (default: the runs of ``rows``).
    """
    run_ids = shown_runs(rows, last)
    kept = [row for row in rows if row.run in run_ids]
    snapshots = list(dict.fromkeys(row.snapshot for row in kept))  # rows come in order
    values = {(row.snapshot, row.run): row.value for row in kept}
    headers = ["snapshot", "iteration"] + [f"run {run}" for run in run_ids]
    lines = [[name, str(iteration_of(name)) if iteration_of(name) is not None else "-"]
             + [f"{values[(name, run)]:.4f}" if (name, run) in values else "-"
                for run in run_ids] for name in snapshots]
    widths = [max(len(line[i]) for line in [headers] + lines) for i in range(len(headers))]
    widths[2:] = [max(8, width) for width in widths[2:]]
    total = len({row.run for row in rows}) if total_runs is None else total_runs
    title = f"{metric}{_direction(metric)}: {len(snapshots)} snapshots, {len(run_ids)} runs"
    if len(run_ids) < total:
        title += f" (the newest {len(run_ids)} of {total}; --last 0 shows all)"
    text = [title] + [" ".join([line[0].ljust(widths[0])]
                               + [cell.rjust(width) for cell, width in zip(line[1:], widths[1:])])
                      for line in [headers] + lines]
    by_id = {run["id"]: run for run in runs}
    text += [_run_line(by_id[run]) for run in run_ids if run in by_id]
    return "\n".join(text)


def plot_history(rows: Sequence[HistoryRow], metric: str, path: Path,
                 last: int = DEFAULT_LAST_RUNS) -> None:
    """A PNG chart of the table: the metric against iteration, one line per run and training.

    When a snapshot has no ``_iter_N`` in its name, the x axis lists the snapshots in the
    table's order instead.  Written atomically (a reader never sees half a PNG).
    """
    # matplotlib only for --plot
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    from depth_eval.pictures import DPI, iteration_text, save_png

    run_ids = shown_runs(rows, last)
    kept = [row for row in rows if row.run in run_ids]
    numeric = bool(kept) and all(row.iteration is not None for row in kept)
    snapshots = list(dict.fromkeys(row.snapshot for row in kept))
    figure = Figure(figsize=PLOT_SIZE_IN, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    colours = [f"C{i % 10}" for i in range(len(run_ids))]
    entries = 0
    for colour, run in zip(colours, run_ids):
        lines: dict[str, list[tuple[float, float]]] = {}
        for row in kept:
            if row.run != run or not math.isfinite(row.value):
                continue
            training = snapshot_iteration(row.snapshot)[0] if numeric else ""
            x = row.iteration if numeric else snapshots.index(row.snapshot)
            lines.setdefault(training, []).append((x, row.value))
        for training, points in lines.items():
            points.sort()
            label = f"run {run}" + (f", {training}" if training else "")
            axes.plot([p[0] for p in points], [p[1] for p in points], marker="o",
                      markersize=3, linewidth=1.2, color=colour, label=label,
                      linestyle=("-", "--", ":", "-.")[list(lines).index(training) % 4])
            entries += 1
    if numeric:
        axes.xaxis.set_major_formatter(FuncFormatter(iteration_text))
        axes.set_xlabel("training iteration")
    else:
        axes.set_xticks(range(len(snapshots)))
        axes.set_xticklabels(snapshots, rotation=30, ha="right", fontsize=7)
        axes.set_xlabel("snapshot")
    axes.set_ylabel(metric)
    axes.set_title(f"{metric}{_direction(metric)} across stored runs", fontsize=10)
    axes.grid(True, linewidth=0.4, alpha=0.5)
    if 0 < entries <= MAX_LEGEND_ENTRIES:
        axes.legend(fontsize=7)
    save_png(figure, Path(path), text=CHART_TEXT)


def chart_problem(path: Path) -> str | None:
    """Why ``--plot`` may not write ``path`` (None: nothing there, or a chart of ours)."""
    from depth_eval.inputs import limits
    from depth_eval.pictures import png_text  # matplotlib: only when a file is there

    path = Path(path)
    if not os.path.lexists(path):
        return None
    kind = limits.describe(path)
    if kind != "a regular file":
        return f"is {kind}, not a file"
    try:
        with limits.open_regular(path) as stream:
            head = stream.read(1 << 16)
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    if png_text(head).get("Software") != CHART_TEXT["Software"]:
        return "exists and was not written by depth-eval history; left untouched"
    return None
