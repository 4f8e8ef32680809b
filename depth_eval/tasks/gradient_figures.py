"""The gradient task's figures (``--figures``): per image the input, the ground-truth gradients
and every snapshot's predicted gradients (both channels, one shared scale), and the metric
charts.

The predictions are drawn MVN-fitted to the ground truth's channel (its mean and standard
deviation, as ``X_gradN.png`` fits them to the normalised one): a net's raw gradients are on
another scale than the filtered ground truth (SPEC-grad.md 8: 3-8x for the thesis' training
target, far more for an untrained net), which would leave the ground truth blank on any scale
shared with them.  The raw scale is what RMSE reports.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from depth_eval.scoring import gradient_metrics
from depth_eval.inputs import images
from depth_eval.writing import OutputFolder
from depth_eval.inputs.ground_truth import load_ground_truth
from depth_eval.scoring.keys import ranked

# A diverging map: a gradient's sign matters (farther down / right is red).
GRADIENT_COLORMAP = "RdBu_r"
# The shared scale covers this percentile of every map's |value| (a few outliers saturate).
SCALE_PERCENTILE = 99.0
# Figure file name per input stem: beside the depth task's ``<stem>.png`` in a joint run.
FIGURE_SUFFIX = "_gradients"


def figure_name(stem: str) -> str:
    return f"{stem}{FIGURE_SUFFIX}.png"


def shared_scale(maps) -> tuple[float, float]:
    """``(-v, v)``, v the largest ``SCALE_PERCENTILE`` of the maps' absolute finite values
    (1 when there is none: an all-zero ground truth)."""
    spans = [np.percentile(np.abs(m[np.isfinite(m)]), SCALE_PERCENTILE)
             for m in maps if np.isfinite(m).any()]
    largest = float(max(spans, default=0.0))
    largest = largest if largest > 0 else 1.0
    return -largest, largest


def fit_channels(prediction: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Each prediction channel with the target channel's mean and standard deviation (NaN
    where the prediction is constant: drawn black)."""
    p, t = np.asarray(prediction, np.float64), np.asarray(target, np.float64)
    axes = (1, 2)
    with np.errstate(all="ignore"):
        standard = (p - p.mean(axis=axes, keepdims=True)) / p.std(axis=axes, keepdims=True)
    return standard * t.std(axis=axes, keepdims=True) + t.mean(axis=axes, keepdims=True)


def gradient_rows(target: np.ndarray, predictions: dict[str, np.ndarray]) -> list:
    """maps_figure rows: the ground truth's two channels, then each snapshot's (fitted)."""
    rows = [[("ground truth gt1 (vertical)", target[0]),
             ("ground truth gt2 (horizontal)", target[1])]]
    for name, prediction in predictions.items():
        fitted = fit_channels(prediction, target)
        rows.append([(f"{name}\ngrad1 (MVN-fitted)", fitted[0]),
                     (f"{name}\ngrad2 (MVN-fitted)", fitted[1])])
    return rows


def write_figures(folder_path: Path, pairs, kept: dict, means: dict, gt_settings,
                  charts: bool = True, intervals: dict | None = None) -> list[str]:
    """Per-image gradient figures (and, with ``charts``, the metric charts) into
    OUT_DIR/figures/.

    ``kept``: stem -> snapshot -> zoomed prediction (2 x 318 x 418, GT units); ``means``:
    snapshot -> MetricKey -> value.  Returns the problems, one line each.
    """
    from depth_eval import pictures  # matplotlib, when the figures are drawn

    folder = OutputFolder(folder_path)
    by_stem = {pair.stem: pair for pair in pairs}
    names = [figure_name(stem) for stem in kept]
    if charts:
        names += ["metrics.png", "metrics_curve.png"]
    taken = set(folder.claim(names))
    problems = [f"{folder.path / name}: exists and was not written by depth_eval; left untouched"
                for name in sorted(taken)]
    for stem, predictions in kept.items():
        if not predictions or figure_name(stem) in taken:
            continue
        pair = by_stem[stem]
        try:
            rgb = images.as_rgb(images.read_image(pair.color_path))
            gt_unit, _ = load_ground_truth(pair.depth_path, gt_settings).on_thesis_grid()
        except Exception as error:  # an image that failed is already reported
            problems.append(f"figure for {stem} not drawn: {error}")
            continue
        target = gradient_metrics.ground_truth_gradients(gt_unit)
        rows = gradient_rows(target, predictions)
        pictures.maps_figure(folder.path / figure_name(stem), rgb, rows,
                            shared_scale(target), GRADIENT_COLORMAP,
                            pair.color_path.name, label="gradient (ground-truth units)")
    if charts and "metrics.png" not in taken:
        directions = {str(k): lower for k, lower in ranked(next(iter(means.values()))).items()}
        charted = {name: {str(k): v for k, v in values.items() if str(k) in directions}
                   for name, values in means.items()}
        pictures.metrics_figure(folder.path / "metrics.png", charted, directions, intervals)
    return problems
