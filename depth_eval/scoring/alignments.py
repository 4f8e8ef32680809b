"""Aligning a prediction to the ground truth before scoring: median scaling (monodepth2),
least-squares scale and shift (MiDaS), the thesis' MVN fit; and the per-image scale's summary.
Pure numpy, no I/O."""

from __future__ import annotations

import math

import numpy as np

from depth_eval.scoring.checks import check_shape_equality

from depth_eval.choices import ALIGNMENTS  # noqa: F401  (the names this module implements)

from depth_eval.scoring.thesis_metrics import mvn_fit

# Values accepted by align_prediction(method=...) (and --align).


def align_median(pred_m: np.ndarray, gt_m: np.ndarray,
                 mask: np.ndarray) -> tuple[np.ndarray, float]:
    """Median scaling (monodepth2): ``scale = median(gt[mask]) / median(pred[mask])``.

    Parameters
    ----------
    pred_m, gt_m : ndarray
        Prediction and ground truth, same shape.
    mask : ndarray of bool
        Pixels the scale is fitted on (:func:`valid_mask`).

    Returns
    -------
    aligned : ndarray
        ``scale * pred_m``, the whole map, float64.
    scale : float

    Raises
    ------
    ValueError
        If ``mask`` selects no pixel or the prediction's median there is 0 or not finite.
    """
    pred, gt, mask = _fit_inputs(pred_m, gt_m, mask)
    pred_median = float(np.median(pred[mask]))
    if pred_median == 0.0 or not math.isfinite(pred_median):
        raise ValueError(f"cannot median-scale: the prediction's median on valid pixels is {pred_median}")
    scale = float(np.median(gt[mask])) / pred_median
    return pred * scale, scale


def align_least_squares(pred_m: np.ndarray, gt_m: np.ndarray,
                        mask: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Least-squares scale and shift (MiDaS-style): minimise ``sum((s * p + t - g)^2)`` on ``mask``.

    The closed form of the 2 x 2 normal equations, ``s = cov(p, g) / var(p)`` and
    ``t = mean(g) - s * mean(p)`` over the masked pixels.  The fit is done on the values given:
    MiDaS fits in inverse depth, so pass disparities for its exact protocol.

    A prediction that is constant on the masked pixels has no unique solution; every ``(s, t)``
    with ``s * p + t = mean(g)`` is a minimiser and this function returns ``s = 0``,
    ``t = mean(g)`` (the aligned map is then constant).

    Parameters
    ----------
    pred_m, gt_m : ndarray
        Prediction and ground truth, same shape.
    mask : ndarray of bool
        Pixels the fit uses (:func:`valid_mask`).

    Returns
    -------
    aligned : ndarray
        ``scale * pred_m + shift``, the whole map, float64.
    scale, shift : float

    Raises
    ------
    ValueError
        If ``mask`` selects no pixel.
    """
    pred, gt, mask = _fit_inputs(pred_m, gt_m, mask)
    p, g = pred[mask], gt[mask]
    p_mean, g_mean = float(p.mean()), float(g.mean())
    if np.ptp(p) == 0.0:
        scale = 0.0
    else:
        p_centred = p - p_mean
        # Products and sums, not np.dot: a multithreaded BLAS call is slower at this size.
        scale = float((p_centred * (g - g_mean)).sum() / (p_centred * p_centred).sum())
    shift = g_mean - scale * p_mean
    return pred * scale + shift, scale, shift


def align_least_squares_inverse(pred_m: np.ndarray, gt_m: np.ndarray, mask: np.ndarray,
                                max_depth: float) -> tuple[np.ndarray, float, float]:
    """Least-squares scale and shift in inverse depth, the result inverted (MiDaS' protocol
    for networks that output inverse depth).

    :func:`align_least_squares` of ``1 / pred`` to ``1 / gt`` on ``mask`` (pixels whose
    prediction is not positive are left out of the fit and get the farthest depth); the
    aligned inverse depth is raised to at least ``1 / max_depth`` (MiDaS' disparity cap), then
    inverted.

    Returns
    -------
    aligned : ndarray
        Depth, the whole map, float64, at most ``max_depth``.
    scale, shift : float
        The affine map fitted in inverse depth.

    Raises
    ------
    ValueError
        If no pixel of ``mask`` has a positive prediction and ground truth.
    """
    pred, gt, mask = _fit_inputs(pred_m, gt_m, mask)
    positive = pred > 0
    fit_mask = mask & positive & (gt > 0)
    if not fit_mask.any():
        raise ValueError("no valid pixel with a positive prediction to fit in inverse depth")
    inverse = np.zeros_like(pred)
    np.divide(1.0, pred, out=inverse, where=positive)
    inverse_gt = np.zeros_like(gt)
    np.divide(1.0, gt, out=inverse_gt, where=gt > 0)
    aligned, scale, shift = align_least_squares(inverse, inverse_gt, fit_mask)
    aligned = np.where(positive, aligned, 0.0)
    return 1.0 / np.maximum(aligned, 1.0 / max_depth), scale, shift


def align_mvn(pred_m: np.ndarray, gt_m: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """The thesis' oracle: the prediction standardised, then given the ground truth's mean and std.

    Parameters
    ----------
    pred_m, gt_m : ndarray
        Prediction and ground truth, same shape.
    mask : ndarray of bool, optional
        None: statistics of the whole maps, exactly :func:`depth_eval.scoring.thesis_metrics.mvn_fit` as the
        thesis does.  Otherwise the means and (population) standard deviations are taken on the
        masked pixels and the resulting affine map is applied to the whole prediction; on the
        masked pixels the result equals ``mvn_fit(pred_m[mask], gt_m[mask])``.

    Returns
    -------
    ndarray
        Whole map, float64; NaN everywhere for a constant prediction (as the thesis).

    Raises
    ------
    ValueError
        If ``mask`` is given and selects no pixel.
    """
    if mask is None:
        pred = np.asarray(pred_m, dtype=np.float64)
        gt = np.asarray(gt_m, dtype=np.float64)
        check_shape_equality(prediction=pred, ground_truth=gt)
        return mvn_fit(pred, gt)
    pred, gt, mask = _fit_inputs(pred_m, gt_m, mask)
    scale, shift = _mvn_coefficients(pred[mask], gt[mask])
    return pred * scale + shift


def _mvn_coefficients(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """Scale and shift of the MVN fit, ``(p - mean p) / std p * std g + mean g``."""
    pred_std = float(pred.std())
    scale = float(gt.std()) / pred_std if pred_std > 0 else math.nan
    return scale, float(gt.mean()) - scale * float(pred.mean())


def _fit_inputs(pred_m, gt_m, mask):
    pred = np.asarray(pred_m, dtype=np.float64)
    gt = np.asarray(gt_m, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    check_shape_equality(prediction=pred, ground_truth=gt, mask=mask)
    if not mask.any():
        raise ValueError("no valid pixel to fit the alignment on")
    return pred, gt, mask


def align_prediction(pred_m: np.ndarray, gt_m: np.ndarray, mask: np.ndarray,
                     method: str) -> tuple[np.ndarray, float | None, float | None]:
    """Align a prediction with one of ``ALIGNMENTS``, fitted on ``mask``.

    Returns
    -------
    aligned : ndarray
        The whole aligned map (float64; the input itself as float64 for ``"none"``).
    scale, shift : float or None
        The affine map applied (None where the method has none: shift for ``"median"``, both
        for ``"none"``).

    Raises
    ------
    ValueError
        Unknown method, or a fit that is impossible (see the ``align_*`` functions).
    """
    if method == "none":
        return np.asarray(pred_m, dtype=np.float64), None, None
    if method == "median":
        aligned, scale = align_median(pred_m, gt_m, mask)
        return aligned, scale, None
    if method == "lsq":
        return align_least_squares(pred_m, gt_m, mask)
    if method == "mvn":
        pred, gt, mask = _fit_inputs(pred_m, gt_m, mask)
        scale, shift = _mvn_coefficients(pred[mask], gt[mask])
        if math.isnan(scale):
            raise ValueError("cannot MVN-fit: the prediction is constant on valid pixels")
        return pred * scale + shift, scale, shift
    raise ValueError(f"unknown alignment {method!r}: expected one of {', '.join(ALIGNMENTS)}")


def scale_summary(scales: np.ndarray) -> tuple[float, float]:
    """Median and relative spread of per-image alignment scales, as monodepth2 reports them.

    monodepth2 prints ``med = median(ratios)`` and ``std(ratios / med)`` after median scaling:
    the spread relative to the typical scale (0.05 means the scales scatter by about 5 % of
    it), comparable between models whatever their absolute scale.

    Parameters
    ----------
    scales : array_like
        One scale per image; NaN (no valid pixel, failed fit) and inf are left out.

    Returns
    -------
    median, relative_std : float
        NaN, NaN when no image has a scale.
    """
    scales = np.asarray(scales, dtype=np.float64).ravel()
    scales = scales[np.isfinite(scales)]
    if scales.size == 0:
        return math.nan, math.nan
    median = float(np.median(scales))
    return median, float(np.std(scales / median))


def fitted_picture(prediction: np.ndarray, gt_unit: np.ndarray,
                   pixels: np.ndarray | None) -> np.ndarray:
    """The prediction MVN-fitted to the ground truth (depth / 10), as OUT_DIR shows it: on the
    whole map as the original, or on the pixels with depth (zeros where there is none)."""
    if pixels is None:
        return mvn_fit(prediction, gt_unit)
    if not pixels.any():
        return np.zeros_like(prediction)
    fitted = align_mvn(prediction, gt_unit, mask=pixels)
    return fitted.astype(np.float32)
