"""Scoring one depth map: every requested metric after every requested alignment, and the
per-snapshot summary.  Pure numpy over arrays in metres; no I/O.

An image is scored on two grids.  The thesis metrics use the thesis' 320 x 420 maps (the
prediction zoomed there, the ground truth resized there), as the thesis defines them; the
standard metrics use the ground truth's own resolution (the prediction zoomed to it), as BTS,
monodepth2 and ZoeDepth evaluate.  On each grid the valid-pixel mask is computed once and each
alignment fitted once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from depth_eval import choices

from depth_eval.scoring import alignments, thesis_metrics, standard_metrics
from depth_eval.scoring.keys import NO_ALIGNMENT, SCALE_NAME, MetricKey, keyed

# Alignments whose fitted scale is recorded per image (``median/scale``) and summarised.
SCALED_ALIGNMENTS = ("median", "lsq")


@dataclass(frozen=True)
class ScoringSettings:
    """Which metrics to compute per image, after which alignments, on which pixels.

    The thesis metrics use every pixel of the thesis' 8-bit ground truth, as the original did
    (the pixels with depth of other encodings); the standard (Eigen et al.) metrics use the
    valid pixels (``min_depth < gt < max_depth``, inside the crop).  ``lsq_in_inverse``: the
    ``lsq`` alignment fits scale and shift in inverse depth and inverts the result, as MiDaS
    evaluates inverse-depth networks (set per snapshot whose output is inverse depth).
    """

    metric_sets: tuple[str, ...] = choices.DEFAULT_METRIC_SETS
    alignments: tuple[str, ...] = choices.DEFAULT_ALIGNMENTS
    min_depth: float = choices.DEFAULT_MIN_DEPTH_M
    max_depth: float = choices.DEFAULT_MAX_DEPTH_M
    crop: str = choices.DEFAULT_CROP
    lsq_in_inverse: bool = False

    @property
    def needs_native(self) -> bool:
        """Whether the standard metrics are asked for (scored at the ground truth's size)."""
        return "standard" in self.metric_sets

    def metric_keys(self) -> list[MetricKey]:
        """Every key a run with these settings reports per image, in report order."""
        names = {"thesis": thesis_metrics.THESIS_METRIC_TITLES,
                 "standard": standard_metrics.STANDARD_METRIC_TITLES}
        keys = []
        for align in self.alignments:
            keys += [MetricKey(align, name) for group in self.metric_sets for name in names[group]]
            if align in SCALED_ALIGNMENTS:
                keys.append(MetricKey(align, SCALE_NAME))
        return keys


def score_image(prediction_m: np.ndarray, gt_m: np.ndarray,
                settings: ScoringSettings = ScoringSettings(), *,
                native: tuple[np.ndarray, np.ndarray] | None = None,
                thesis_pixels: np.ndarray | None = None) -> dict[MetricKey, float]:
    """Every requested metric of one image.

    Parameters
    ----------
    prediction_m, gt_m : ndarray
        Predicted and true depth in metres on the thesis grid (320 x 420 in a run), same 2-D
        shape: what the thesis metrics score.
    settings : ScoringSettings
    native : (ndarray, ndarray), optional
        Prediction and ground truth in metres at the ground truth's own size: what the
        standard metrics score.  None: the thesis grid's maps.
    thesis_pixels : ndarray of bool, optional
        The pixels of the thesis grid the thesis metrics score (those with depth,
        :func:`depth_eval.inputs.ground_truth.thesis_pixels`); None for every pixel, as the original.
        With no pixel at all the thesis metrics are NaN.

    Returns
    -------
    dict
        :class:`MetricKey` -> value, in the order of ``settings.metric_keys()``.  Without
        alignment the thesis metrics keep their plain titles (the original's output);
        ``median`` and ``lsq`` also record the fitted scale, from the grid of the standard
        metrics when they are asked for.  A metric that is undefined for the image is NaN.
    """
    thesis: dict = {}
    standard: dict = {}
    scales: dict = {}
    if "thesis" in settings.metric_sets:
        thesis, scales = _thesis_grid(prediction_m, gt_m, thesis_pixels, settings)
    if "standard" in settings.metric_sets:
        pred_native, gt_native = native if native is not None else (prediction_m, gt_m)
        standard, scales = _standard_grid(pred_native, gt_native, settings)
    scores: dict[MetricKey, float] = {}
    for align in settings.alignments:
        for group in (thesis, standard):
            if align in group:
                scores.update(keyed(group[align], align))
        if align in SCALED_ALIGNMENTS:
            scores[MetricKey(align, SCALE_NAME)] = scales[align]
    return scores


def _thesis_grid(prediction_m, gt_m, pixels, settings: ScoringSettings):
    """The thesis metrics after each alignment, and the scales fitted on this grid."""
    fitted_here = set(settings.alignments) & set(SCALED_ALIGNMENTS)
    mask = (standard_metrics.valid_mask(gt_m, settings.min_depth, settings.max_depth,
                                        settings.crop) if fitted_here else None)
    if pixels is not None and not pixels.any():
        nothing = dict.fromkeys(thesis_metrics.THESIS_METRIC_TITLES, math.nan)
        return ({align: nothing for align in settings.alignments},
                dict.fromkeys(fitted_here, math.nan))
    gt_scored = gt_m if pixels is None else gt_m[pixels]
    results, scales = {}, {}
    for align in settings.alignments:
        if align == "mvn":
            # The thesis oracle is fitted on the scored pixels, as OUT_DIR's pictures show it.
            pred = prediction_m if pixels is None else prediction_m[pixels]
            results[align] = thesis_metrics.thesis_metrics(thesis_metrics.mvn_fit(pred, gt_scored), gt_scored)
            continue
        fitted, scales[align] = _fit(prediction_m, gt_m, mask, align, settings)
        if fitted is None:
            results[align] = dict.fromkeys(thesis_metrics.THESIS_METRIC_TITLES, math.nan)
        else:
            results[align] = thesis_metrics.thesis_metrics(
                fitted if pixels is None else fitted[pixels], gt_scored)
    return results, scales


def _standard_grid(prediction_m, gt_m, settings: ScoringSettings):
    """The standard metrics after each alignment (fitted on the valid pixels), and the scales."""
    mask = standard_metrics.valid_mask(gt_m, settings.min_depth, settings.max_depth,
                                       settings.crop)
    results, scales = {}, {}
    for align in settings.alignments:
        fitted, scales[align] = _fit(prediction_m, gt_m, mask, align, settings) if mask.any() \
            else (None, math.nan)
        results[align] = _standard(fitted, gt_m, mask, settings)
    return results, scales


def _fit(prediction_m, gt_m, mask, align: str,
         settings: ScoringSettings) -> tuple[np.ndarray | None, float]:
    """The prediction after one alignment fitted on ``mask``, and its scale (NaN where none);
    None when the fit is impossible (no valid pixel, zero median, constant prediction)."""
    if align == NO_ALIGNMENT:
        return prediction_m, math.nan
    try:
        if align == "lsq" and settings.lsq_in_inverse:
            aligned, scale, _ = alignments.align_least_squares_inverse(
                prediction_m, gt_m, mask, settings.max_depth)
            return aligned, float(scale)
        aligned, scale, _ = alignments.align_prediction(prediction_m, gt_m, mask, align)
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


def undefined(image_metrics: dict[MetricKey, float]) -> list[MetricKey]:
    """The keys whose value is not a finite number for this image (left out of the means)."""
    return [key for key, value in image_metrics.items() if not math.isfinite(value)]


def defined_counts(per_image: list[dict[MetricKey, float]]) -> dict[MetricKey, int]:
    """Per key, the number of images where the value is finite: what each mean is over."""
    counts: dict[MetricKey, int] = {}
    for values in per_image:
        for key, value in values.items():
            counts[key] = counts.get(key, 0) + math.isfinite(value)
    return counts


def summarise(per_image: list[dict[MetricKey, float]]) -> dict[MetricKey, float]:
    """A snapshot's value of each metric over the images where it is defined.

    Each metric is the mean of its finite per-image values (NaN, the metric undefined for an
    image, and inf are left out; NaN when no image has one); :func:`defined_counts` says over
    how many.  The original divided by every file, this port by the images evaluated
    (docs/metrics.md, deliberate differences).  A per-image scale is summarised by its median
    (``scale_median``) and its spread relative to the median (``scale_std``, the standard
    deviation of ``scale / median(scale)``, as monodepth2 prints it).
    """
    summary: dict[MetricKey, float] = {}
    for key in per_image[0] if per_image else ():
        values = np.array([values[key] for values in per_image], dtype=np.float64)
        if key.name == SCALE_NAME:
            median, spread = alignments.scale_summary(values)
            summary[MetricKey(key.align, f"{SCALE_NAME}_median")] = median
            summary[MetricKey(key.align, f"{SCALE_NAME}_std")] = spread
        else:
            finite = values[np.isfinite(values)]
            summary[key] = float(np.mean(finite)) if finite.size else math.nan
    return summary
