"""The depth metrics today's evaluators print (BTS, monodepth2, MiDaS/DPT): pure numpy, no I/O.

These are the Eigen et al. definitions with the natural log, as BTS ``eval_with_pngs.py`` and
monodepth2 ``evaluate_depth.py`` compute them, not the thesis' own variants in
:mod:`depth_eval.scoring.thesis_metrics` (whose RMSELog and SIMSE use a scaled log).  The recipe is:

1. :func:`valid_mask` keeps the ground-truth pixels with ``min_depth < gt < max_depth``
   (optionally inside the Eigen crop, :func:`eigen_crop_mask`);
2. the prediction is optionally aligned to the ground truth on those pixels
   (:mod:`depth_eval.scoring.alignments`);
3. it is clamped to ``[min_depth, max_depth]``;
4. :func:`standard_metrics` scores the valid pixels.

:func:`evaluate_standard` does the four steps for one image.
"""

from __future__ import annotations

import math

import numpy as np

from depth_eval.scoring.checks import check_shape_equality

from depth_eval.choices import CROPS, DEFAULT_MAX_DEPTH_M, DEFAULT_MIN_DEPTH_M  # noqa: F401
from depth_eval.scoring.alignments import ALIGNMENTS, align_prediction
from depth_eval.scoring.thesis_metrics import Metric

# Ratio threshold of the delta accuracies (Eigen et al. 2014); d2 and d3 use its square and cube.
DELTA_THRESHOLD = 1.25
# SILog is reported x100 (BTS eval_with_pngs.py and the KITTI depth benchmark).
SILOG_FACTOR = 100.0

# Image size the Eigen NYU crop is defined on (NYU Depth v2 Kinect frames), H x W.
EIGEN_CROP_IMAGE_SHAPE = (480, 640)
# Eigen NYU evaluation crop, rows 45:471 and columns 41:601 (half-open), as BTS
# eval_with_pngs.py applies it (``eval_mask[45:471, 41:601] = 1``).
EIGEN_CROP_ROWS = (45, 471)
EIGEN_CROP_COLS = (41, 601)

# Metric keys in the order BTS prints them, and whether lower values are better.
STANDARD_METRICS = (
    Metric("abs_rel", True),
    Metric("sq_rel", True),
    Metric("rmse", True),
    Metric("rmse_log", True),
    Metric("log10", True),
    Metric("silog", True),
    Metric("d1", False),
    Metric("d2", False),
    Metric("d3", False),
)
STANDARD_METRIC_TITLES = tuple(metric.title for metric in STANDARD_METRICS)



def eigen_crop_mask(shape: tuple[int, int]) -> np.ndarray:
    """The Eigen NYU evaluation crop as a boolean mask of the given size.

    At 480 x 640 it is BTS's ``[45:471, 41:601]`` exactly (rows 45..470, columns 41..600).  For
    any other ``H x W`` grid a pixel is inside when the 480 x 640 pixel that a nearest-neighbour
    resize of the frame to ``H x W`` samples for it (OpenCV ``INTER_NEAREST``: row
    ``floor(i * 480 / H)``, column ``floor(j * 640 / W)``) is inside that crop.  The bounds stay
    half-open and each is ``ceil(bound * H / 480)`` (rows) or ``ceil(bound * W / 640)``
    (columns), computed in integers: rows 30:314 and columns 27:395 at 320 x 420, 23:236 and
    21:301 at 240 x 320, the frame's crop doubled at 960 x 1280.

    Parameters
    ----------
    shape : tuple of int
        ``(H, W)`` of the depth map.

    Returns
    -------
    ndarray of bool
        ``(H, W)``, True inside the crop.
    """
    if len(shape) != 2 or min(shape) < 0:
        raise ValueError(f"eigen_crop_mask needs an (H, W) shape, got {tuple(shape)}")
    height, width = (int(n) for n in shape)
    ref_height, ref_width = EIGEN_CROP_IMAGE_SHAPE
    top, bottom = (_ceil_ratio(b * height, ref_height) for b in EIGEN_CROP_ROWS)
    left, right = (_ceil_ratio(b * width, ref_width) for b in EIGEN_CROP_COLS)
    mask = np.zeros((height, width), dtype=bool)
    mask[top:bottom, left:right] = True
    return mask


def _ceil_ratio(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def valid_mask(gt_m: np.ndarray, min_depth: float = DEFAULT_MIN_DEPTH_M,
               max_depth: float = DEFAULT_MAX_DEPTH_M, crop=None) -> np.ndarray:
    """Pixels whose ground truth can be scored.

    A pixel is valid where the ground truth is finite, positive and strictly between
    ``min_depth`` and ``max_depth`` (BTS: ``gt > min_depth_eval & gt < max_depth_eval``), and
    inside ``crop``.

    Parameters
    ----------
    gt_m : ndarray
        Ground-truth depth in metres (0, NaN or inf mark missing depth).
    min_depth, max_depth : float
        Exclusive bounds in metres.
    crop : None, "none", "eigen" or ndarray of bool
        No crop, the Eigen NYU crop (:func:`eigen_crop_mask`), or a mask of ``gt_m``'s shape.

    Returns
    -------
    ndarray of bool
        Same shape as ``gt_m``.
    """
    gt_m = np.asarray(gt_m)
    with np.errstate(invalid="ignore"):
        mask = np.isfinite(gt_m) & (gt_m > 0) & (gt_m > min_depth) & (gt_m < max_depth)
    if crop is None or (isinstance(crop, str) and crop == "none"):
        return mask
    if isinstance(crop, str):
        if crop != "eigen":
            raise ValueError(f"unknown crop {crop!r}: expected one of {', '.join(CROPS)}")
        crop = eigen_crop_mask(gt_m.shape)
    crop = np.asarray(crop, dtype=bool)
    check_shape_equality(crop_mask=crop, ground_truth=gt_m)
    return mask & crop


def standard_metrics(pred_m: np.ndarray, gt_m: np.ndarray) -> dict[str, float]:
    """The nine standard metrics over valid pixels.

    With ``p`` the prediction, ``g`` the ground truth and ``d = ln p - ln g``:

    ========  ===============================================  ======
    abs_rel   mean(abs(p - g) / g)                             lower
    sq_rel    mean((p - g)^2 / g)                              lower
    rmse      sqrt(mean((p - g)^2))                            lower
    rmse_log  sqrt(mean(d^2))                                  lower
    log10     mean(abs(log10 p - log10 g))                     lower
    silog     100 * sqrt(mean(d^2) - mean(d)^2)                lower
    d1        mean(max(p / g, g / p) < 1.25)                   higher
    d2, d3    the same below 1.25^2, 1.25^3                    higher
    ========  ===============================================  ======

    The argument of SILog's square root is floored at 0: rounding can make it a tiny negative
    number for a prediction that is an exact multiple of the ground truth, where BTS gives NaN.

    Parameters
    ----------
    pred_m, gt_m : ndarray
        Predicted and true depth in metres of the valid pixels only (see :func:`valid_mask`),
        same shape (any; usually 1-D).  Both must be positive: the caller clamps the prediction
        (:func:`evaluate_standard` does).

    Returns
    -------
    dict
        Name -> value, in the order of ``STANDARD_METRIC_TITLES``; all NaN when there is no pixel.
    """
    pred = np.asarray(pred_m, dtype=np.float64).ravel()
    gt = np.asarray(gt_m, dtype=np.float64).ravel()
    if np.shape(pred_m) != np.shape(gt_m):
        raise ValueError(f"prediction shape {np.shape(pred_m)} != ground truth shape {np.shape(gt_m)}")
    if pred.size == 0:
        return dict.fromkeys(STANDARD_METRIC_TITLES, math.nan)
    diff = pred - gt
    log_diff = np.log(pred) - np.log(gt)
    ratio = np.maximum(pred / gt, gt / pred)
    mean_sq_log = np.mean(log_diff**2)
    return {
        "abs_rel": float(np.mean(np.abs(diff) / gt)),
        "sq_rel": float(np.mean(diff**2 / gt)),
        "rmse": float(np.sqrt(np.mean(diff**2))),
        "rmse_log": float(np.sqrt(mean_sq_log)),
        "log10": float(np.mean(np.abs(log_diff)) / np.log(10.0)),
        "silog": float(SILOG_FACTOR * np.sqrt(max(mean_sq_log - np.mean(log_diff) ** 2, 0.0))),
        "d1": float(np.mean(ratio < DELTA_THRESHOLD)),
        "d2": float(np.mean(ratio < DELTA_THRESHOLD**2)),
        "d3": float(np.mean(ratio < DELTA_THRESHOLD**3)),
    }


def evaluate_standard(pred_m: np.ndarray, gt_m: np.ndarray, *,
                      min_depth: float = DEFAULT_MIN_DEPTH_M, max_depth: float = DEFAULT_MAX_DEPTH_M,
                      crop: str = "none", align: str = "none") -> tuple[dict[str, float], dict]:
    """Score one image as BTS / monodepth2 do.

    1. valid pixels from the ground truth (:func:`valid_mask`, with the Eigen crop if asked);
    2. the prediction aligned to the ground truth, fitted on the valid pixels (``align``);
    3. the prediction clamped, ``p[p < min_depth] = min_depth``, ``p[p > max_depth] = max_depth``;
    4. :func:`standard_metrics` on the valid pixels.

    Without alignment, clamping before or after masking (BTS clamps first) gives the same
    numbers.  With median scaling the order is monodepth2's: scale, then clamp; the other
    alignments follow it.  A NaN prediction pixel stays NaN (and so do the metrics).

    Parameters
    ----------
    pred_m, gt_m : ndarray
        Predicted and true depth in metres, same 2-D shape (the Eigen crop needs 2-D).
    min_depth, max_depth : float
        Valid ground-truth range (exclusive) and the prediction's clamp range, metres.
    crop : {"none", "eigen"}
    align : {"none", "median", "lsq", "mvn"}
        No alignment, median scaling (:func:`depth_eval.scoring.alignments.align_median`), least-squares scale and shift
        (:func:`~depth_eval.scoring.alignments.align_least_squares`) or the thesis' MVN fit on the valid pixels
        (:func:`~depth_eval.scoring.alignments.align_mvn` with the mask).

    Returns
    -------
    metrics : dict
        Name -> value in the order of ``STANDARD_METRIC_TITLES``; all NaN when nothing can be
        scored (see ``info["status"]``).
    info : dict
        ``status`` ("ok", "no_valid_pixels" or "alignment_failed"), ``reason`` (text, None when
        ok), ``valid_pixels`` (int), ``align``, ``crop``, ``scale`` and ``shift`` (float, or None
        where the alignment has none); JSON-serialisable.

    Raises
    ------
    ValueError
        Unknown ``crop`` or ``align``, or shapes that differ.
    """
    if crop not in CROPS:
        raise ValueError(f"unknown crop {crop!r}: expected one of {', '.join(CROPS)}")
    if align not in ALIGNMENTS:
        raise ValueError(f"unknown alignment {align!r}: expected one of {', '.join(ALIGNMENTS)}")
    pred = np.asarray(pred_m, dtype=np.float64)
    gt = np.asarray(gt_m, dtype=np.float64)
    check_shape_equality(prediction=pred, ground_truth=gt)
    mask = valid_mask(gt, min_depth, max_depth, crop=crop)
    info = {"status": "ok", "reason": None, "valid_pixels": int(mask.sum()), "align": align,
            "crop": crop, "scale": None, "shift": None}
    nan_metrics = dict.fromkeys(STANDARD_METRIC_TITLES, math.nan)
    if info["valid_pixels"] == 0:
        info.update(status="no_valid_pixels",
                    reason=f"no ground-truth pixel in ({min_depth:g}, {max_depth:g}) m"
                           + (" inside the Eigen crop" if crop == "eigen" else ""))
        return nan_metrics, info
    try:
        aligned, info["scale"], info["shift"] = align_prediction(pred, gt, mask, align)
    except ValueError as error:
        info.update(status="alignment_failed", reason=str(error))
        return nan_metrics, info
    clamped = np.clip(aligned[mask], min_depth, max_depth)
    return standard_metrics(clamped, gt[mask]), info
