"""Metric charts: bar charts of each metric's mean per snapshot, and curves over training iterations.

Figures are laid out by matplotlib's constrained layout on a grid of small multiples (one chart
per metric); see :mod:`.layout` for sizes, rendering and saving.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from depth_eval.inputs.discover import training_runs
from depth_eval.pictures.layout import (RENDER_LOCK, SUPTITLE_FONT_SIZE, SUPTITLE_HEIGHT_IN, TICK_FONT_SIZE, TITLE_FONT_SIZE,
    new_figure, save_png, shorten_name)

# Metric small multiples.
METRIC_COLUMNS = 5
METRIC_PANEL_WIDTH_IN = 2.7
BAR_HEIGHT_IN = 0.32
METRIC_PANEL_EXTRA_HEIGHT_IN = 0.9
# Snapshot names beside the bars: at most this many characters, in a band this wide.
BAR_LABEL_CHARS = 40
NAME_LABEL_WIDTH_IN = 2.8
BAR_COLOR = "#9aa5b1"
BEST_BAR_COLOR = "#e8710a"
# A mean's confidence interval: an error bar on its bar, a band around its curve.
ERROR_BAR_COLOR = "#333333"
BAND_ALPHA = 0.2
CURVE_PANEL_HEIGHT_IN = 2.6

# Caffe names training snapshots ``<prefix>_iter_<N>``.
CURVE_SUFFIX = "_curve"


def _metric_titles(means: dict[str, dict[str, float]]) -> list[str]:
    """Every metric any snapshot has, in order of first appearance."""
    titles: dict[str, None] = {}
    for values in means.values():
        titles.update(dict.fromkeys(values))
    return list(titles)


def _metric_heading(metric: str, lower_is_better: dict[str, bool]) -> str:
    if metric not in lower_is_better:
        return metric
    return f"{metric}\n({'lower' if lower_is_better[metric] else 'higher'} is better)"


def best_snapshots(values: dict[str, float], lower_is_better: bool | None) -> set[str]:
    """Names with the best finite value (all of them when tied); none if direction unknown."""
    finite = {name: v for name, v in values.items() if v is not None and math.isfinite(v)}
    if lower_is_better is None or not finite:
        return set()
    best = min(finite.values()) if lower_is_better else max(finite.values())
    return {name for name, v in finite.items() if v == best}


def _grid_shape(panels: int) -> tuple[int, int]:
    columns = max(1, min(METRIC_COLUMNS, panels))
    return math.ceil(panels / columns), columns


def _value_text(value: float) -> str:
    return f"{value:.4g}"


def build_metrics_figure(means: dict[str, dict[str, float]],
                         lower_is_better: dict[str, bool], intervals: dict | None = None) -> Figure:
    """Small multiples: one horizontal bar chart per metric, snapshots on the y axis.

    Layout: up to five charts per row, in the metrics' order of appearance; each chart is
    titled with the metric and "(lower is better)" / "(higher is better)", lists the snapshots
    top to bottom in dict order (names shortened in the middle beyond 40 characters, shown at
    the start of each row), prints each value at the end of its bar, and colours the best bar
    (all tied best bars) orange, the others grey.  A missing or NaN value has no bar.

    Parameters
    ----------
    means : dict
        Snapshot name -> metric title -> mean value.
    lower_is_better : dict
        Metric title -> whether lower is better; metrics not in it get no marker and no
        highlighted bar.
    intervals : dict, optional
        Snapshot name -> metric title -> ``(low, high)``: drawn as an error bar on each bar.

    Returns
    -------
    matplotlib.figure.Figure
    """
    metrics = _metric_titles(means)
    names = list(means)
    intervals = intervals or {}
    rows, columns = _grid_shape(len(metrics))
    panel_height = max(1.6, BAR_HEIGHT_IN * len(names) + METRIC_PANEL_EXTRA_HEIGHT_IN)
    figure = new_figure(NAME_LABEL_WIDTH_IN + columns * METRIC_PANEL_WIDTH_IN,
                         rows * panel_height + SUPTITLE_HEIGHT_IN, constrained=True)
    axes_grid = figure.subplots(rows, columns, squeeze=False, sharey=True)
    labels = [shorten_name(name, BAR_LABEL_CHARS) for name in names]
    for index, axes in enumerate(axes_grid.ravel()):
        if index >= len(metrics):
            axes.set_axis_off()
            continue
        metric = metrics[index]
        values = {name: means[name].get(metric, math.nan) for name in names}
        _draw_metric_bars(axes, metric, values, labels, lower_is_better,
                          {name: intervals.get(name, {}).get(metric) for name in names})
    axes_grid[0, 0].invert_yaxis()
    figure.suptitle(f"mean metrics of {len(names)} snapshot{'s' * (len(names) != 1)} "
                    f"(best in orange)", fontsize=SUPTITLE_FONT_SIZE)
    return figure


def _draw_metric_bars(axes, metric: str, values: dict[str, float], labels: list[str],
                      lower_is_better: dict[str, bool], bounds: dict | None = None) -> None:
    best = best_snapshots(values, lower_is_better.get(metric))
    positions = np.arange(len(values))
    heights = [v if v is not None and math.isfinite(v) else 0.0 for v in values.values()]
    colors = [BEST_BAR_COLOR if name in best else BAR_COLOR for name in values]
    bars = axes.barh(positions, heights, color=colors, height=0.7)
    ends = list(heights)  # where each value's text goes: past its bar and its error bar
    for index, (name, value) in enumerate(values.items()):
        bound = (bounds or {}).get(name)
        if bound is None or value is None or not math.isfinite(value) \
                or not all(b is not None and math.isfinite(b) for b in bound):
            continue
        axes.errorbar(value, positions[index], xerr=[[max(value - bound[0], 0.0)],
                                                     [max(bound[1] - value, 0.0)]],
                      fmt="none", ecolor=ERROR_BAR_COLOR, elinewidth=1.0, capsize=2.5)
        ends[index] = max(bound[1], value) if value >= 0 else min(bound[0], value)
    for bar, value, end in zip(bars, values.values(), ends):
        if value is None or not math.isfinite(value):
            bar.set_visible(False)
            continue
        axes.annotate(_value_text(value), (end, bar.get_y() + bar.get_height() / 2),
                      xytext=(3 if value >= 0 else -3, 0), textcoords="offset points",
                      ha="left" if value >= 0 else "right", va="center",
                      fontsize=TICK_FONT_SIZE)
    axes.set_yticks(positions, labels)
    axes.set_title(_metric_heading(metric, lower_is_better), fontsize=TITLE_FONT_SIZE)
    axes.tick_params(labelsize=TICK_FONT_SIZE)
    axes.xaxis.set_major_locator(MaxNLocator(4))
    _leave_room_for_value_text(axes, ends)
    axes.grid(axis="x", color="#dddddd", linewidth=0.6)
    axes.set_axisbelow(True)


def _leave_room_for_value_text(axes, heights: list[float]) -> None:
    """Widen the x range by 35 % of the values' span so the numbers after the bars fit."""
    low = min([0.0] + heights)
    high = max([0.0] + heights)
    span = (high - low) or 1.0
    axes.set_xlim(low - (span * 0.35 if low < 0 else 0.0), high + span * 0.35)


def iteration_text(iteration: float, _position=None) -> str:
    """Tick label for an iteration count: 500, 10k, 1.5M."""
    if abs(iteration) >= 1_000_000:
        return f"{iteration / 1_000_000:g}M"
    if abs(iteration) >= 1_000:
        return f"{iteration / 1_000:g}k"
    return f"{iteration:g}"


def build_curve_figure(means: dict[str, dict[str, float]], lower_is_better: dict[str, bool],
                       runs: dict[str, list[tuple[int, str]]],
                       intervals: dict | None = None) -> Figure:
    """Each metric against training iteration, one line per run (snapshot name prefix).

    Layout: the same grid as :func:`build_metrics_figure` (up to five charts per row), each
    chart titled with the metric and its direction, x axis the iteration (10k, 1.5M); a legend
    of the runs at the bottom when there is more than one run (a single run is named in the
    figure title).

    Parameters
    ----------
    means, lower_is_better
        As :func:`build_metrics_figure`.
    runs : dict
        From :func:`training_runs`: run -> [(iteration, snapshot name)].
    intervals : dict, optional
        As :func:`build_metrics_figure`: drawn as a band around each run's line.

    Returns
    -------
    matplotlib.figure.Figure
    """
    metrics = _metric_titles(means)
    rows, columns = _grid_shape(len(metrics))
    legend_height = 0.3 * len(runs) if len(runs) > 1 else 0.0
    figure = new_figure(0.6 + columns * METRIC_PANEL_WIDTH_IN,
                         rows * CURVE_PANEL_HEIGHT_IN + SUPTITLE_HEIGHT_IN + legend_height,
                         constrained=True)
    axes_grid = figure.subplots(rows, columns, squeeze=False)
    for index, axes in enumerate(axes_grid.ravel()):
        if index >= len(metrics):
            axes.set_axis_off()
            continue
        _draw_metric_curves(axes, metrics[index], means, runs, lower_is_better, intervals or {})
    for axes in axes_grid.ravel()[len(metrics) - columns:len(metrics)]:
        axes.set_xlabel("iteration", fontsize=TICK_FONT_SIZE + 1)
    if len(runs) > 1:
        handles, labels = axes_grid[0, 0].get_legend_handles_labels()
        figure.legend(handles, labels, loc="outside lower center", fontsize=TICK_FONT_SIZE + 1,
                      ncols=min(len(runs), 3), frameon=False)
        figure.suptitle("mean metrics during training", fontsize=SUPTITLE_FONT_SIZE)
    else:
        figure.suptitle(f"mean metrics during training of {shorten_name(next(iter(runs)), 48)}",
                        fontsize=SUPTITLE_FONT_SIZE)
    return figure


def _draw_metric_curves(axes, metric: str, means, runs, lower_is_better, intervals) -> None:
    for run, points in runs.items():
        iterations = [iteration for iteration, _ in points]
        values = [means[name].get(metric, math.nan) for _, name in points]
        line, = axes.plot(iterations, values, marker="o", markersize=4, linewidth=1.5,
                          label=shorten_name(run, 40) or "(no prefix)")
        bounds = [intervals.get(name, {}).get(metric) for _, name in points]
        if all(b is not None for b in bounds):
            axes.fill_between(iterations, [b[0] for b in bounds], [b[1] for b in bounds],
                              color=line.get_color(), alpha=BAND_ALPHA, linewidth=0)
    axes.set_title(_metric_heading(metric, lower_is_better), fontsize=TITLE_FONT_SIZE)
    axes.tick_params(labelsize=TICK_FONT_SIZE)
    axes.xaxis.set_major_locator(MaxNLocator(4, integer=True))
    axes.xaxis.set_major_formatter(FuncFormatter(iteration_text))
    axes.yaxis.set_major_locator(MaxNLocator(5))
    axes.grid(color="#dddddd", linewidth=0.6)


def curve_path(path: Path) -> Path:
    """Where :func:`metrics_figure` writes the training curves beside ``path``."""
    path = Path(path)
    return path.with_name(path.stem + CURVE_SUFFIX + ".png")


def metrics_figure(path: Path, means: dict[str, dict[str, float]],
                   lower_is_better: dict[str, bool], intervals: dict | None = None) -> list[Path]:
    """Write the metric bar charts, and training curves when names carry ``_iter_N``.

    Parameters
    ----------
    path : Path
        The bar-chart PNG (:func:`build_metrics_figure`); its folder must exist.
    means : dict
        Snapshot name -> metric title -> mean value.
    lower_is_better : dict
        Metric title -> whether lower is better.
    intervals : dict, optional
        Snapshot name -> metric title -> ``(low, high)``: error bars and bands.

    Returns
    -------
    list of Path
        ``[path]``, plus ``<stem>_curve.png`` beside it (:func:`build_curve_figure`) when every
        snapshot name carries an iteration number (Caffe's ``<prefix>_iter_<N>``) and some
        run has at least two of them (a curve needs two points).  Nothing is
        written (empty list) when there are no snapshots or no metrics.
    """
    path = Path(path)
    if not means or not _metric_titles(means):
        return []
    written = [path]
    with RENDER_LOCK:
        save_png(build_metrics_figure(means, lower_is_better, intervals), path)
        runs = training_runs(means)
        if runs is not None and any(len(points) > 1 for points in runs.values()):
            save_png(build_curve_figure(means, lower_is_better, runs, intervals),
                     curve_path(path))
            written.append(curve_path(path))
    return written
