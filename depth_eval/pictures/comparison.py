"""The per-image comparison figure: input, ground truth, and every snapshot's raw, fitted and error maps.

Depth panels share one colour map and one robust scale; each error map (raw prediction minus
ground truth) has its own symmetric scale on a diverging map.  The panels are drawn by the
generic grid of :mod:`.panels`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from depth_eval.pictures.colormaps import check_colormap, colormap_with_black_bad
from depth_eval.pictures.layout import RENDER_LOCK, save_png, wrap_name
from depth_eval.pictures.panels import (MapScale, Panel, build_panel_figure, colorbar_extend, finite_values)

DEFAULT_DEPTH_COLORMAP = "viridis"
# Diverging map for signed errors: blue = predicted too near, red = predicted too far.
ERROR_COLORMAP = "RdBu_r"
ERROR_COLORMAP_WITH_BAD = colormap_with_black_bad(ERROR_COLORMAP)
# Robust colour scales ignore the most extreme values (percent of pixels at each end).
DEPTH_SCALE_PERCENTILES = (1.0, 99.0)
ERROR_SCALE_PERCENTILE = 99.0
# Smallest span a colour scale may have, in metres (a constant map still gets a usable bar).
MIN_SCALE_SPAN_M = 0.01
# Up to this many snapshots, ``image_figure`` draws a single row; beyond it, one row each.
# (A row of three snapshots is 11 panels, 3900 x 360 pixels: too thin to read on a screen.)
MAX_SNAPSHOTS_IN_ONE_ROW = 1

DEPTH_BAR_LABEL = "depth (m)"
ERROR_BAR_LABEL = "raw \u2212 truth (m)"
# The otherwise empty top-right grid cell: how to read the figure.
READING_NOTE = ("all depth panels share one scale:\nthe \"depth (m)\" bar on the left\n\n"
                "error = raw prediction \u2212 ground truth\nblue: predicted too near\n"
                "red: predicted too far\neach error map has its own scale")


def depth_scale(maps) -> tuple[float, float]:
    """A robust shared colour scale for depth maps: 1st to 99th percentile, never below 0.

    Parameters
    ----------
    maps : iterable of ndarray
        Depth maps in metres (NaN and infinities are ignored).

    Returns
    -------
    (float, float)
        ``vmin < vmax`` in metres.
    """
    values = finite_values(maps)
    if values.size == 0:
        return 0.0, 10.0
    low, high = np.percentile(values, DEPTH_SCALE_PERCENTILES)
    low = max(float(low), 0.0)
    high = max(float(high), low + MIN_SCALE_SPAN_M)
    return low, high


def error_scale(error_m: np.ndarray) -> float:
    """Half-width of a symmetric colour scale for a signed error map (99th percentile of |e|)."""
    values = np.abs(finite_values([error_m]))
    if values.size == 0:
        return 1.0
    return max(float(np.percentile(values, ERROR_SCALE_PERCENTILE)), MIN_SCALE_SPAN_M)


def _error_panel(error_m: np.ndarray, title: str) -> Panel:
    """An error map on its own symmetric scale, with its colour bar."""
    half_width = error_scale(error_m)
    scale = MapScale(ERROR_COLORMAP_WITH_BAD, -half_width, half_width,
                     colorbar_extend([error_m], -half_width, half_width), ERROR_BAR_LABEL)
    return Panel(error_m, title, scale, bar=True)


def _snapshot_titles(name: str) -> tuple[str, str, str]:
    """Titles of a snapshot's raw, fitted and error panels (the name wrapped, then the kind)."""
    wrapped = "\n".join(wrap_name(name))
    return f"{wrapped}\nraw", f"{wrapped}\nMVN-fitted", f"{wrapped}\nerror (raw \u2212 truth)"


def _one_row_panels(rgb, gt_m, predictions, depth: MapScale) -> list[list[Panel]]:
    """input | truth | raw, fitted per snapshot [depth bar] | error per snapshot."""
    row = [Panel(rgb, "input"), Panel(gt_m, "ground truth", depth)]
    for name, (raw_m, fitted_m) in predictions.items():
        raw_title, fitted_title, _ = _snapshot_titles(name)
        row += [Panel(raw_m, raw_title, depth), Panel(fitted_m, fitted_title, depth)]
    row[-1] = row[-1]._replace(bar=True)
    for name, (raw_m, _) in predictions.items():
        row.append(_error_panel(raw_m - gt_m, _snapshot_titles(name)[2]))
    return [row]


def _grid_panels(rgb, gt_m, predictions, depth: MapScale) -> list[list[Panel]]:
    """input | truth [depth bar] | note, then per snapshot: raw | fitted | error."""
    rows = [[Panel(rgb, "input"), Panel(gt_m, "ground truth", depth, bar=True),
             Panel(None, text=READING_NOTE)]]
    for name, (raw_m, fitted_m) in predictions.items():
        raw_title, fitted_title, error_title = _snapshot_titles(name)
        rows.append([Panel(raw_m, raw_title, depth), Panel(fitted_m, fitted_title, depth),
                     _error_panel(raw_m - gt_m, error_title)])
    return rows


def build_image_figure(rgb: np.ndarray, gt_m: np.ndarray,
                       predictions: dict[str, tuple[np.ndarray, np.ndarray]],
                       title: str = "", *, colormap: str = DEFAULT_DEPTH_COLORMAP) -> Figure:
    """The comparison figure of one image: input, ground truth and every snapshot's maps.

    Layout with one snapshot (up to ``MAX_SNAPSHOTS_IN_ONE_ROW``), a single row::

        input | ground truth | S1 raw | S1 MVN-fitted [depth bar] | S1 error [error bar] ...

    (with more snapshots in one row: all raw/fitted pairs, the depth bar, then all error maps).
    With more snapshots, a grid of three columns and one row per snapshot::

        input    | ground truth [depth bar] | (how to read the figure)
        S1 raw   | S1 MVN-fitted            | S1 error [error bar]
        S2 raw   | S2 MVN-fitted            | S2 error [error bar]
        ...

    Every map panel is ``PANEL_WIDTH_IN`` (3.2) inches wide at ``DPI`` (100).  Every depth
    panel (ground truth, raw, fitted) uses the same colour map and one shared scale (1st to
    99th percentile over all of them, never below 0) with one colour bar "depth (m)".  Each
    error map is ``raw - ground truth`` in metres on a diverging map centred on 0 (blue:
    predicted too near, red: too far) with its own symmetric scale and colour bar.  NaN is
    black.  Panel titles carry the snapshot names, wrapped on two lines of 28 characters
    (shortened in the middle beyond that).

    Parameters
    ----------
    rgb : ndarray
        The colour input, H x W x 3 (or H x W) uint8, or float in [0, 1].
    gt_m : ndarray
        Ground truth depth in metres (320 x 420).
    predictions : dict
        Snapshot name -> (raw prediction, MVN-fitted prediction), in metres, same shape as
        ``gt_m``; drawn in dict order.
    title : str
        Figure title (e.g. the image name); none if empty.
    colormap : str
        Matplotlib colour map of the depth panels.

    Returns
    -------
    matplotlib.figure.Figure
        With an Agg canvas; its size in inches times ``DPI`` is the PNG's size in pixels.
    """
    check_colormap(colormap)
    depth_maps = [gt_m] + [m for pair in predictions.values() for m in pair]
    vmin, vmax = depth_scale(depth_maps)
    depth = MapScale(colormap_with_black_bad(colormap), vmin, vmax,
                     colorbar_extend(depth_maps, vmin, vmax), DEPTH_BAR_LABEL)
    if len(predictions) <= MAX_SNAPSHOTS_IN_ONE_ROW:
        rows = _one_row_panels(rgb, gt_m, predictions, depth)
    else:
        rows = _grid_panels(rgb, gt_m, predictions, depth)
    return build_panel_figure(rows, title)


def image_figure(path: Path, rgb: np.ndarray, gt_m: np.ndarray,
                 predictions: dict[str, tuple[np.ndarray, np.ndarray]], title: str = "",
                 *, colormap: str = DEFAULT_DEPTH_COLORMAP) -> None:
    """Draw :func:`build_image_figure` and write it as a PNG at ``path`` (atomically).

    Parameters
    ----------
    path : Path
        The PNG to write; its folder must exist.
    rgb, gt_m, predictions, title, colormap
        As :func:`build_image_figure`, whose docstring shows the layouts.
    """
    with RENDER_LOCK:
        figure = build_image_figure(rgb, gt_m, predictions, title, colormap=colormap)
        save_png(figure, path)
