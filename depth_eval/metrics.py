"""The thesis' ten depth metrics and the MVN ("oracle") fit: pure numpy functions, no I/O.

All functions take predicted and true depth in metres as arrays of the same shape.  The
definitions are the thesis' own: RMSELog and SIMSE use the scaled log ``L`` below, not the
natural log of the Eigen et al. metrics that other tools print under the same names.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# Floor for depths in ratios and logs (test_depth.py: one 8-bit grey level, 1/255).
DEPTH_FLOOR = 1.0 / 255.0
# Slope of the thesis' log-depth encoding, L = 0.179581 * ln(d / 10) + 1 (log_abs training targets).
LOG_ENCODING_SLOPE = 0.179581
# Thesis depth range in metres (ground truth and [0, 1] predictions are depth / 10).
DEPTH_RANGE_M = 10.0


class Metric(NamedTuple):
    """A metric's title as the original printed it and whether lower values are better."""

    title: str
    lower_is_better: bool


# The order of the original's rankings (test_depth.py prints them in this order).
THESIS_METRICS = (
    Metric("AbsRelDiff", True),
    Metric("SqrRelDiff", True),
    Metric("RMSE", True),
    Metric("RMSELog", True),
    Metric("SIMSE", True),
    Metric("Log10", True),
    Metric("MVN", True),
    Metric("Threshold 1.25", False),
    Metric("Threshold 1.25^2", False),
    Metric("Threshold 1.25^3", False),
)
THESIS_METRIC_TITLES = tuple(metric.title for metric in THESIS_METRICS)


def scaled_log(depth_m: np.ndarray) -> np.ndarray:
    """The thesis' log depth in metres, ``10 * (0.179581 * ln(max(d / 10, 1/255)) + 1)``."""
    ratio = np.maximum(depth_m / DEPTH_RANGE_M, DEPTH_FLOOR)
    return DEPTH_RANGE_M * (LOG_ENCODING_SLOPE * np.log(ratio) + 1.0)


def standardize(values: np.ndarray) -> np.ndarray:
    """Zero mean, unit population standard deviation (NaN for a constant map, as the original)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (values - values.mean()) / values.std()


def mvn_fit(prediction: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Give ``prediction`` the mean and standard deviation of ``target`` (the thesis oracle)."""
    return standardize(prediction) * target.std() + target.mean()


def thesis_metrics(pred_m: np.ndarray, gt_m: np.ndarray) -> dict[str, float]:
    """The ten thesis metrics of one image.

    Parameters
    ----------
    pred_m, gt_m : ndarray
        Predicted and true depth in metres, same shape.

    Returns
    -------
    dict
        Title -> value, in the order of ``THESIS_METRIC_TITLES``.
    """
    pred_m = np.asarray(pred_m, dtype=np.float64).ravel()
    gt_m = np.asarray(gt_m, dtype=np.float64).ravel()
    if pred_m.shape != gt_m.shape:
        raise ValueError(f"prediction shape {np.shape(pred_m)} != ground truth shape "
                         f"{np.shape(gt_m)}")
    n = pred_m.size
    diff = pred_m - gt_m
    squared = diff * diff
    inv_gt = 1.0 / np.maximum(gt_m, DEPTH_FLOOR)
    # One natural log per map serves Log10, the thresholds and the scaled log L:
    # max(o'/g', g'/o') < t  <=>  |ln o' - ln g'| < ln t; and L(o) - L(g) is
    # 10 * 0.179581 * (max(ln o', ln(10/255)) - max(ln g', ln(10/255))) as ln is monotonic.
    log_pred = np.log(np.maximum(pred_m, DEPTH_FLOOR))
    log_gt = -np.log(inv_gt)
    abs_log_ratio = np.abs(log_pred - log_gt)
    log_diff = _SCALED_LOG_GAIN * (np.maximum(log_pred, _LN_SCALED_FLOOR)
                                   - np.maximum(log_gt, _LN_SCALED_FLOOR))
    # Plain products and sums: np.dot would call a multithreaded BLAS, 7x slower here.
    mean_sq_log = (log_diff * log_diff).sum() / n
    with np.errstate(invalid="ignore", divide="ignore"):  # constant map: NaN, as the original
        # mean((z(o) - z(g))^2) = 2 - 2 * Pearson correlation (population moments).
        centred_pred, centred_gt = pred_m - pred_m.mean(), gt_m - gt_m.mean()
        correlation = (centred_pred * centred_gt).sum() / np.sqrt(
            (centred_pred * centred_pred).sum() * (centred_gt * centred_gt).sum())
        mvn = np.sqrt(max(2.0 - 2.0 * correlation, 0.0)) if np.isfinite(correlation) else np.nan
    return {
        "AbsRelDiff": float((np.abs(diff) * inv_gt).sum() / n),
        "SqrRelDiff": float((squared * inv_gt).sum() / n),
        "RMSE": float(np.sqrt(squared.sum() / n)),
        "RMSELog": float(np.sqrt(mean_sq_log)),
        "SIMSE": float(mean_sq_log - log_diff.sum() ** 2 / n**2),
        "Log10": float(abs_log_ratio.sum() / n / np.log(10.0)),
        "MVN": float(mvn),
        "Threshold 1.25": np.count_nonzero(abs_log_ratio < _LN_THRESHOLDS[0]) / n,
        "Threshold 1.25^2": np.count_nonzero(abs_log_ratio < _LN_THRESHOLDS[1]) / n,
        "Threshold 1.25^3": np.count_nonzero(abs_log_ratio < _LN_THRESHOLDS[2]) / n,
    }


# ln(10/255): the scaled log's floor (d / 10 >= 1/255) on ln d.
_LN_SCALED_FLOOR = float(np.log(DEPTH_RANGE_M * DEPTH_FLOOR))
_SCALED_LOG_GAIN = DEPTH_RANGE_M * LOG_ENCODING_SLOPE
_LN_THRESHOLDS = tuple(float(np.log(1.25**k)) for k in (1, 2, 3))
