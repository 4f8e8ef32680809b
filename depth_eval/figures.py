"""Figures for people: per-image comparison panels, metric bar charts and training curves.

Pure rendering functions on arrays and numbers; no knowledge of the pipeline.  Figures are built
as :class:`matplotlib.figure.Figure` objects with the Agg canvas attached directly, so no pyplot
state and no global backend setting is touched and no display is needed.  Every PNG is written
atomically (temporary file in the same folder, then a rename) and byte-for-byte deterministic
for the same inputs and library versions.

The ``build_*`` functions return the figure (for tests and for callers that want another
format); ``image_figure`` and ``metrics_figure`` build and save.
"""

from __future__ import annotations

import math
import re
import threading
from pathlib import Path
from typing import NamedTuple

import cv2
import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from .files import write_atomic

# Resolution of every saved figure; sizes below are in inches, so pixels = inches * DPI.
DPI = 100
# zlib level of the figure PNGs (1: fast; the pictures are for looking at, not archiving).
FIGURE_PNG_COMPRESSION = 1

# Image figure geometry, in inches: one map panel, its 320 x 420 map's height, and spacing.
PANEL_WIDTH_IN = 3.2
MAP_HEIGHT_IN = PANEL_WIDTH_IN * 320.0 / 420.0
PANEL_GAP_IN = 0.12
ROW_GAP_IN = 0.12
MARGIN_IN = 0.15
# A panel title line and the space between the title and its map.
TITLE_LINE_IN = 0.18
TITLE_PAD_IN = 0.1
# Band above the panels holding the figure title, and the title's distance from the top.
SUPTITLE_HEIGHT_IN = 0.5
SUPTITLE_TOP_IN = 0.1
# A colour bar right of its panel: gap, bar, room for tick labels and the bar's label.
COLORBAR_GAP_IN = 0.08
COLORBAR_WIDTH_IN = 0.14
COLORBAR_LABELS_IN = 0.78
COLORBAR_BLOCK_IN = COLORBAR_GAP_IN + COLORBAR_WIDTH_IN + COLORBAR_LABELS_IN
# Fraction of the map height a colour bar spans.
COLORBAR_LENGTH = 0.92
# Up to this many snapshots, ``image_figure`` draws a single row; beyond it, one row each.
# (A row of three snapshots is 11 panels, 3900 x 360 pixels: too thin to read on a screen.)
MAX_SNAPSHOTS_IN_ONE_ROW = 1
# Snapshot names: characters per title line (two lines at most), and the bar charts' labels.
MAX_NAME_CHARS = 28
ELLIPSIS = "\u2026"
NAME_TOKEN_PATTERN = re.compile(r"[^_\-.]*[_\-.]|[^_\-.]+")

DEFAULT_DEPTH_COLORMAP = "viridis"
# Diverging map for signed errors: blue = predicted too near, red = predicted too far.
ERROR_COLORMAP = "RdBu_r"
ERROR_COLORMAP_WITH_BAD = matplotlib.colormaps[ERROR_COLORMAP].with_extremes(bad="black")
# Robust colour scales ignore the most extreme values (percent of pixels at each end).
DEPTH_SCALE_PERCENTILES = (1.0, 99.0)
ERROR_SCALE_PERCENTILE = 99.0
# Smallest span a colour scale may have, in metres (a constant map still gets a usable bar).
MIN_SCALE_SPAN_M = 0.01

TITLE_FONT_SIZE = 10
SUPTITLE_FONT_SIZE = 13
TICK_FONT_SIZE = 8

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
CURVE_PANEL_HEIGHT_IN = 2.6

# Caffe names training snapshots ``<prefix>_iter_<N>``.
ITERATION_PATTERN = re.compile(r"_iter_(\d+)")
CURVE_SUFFIX = "_curve"

EXAMPLE_COLORMAPS = "viridis, magma, plasma, inferno, turbo, gray"

# Matplotlib's text and font caches are shared between figures; draw one figure at a time.
_RENDER_LOCK = threading.Lock()


# --------------------------------------------------------------------------------------------
# Colour maps and single-image PNGs
# --------------------------------------------------------------------------------------------

def check_colormap(name: str) -> None:
    """Raise if ``name`` is not a matplotlib colour map.

    Parameters
    ----------
    name : str
        A name registered in ``matplotlib.colormaps`` (e.g. ``viridis``, ``magma_r``).

    Raises
    ------
    ValueError
        ``unknown colour map 'x'; e.g. viridis, magma, ...`` for any other name.
    """
    if not isinstance(name, str) or name not in matplotlib.colormaps:
        raise ValueError(f"unknown colour map '{name}'; e.g. {EXAMPLE_COLORMAPS}")


def colormap_png(depth_m: np.ndarray, colormap: str, vmin: float = 0.0,
                 vmax: float = 10.0) -> np.ndarray:
    """Depth mapped through a matplotlib colour map, as an 8-bit BGR picture for ``cv2.imencode``.

    Parameters
    ----------
    depth_m : ndarray
        H x W depth in metres.
    colormap : str
        Matplotlib colour map name; ``vmin`` maps to its first colour, ``vmax`` to its last.
    vmin, vmax : float
        Depths at the two ends of the map; values outside are clipped to the ends.

    Returns
    -------
    ndarray
        H x W x 3 uint8, BGR order.  NaN pixels are black.

    Raises
    ------
    ValueError
        For an unknown colour map, a map that is not 2-D, or ``vmax <= vmin``.
    """
    check_colormap(colormap)
    depth = np.asarray(depth_m, dtype=np.float64)
    if depth.ndim != 2:
        raise ValueError(f"expected an H x W depth map, got shape {depth.shape}")
    if not vmax > vmin:
        raise ValueError(f"vmax ({vmax}) must be greater than vmin ({vmin})")
    lookup_bgr = _colormap_lookup_bgr(colormap)
    unknown = np.isnan(depth)
    with np.errstate(invalid="ignore"):
        unit = np.clip((depth - vmin) / (vmax - vmin), 0.0, 1.0)
    levels = np.rint(np.where(unknown, 0.0, unit) * (len(lookup_bgr) - 1)).astype(np.intp)
    picture = lookup_bgr[levels]
    picture[unknown] = 0
    return picture


def _colormap_lookup_bgr(colormap: str, levels: int = 256) -> np.ndarray:
    """``levels`` x 3 uint8 BGR colours sampled evenly along a colour map."""
    rgba = matplotlib.colormaps[colormap](np.linspace(0.0, 1.0, levels), bytes=True)
    return np.ascontiguousarray(rgba[:, 2::-1])


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------

def shorten_name(name: str, max_chars: int = MAX_NAME_CHARS) -> str:
    """``name`` unchanged if short enough, else its start and end around an ellipsis.

    The end is kept as long as the start or one longer, because snapshot names differ at the
    end (``..._iter_90000``).
    """
    if len(name) <= max_chars:
        return name
    tail = max_chars // 2
    head = max_chars - 1 - tail
    return name[:head] + ELLIPSIS + name[-tail:]


def wrap_name(name: str, line_chars: int = MAX_NAME_CHARS) -> list[str]:
    """A snapshot name as one or two lines of at most ``line_chars`` characters.

    Lines break after ``_``, ``-`` or ``.`` where possible.  A name too long for two lines
    keeps its start (ending in an ellipsis) and its end, where snapshot names differ.
    """
    if len(name) <= line_chars:
        return [name]
    tokens = NAME_TOKEN_PATTERN.findall(name)
    if len(name) <= 2 * line_chars:
        for split in range(len(tokens) - 1, 0, -1):
            first, second = "".join(tokens[:split]), "".join(tokens[split:])
            if len(first) <= line_chars and len(second) <= line_chars:
                return [first, second]
        return [name[:line_chars], name[line_chars:]]
    return [_tokens_within(tokens, line_chars - 1) + ELLIPSIS,
            _tokens_within(tokens[::-1], line_chars, reverse=True)]


def _tokens_within(tokens: list[str], max_chars: int, reverse: bool = False) -> str:
    """The longest run of whole leading tokens within ``max_chars`` (else a cut first token).

    With ``reverse``, ``tokens`` are given last first and the result is the name's tail.
    """
    kept = ""
    for token in tokens:
        candidate = token + kept if reverse else kept + token
        if len(candidate) > max_chars:
            break
        kept = candidate
    if kept:
        return kept
    return tokens[0][-max_chars:] if reverse else tokens[0][:max_chars]


def _whole_pixels(inches: float) -> float:
    """``inches`` rounded up so that ``inches * DPI`` is a whole number of pixels."""
    return math.ceil(round(inches * DPI, 6)) / DPI


def _new_figure(width_in: float, height_in: float, constrained: bool = False) -> Figure:
    """A figure (whole pixels at ``DPI``) with its own Agg canvas, no pyplot involved."""
    figure = Figure(figsize=(_whole_pixels(width_in), _whole_pixels(height_in)), dpi=DPI,
                    layout="constrained" if constrained else None)
    FigureCanvasAgg(figure)
    if constrained:
        figure.get_layout_engine().set(w_pad=0.04, h_pad=0.04, wspace=0.02, hspace=0.02)
    return figure


def figure_pixels(figure: Figure) -> tuple[int, int]:
    """(width, height) in pixels of the PNG :func:`save_png` writes for ``figure``."""
    width_in, height_in = figure.get_size_inches()
    return round(width_in * DPI), round(height_in * DPI)


def render_bgr(figure: Figure) -> np.ndarray:
    """The figure drawn by Agg at ``DPI``, as an H x W x 3 uint8 BGR picture."""
    figure.set_dpi(DPI)
    canvas = figure.canvas
    if not isinstance(canvas, FigureCanvasAgg):
        canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return cv2.cvtColor(np.asarray(canvas.buffer_rgba()), cv2.COLOR_RGBA2BGR)


def save_png(figure: Figure, path: Path) -> None:
    """Render ``figure`` (pixels = size in inches * ``DPI``) and write a PNG atomically.

    OpenCV encodes the PNG (several times faster than matplotlib's encoder on maps with noise);
    the file holds no time stamp or version, so equal figures give equal bytes.
    """
    ok, data = cv2.imencode(".png", render_bgr(figure),
                            [cv2.IMWRITE_PNG_COMPRESSION, FIGURE_PNG_COMPRESSION])
    if not ok:
        raise OSError(f"PNG encoding failed for {path}")
    write_atomic(Path(path), data.tobytes())


def _rgb_unit(rgb: np.ndarray) -> np.ndarray:
    """A colour (or grey) picture as H x W x 3 float in [0, 1]."""
    picture = np.asarray(rgb)
    if np.issubdtype(picture.dtype, np.integer):
        picture = picture / float(np.iinfo(picture.dtype).max)
    picture = np.clip(np.nan_to_num(picture.astype(np.float64)), 0.0, 1.0)
    if picture.ndim == 2:
        picture = np.repeat(picture[:, :, None], 3, axis=2)
    return picture[:, :, :3]


def _finite_values(maps) -> np.ndarray:
    """All finite values of several arrays, flattened into one."""
    values = np.concatenate([np.asarray(m, dtype=np.float64).ravel() for m in maps])
    return values[np.isfinite(values)]


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
    values = _finite_values(maps)
    if values.size == 0:
        return 0.0, 10.0
    low, high = np.percentile(values, DEPTH_SCALE_PERCENTILES)
    low = max(float(low), 0.0)
    high = max(float(high), low + MIN_SCALE_SPAN_M)
    return low, high


def error_scale(error_m: np.ndarray) -> float:
    """Half-width of a symmetric colour scale for a signed error map (99th percentile of |e|)."""
    values = np.abs(_finite_values([error_m]))
    if values.size == 0:
        return 1.0
    return max(float(np.percentile(values, ERROR_SCALE_PERCENTILE)), MIN_SCALE_SPAN_M)


def _colorbar_extend(maps, vmin: float, vmax: float) -> str:
    """``'neither'``, ``'min'``, ``'max'`` or ``'both'``: which ends of the scale clip values."""
    values = _finite_values(maps)
    below = values.size > 0 and values.min() < vmin
    above = values.size > 0 and values.max() > vmax
    return {(False, False): "neither", (True, False): "min",
            (False, True): "max", (True, True): "both"}[(bool(below), bool(above))]


# --------------------------------------------------------------------------------------------
# Per-image comparison figure
# --------------------------------------------------------------------------------------------

class _Panel(NamedTuple):
    """One map panel to draw: what, its title lines, and whether a colour bar follows it."""

    kind: str  # "input", "depth", "error" or "note"
    image: np.ndarray | None
    title: str
    depth_bar: bool = False


class _MapStyle:
    """What every depth panel of one figure shares: colour map and scale."""

    def __init__(self, colormap: str, vmin: float, vmax: float, depth_maps):
        self.colormap = matplotlib.colormaps[colormap].with_extremes(bad="black")
        self.vmin = vmin
        self.vmax = vmax
        self.extend = _colorbar_extend(depth_maps, vmin, vmax)


def _snapshot_titles(name: str) -> tuple[str, str, str]:
    """Titles of a snapshot's raw, fitted and error panels (the name wrapped, then the kind)."""
    wrapped = "\n".join(wrap_name(name))
    return f"{wrapped}\nraw", f"{wrapped}\nMVN-fitted", f"{wrapped}\nerror (raw \u2212 truth)"


def _one_row_panels(rgb, gt_m, predictions) -> list[list[_Panel]]:
    """input | truth | raw, fitted per snapshot [depth bar] | error per snapshot."""
    row = [_Panel("input", rgb, "input"), _Panel("depth", gt_m, "ground truth")]
    for name, (raw_m, fitted_m) in predictions.items():
        raw_title, fitted_title, _ = _snapshot_titles(name)
        row += [_Panel("depth", raw_m, raw_title), _Panel("depth", fitted_m, fitted_title)]
    row[-1] = row[-1]._replace(depth_bar=True)
    for name, (raw_m, _) in predictions.items():
        row.append(_Panel("error", raw_m - gt_m, _snapshot_titles(name)[2]))
    return [row]


def _grid_panels(rgb, gt_m, predictions) -> list[list[_Panel]]:
    """input | truth [depth bar] | note, then per snapshot: raw | fitted | error."""
    rows = [[_Panel("input", rgb, "input"), _Panel("depth", gt_m, "ground truth", True),
             _Panel("note", None, "")]]
    for name, (raw_m, fitted_m) in predictions.items():
        raw_title, fitted_title, error_title = _snapshot_titles(name)
        rows.append([_Panel("depth", raw_m, raw_title), _Panel("depth", fitted_m, fitted_title),
                     _Panel("error", raw_m - gt_m, error_title)])
    return rows


def _has_bar_after(panel: _Panel) -> bool:
    return panel.kind == "error" or panel.depth_bar


def _column_lefts(rows: list[list[_Panel]]) -> tuple[list[float], float]:
    """Left edge of each panel column (inches) and the figure width.

    A column is followed by a colour bar block when any panel in it has a colour bar.
    """
    columns = max(len(row) for row in rows)
    lefts, x = [], MARGIN_IN
    for column in range(columns):
        lefts.append(x)
        x += PANEL_WIDTH_IN + PANEL_GAP_IN
        if any(column < len(row) and _has_bar_after(row[column]) for row in rows):
            x += COLORBAR_BLOCK_IN
    return lefts, x - PANEL_GAP_IN + MARGIN_IN


def _title_band_in(row: list[_Panel]) -> float:
    lines = max(panel.title.count("\n") + 1 for panel in row)
    return TITLE_PAD_IN + lines * TITLE_LINE_IN


def _row_tops(rows: list[list[_Panel]], top_in: float) -> tuple[list[float], float]:
    """Top edge of each row's maps (inches from the figure top) and the figure height."""
    tops, y = [], top_in
    for row in rows:
        y += _title_band_in(row)
        tops.append(y)
        y += MAP_HEIGHT_IN + ROW_GAP_IN
    return tops, y - ROW_GAP_IN + MARGIN_IN


def _axes_at(figure: Figure, left_in: float, top_in: float, width_in: float,
             height_in: float):
    """Axes placed in inches from the figure's top-left corner."""
    width, height = figure.get_size_inches()
    return figure.add_axes((left_in / width, 1.0 - (top_in + height_in) / height,
                            width_in / width, height_in / height))


def _colorbar_axes(figure: Figure, panel_left_in: float, top_in: float):
    """A vertical colour bar's axes right of the panel starting at ``panel_left_in``."""
    inset = MAP_HEIGHT_IN * (1.0 - COLORBAR_LENGTH) / 2.0
    return _axes_at(figure, panel_left_in + PANEL_WIDTH_IN + COLORBAR_GAP_IN, top_in + inset,
                    COLORBAR_WIDTH_IN, MAP_HEIGHT_IN - 2.0 * inset)


def _style_map_axes(axes, title: str) -> None:
    """A map panel: framed, no ticks, title on top."""
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_title(title, fontsize=TITLE_FONT_SIZE, linespacing=1.15)


def _label_colorbar(bar, label: str) -> None:
    bar.set_label(label, fontsize=TICK_FONT_SIZE + 1)
    bar.ax.tick_params(labelsize=TICK_FONT_SIZE)


def _draw_panel(figure: Figure, panel: _Panel, left_in: float, top_in: float,
                style: _MapStyle) -> None:
    """Draw one panel (and the colour bar that goes with it) at its place."""
    axes = _axes_at(figure, left_in, top_in, PANEL_WIDTH_IN, MAP_HEIGHT_IN)
    if panel.kind == "note":
        _draw_error_note(axes)
        return
    _style_map_axes(axes, panel.title)
    if panel.kind == "input":
        axes.imshow(_rgb_unit(panel.image), interpolation="antialiased")
        return
    if panel.kind == "depth":
        image = axes.imshow(panel.image, cmap=style.colormap, vmin=style.vmin, vmax=style.vmax,
                            interpolation="antialiased")
        if panel.depth_bar:
            bar = figure.colorbar(image, cax=_colorbar_axes(figure, left_in, top_in),
                                  extend=style.extend)
            _label_colorbar(bar, "depth (m)")
        return
    half_width = error_scale(panel.image)
    image = axes.imshow(panel.image, cmap=ERROR_COLORMAP_WITH_BAD, vmin=-half_width,
                        vmax=half_width, interpolation="antialiased")
    bar = figure.colorbar(image, cax=_colorbar_axes(figure, left_in, top_in),
                          extend=_colorbar_extend([panel.image], -half_width, half_width))
    _label_colorbar(bar, "raw \u2212 truth (m)")


def _draw_error_note(axes) -> None:
    """The otherwise empty top-right grid cell: how to read the figure."""
    axes.set_axis_off()
    axes.text(0.0, 0.5, "all depth panels share one scale:\nthe \"depth (m)\" bar on the left\n\n"
              "error = raw prediction \u2212 ground truth\nblue: predicted too near\n"
              "red: predicted too far\neach error map has its own scale",
              transform=axes.transAxes, va="center", ha="left", fontsize=TITLE_FONT_SIZE,
              linespacing=1.4)


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
    style = _MapStyle(colormap, *depth_scale(depth_maps), depth_maps)
    if len(predictions) <= MAX_SNAPSHOTS_IN_ONE_ROW:
        rows = _one_row_panels(rgb, gt_m, predictions)
    else:
        rows = _grid_panels(rgb, gt_m, predictions)
    lefts, width_in = _column_lefts(rows)
    tops, height_in = _row_tops(rows, SUPTITLE_HEIGHT_IN if title else MARGIN_IN)
    figure = _new_figure(width_in, height_in)
    for row, top_in in zip(rows, tops):
        for panel, left_in in zip(row, lefts):
            _draw_panel(figure, panel, left_in, top_in, style)
    if title:
        figure.suptitle(title, fontsize=SUPTITLE_FONT_SIZE,
                        y=1.0 - SUPTITLE_TOP_IN / figure.get_size_inches()[1], va="top")
    return figure


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
    with _RENDER_LOCK:
        figure = build_image_figure(rgb, gt_m, predictions, title, colormap=colormap)
        save_png(figure, path)


# --------------------------------------------------------------------------------------------
# Metric figures
# --------------------------------------------------------------------------------------------

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
                         lower_is_better: dict[str, bool]) -> Figure:
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

    Returns
    -------
    matplotlib.figure.Figure
    """
    metrics = _metric_titles(means)
    names = list(means)
    rows, columns = _grid_shape(len(metrics))
    panel_height = max(1.6, BAR_HEIGHT_IN * len(names) + METRIC_PANEL_EXTRA_HEIGHT_IN)
    figure = _new_figure(NAME_LABEL_WIDTH_IN + columns * METRIC_PANEL_WIDTH_IN,
                         rows * panel_height + SUPTITLE_HEIGHT_IN, constrained=True)
    axes_grid = figure.subplots(rows, columns, squeeze=False, sharey=True)
    labels = [shorten_name(name, BAR_LABEL_CHARS) for name in names]
    for index, axes in enumerate(axes_grid.ravel()):
        if index >= len(metrics):
            axes.set_axis_off()
            continue
        metric = metrics[index]
        values = {name: means[name].get(metric, math.nan) for name in names}
        _draw_metric_bars(axes, metric, values, labels, lower_is_better)
    axes_grid[0, 0].invert_yaxis()
    figure.suptitle(f"mean metrics of {len(names)} snapshot{'s' * (len(names) != 1)} "
                    f"(best in orange)", fontsize=SUPTITLE_FONT_SIZE)
    return figure


def _draw_metric_bars(axes, metric: str, values: dict[str, float], labels: list[str],
                      lower_is_better: dict[str, bool]) -> None:
    best = best_snapshots(values, lower_is_better.get(metric))
    positions = np.arange(len(values))
    heights = [v if v is not None and math.isfinite(v) else 0.0 for v in values.values()]
    colors = [BEST_BAR_COLOR if name in best else BAR_COLOR for name in values]
    bars = axes.barh(positions, heights, color=colors, height=0.7)
    for bar, value in zip(bars, values.values()):
        if value is None or not math.isfinite(value):
            bar.set_visible(False)
            continue
        axes.annotate(_value_text(value), (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                      xytext=(3 if value >= 0 else -3, 0), textcoords="offset points",
                      ha="left" if value >= 0 else "right", va="center",
                      fontsize=TICK_FONT_SIZE)
    axes.set_yticks(positions, labels)
    axes.set_title(_metric_heading(metric, lower_is_better), fontsize=TITLE_FONT_SIZE)
    axes.tick_params(labelsize=TICK_FONT_SIZE)
    axes.xaxis.set_major_locator(MaxNLocator(4))
    _leave_room_for_value_text(axes, heights)
    axes.grid(axis="x", color="#dddddd", linewidth=0.6)
    axes.set_axisbelow(True)


def _leave_room_for_value_text(axes, heights: list[float]) -> None:
    """Widen the x range by 35 % of the values' span so the numbers after the bars fit."""
    low = min([0.0] + heights)
    high = max([0.0] + heights)
    span = (high - low) or 1.0
    axes.set_xlim(low - (span * 0.35 if low < 0 else 0.0), high + span * 0.35)


def snapshot_iteration(name: str) -> tuple[str, int] | None:
    """``(run, iteration)`` of a Caffe training snapshot name, else None.

    ``run`` is the name without its ``_iter_<N>`` part (``a_iter_500`` -> ``('a', 500)``,
    ``b_iter_500_ft`` -> ``('b_ft', 500)``).
    """
    matches = list(ITERATION_PATTERN.finditer(name))
    if not matches:
        return None
    last = matches[-1]
    return name[:last.start()] + name[last.end():], int(last.group(1))


def training_runs(names) -> dict[str, list[tuple[int, str]]] | None:
    """Run -> [(iteration, snapshot name)] sorted by iteration, if every name has ``_iter_N``."""
    runs: dict[str, list[tuple[int, str]]] = {}
    for name in names:
        parsed = snapshot_iteration(name)
        if parsed is None:
            return None
        runs.setdefault(parsed[0], []).append((parsed[1], name))
    if not runs:
        return None
    return {run: sorted(points) for run, points in runs.items()}


def _iteration_text(iteration: float, _position=None) -> str:
    """Tick label for an iteration count: 500, 10k, 1.5M."""
    if abs(iteration) >= 1_000_000:
        return f"{iteration / 1_000_000:g}M"
    if abs(iteration) >= 1_000:
        return f"{iteration / 1_000:g}k"
    return f"{iteration:g}"


def build_curve_figure(means: dict[str, dict[str, float]], lower_is_better: dict[str, bool],
                       runs: dict[str, list[tuple[int, str]]]) -> Figure:
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

    Returns
    -------
    matplotlib.figure.Figure
    """
    metrics = _metric_titles(means)
    rows, columns = _grid_shape(len(metrics))
    legend_height = 0.3 * len(runs) if len(runs) > 1 else 0.0
    figure = _new_figure(0.6 + columns * METRIC_PANEL_WIDTH_IN,
                         rows * CURVE_PANEL_HEIGHT_IN + SUPTITLE_HEIGHT_IN + legend_height,
                         constrained=True)
    axes_grid = figure.subplots(rows, columns, squeeze=False)
    for index, axes in enumerate(axes_grid.ravel()):
        if index >= len(metrics):
            axes.set_axis_off()
            continue
        _draw_metric_curves(axes, metrics[index], means, runs, lower_is_better)
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


def _draw_metric_curves(axes, metric: str, means, runs, lower_is_better) -> None:
    for run, points in runs.items():
        iterations = [iteration for iteration, _ in points]
        values = [means[name].get(metric, math.nan) for _, name in points]
        axes.plot(iterations, values, marker="o", markersize=4, linewidth=1.5,
                  label=shorten_name(run, 40) or "(no prefix)")
    axes.set_title(_metric_heading(metric, lower_is_better), fontsize=TITLE_FONT_SIZE)
    axes.tick_params(labelsize=TICK_FONT_SIZE)
    axes.xaxis.set_major_locator(MaxNLocator(4, integer=True))
    axes.xaxis.set_major_formatter(FuncFormatter(_iteration_text))
    axes.yaxis.set_major_locator(MaxNLocator(5))
    axes.grid(color="#dddddd", linewidth=0.6)


def curve_path(path: Path) -> Path:
    """Where :func:`metrics_figure` writes the training curves beside ``path``."""
    path = Path(path)
    return path.with_name(path.stem + CURVE_SUFFIX + ".png")


def metrics_figure(path: Path, means: dict[str, dict[str, float]],
                   lower_is_better: dict[str, bool]) -> list[Path]:
    """Write the metric bar charts, and training curves when names carry ``_iter_N``.

    Parameters
    ----------
    path : Path
        The bar-chart PNG (:func:`build_metrics_figure`); its folder must exist.
    means : dict
        Snapshot name -> metric title -> mean value.
    lower_is_better : dict
        Metric title -> whether lower is better.

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
    with _RENDER_LOCK:
        save_png(build_metrics_figure(means, lower_is_better), path)
        runs = training_runs(means)
        if runs is not None and any(len(points) > 1 for points in runs.values()):
            save_png(build_curve_figure(means, lower_is_better, runs), curve_path(path))
            written.append(curve_path(path))
    return written
