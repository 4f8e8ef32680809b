"""Matplotlib colour maps by name: the check of ``--colormap`` and colour-mapped depth PNGs.

Only ``matplotlib`` itself (its colour-map registry) is imported here, neither pyplot nor the
figure machinery, so ``--colormap`` costs no more than the colour maps need.
"""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib.colors import Colormap

EXAMPLE_COLORMAPS = "viridis, magma, plasma, inferno, turbo, gray"


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


def colormap_with_black_bad(name: str) -> Colormap:
    """The colour map ``name`` (keeping its name) drawing NaN pixels black."""
    return matplotlib.colormaps[name].with_extremes(bad="black")


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
