"""Test oracles: the published depth-evaluation formulas restated term by term in plain numpy.

Independent of :mod:`depth_eval` (nothing is imported from it), each function restates one
published definition as literally as numpy allows, in float64 unless the original works in
float32:

- the thesis' ten metrics of ``eval_depth.py`` (``../shared/SPEC.md`` section 7, the source:
  the eps clamps, the clamped ground truth in the numerator of AbsRelDiff / SqrRelDiff, the
  threshold ratios in float32);
- monodepth2: ``compute_errors`` (abs_rel, sq_rel, rmse, rmse_log, a1-a3), its per-image median
  scaling and the ``med`` / ``std`` line it prints about the scaling ratios;
- BTS ``eval_with_pngs.py``: prediction clamped to ``[min, max]`` (``inf`` -> max), ground truth
  ``inf`` / ``NaN`` -> 0, valid mask ``min < gt < max``, Eigen crop ``[45:471, 41:601]`` of a
  480 x 640 frame, then silog, log10, abs_rel, sq_rel, rms, log_rms, d1-d3;
- MiDaS / ZoeDepth ``compute_scale_and_shift``: the 2 x 2 normal equations of the least-squares
  scale and shift on a mask (0, 0 where the determinant is not positive).

The code is written for these tests; only the formulas come from the originals.
"""

from __future__ import annotations

import numpy as np

# --- thesis, eval_depth.py (SPEC.md section 7) --------------------------------------------

THESIS_EPS = 1.0 / 255.0
THESIS_TITLES = ("AbsRelDiff", "SqrRelDiff", "RMSE", "RMSELog", "SIMSE", "Log10", "MVN",
                 "Threshold 1.25", "Threshold 1.25^2", "Threshold 1.25^3")


def _f64(x):
    return np.asarray(x, dtype=np.float64).ravel()


def thesis_scaled_log(x):
    """L(x) = 10 * (0.179581 * ln(max(x / 10, eps)) + 1)."""
    return 10.0 * (0.179581 * np.log(np.maximum(x / 10.0, THESIS_EPS)) + 1.0)


def thesis_abs_rel_diff(o, g):
    o, g = _f64(o), _f64(g)
    g = np.maximum(g, THESIS_EPS)  # the original reassigns gt before using it twice
    return float(np.mean(np.abs(o - g) / g))


def thesis_sqr_rel_diff(o, g):
    o, g = _f64(o), _f64(g)
    g = np.maximum(g, THESIS_EPS)
    return float(np.mean((o - g) ** 2 / g))


def thesis_rmse(o, g):
    o, g = _f64(o), _f64(g)
    return float(np.sqrt(np.mean((o - g) ** 2)))


def thesis_rmse_log(o, g):
    o, g = _f64(o), _f64(g)
    return float(np.sqrt(np.mean((thesis_scaled_log(o) - thesis_scaled_log(g)) ** 2)))


def thesis_simse(o, g):
    o, g = _f64(o), _f64(g)
    d = thesis_scaled_log(o) - thesis_scaled_log(g)
    n = d.size
    return float(np.mean(d ** 2) - np.sum(d) ** 2 / n ** 2)


def thesis_log10(o, g):
    o, g = _f64(o), _f64(g)
    return float(np.mean(np.abs(np.log10(np.maximum(o, THESIS_EPS))
                                - np.log10(np.maximum(g, THESIS_EPS)))))


def _zscore(x):
    return (x - x.mean()) / x.std()


def thesis_mvn(o, g):
    o, g = _f64(o), _f64(g)
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.sqrt(np.mean((_zscore(o) - _zscore(g)) ** 2)))


def thesis_threshold(o, g, t):
    """Fraction of pixels with max(o'/g', g'/o') < t, all in float32 as the original's arrays."""
    o = np.maximum(np.asarray(o, dtype=np.float32).ravel(), np.float32(THESIS_EPS))
    g = np.maximum(np.asarray(g, dtype=np.float32).ravel(), np.float32(THESIS_EPS))
    ratio = np.maximum(o / g, g / o)
    assert ratio.dtype == np.float32
    return float(np.mean(ratio < t))


def thesis_all(o, g) -> dict:
    """The ten metrics, keyed by the original's titles."""
    values = (thesis_abs_rel_diff(o, g), thesis_sqr_rel_diff(o, g), thesis_rmse(o, g),
              thesis_rmse_log(o, g), thesis_simse(o, g), thesis_log10(o, g), thesis_mvn(o, g),
              thesis_threshold(o, g, 1.25), thesis_threshold(o, g, 1.25 ** 2),
              thesis_threshold(o, g, 1.25 ** 3))
    return dict(zip(THESIS_TITLES, values))


def thesis_all_in_float32(o, g) -> dict:
    """The seven continuous metrics with every array operation in float32, as the original ran
    them on its float32 maps (numpy's float32 pairwise sums); thresholds as thesis_threshold."""
    o = np.asarray(o, np.float32).ravel()
    g = np.asarray(g, np.float32).ravel()
    g_floored = np.maximum(g, THESIS_EPS)
    d = thesis_scaled_log(o) - thesis_scaled_log(g)
    with np.errstate(invalid="ignore", divide="ignore"):
        z_diff = _zscore(o) - _zscore(g)
    values = {
        "AbsRelDiff": np.mean(np.abs(o - g_floored) / g_floored),
        "SqrRelDiff": np.mean((o - g_floored) ** 2 / g_floored),
        "RMSE": np.sqrt(np.mean((o - g) ** 2)),
        "RMSELog": np.sqrt(np.mean(d ** 2)),
        "SIMSE": np.mean(d ** 2) - np.sum(d) ** 2 / d.size ** 2,
        "Log10": np.mean(np.abs(np.log10(np.maximum(o, THESIS_EPS))
                                - np.log10(np.maximum(g, THESIS_EPS)))),
        "MVN": np.sqrt(np.mean(z_diff ** 2)),
    }
    assert all(value.dtype == np.float32 for value in values.values())
    values = {title: float(value) for title, value in values.items()}
    for title, t in zip(THESIS_TITLES[7:], (1.25, 1.25 ** 2, 1.25 ** 3)):
        values[title] = thesis_threshold(o, g, t)
    return values


def thesis_mvn_fit(prediction, target):
    """The thesis' oracle map: z(prediction) * std(target) + mean(target)."""
    return _zscore(prediction) * target.std() + target.mean()


# --- monodepth2 ------------------------------------------------------------------------------

def monodepth2_compute_errors(gt, pred) -> dict:
    """abs_rel, sq_rel, rmse, rmse_log, a1, a2, a3 of 1-D valid-pixel arrays."""
    gt, pred = _f64(gt), _f64(pred)
    worst_ratio = np.maximum(gt / pred, pred / gt)
    return {
        "abs_rel": float(np.mean(np.abs(gt - pred) / gt)),
        "sq_rel": float(np.mean((gt - pred) ** 2 / gt)),
        "rmse": float(np.sqrt(np.mean((gt - pred) ** 2))),
        "rmse_log": float(np.sqrt(np.mean((np.log(gt) - np.log(pred)) ** 2))),
        "a1": float(np.mean(worst_ratio < 1.25)),
        "a2": float(np.mean(worst_ratio < 1.25 ** 2)),
        "a3": float(np.mean(worst_ratio < 1.25 ** 3)),
    }


def monodepth2_evaluate(pred, gt, min_depth, max_depth, crop=None, median_scaling=True):
    """monodepth2's per-image recipe: mask, (median scaling), clamp, errors.

    Returns ``(errors, ratio)``; ratio is None without median scaling.
    """
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    mask = (gt > min_depth) & (gt < max_depth)
    if crop is not None:
        mask &= crop
    pred_v, gt_v = pred[mask].copy(), gt[mask]
    ratio = None
    if median_scaling:
        ratio = np.median(gt_v) / np.median(pred_v)
        pred_v *= ratio
    pred_v[pred_v < min_depth] = min_depth
    pred_v[pred_v > max_depth] = max_depth
    return monodepth2_compute_errors(gt_v, pred_v), (None if ratio is None else float(ratio))


def monodepth2_ratio_report(ratios):
    """The two numbers monodepth2 prints after median scaling: med and std(ratios / med)."""
    ratios = np.asarray(ratios, np.float64)
    med = np.median(ratios)
    return float(med), float(np.std(ratios / med))


# --- BTS eval_with_pngs.py -------------------------------------------------------------------

def bts_compute_errors(gt, pred) -> dict:
    """silog, log10, abs_rel, sq_rel, rms, log_rms, d1, d2, d3 of 1-D valid-pixel arrays."""
    gt, pred = _f64(gt), _f64(pred)
    worst_ratio = np.maximum(gt / pred, pred / gt)
    log_err = np.log(pred) - np.log(gt)
    return {
        "silog": float(100.0 * np.sqrt(np.mean(log_err ** 2) - np.mean(log_err) ** 2)),
        "log10": float(np.mean(np.abs(np.log10(pred) - np.log10(gt)))),
        "abs_rel": float(np.mean(np.abs(gt - pred) / gt)),
        "sq_rel": float(np.mean((gt - pred) ** 2 / gt)),
        "rms": float(np.sqrt(np.mean((gt - pred) ** 2))),
        "log_rms": float(np.sqrt(np.mean((np.log(gt) - np.log(pred)) ** 2))),
        "d1": float(np.mean(worst_ratio < 1.25)),
        "d2": float(np.mean(worst_ratio < 1.25 ** 2)),
        "d3": float(np.mean(worst_ratio < 1.25 ** 3)),
    }


def bts_eigen_eval_mask(shape):
    """BTS's NYU Eigen crop: ones at [45:471, 41:601] of a zero mask of the frame's shape."""
    eval_mask = np.zeros(shape)
    eval_mask[45:471, 41:601] = 1
    return eval_mask.astype(bool)


def bts_clean(pred, gt, min_depth, max_depth):
    """BTS's in-place fixes, on copies: clamp the prediction (inf -> max), gt inf/NaN -> 0."""
    pred, gt = np.array(pred, np.float64), np.array(gt, np.float64)
    pred[pred < min_depth] = min_depth
    pred[pred > max_depth] = max_depth
    pred[np.isinf(pred)] = max_depth
    gt[np.isinf(gt)] = 0
    gt[np.isnan(gt)] = 0
    return pred, gt


def bts_valid_mask(gt, min_depth, max_depth, eigen_crop=False):
    """min < gt < max (after gt inf/NaN -> 0), and the Eigen crop if asked."""
    gt = np.array(gt, np.float64)
    gt[~np.isfinite(gt)] = 0
    valid = np.logical_and(gt > min_depth, gt < max_depth)
    if eigen_crop:
        valid = np.logical_and(valid, bts_eigen_eval_mask(gt.shape))
    return valid


def bts_evaluate(pred, gt, min_depth, max_depth, eigen_crop=False) -> dict:
    """One image as eval_with_pngs.py scores it."""
    pred, gt = bts_clean(pred, gt, min_depth, max_depth)
    valid = bts_valid_mask(gt, min_depth, max_depth, eigen_crop)
    return bts_compute_errors(gt[valid], pred[valid])


# --- MiDaS / ZoeDepth compute_scale_and_shift ----------------------------------------------

def midas_scale_and_shift(prediction, target, mask):
    """Solve [[sum m p^2, sum m p], [sum m p, sum m]] (s, t) = (sum m p g, sum m g)."""
    m = np.asarray(mask, np.float64)
    p, g = np.asarray(prediction, np.float64), np.asarray(target, np.float64)
    g = np.where(m > 0, g, 0.0)  # masked-out targets may be NaN; m * NaN would poison the sums
    a_00, a_01, a_11 = np.sum(m * p * p), np.sum(m * p), np.sum(m)
    b_0, b_1 = np.sum(m * p * g), np.sum(m * g)
    det = a_00 * a_11 - a_01 * a_01
    if not det > 0:
        return 0.0, 0.0
    return float((a_11 * b_0 - a_01 * b_1) / det), float((-a_01 * b_0 + a_00 * b_1) / det)


# --- thesis pipeline pieces (SPEC.md sections 3 and 6), for end-to-end references ---------

def thesis_ground_truth(raw, shape=(320, 420)):
    """A ground-truth image as the original loads it, in depth / 10 units (float32).

    caffe.io.load_image (value / dtype range, grey replicated to 3 channels, alpha dropped),
    then skimage's order-1 resize of the H x W x 3 image to ``shape + (1,)``: the single output
    channel samples channel coordinate 1.0, i.e. the G channel.
    """
    from skimage.transform import resize

    raw = np.asarray(raw)
    image = raw.astype(np.float32) / np.float32(np.iinfo(raw.dtype).max)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    image = image[:, :, :3]
    resized = resize(image, tuple(shape) + (1,), order=1, mode="constant", anti_aliasing=False,
                     preserve_range=True)
    return resized[:, :, 0].astype(np.float32)


def thesis_zoom(output_map, shape):
    """The network's h x w map zoomed to ``shape`` as the original did it: scipy's cubic
    spline on the 1 x 1 x h x w blob, factors (1, 1, H / h, W / w), float32 kept."""
    from scipy.ndimage import zoom

    blob = np.asarray(output_map, np.float32)[None, None]
    h, w = blob.shape[2:]
    return zoom(blob, (1, 1, shape[0] / h, shape[1] / w), order=3)[0, 0]


def standard_reference(output_map, gt_m, min_depth, max_depth, eigen_crop, align="none"):
    """What ``--metrics standard`` must give for one image (issue 10 items 4 and 5): the
    network's depth / 10 map zoomed to the ground truth's own size, times 10, aligned and
    scored as BTS against the ground truth in metres as read (mm / 1000 exact, npy as stored).
    Returns aligned_then_bts's ``(errors, scale, shift)``."""
    gt_m = np.asarray(gt_m, np.float64)
    pred_m = thesis_zoom(output_map, gt_m.shape).astype(np.float64) * 10.0
    return aligned_then_bts(pred_m, gt_m, min_depth, max_depth, eigen_crop, align)


# --- the protocols the tool's --align options claim to reproduce -------------------------

# Project key -> BTS key, for comparing evaluate_standard with bts_evaluate.
BTS_KEYS = {"abs_rel": "abs_rel", "sq_rel": "sq_rel", "rmse": "rms", "rmse_log": "log_rms",
            "log10": "log10", "silog": "silog", "d1": "d1", "d2": "d2", "d3": "d3"}
# Project key -> monodepth2 key (monodepth2 has no log10 or silog).
MONODEPTH2_KEYS = {"abs_rel": "abs_rel", "sq_rel": "sq_rel", "rmse": "rmse",
                   "rmse_log": "rmse_log", "d1": "a1", "d2": "a2", "d3": "a3"}


def aligned_then_bts(pred, gt, min_depth, max_depth, eigen_crop, align):
    """Align on BTS's valid pixels, then score as BTS (clamp, mask, errors).

    ``align``: "none"; "median" (monodepth2's ratio median(g) / median(p) on the valid pixels);
    "lsq" (MiDaS' scale and shift on the valid pixels); "mvn" (the thesis' MVN fit with the
    means and population stds of the valid pixels).  Returns ``(errors, scale, shift)``.
    """
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    valid = bts_valid_mask(gt, min_depth, max_depth, eigen_crop)
    scale = shift = None
    if align == "median":
        scale = float(np.median(gt[valid]) / np.median(pred[valid]))
        pred = pred * scale
    elif align == "lsq":
        scale, shift = midas_scale_and_shift(pred, gt, valid)
        pred = pred * scale + shift
    elif align == "mvn":
        p, g = pred[valid], gt[valid]
        pred = (pred - p.mean()) / p.std() * g.std() + g.mean()
    elif align != "none":
        raise ValueError(align)
    return bts_evaluate(pred, gt, min_depth, max_depth, eigen_crop), scale, shift
