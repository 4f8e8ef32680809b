"""Grids of map panels: rows of equal-sized 2-D maps, each with a title and an optional colour bar.

A panel is a colour picture, a 2-D map drawn through a colour map on a given value scale, or a
cell of text.  Panels are placed by hand in inches (not by a layout engine), so a figure's size
follows from its rows alone and equal inputs give equal pixels.  :func:`build_panel_figure`
draws any such grid; the depth comparison figure (``comparison``) and :func:`maps_figure`
(named maps on one shared scale, e.g. the two channels of ground-truth and predicted
gradients) are built on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
from matplotlib.colors import Colormap
from matplotlib.figure import Figure

from depth_eval.pictures.colormaps import check_colormap, colormap_with_black_bad
from depth_eval.pictures.layout import (MARGIN_IN, RENDER_LOCK, SUPTITLE_HEIGHT_IN, TICK_FONT_SIZE, TITLE_FONT_SIZE, axes_at,
    new_figure, save_png, top_title)

# Map panel geometry, in inches: one panel's width, a 320 x 420 map's height, and spacing.
PANEL_WIDTH_IN = 3.2
MAP_HEIGHT_IN = PANEL_WIDTH_IN * 320.0 / 420.0
PANEL_GAP_IN = 0.12
ROW_GAP_IN = 0.12
# A panel title line and the space between the title and its map.
TITLE_LINE_IN = 0.18
TITLE_PAD_IN = 0.1
# A colour bar right of its panel: gap, bar, room for tick labels and the bar's label.
COLORBAR_GAP_IN = 0.08
COLORBAR_WIDTH_IN = 0.14
COLORBAR_LABELS_IN = 0.78
COLORBAR_BLOCK_IN = COLORBAR_GAP_IN + COLORBAR_WIDTH_IN + COLORBAR_LABELS_IN
# Fraction of the map height a colour bar spans.
COLORBAR_LENGTH = 0.92


class MapScale(NamedTuple):
    """How a 2-D map becomes colours: colour map, value range, clipped ends, bar label."""

    colormap: Colormap
    vmin: float
    vmax: float
    extend: str  # "neither", "min", "max" or "both" (see colorbar_extend)
    label: str


class Panel(NamedTuple):
    """One grid cell: a picture (``scale`` None), a map (``scale`` given), or text (no image).

    ``bar``: a colour bar of the map's scale follows the panel on its right.
    """

    image: np.ndarray | None
    title: str = ""
    scale: MapScale | None = None
    bar: bool = False
    text: str = ""


# --------------------------------------------------------------------------------------------
# Values and scales
# --------------------------------------------------------------------------------------------

def rgb_unit(rgb: np.ndarray) -> np.ndarray:
    """A colour (or grey) picture as H x W x 3 float in [0, 1]."""
    picture = np.asarray(rgb)
    if np.issubdtype(picture.dtype, np.integer):
        picture = picture / float(np.iinfo(picture.dtype).max)
    picture = np.clip(np.nan_to_num(picture.astype(np.float64)), 0.0, 1.0)
    if picture.ndim == 2:
        picture = np.repeat(picture[:, :, None], 3, axis=2)
    return picture[:, :, :3]


def finite_values(maps) -> np.ndarray:
    """All finite values of several arrays, flattened into one."""
    values = np.concatenate([np.asarray(m, dtype=np.float64).ravel() for m in maps])
    return values[np.isfinite(values)]


def colorbar_extend(maps, vmin: float, vmax: float) -> str:
    """``'neither'``, ``'min'``, ``'max'`` or ``'both'``: which ends of the scale clip values."""
    values = finite_values(maps)
    below = values.size > 0 and values.min() < vmin
    above = values.size > 0 and values.max() > vmax
    return {(False, False): "neither", (True, False): "min",
            (False, True): "max", (True, True): "both"}[(bool(below), bool(above))]


# --------------------------------------------------------------------------------------------
# Placing and drawing a grid
# --------------------------------------------------------------------------------------------

def column_lefts(rows: list[list[Panel]]) -> tuple[list[float], float]:
    """Left edge of each panel column (inches) and the figure width.

    A column is followed by a colour bar block when any panel in it has a colour bar.
    """
    columns = max(len(row) for row in rows)
    lefts, x = [], MARGIN_IN
    for column in range(columns):
        lefts.append(x)
        x += PANEL_WIDTH_IN + PANEL_GAP_IN
        if any(column < len(row) and row[column].bar for row in rows):
            x += COLORBAR_BLOCK_IN
    return lefts, x - PANEL_GAP_IN + MARGIN_IN


def _title_band_in(row: list[Panel]) -> float:
    lines = max(panel.title.count("\n") + 1 for panel in row)
    return TITLE_PAD_IN + lines * TITLE_LINE_IN


def row_tops(rows: list[list[Panel]], top_in: float,
             map_height_in: float = MAP_HEIGHT_IN) -> tuple[list[float], float]:
    """Top edge of each row's maps (inches from the figure top) and the figure height."""
    tops, y = [], top_in
    for row in rows:
        y += _title_band_in(row)
        tops.append(y)
        y += map_height_in + ROW_GAP_IN
    return tops, y - ROW_GAP_IN + MARGIN_IN


def _colorbar_axes(figure: Figure, panel_left_in: float, top_in: float, map_height_in: float):
    """A vertical colour bar's axes right of the panel starting at ``panel_left_in``."""
    inset = map_height_in * (1.0 - COLORBAR_LENGTH) / 2.0
    return axes_at(figure, panel_left_in + PANEL_WIDTH_IN + COLORBAR_GAP_IN, top_in + inset,
                   COLORBAR_WIDTH_IN, map_height_in - 2.0 * inset)


def draw_panel(figure: Figure, panel: Panel, left_in: float, top_in: float,
               map_height_in: float = MAP_HEIGHT_IN) -> None:
    """Draw one panel (and the colour bar that goes with it) at its place."""
    axes = axes_at(figure, left_in, top_in, PANEL_WIDTH_IN, map_height_in)
    if panel.image is None:
        axes.set_axis_off()
        if panel.text:
            axes.text(0.0, 0.5, panel.text, transform=axes.transAxes, va="center", ha="left",
                      fontsize=TITLE_FONT_SIZE, linespacing=1.4)
        return
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_title(panel.title, fontsize=TITLE_FONT_SIZE, linespacing=1.15)
    if panel.scale is None:
        axes.imshow(rgb_unit(panel.image), interpolation="antialiased")
        return
    scale = panel.scale
    image = axes.imshow(panel.image, cmap=scale.colormap, vmin=scale.vmin, vmax=scale.vmax,
                        interpolation="antialiased")
    if panel.bar:
        bar = figure.colorbar(image, cax=_colorbar_axes(figure, left_in, top_in, map_height_in),
                              extend=scale.extend)
        bar.set_label(scale.label, fontsize=TICK_FONT_SIZE + 1)
        bar.ax.tick_params(labelsize=TICK_FONT_SIZE)


def build_panel_figure(rows: list[list[Panel]], title: str = "",
                       map_height_in: float = MAP_HEIGHT_IN) -> Figure:
    """A figure of panel rows, every panel ``PANEL_WIDTH_IN`` x ``map_height_in`` inches.

    Columns line up across rows; a column is widened by a colour bar block when any of its
    panels has a bar.  Each row's title band fits its longest (most lines) title.
    """
    lefts, width_in = column_lefts(rows)
    tops, height_in = row_tops(rows, SUPTITLE_HEIGHT_IN if title else MARGIN_IN, map_height_in)
    figure = new_figure(width_in, height_in)
    for row, top_in in zip(rows, tops):
        for panel, left_in in zip(row, lefts):
            draw_panel(figure, panel, left_in, top_in, map_height_in)
    if title:
        top_title(figure, title)
    return figure


# --------------------------------------------------------------------------------------------
# Named maps on one shared scale
# --------------------------------------------------------------------------------------------

def build_maps_figure(rgb: np.ndarray | None,
                      rows: Sequence[Sequence[tuple[str, np.ndarray]]],
                      scale: tuple[float, float], colormap: str, title: str = "", *,
                      label: str = "") -> Figure:
    """Rows of named 2-D maps on one shared value scale and colour map, beside the input.

    Layout (``rgb`` given; without it the first column is left out)::

        input | name 1,1 | name 1,2 ... [bar]
              | name 2,1 | name 2,2 ...
              ...

    e.g. ground-truth gradients (both channels) in the first row, predicted ones in the
    second.  Every map uses ``colormap`` from ``scale[0]`` to ``scale[1]`` (values beyond are
    drawn in the end colours, NaN black); one colour bar labelled ``label`` follows the first
    row's last map.  Panels are ``PANEL_WIDTH_IN`` wide, their height following the first
    map's aspect ratio; names are panel titles (``\\n`` breaks a line).

    Parameters
    ----------
    rgb : ndarray or None
        The colour input, H x W x 3 (or H x W) uint8, or float in [0, 1]; None for no input.
    rows : sequence of sequences of (str, ndarray)
        Rows of (panel title, H x W map); every map the same shape.
    scale : (float, float)
        ``(vmin, vmax)`` shared by all maps, ``vmin < vmax``.
    colormap : str
        Matplotlib colour map name.
    title : str
        Figure title; none if empty.
    label : str
        The colour bar's label (e.g. the maps' unit).

    Returns
    -------
    matplotlib.figure.Figure
        With an Agg canvas; its size in inches times ``DPI`` is the PNG's size in pixels.

    Raises
    ------
    ValueError
        For an unknown colour map, no maps, a map that is not 2-D or not the first map's
        shape, or ``vmax <= vmin``.
    """
    check_colormap(colormap)
    rows = [list(row) for row in rows if len(row)]
    maps = [np.asarray(image) for row in rows for _, image in row]
    if not maps:
        raise ValueError("no maps to draw")
    shape = maps[0].shape
    for image in maps:
        if image.ndim != 2 or image.shape != shape:
            raise ValueError(f"expected H x W maps of shape {shape}, got shape {image.shape}")
    vmin, vmax = float(scale[0]), float(scale[1])
    if not vmax > vmin:
        raise ValueError(f"vmax ({vmax}) must be greater than vmin ({vmin})")
    shared = MapScale(colormap_with_black_bad(colormap), vmin, vmax,
                      colorbar_extend(maps, vmin, vmax), label)
    panel_rows = [[Panel(np.asarray(image), name, shared) for name, image in row] for row in rows]
    panel_rows[0][-1] = panel_rows[0][-1]._replace(bar=True)
    if rgb is not None:
        panel_rows = [[Panel(rgb, "input") if index == 0 else Panel(None)] + row
                      for index, row in enumerate(panel_rows)]
    return build_panel_figure(panel_rows, title, PANEL_WIDTH_IN * shape[0] / shape[1])


def maps_figure(path: Path, rgb: np.ndarray | None,
                rows: Sequence[Sequence[tuple[str, np.ndarray]]], scale: tuple[float, float],
                colormap: str, title: str = "", *, label: str = "") -> None:
    """Draw :func:`build_maps_figure` and write it as a PNG at ``path`` (atomically).

    Parameters
    ----------
    path : Path
        The PNG to write; its folder must exist.
    rgb, rows, scale, colormap, title, label
        As :func:`build_maps_figure`, whose docstring shows the layout.
    """
    with RENDER_LOCK:
        save_png(build_maps_figure(rgb, rows, scale, colormap, title, label=label), path)
