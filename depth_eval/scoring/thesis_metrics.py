"""The thesis' ten depth metrics and the MVN ("oracle") fit: pure numpy functions, no I/O.

All functions take predicted and true depth in metres as arrays of the same shape.  The
definitions are the thesis' own: RMSELog and SIMSE use the scaled log ``L`` below, not the
natural log of the Eigen et al. metrics that other tools print under the same names.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from depth_eval.scoring.checks import check_shape_equality

from depth_eval.thesis import DEPTH_FLOOR, DEPTH_RANGE_M, LOG_ENCODING_SLOPE

# Ratio bounds of the Threshold metrics (test_depth.py: 1.25, 1.25^2, 1.25^3; exact in float32).
THRESHOLDS = (1.25, 1.25**2, 1.25**3)


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
    """The ten thesis metrics of one image, as ``eval_depth.py`` computes them.

    Continuous metrics are computed in float64.  As in the original, AbsRelDiff and SqrRelDiff
    use the floored ground truth ``g' = max(g, 1/255)`` in the numerator too, and MVN compares
    the standardised maps directly.  The thresholds compare ``max(o'/g', g'/o')`` with ``t``
    where ``o' = max(o, 1/255)``, ``g' = max(g, 1/255)`` and the ratios are computed in float32,
    the original's array type (a ratio that rounds to exactly 1.25 is outside).

    Parameters
    ----------
    pred_m, gt_m : ndarray
        Predicted and true depth in metres, same shape (the pipeline's are float32; other
        types are rounded to float32 for the threshold ratios only).

    Returns
    -------
    dict
        Title -> Python float, in the order of ``THESIS_METRIC_TITLES``.
    """
    pred_m = np.asarray(pred_m).ravel()
    gt_m = np.asarray(gt_m).ravel()
    check_shape_equality(prediction=pred_m, ground_truth=gt_m)
    n = pred_m.size
    pred = pred_m.astype(np.float64)
    gt = gt_m.astype(np.float64)
    floored_gt = np.maximum(gt, DEPTH_FLOOR)
    diff = pred - gt
    floored_diff = pred - floored_gt
    relative = floored_diff / floored_gt
    # One natural log per map serves Log10 and the scaled log L: L(o) - L(g) is
    # 10 * 0.179581 * (max(ln o', ln(10/255)) - max(ln g', ln(10/255))) as ln is monotonic.
    log_pred = np.log(np.maximum(pred, DEPTH_FLOOR))
    log_gt = np.log(floored_gt)
    log_diff = _SCALED_LOG_GAIN * (np.maximum(log_pred, _LN_SCALED_FLOOR)
                                   - np.maximum(log_gt, _LN_SCALED_FLOOR))
    mean_sq_log = _dot(log_diff, log_diff) / n
    worst_ratio = _float32_worst_ratio(pred_m, gt_m)
    mvn = _mvn_distance(pred, gt)  # last: it overwrites pred and gt
    return {
        "AbsRelDiff": float(np.abs(relative).sum() / n),
        "SqrRelDiff": _dot(relative, floored_diff) / n,
        "RMSE": float(np.sqrt(_dot(diff, diff) / n)),
        "RMSELog": float(np.sqrt(mean_sq_log)),
        "SIMSE": float(mean_sq_log - log_diff.sum() ** 2 / n**2),
        "Log10": float(np.abs(log_pred - log_gt).sum() / n / np.log(10.0)),
        "MVN": mvn,
        "Threshold 1.25": float(np.count_nonzero(worst_ratio < THRESHOLDS[0]) / n),
        "Threshold 1.25^2": float(np.count_nonzero(worst_ratio < THRESHOLDS[1]) / n),
        "Threshold 1.25^3": float(np.count_nonzero(worst_ratio < THRESHOLDS[2]) / n),
    }


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """sum(a * b) of 1-D float64 arrays without a temporary and without a BLAS call (np.dot
    goes multithreaded and is several times slower on maps of this size)."""
    return float(np.einsum("i,i->", a, b))


def _mvn_distance(pred: np.ndarray, gt: np.ndarray) -> float:
    """sqrt(mean((z(o) - z(g))^2)) on 1-D float64 copies (overwritten); NaN for a constant map.

    Computed on the standardised maps as the original does: the equivalent 2 - 2 * correlation
    cancels catastrophically for a near-perfect prediction.
    """
    n = pred.size
    with np.errstate(invalid="ignore", divide="ignore"):
        pred -= pred.sum() / n
        gt -= gt.sum() / n
        pred /= np.sqrt(_dot(pred, pred) / n)
        gt /= np.sqrt(_dot(gt, gt) / n)
        pred -= gt
        return float(np.sqrt(_dot(pred, pred) / n))


def _float32_worst_ratio(pred_m: np.ndarray, gt_m: np.ndarray) -> np.ndarray:
    """max(o'/g', g'/o') in float32, o' and g' floored at 1/255, as the original's arrays."""
    floor = np.float32(DEPTH_FLOOR)
    pred = np.maximum(pred_m.astype(np.float32, copy=False), floor)
    gt = np.maximum(gt_m.astype(np.float32, copy=False), floor)
    return np.maximum(pred / gt, gt / pred)


# ln(10/255): the scaled log's floor (d / 10 >= 1/255) on ln d.
_LN_SCALED_FLOOR = float(np.log(DEPTH_RANGE_M * DEPTH_FLOOR))
_SCALED_LOG_GAIN = DEPTH_RANGE_M * LOG_ENCODING_SLOPE
