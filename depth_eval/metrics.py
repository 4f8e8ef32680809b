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
    pred_m = np.asarray(pred_m, dtype=np.float64)
    gt_m = np.asarray(gt_m, dtype=np.float64)
    if pred_m.shape != gt_m.shape:
        raise ValueError(f"prediction shape {pred_m.shape} != ground truth shape {gt_m.shape}")
    pred = np.maximum(pred_m, DEPTH_FLOOR)
    gt = np.maximum(gt_m, DEPTH_FLOOR)
    diff = pred_m - gt_m
    # One natural log per map serves Log10 and the scaled log L: L floors d / 10 at 1/255, and
    # ln is monotonic, so ln(max(d / 10, 1/255)) = max(ln max(d, 1/255), ln(10/255)) - ln 10.
    log_pred, log_gt = np.log(pred), np.log(gt)
    log_diff = _scaled_log_from_ln(log_pred) - _scaled_log_from_ln(log_gt)
    n = log_diff.size
    ratio = np.maximum(pred / gt, gt / pred)
    return {
        "AbsRelDiff": float(np.mean(np.abs(diff) / gt)),
        "SqrRelDiff": float(np.mean(diff**2 / gt)),
        "RMSE": float(np.sqrt(np.mean(diff**2))),
        "RMSELog": float(np.sqrt(np.mean(log_diff**2))),
        "SIMSE": float(np.mean(log_diff**2) - log_diff.sum() ** 2 / n**2),
        "Log10": float(np.mean(np.abs(log_pred - log_gt)) / np.log(10.0)),
        "MVN": float(np.sqrt(np.mean((standardize(pred_m) - standardize(gt_m)) ** 2))),
        "Threshold 1.25": float(np.mean(ratio < 1.25)),
        "Threshold 1.25^2": float(np.mean(ratio < 1.25**2)),
        "Threshold 1.25^3": float(np.mean(ratio < 1.25**3)),
    }


_LN_RANGE = float(np.log(DEPTH_RANGE_M))
_LN_SCALED_FLOOR = float(np.log(DEPTH_RANGE_M * DEPTH_FLOOR))


def _scaled_log_from_ln(ln_floored: np.ndarray) -> np.ndarray:
    """``scaled_log`` from ln(max(d, 1/255))."""
    return DEPTH_RANGE_M * (LOG_ENCODING_SLOPE * (np.maximum(ln_floored, _LN_SCALED_FLOOR)
                                                  - _LN_RANGE) + 1.0)
