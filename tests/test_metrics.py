"""The ten thesis metrics and the MVN fit against values worked out by hand."""

import math

import numpy as np
import pytest

from depth_eval.scoring.thesis_metrics import (DEPTH_FLOOR, LOG_ENCODING_SLOPE, THESIS_METRIC_TITLES, mvn_fit, scaled_log,
    thesis_metrics)


def test_metric_order_is_the_originals():
    assert THESIS_METRIC_TITLES == (
        "AbsRelDiff", "SqrRelDiff", "RMSE", "RMSELog", "SIMSE", "Log10", "MVN",
        "Threshold 1.25", "Threshold 1.25^2", "Threshold 1.25^3")


def test_two_pixel_values_by_hand():
    # o = (1, 2) m against g = (2, 2) m: one pixel off by 1 m, one exact.
    m = thesis_metrics(np.array([1.0, 2.0]), np.array([2.0, 2.0]))
    log_step = 10 * LOG_ENCODING_SLOPE * math.log(2)  # L(2) - L(1)
    assert m["AbsRelDiff"] == pytest.approx(0.25)
    assert m["SqrRelDiff"] == pytest.approx(0.25)
    assert m["RMSE"] == pytest.approx(math.sqrt(0.5))
    assert m["RMSELog"] == pytest.approx(log_step / math.sqrt(2))
    assert m["SIMSE"] == pytest.approx(log_step**2 / 2 - log_step**2 / 4)
    assert m["Log10"] == pytest.approx(math.log10(2) / 2)
    assert m["Threshold 1.25"] == 0.5


def test_thresholds_count_strictly_below_each_bound():
    pred = np.array([1.0, 2.0, 1.5, 2.2, 0.0])
    gt = np.array([2.0, 2.0, 1.0, 2.0, 1.0])  # ratios 2, 1, 1.5, 1.1, 255 (floored)
    m = thesis_metrics(pred, gt)
    assert (m["Threshold 1.25"], m["Threshold 1.25^2"], m["Threshold 1.25^3"]) == (0.4, 0.6, 0.6)
    exact = thesis_metrics(np.array([1.25]), np.array([1.0]))
    assert exact["Threshold 1.25"] == 0.0 and exact["Threshold 1.25^2"] == 1.0


def test_mvn_metric_compares_standardised_maps():
    # z(1, 2, 3) = -z(3, 2, 1) = (-a, 0, a), a = sqrt(3/2): mean((2a)^2 * 2/3) = 4.
    m = thesis_metrics(np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0]))
    assert m["MVN"] == pytest.approx(2.0)
    same_shape = thesis_metrics(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0]))
    assert same_shape["MVN"] == pytest.approx(0.0, abs=1e-12)


def test_zero_depths_are_floored_at_one_grey_level():
    # The floored ground truth is in the numerator too (eval_depth.py reassigns gt first).
    m = thesis_metrics(np.array([0.5]), np.array([0.0]))
    assert m["AbsRelDiff"] == pytest.approx((0.5 - DEPTH_FLOOR) * 255)
    assert m["SqrRelDiff"] == pytest.approx((0.5 - DEPTH_FLOOR) ** 2 * 255)
    assert m["Log10"] == pytest.approx(math.log10(0.5 * 255))
    assert scaled_log(np.array([0.0]))[0] == pytest.approx(
        10 * (LOG_ENCODING_SLOPE * math.log(DEPTH_FLOOR) + 1))


def test_scaled_log_is_the_thesis_encoding_times_ten():
    assert scaled_log(np.array([10.0]))[0] == pytest.approx(10.0)
    assert scaled_log(np.array([1.0]))[0] == pytest.approx(10 * (1 - LOG_ENCODING_SLOPE * math.log(10)))


def test_perfect_prediction_scores_perfectly():
    gt = np.linspace(0.5, 9.5, 64).reshape(8, 8)
    m = thesis_metrics(gt.copy(), gt)
    for title in ("AbsRelDiff", "SqrRelDiff", "RMSE", "RMSELog", "Log10", "MVN"):
        assert m[title] == pytest.approx(0.0, abs=1e-12)
    assert m["SIMSE"] == pytest.approx(0.0, abs=1e-12)
    assert m["Threshold 1.25"] == 1.0


def test_mvn_fit_takes_the_targets_mean_and_std():
    prediction = np.array([[1.0, 2.0], [3.0, 10.0]])
    target = np.array([[0.2, 0.3], [0.5, 0.4]])
    fitted = mvn_fit(prediction, target)
    assert fitted.mean() == pytest.approx(target.mean())
    assert fitted.std() == pytest.approx(target.std())
    assert np.argsort(fitted.ravel()).tolist() == np.argsort(prediction.ravel()).tolist()


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        thesis_metrics(np.ones(3), np.ones(4))


def test_one_shape_check_names_every_input():
    from depth_eval.scoring.alignments import align_mvn
    from depth_eval.scoring.standard_metrics import evaluate_standard

    pred, gt = np.ones((2, 3)), np.ones((3, 2))
    for call in (lambda: evaluate_standard(pred, gt), lambda: align_mvn(pred, gt),
                 lambda: align_mvn(pred, pred, mask=np.ones((3, 2), bool))):
        with pytest.raises(ValueError, match=r"^shapes differ: prediction \(2, 3\), "):
            call()
