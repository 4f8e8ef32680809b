"""Scoring one depth map: every requested metric after every requested alignment, and the
per-snapshot summary.  Pure numpy over arrays in metres; no I/O.

Per image the valid-pixel mask is computed once and each alignment is fitted once; the thesis
and the standard metrics of that alignment are both computed from the one fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import metrics, standard_metrics
from .metric_keys import NO_ALIGNMENT, SCALE_NAME, MetricKey, keyed

# Alignments whose fitted scale is recorded per image (``median/scale``) and summarised.
SCALED_ALIGNMENTS = ("median", "lsq")


@dataclass(frozen=True)
class ScoringSettings:
    """Which metrics to compute per image, after which alignments, on which pixels.

    The thesis metrics use every pixel, as the original did; the standard (Eigen et al.)
    metrics use the valid pixels (``min_depth < gt < max_depth``, inside the crop).
    """

    metric_sets: tuple[str, ...] = ("thesis",)
    alignments: tuple[str, ...] = (NO_ALIGNMENT,)
    min_depth: float = standard_metrics.DEFAULT_MIN_DEPTH_M
    max_depth: float = standard_metrics.DEFAULT_MAX_DEPTH_M
    crop: str = "none"

    @property
    def needs_mask(self) -> bool:
        return "standard" in self.metric_sets or bool(set(self.alignments) - {NO_ALIGNMENT, "mvn"})

    def metric_keys(self) -> list[MetricKey]:
        """Every key a run with these settings reports per image, in report order."""
        names = {"thesis": metrics.THESIS_METRIC_TITLES,
                 "standard": standard_metrics.STANDARD_METRIC_TITLES}
        keys = []
        for align in self.alignments:
            keys += [MetricKey(align, name) for group in self.metric_sets for name in names[group]]
            if align in SCALED_ALIGNMENTS:
                keys.append(MetricKey(align, SCALE_NAME))
        return keys


def score_image(prediction_m: np.ndarray, gt_m: np.ndarray,
                settings: ScoringSettings = ScoringSettings()) -> dict[MetricKey, float]:
    """Every requested metric of one image.

    Parameters
    ----------
    prediction_m, gt_m : ndarray
        Predicted and true depth in metres, same 2-D shape.
    settings : ScoringSettings

    Returns
    -------
    dict
        :class:`MetricKey` -> value.  Without alignment the thesis metrics keep their plain
        titles (the original's output); ``median`` and ``lsq`` also record the fitted scale.
    """
    scores: dict[MetricKey, float] = {}
    mask = (standard_metrics.valid_mask(gt_m, settings.min_depth, settings.max_depth,
                                        settings.crop) if settings.needs_mask else None)
    for align in settings.alignments:
        fitted, scale = _fit(prediction_m, gt_m, mask, align)
        if "thesis" in settings.metric_sets:
            # The thesis oracle (mvn) is fitted on the whole map, as OUT_DIR's pictures show it.
            if align == "mvn":
                thesis_input = metrics.mvn_fit(prediction_m, gt_m)
            else:
                thesis_input = np.full(np.shape(prediction_m), np.nan) if fitted is None else fitted
            scores.update(keyed(metrics.thesis_metrics(thesis_input, gt_m), align))
        if "standard" in settings.metric_sets:
            scores.update(keyed(_standard(fitted, gt_m, mask, settings), align))
        if align in SCALED_ALIGNMENTS:
            scores[MetricKey(align, SCALE_NAME)] = scale
    return scores


def _fit(prediction_m, gt_m, mask, align: str) -> tuple[np.ndarray | None, float]:
    """The prediction after one alignment fitted on ``mask``, and its scale (NaN where none);
    None when the fit is impossible (no valid pixel, zero median, constant prediction)."""
    if align == NO_ALIGNMENT:
        return prediction_m, math.nan
    if align == "mvn" and mask is None:  # thesis metrics only: the whole-map oracle
        return prediction_m, math.nan
    try:
        aligned, scale, _ = standard_metrics.align_prediction(prediction_m, gt_m, mask, align)
    except ValueError:
        return None, math.nan
    return aligned, math.nan if scale is None else float(scale)


def _standard(aligned: np.ndarray | None, gt_m: np.ndarray, mask: np.ndarray,
              settings: ScoringSettings) -> dict[str, float]:
    """The standard metrics of an aligned prediction: clamped, then scored on the valid pixels
    (all NaN without a valid pixel or a fit)."""
    if aligned is None or not mask.any():
        return dict.fromkeys(standard_metrics.STANDARD_METRIC_TITLES, math.nan)
    clamped = np.clip(np.asarray(aligned, dtype=np.float64)[mask], settings.min_depth,
                      settings.max_depth)
    return standard_metrics.standard_metrics(clamped, np.asarray(gt_m, dtype=np.float64)[mask])


def summarise(per_image: list[dict[MetricKey, float]]) -> dict[MetricKey, float]:
    """A snapshot's value of each metric over the images evaluated (not over all files).

    Thesis metrics without alignment are plain means, as the original's; the others skip
    images where the metric is undefined (NaN: no valid pixel).  A per-image scale is
    summarised by its median (``scale_median``) and its spread relative to the median
    (``scale_std``, the standard deviation of ``scale / median(scale)``, as monodepth2 prints it).
    """
    summary: dict[MetricKey, float] = {}
    for key in per_image[0] if per_image else ():
        values = np.array([values[key] for values in per_image], dtype=np.float64)
        if key.name == SCALE_NAME:
            median, spread = standard_metrics.scale_summary(values)
            summary[MetricKey(key.align, f"{SCALE_NAME}_median")] = median
            summary[MetricKey(key.align, f"{SCALE_NAME}_std")] = spread
        elif (key.align == NO_ALIGNMENT and key.name in metrics.THESIS_METRIC_TITLES) \
                or np.isnan(values).all():
            summary[key] = float(np.mean(values))
        else:
            summary[key] = float(np.nanmean(values))
    return summary
