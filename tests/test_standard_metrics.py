"""Standard (BTS / monodepth2) metrics, masks, crop and alignments against hand-worked values."""

import math

import cv2
import numpy as np
import pytest

from depth_eval.scoring.thesis_metrics import Metric, mvn_fit
from depth_eval.scoring.alignments import (align_least_squares, align_median, align_mvn, align_prediction)
from depth_eval.scoring.standard_metrics import (STANDARD_METRIC_TITLES, STANDARD_METRICS, eigen_crop_mask, evaluate_standard,
    standard_metrics, valid_mask)


def reference_errors(gt, pred):
    """The monodepth2 compute_errors / BTS eval formulas, restated term by term."""
    thresh = np.maximum(gt / pred, pred / gt)
    a1 = (thresh < 1.25).mean()
    a2 = (thresh < 1.25 ** 2).mean()
    a3 = (thresh < 1.25 ** 3).mean()
    rmse = np.sqrt(((gt - pred) ** 2).mean())
    rmse_log = np.sqrt(((np.log(gt) - np.log(pred)) ** 2).mean())
    abs_rel = np.mean(np.abs(gt - pred) / gt)
    sq_rel = np.mean(((gt - pred) ** 2) / gt)
    err = np.log(pred) - np.log(gt)
    silog = np.sqrt(np.mean(err ** 2) - np.mean(err) ** 2) * 100
    log10 = np.mean(np.abs(np.log10(pred) - np.log10(gt)))
    return dict(abs_rel=abs_rel, sq_rel=sq_rel, rmse=rmse, rmse_log=rmse_log, log10=log10,
                silog=silog, d1=a1, d2=a2, d3=a3)


def test_metric_names_order_and_directions():
    assert STANDARD_METRIC_TITLES == ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog",
                                      "d1", "d2", "d3")
    assert all(isinstance(m, Metric) for m in STANDARD_METRICS)
    assert [m.lower_is_better for m in STANDARD_METRICS] == [True] * 6 + [False] * 3
    keys = standard_metrics(np.array([1.0]), np.array([1.0])).keys()
    assert tuple(keys) == STANDARD_METRIC_TITLES


def test_two_pixels_by_hand():
    # p = (1, 2) against g = (2, 2): one pixel at half depth, one exact.
    m = standard_metrics(np.array([1.0, 2.0]), np.array([2.0, 2.0]))
    ln2 = math.log(2)
    assert m["abs_rel"] == pytest.approx(0.25)          # (1/2 + 0) / 2
    assert m["sq_rel"] == pytest.approx(0.25)           # (1/2 + 0) / 2
    assert m["rmse"] == pytest.approx(math.sqrt(0.5))   # sqrt((1 + 0) / 2)
    assert m["rmse_log"] == pytest.approx(ln2 / math.sqrt(2))
    assert m["log10"] == pytest.approx(math.log10(2) / 2)
    # d = (-ln 2, 0): mean d^2 = ln2^2 / 2, mean d = -ln2 / 2 -> variance ln2^2 / 4.
    assert m["silog"] == pytest.approx(100 * ln2 / 2)
    assert (m["d1"], m["d2"], m["d3"]) == (0.5, 0.5, 0.5)  # ratio 2 > 1.25^3 = 1.953


def test_deltas_are_strict_and_symmetric():
    pred = np.array([1.25, 1.0, 1.5, 1.0, 1.9, 3.0])
    gt = np.array([1.0, 1.25, 1.0, 1.5, 1.0, 1.0])  # ratios 1.25, 1.25, 1.5, 1.5, 1.9, 3
    m = standard_metrics(pred, gt)
    assert m["d1"] == 0.0
    assert m["d2"] == pytest.approx(4 / 6)  # 1.5625 bound
    assert m["d3"] == pytest.approx(5 / 6)  # 1.953125 bound


def test_silog_of_a_pure_scale_is_zero_not_nan():
    gt = np.random.default_rng(3).uniform(0.5, 9.0, 1000)
    m = standard_metrics(gt * 1.37, gt)
    assert m["silog"] == pytest.approx(0.0, abs=1e-5)
    assert m["rmse_log"] == pytest.approx(math.log(1.37))


@pytest.mark.parametrize("shape", [(7,), (31, 17), (4, 5, 6), (240, 320)])
def test_matches_monodepth2_and_bts_formulas(shape):
    rng = np.random.default_rng(sum(shape))
    gt = rng.uniform(0.1, 10.0, shape)
    pred = gt * rng.lognormal(0.0, 0.3, shape)
    ours = standard_metrics(pred, gt)
    ref = reference_errors(gt.ravel(), pred.ravel())
    for name in STANDARD_METRIC_TITLES:
        assert ours[name] == pytest.approx(ref[name], rel=1e-12, abs=1e-15), name


def test_standard_metrics_checks_shapes_and_empty():
    with pytest.raises(ValueError, match="shape"):
        standard_metrics(np.ones(3), np.ones(4))
    empty = standard_metrics(np.zeros(0), np.zeros(0))
    assert all(math.isnan(v) for v in empty.values())


# --- valid mask and crop --------------------------------------------------------------------

def test_valid_mask_drops_missing_and_out_of_range():
    gt = np.array([0.0, np.nan, np.inf, -np.inf, -1.0, 1e-3, 0.002, 5.0, 10.0, 9.999, 12.0])
    expected = [False, False, False, False, False, False, True, True, False, True, False]
    assert valid_mask(gt).tolist() == expected
    assert valid_mask(gt, min_depth=1.0, max_depth=np.inf).tolist() == (
        [False] * 7 + [True, True, True, True])
    # A negative lower bound still rejects zero and negative depths.
    assert not valid_mask(np.array([0.0, -0.5]), min_depth=-1.0).any()


def test_valid_mask_combines_crop():
    gt = np.full((480, 640), 3.0)
    gt[100, 100] = 0.0
    mask = valid_mask(gt, crop="eigen")
    assert mask.sum() == 426 * 560 - 1
    assert (valid_mask(gt, crop=eigen_crop_mask(gt.shape)) == mask).all()
    assert (valid_mask(gt, crop="none") == valid_mask(gt)).all()
    with pytest.raises(ValueError, match=r"shapes differ: crop mask \(2, 2\)"):
        valid_mask(gt, crop=np.ones((2, 2), bool))
    with pytest.raises(ValueError, match="unknown crop"):
        valid_mask(gt, crop="garg")


def test_eigen_crop_on_nyu_frames():
    mask = eigen_crop_mask((480, 640))
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    assert (rows[0], rows[-1], cols[0], cols[-1]) == (45, 470, 41, 600)
    assert mask[45:471, 41:601].all()
    assert mask.sum() == 426 * 560


def test_eigen_crop_scaled_to_thesis_ground_truth():
    # 420 x 320 (W x H): rows ceil(45 * 2/3) = 30 .. ceil(471 * 2/3) = 314; cols
    # ceil(41 * 420/640 = 26.9) = 27 .. ceil(601 * 420/640 = 394.4) = 395: column 394 samples
    # column floor(394 * 640/420) = 600 of the frame, inside BTS's crop.
    mask = eigen_crop_mask((320, 420))
    expected = np.zeros((320, 420), bool)
    expected[30:314, 27:395] = True
    assert (mask == expected).all()


@pytest.mark.parametrize("shape", [(320, 420), (240, 320), (120, 160), (256, 341), (32, 128),
                                   (96, 1280), (960, 1280), (481, 641), (16, 64)])
def test_eigen_crop_keeps_the_pixels_sampled_from_btss_crop(shape):
    # The rule for other sizes: a pixel is inside when the 480 x 640 pixel that OpenCV's
    # nearest-neighbour resize samples for it is inside rows 45:471, cols 41:601.
    frame_rows, frame_cols = np.mgrid[0:480, 0:640].astype(np.float32)
    size = shape[::-1]
    rows = cv2.resize(frame_rows, size, interpolation=cv2.INTER_NEAREST).astype(int)
    cols = cv2.resize(frame_cols, size, interpolation=cv2.INTER_NEAREST).astype(int)
    sampled_inside = (rows >= 45) & (rows < 471) & (cols >= 41) & (cols < 601)
    assert np.array_equal(eigen_crop_mask(shape), sampled_inside)


def test_eigen_crop_bounds_are_exact_ceilings():
    # 45 * 16 / 480 = 1.5 -> 2; 41 * 64 / 640 = 4.1 -> 5; 601 * 1280 / 640 = 1202 exactly.
    assert np.flatnonzero(eigen_crop_mask((16, 64)).any(axis=1))[0] == 2
    assert np.flatnonzero(eigen_crop_mask((16, 64)).any(axis=0))[0] == 5
    assert np.flatnonzero(eigen_crop_mask((96, 1280)).any(axis=0))[[0, -1]].tolist() == [82, 1201]
    with pytest.raises(ValueError):
        eigen_crop_mask((3, 4, 5))


# --- alignments ---------------------------------------------------------------------------------

def synthetic(shape=(40, 50), seed=0):
    rng = np.random.default_rng(seed)
    pred = rng.uniform(0.2, 3.0, shape)
    mask = rng.random(shape) > 0.3
    return pred, mask


def test_median_scaling_recovers_the_scale():
    pred, mask = synthetic()
    gt = 2.5 * pred
    gt[~mask] = 0.0  # invalid pixels must not enter the fit
    aligned, scale = align_median(pred, gt, mask)
    assert scale == pytest.approx(2.5, rel=1e-14)
    assert np.allclose(aligned, 2.5 * pred, rtol=1e-14)
    assert aligned.shape == pred.shape


def test_median_scaling_definition_and_failures():
    pred = np.array([1.0, 2.0, 4.0, 100.0])
    gt = np.array([3.0, 5.0, 7.0, 0.0])
    mask = np.array([True, True, True, False])
    _, scale = align_median(pred, gt, mask)
    assert scale == 5.0 / 2.0
    with pytest.raises(ValueError, match="median"):
        align_median(np.zeros(4), gt, mask)
    with pytest.raises(ValueError, match="no valid pixel"):
        align_median(pred, gt, np.zeros(4, bool))


def test_least_squares_recovers_scale_and_shift():
    pred, mask = synthetic(seed=1)
    gt = 1.7 * pred + 0.35
    gt[~mask] = np.nan
    aligned, scale, shift = align_least_squares(pred, gt, mask)
    assert scale == pytest.approx(1.7, rel=1e-12)
    assert shift == pytest.approx(0.35, rel=1e-12)
    assert np.allclose(aligned, 1.7 * pred + 0.35, rtol=1e-12)


def test_least_squares_solves_the_normal_equations():
    rng = np.random.default_rng(5)
    pred, gt = rng.uniform(1, 5, 200), rng.uniform(1, 5, 200)
    mask = np.ones(200, bool)
    _, scale, shift = align_least_squares(pred, gt, mask)
    normal = np.array([[pred @ pred, pred.sum()], [pred.sum(), pred.size]])
    expected = np.linalg.solve(normal, [pred @ gt, gt.sum()])
    assert (scale, shift) == pytest.approx(tuple(expected), rel=1e-10)


def test_least_squares_constant_prediction_gives_the_mean():
    gt = np.array([1.0, 2.0, 6.0, 50.0])
    mask = np.array([True, True, True, False])
    aligned, scale, shift = align_least_squares(np.full(4, 0.1), gt, mask)
    assert (scale, shift) == (0.0, 3.0)
    assert (aligned == 3.0).all()


def test_mvn_without_mask_is_the_thesis_fit():
    pred, _ = synthetic(seed=2)
    gt = np.random.default_rng(9).uniform(1, 9, pred.shape)
    assert np.array_equal(align_mvn(pred, gt), mvn_fit(pred, gt))


def test_mvn_with_mask_fits_masked_pixels_and_maps_everything():
    pred, mask = synthetic(seed=3)
    gt = 3.0 * pred + 1.0
    gt[~mask] = 0.0
    aligned = align_mvn(pred, gt, mask)
    assert np.allclose(aligned[mask], mvn_fit(pred[mask], gt[mask]), rtol=1e-12)
    assert np.allclose(aligned, 3.0 * pred + 1.0, rtol=1e-12)  # unmasked pixels too
    assert np.isnan(align_mvn(np.ones(4), np.arange(4.0), np.ones(4, bool))).all()


def test_align_prediction_dispatch():
    pred, mask = synthetic(seed=4)
    gt = 2.0 * pred + 0.5
    assert align_prediction(pred, gt, mask, "none")[1:] == (None, None)
    assert align_prediction(pred, gt, mask, "median")[2] is None
    _, scale, shift = align_prediction(pred, gt, mask, "mvn")
    assert (scale, shift) == pytest.approx((2.0, 0.5), rel=1e-12)
    with pytest.raises(ValueError, match="unknown alignment"):
        align_prediction(pred, gt, mask, "affine")
    with pytest.raises(ValueError, match="constant"):
        align_prediction(np.ones(3), np.arange(3.0), np.ones(3, bool), "mvn")


# --- evaluate_standard -----------------------------------------------------------------------------

def test_evaluate_clamps_the_prediction_and_masks_the_ground_truth():
    gt = np.array([[0.0, 2.0, 4.0], [11.0, 5.0, np.nan]])
    pred = np.array([[7.0, -3.0, 12.0], [1.0, 5.0, 2.0]])
    metrics, info = evaluate_standard(pred, gt)
    # Valid: gt 2, 4, 5 with predictions clamped to 1e-3, 10, 5.
    expected = standard_metrics(np.array([1e-3, 10.0, 5.0]), np.array([2.0, 4.0, 5.0]))
    assert metrics == expected
    assert info == {"status": "ok", "reason": None, "valid_pixels": 3, "align": "none",
                    "crop": "none", "scale": None, "shift": None}


def test_evaluate_median_scales_before_clamping():
    # monodepth2 order: 0.004 * 3 = 0.012 m survives (clamping first would give 0.003).
    gt = np.array([3.0, 3.0, 3.0, 0.012])
    pred = np.array([1.0, 1.0, 1.0, 0.004])
    metrics, info = evaluate_standard(pred, gt, align="median")
    assert info["scale"] == 3.0 and info["shift"] is None
    assert metrics["abs_rel"] == pytest.approx(0.0, abs=1e-15)
    # And the clamp applies after scaling: 4 m * 3 = 12 m -> 10 m.
    metrics, _ = evaluate_standard(np.array([1.0, 1.0, 4.0]), np.array([3.0, 3.0, 9.0]),
                                   align="median")
    assert metrics["abs_rel"] == pytest.approx((1.0 / 9.0) / 3)


def test_evaluate_least_squares_and_mvn_report_their_fit():
    rng = np.random.default_rng(11)
    gt = rng.uniform(1.0, 8.0, (48, 64))
    pred = (gt - 0.5) / 2.0
    for align in ("lsq", "mvn"):
        metrics, info = evaluate_standard(pred, gt, align=align)
        assert (info["scale"], info["shift"]) == pytest.approx((2.0, 0.5), rel=1e-12)
        assert metrics["rmse"] == pytest.approx(0.0, abs=1e-12)
        assert metrics["d1"] == 1.0


def test_evaluate_with_eigen_crop_ignores_the_border():
    gt = np.full((480, 640), 4.0)
    pred = np.full((480, 640), 4.0)
    pred[:45] = 1.0  # wrong only outside the crop
    pred[:, 601:] = 1.0
    metrics, info = evaluate_standard(pred, gt, crop="eigen")
    assert metrics["rmse"] == 0.0 and info["valid_pixels"] == 426 * 560
    assert evaluate_standard(pred, gt)[0]["rmse"] > 0


def test_evaluate_without_valid_pixels_gives_nan():
    metrics, info = evaluate_standard(np.ones((4, 4)), np.zeros((4, 4)))
    assert tuple(metrics) == STANDARD_METRIC_TITLES
    assert all(math.isnan(v) for v in metrics.values())
    assert info["status"] == "no_valid_pixels" and info["valid_pixels"] == 0
    assert "no ground-truth pixel" in info["reason"]


def test_evaluate_failed_alignment_gives_nan():
    metrics, info = evaluate_standard(np.zeros((3, 3)), np.full((3, 3), 2.0), align="median")
    assert all(math.isnan(v) for v in metrics.values())
    assert info["status"] == "alignment_failed" and "median" in info["reason"]


def test_evaluate_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown crop"):
        evaluate_standard(np.ones((2, 2)), np.ones((2, 2)), crop="garg")
    with pytest.raises(ValueError, match="unknown alignment"):
        evaluate_standard(np.ones((2, 2)), np.ones((2, 2)), align="scale")
    with pytest.raises(ValueError, match="shape"):
        evaluate_standard(np.ones((2, 2)), np.ones((2, 3)))
