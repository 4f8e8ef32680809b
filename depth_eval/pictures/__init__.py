"""Pictures: the thesis' 8-bit PNGs of every image, and figures for people (per-image
comparison panels, metric bar charts and training curves).

Pure rendering functions on arrays and numbers; no knowledge of the pipeline.

- :mod:`.pngs`: the PNGs the thesis evaluation wrote (input, depth, ground truth), encoded.

Figure modules (each imported only when one of its names is first used, so ``--colormap``
alone loads the colour maps, not the figure machinery):

- :mod:`.layout`: whole-pixel figures, axes in inches, name shortening, rendering, PNGs;
- :mod:`.colormaps`: colour maps by name, colour-mapped depth pictures;
- :mod:`.panels`: grids of map panels, and :func:`maps_figure` (named maps, one scale);
- :mod:`.comparison`: the per-image depth comparison figure (:func:`image_figure`);
- :mod:`.charts`: metric bar charts and training curves (:func:`metrics_figure`).

The ``build_*`` functions return the figure (for tests and for callers that want another
format); ``image_figure``, ``maps_figure`` and ``metrics_figure`` build and save.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# Public name -> the module defining it.
_EXPORTS = {
    "layout": ("DPI", "MAX_NAME_CHARS", "figure_pixels", "png_text", "render_bgr", "save_png",
               "shorten_name", "wrap_name"),
    "colormaps": ("EXAMPLE_COLORMAPS", "check_colormap", "colormap_png"),
    "panels": ("MapScale", "Panel", "build_maps_figure", "build_panel_figure", "maps_figure"),
    "comparison": ("DEFAULT_DEPTH_COLORMAP", "ERROR_COLORMAP", "build_image_figure",
                   "depth_scale", "error_scale", "image_figure"),
    "charts": ("BAR_COLOR", "BEST_BAR_COLOR", "best_snapshots", "build_curve_figure",
               "build_metrics_figure", "curve_path", "iteration_text", "metrics_figure"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)

if TYPE_CHECKING:  # the names __getattr__ resolves lazily, for type checkers
    from depth_eval.pictures.charts import (BAR_COLOR, BEST_BAR_COLOR, best_snapshots,
                                            build_curve_figure, build_metrics_figure, curve_path,
                                            iteration_text, metrics_figure)
    from depth_eval.pictures.colormaps import EXAMPLE_COLORMAPS, check_colormap, colormap_png
    from depth_eval.pictures.comparison import (DEFAULT_DEPTH_COLORMAP, ERROR_COLORMAP,
                                                build_image_figure, depth_scale, error_scale,
                                                image_figure)
    from depth_eval.pictures.layout import (DPI, MAX_NAME_CHARS, figure_pixels, png_text,
                                            render_bgr, save_png, shorten_name, wrap_name)
    from depth_eval.pictures.panels import (MapScale, Panel, build_maps_figure,
                                            build_panel_figure, maps_figure)


def __getattr__(name: str):
    """Import the module defining ``name`` on first use (PEP 562)."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
