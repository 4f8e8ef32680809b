"""The metric functions against the peers' formulas (tests/oracles.py) on hostile data.

Ground truth with holes (0), NaN and inf, depths beyond 10 m, values exactly on the bounds,
metres derived from 16-bit millimetres (``mm / 1000``, exact in float64), ties exactly at
1.25, 1.25^2 and 1.25^3, at the native 480 x 640 NYU resolution (standard metrics) and at the
thesis' 320 x 420 with its 8-bit encoding (thesis metrics).  Every continuous metric within
1e-6 relative of the oracle, every fraction (d1-d3, Thresholds) exactly equal.
"""

import math

import numpy as np
import pytest

from depth_eval.scoring import alignments, thesis_metrics as metrics
from depth_eval.scoring.alignments import ALIGNMENTS, align_prediction
from depth_eval.scoring.standard_metrics import eigen_crop_mask, evaluate_standard, valid_mask

import oracles

# The issue's acceptance tolerance for continuous metrics (fractions must be equal).
RTOL = 1e-6
FRACTIONS = {"d1", "d2", "d3", "Threshold 1.25", "Threshold 1.25^2", "Threshold 1.25^3"}
NYU_SHAPE = (480, 640)
THESIS_SHAPE = (320, 420)
# (min_depth, max_depth): the defaults; bounds that sit exactly on 16-bit mm values of the
# frame (3300 mm and 6400 mm occur in it); an outdoor-like range that keeps the > 10 m depths.
BOUNDS = [(1e-3, 10.0), (3.3, 6.4), (0.5, 80.0)]


def assert_agree(ours, reference, keys=None):
    """Continuous values within RTOL relative (NaN equals NaN), fractions exactly equal."""
    keys = keys or {k: k for k in reference}
    for our_key, ref_key in keys.items():
        got, want = ours[our_key], reference[ref_key]
        if our_key in FRACTIONS:
            assert got == want, (our_key, got, want)
        elif math.isnan(want):
            assert math.isnan(got), (our_key, got)
        else:
            assert got == pytest.approx(want, rel=RTOL, abs=0.0), our_key


def nyu_frame(seed=0):
    """(prediction, ground truth) in metres, 480 x 640, float64, with every hazard listed above."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:480, 0:640]
    # A smooth room-like depth in millimetres, 400 .. 12500: walls beyond 10 m at the right.
    scene = 400 + 12100 * (0.5 * cols / 639 + 0.5 * rng.random(NYU_SHAPE) ** 2)
    millimetres = np.round(scene).astype(np.int64)
    millimetres[rng.random(NYU_SHAPE) < 0.08] = 0                # sensor holes
    for on_bound in (1, 500, 3300, 6400, 10000):                 # exactly on a bound
        millimetres.flat[rng.choice(millimetres.size, 300, replace=False)] = on_bound
    gt = millimetres / 1000.0                                     # exact mm -> m, as BTS reads
    pred = gt * rng.lognormal(0.05, 0.25, NYU_SHAPE)
    holes = gt == 0
    pred[holes] = rng.uniform(0.2, 9.0, holes.sum())
    # Exact ties: binary-exact depths whose ratio is exactly 1.25, 1.25^2, 1.25^3 (both ways).
    tie_at = rng.choice(np.flatnonzero(~holes & (gt < 6.0)), 3000, replace=False)
    base = 0.125 * rng.integers(8, 40, tie_at.size)              # 1 .. 5 m, exact in binary
    factor = np.array([1.25, 1.25 ** 2, 1.25 ** 3])[np.arange(tie_at.size) % 3]
    upward = np.arange(tie_at.size) % 2 == 0
    gt.flat[tie_at] = np.where(upward, base, base * factor)
    pred.flat[tie_at] = np.where(upward, base * factor, base)
    # Out-of-range and non-finite predictions, NaN / inf ground truth.
    pred.flat[rng.choice(pred.size, 500, replace=False)] = rng.uniform(-1.0, 1e-3, 500)
    pred.flat[rng.choice(pred.size, 500, replace=False)] = rng.uniform(10.0, 40.0, 500)
    pred.flat[rng.choice(pred.size, 50, replace=False)] = np.inf
    gt.flat[rng.choice(gt.size, 50, replace=False)] = np.nan
    gt.flat[rng.choice(gt.size, 50, replace=False)] = np.inf
    return pred, gt


@pytest.fixture(scope="module")
def frame():
    return nyu_frame()


def test_the_frame_has_its_hazards(frame):
    pred, gt = frame
    assert gt.shape == NYU_SHAPE and (gt == 0).mean() > 0.05 and (gt > 10).sum() > 10000
    assert all((gt == bound).sum() >= 250 for bound in (0.001, 0.5, 3.3, 6.4, 10.0))
    assert np.isnan(gt).sum() == 50 and np.isinf(gt).sum() == 50 and np.isinf(pred).sum() == 50
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.maximum(pred / gt, gt / pred)
    assert all((ratio == t).sum() >= 900 for t in (1.25, 1.25 ** 2, 1.25 ** 3))


# --- Eigen crop ------------------------------------------------------------------------------

def test_eigen_crop_is_btss_at_480_x_640():
    assert np.array_equal(eigen_crop_mask(NYU_SHAPE), oracles.bts_eigen_eval_mask(NYU_SHAPE))


# --- standard metrics: BTS eval_with_pngs.py, monodepth2, MiDaS ------------------------------

@pytest.mark.parametrize("bounds", BOUNDS)
@pytest.mark.parametrize("crop", ["none", "eigen"])
def test_valid_mask_is_btss(frame, bounds, crop):
    _, gt = frame
    ours = valid_mask(gt, *bounds, crop=crop)
    assert np.array_equal(ours, oracles.bts_valid_mask(gt, *bounds, eigen_crop=crop == "eigen"))


@pytest.mark.parametrize("align", ALIGNMENTS)
@pytest.mark.parametrize("bounds", BOUNDS)
@pytest.mark.parametrize("crop", ["none", "eigen"])
def test_evaluate_standard_reproduces_bts_after_each_alignment(frame, align, bounds, crop):
    pred, gt = frame
    if align in ("lsq", "mvn"):  # an infinite prediction leaves no finite fit, for any peer
        pred = np.where(np.isinf(pred), 40.0, pred)
    ours, info = evaluate_standard(pred, gt, min_depth=bounds[0], max_depth=bounds[1],
                                   crop=crop, align=align)
    reference, scale, shift = oracles.aligned_then_bts(pred, gt, *bounds, crop == "eigen", align)
    assert info["status"] == "ok"
    assert_agree(ours, reference, oracles.BTS_KEYS)
    if scale is not None:
        assert info["scale"] == pytest.approx(scale, rel=1e-12)
    if shift is not None:
        assert info["shift"] == pytest.approx(shift, rel=1e-9)


@pytest.mark.parametrize("median_scaling", [False, True])
@pytest.mark.parametrize("crop", ["none", "eigen"])
def test_evaluate_standard_reproduces_monodepth2(frame, median_scaling, crop):
    pred, gt = frame
    gt = np.nan_to_num(gt, nan=0.0, posinf=0.0)  # monodepth2 reads finite depths only
    mask = eigen_crop_mask(NYU_SHAPE) if crop == "eigen" else None
    reference, ratio = oracles.monodepth2_evaluate(pred, gt, 1e-3, 10.0, mask, median_scaling)
    ours, info = evaluate_standard(pred, gt, crop=crop,
                                   align="median" if median_scaling else "none")
    assert_agree(ours, reference, oracles.MONODEPTH2_KEYS)
    assert info["scale"] == ratio  # the same two medians, the same division


@pytest.mark.parametrize("align", ALIGNMENTS)
@pytest.mark.parametrize("crop", ["none", "eigen"])
def test_align_prediction_is_the_peers_fit(frame, align, crop):
    pred, gt = frame
    pred = np.where(np.isfinite(pred), pred, 5.0)  # a fit over inf is undefined for every peer
    mask = valid_mask(gt, crop=crop)
    aligned, scale, shift = align_prediction(pred, gt, mask, align)
    p, g = pred[mask], gt[mask]
    if align == "none":
        expected = pred
    elif align == "median":
        expected = pred * (np.median(g) / np.median(p))
    elif align == "lsq":
        s, t = oracles.midas_scale_and_shift(pred, gt, mask)
        expected = pred * s + t
        assert (scale, shift) == (pytest.approx(s, rel=1e-12), pytest.approx(t, rel=1e-9))
    else:
        expected = oracles.thesis_mvn_fit(p, g)
        aligned = aligned[mask]
    np.testing.assert_allclose(aligned, expected, rtol=1e-12, atol=0)


def test_lsq_minimises_the_squared_error(frame):
    pred, gt = frame
    pred = np.where(np.isfinite(pred), pred, 5.0)
    mask = valid_mask(gt)
    aligned, scale, shift = align_prediction(pred, gt, mask, "lsq")
    best = np.sum((aligned[mask] - gt[mask]) ** 2)
    for ds, dt in ((1e-6, 0), (-1e-6, 0), (0, 1e-6), (0, -1e-6)):
        assert np.sum(((scale + ds) * pred[mask] + shift + dt - gt[mask]) ** 2) > best


def test_nan_prediction_pixels_behave_as_in_bts(frame):
    # BTS leaves a NaN prediction as it is: the means become NaN, the ratio tests count it
    # as a miss.  (The ZoeDepth-style NaN -> min_depth replacement is not what the tool does.)
    pred, gt = frame
    pred = pred.copy()
    pred[100:110, 100:110] = np.nan
    ours, info = evaluate_standard(pred, gt, crop="eigen")
    assert_agree(ours, oracles.bts_evaluate(pred, gt, 1e-3, 10.0, True), oracles.BTS_KEYS)
    assert math.isnan(ours["rmse"]) and 0 < ours["d1"] < 1


def test_ground_truth_kept_exact_in_metres_is_bounded_as_in_bts():
    # Issue 10 item 4 at the function level: 6400 mm read as exactly 6.4 m is outside
    # (0, 6.4); 3300 mm is outside (3.3, 10).  The same value after depth / 10 in float32 and
    # back is 6.3999996 m and would be kept: metres must reach the metric functions exact.
    millimetres = np.array([[3300, 3301, 6399, 6400, 0, 5000]])
    gt = millimetres / 1000.0
    pred = np.full(gt.shape, 5.0)
    for bounds in ((1e-3, 6.4), (3.3, 10.0)):
        ours, info = evaluate_standard(pred, gt, min_depth=bounds[0], max_depth=bounds[1])
        reference = oracles.bts_evaluate(pred, gt, *bounds)
        assert_agree(ours, reference, oracles.BTS_KEYS)
        assert info["valid_pixels"] == oracles.bts_valid_mask(gt, *bounds).sum() == 4
    round_trip = (gt / 10.0).astype(np.float32) * np.float32(10.0)
    assert valid_mask(round_trip, max_depth=6.4).sum() == 5  # 6400 mm sneaks in: pipeline's job


def test_standard_reference_scores_the_zoomed_map_at_native_resolution():
    # The end-to-end reference of items 4-5 (for pipeline tests): a 54 x 74 output zoomed to
    # the 480 x 640 ground truth; at the function level the tool's metrics equal it.
    rng = np.random.default_rng(5)
    millimetres = rng.integers(300, 12000, NYU_SHAPE)
    millimetres[rng.random(NYU_SHAPE) < 0.1] = 0
    gt = millimetres / 1000.0
    output = rng.uniform(0.05, 0.95, (54, 74)).astype(np.float32)
    pred_m = oracles.thesis_zoom(output, NYU_SHAPE).astype(np.float64) * 10.0
    assert pred_m.shape == NYU_SHAPE
    for align in ALIGNMENTS:
        reference, _, _ = oracles.standard_reference(output, gt, 1e-3, 10.0, True, align)
        ours, _ = evaluate_standard(pred_m, gt, crop="eigen", align=align)
        assert_agree(ours, reference, oracles.BTS_KEYS)


def test_thesis_ground_truth_reads_the_green_channel():
    # SPEC.md section 3 (issue 10 item 7): an RGB ground truth is scored on its G channel.
    rng = np.random.default_rng(6)
    rgb = rng.integers(0, 256, (320, 420, 3)).astype(np.uint8)
    green = rgb[:, :, 1].astype(np.float32) / np.float32(255)
    assert np.array_equal(oracles.thesis_ground_truth(rgb), green)
    grey = oracles.thesis_ground_truth(rgb[:, :, 1])
    assert np.array_equal(grey, green)
    large = rng.integers(0, 256, (480, 640, 3)).astype(np.uint8)
    assert np.array_equal(oracles.thesis_ground_truth(large), oracles.thesis_ground_truth(large[:, :, 1]))


# --- thesis metrics: eval_depth.py (SPEC.md section 7) ----------------------------------------

def thesis_images(seed=0):
    """(o, g) in metres as the pipeline passes them: float32, 8-bit ground truth (k / 255 * 10
    in float32) with holes, predictions with exact float32 ties at 1.25, 1.25^2 and 1.25^3."""
    rng = np.random.default_rng(seed)
    levels = (np.arange(256, dtype=np.float32) / np.float32(255)) * np.float32(10)
    grey = rng.integers(1, 256, THESIS_SHAPE)
    grey[rng.random(THESIS_SHAPE) < 0.05] = 0                          # holes
    g = levels[grey]
    o = (g * rng.lognormal(0.0, 0.3, THESIS_SHAPE)).astype(np.float32)
    o[rng.random(THESIS_SHAPE) < 0.01] = np.float32(0.0)               # below eps
    o[rng.random(THESIS_SHAPE) < 0.01] = np.float32(11.5)              # beyond 10 m
    ties = [(a, b) for a in range(1, 256) for b in range(1, 256)
            if levels[b] / levels[a] in (np.float32(1.25), np.float32(1.5625), np.float32(1.953125))]
    spots = rng.choice(o.size, 2 * len(ties) * 20, replace=False).reshape(-1, 2)
    for (a, b), (i, j) in zip(ties * 20, spots):
        g.flat[i], o.flat[i] = levels[a], levels[b]                    # o / g on the tie
        g.flat[j], o.flat[j] = levels[b], levels[a]                    # g / o on the tie
    return o, g, len(ties)


def test_thesis_metrics_reproduce_eval_depth_on_8_bit_ground_truth():
    o, g, n_ties = thesis_images()
    assert n_ties == 59 and o.dtype == g.dtype == np.float32
    assert_agree(metrics.thesis_metrics(o, g), oracles.thesis_all(o, g))


@pytest.mark.parametrize("seed", range(3))
def test_thesis_metrics_match_eval_depth_run_in_float32(seed):
    # The original's own arithmetic on its float32 maps: within 1e-6 too (measured <= 1.2e-7).
    o, g, _ = thesis_images(seed)
    assert_agree(metrics.thesis_metrics(o, g), oracles.thesis_all_in_float32(o, g))


@pytest.mark.parametrize("align", ["mvn", "median", "lsq"])
def test_thesis_metrics_of_aligned_predictions(align):
    # The pipeline scores aligned maps (float32 for mvn, float64 for median / lsq) too.
    o, g, _ = thesis_images(seed=1)
    if align == "mvn":
        aligned = metrics.mvn_fit(o, g)
    else:
        gt_m = g.astype(np.float64)
        aligned, _, _ = align_prediction(o, gt_m, valid_mask(gt_m), align)
    assert_agree(metrics.thesis_metrics(aligned, g), oracles.thesis_all(aligned, g))


def test_thesis_threshold_tie_from_the_issue():
    # Two 8-bit levels (108 and 135): g / o is exactly 1.25 in float32, so it is outside.
    o, g = np.float32([4.235294342041016]), np.float32([5.2941179275512695])
    assert g[0] / o[0] == np.float32(1.25)
    ours = metrics.thesis_metrics(o, g)
    assert ours["Threshold 1.25"] == oracles.thesis_threshold(o, g, 1.25) == 0.0
    assert ours["Threshold 1.25^2"] == 1.0


def test_thesis_relative_differences_use_the_clamped_ground_truth():
    ours = metrics.thesis_metrics(np.array([2.0, 3.0]), np.array([0.0, 3.0]))
    assert ours["AbsRelDiff"] == pytest.approx(254.5, rel=1e-12)   # (2 - 1/255) * 255 / 2
    assert ours["SqrRelDiff"] == pytest.approx((2 - 1 / 255) ** 2 * 255 / 2, rel=1e-12)
    assert_agree(ours, oracles.thesis_all([2.0, 3.0], [0.0, 3.0]))


def test_thesis_mvn_of_a_near_perfect_prediction():
    # z(o) - z(g) tiny: computed as the original does; through 2 - 2 * correlation it was off
    # by 2e-5 relative here (4 % with 1e-7 instead of 1e-5).
    g = np.linspace(0.5, 9.5, THESIS_SHAPE[0] * THESIS_SHAPE[1])
    o = g * 1.1 + 1e-5 * np.sin(np.arange(g.size))
    assert metrics.thesis_metrics(o, g)["MVN"] == pytest.approx(oracles.thesis_mvn(o, g), rel=RTOL)


def test_thesis_metrics_are_python_floats():
    o, g, _ = thesis_images()
    assert all(type(value) is float for value in metrics.thesis_metrics(o, g).values())


# --- scale summary (monodepth2's ratio report) ----------------------------------------------

def test_scale_summary_is_monodepth2s_report():
    ratios = np.array([0.8, 1.1, 1.3, 0.95, 2.4])
    assert alignments.scale_summary(ratios) == pytest.approx(
        oracles.monodepth2_ratio_report(ratios), rel=1e-15)
    # Images without a scale (NaN: no valid pixel) are left out.
    assert alignments.scale_summary(np.append(ratios, np.nan)) == pytest.approx(
        oracles.monodepth2_ratio_report(ratios), rel=1e-15)


def test_scale_summary_of_no_scale_is_nan():
    median, spread = alignments.scale_summary(np.array([np.nan, np.nan]))
    assert math.isnan(median) and math.isnan(spread)
