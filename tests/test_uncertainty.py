"""Bootstrap intervals and paired comparisons on hand-made per-image values, against scipy."""

import numpy as np
import pytest
from scipy import stats

from depth_eval.scoring.uncertainty import (
    Confidence,
    excludes_zero,
    mean_intervals,
    paired_change,
    wilcoxon_p,
)

# Hand-made per-image RMSE-like values: skewed, as per-image errors are.
VALUES = np.array([0.41, 0.55, 0.38, 0.92, 0.47, 0.61, 0.35, 1.40, 0.52, 0.44,
                   0.58, 0.49, 0.73, 0.39, 0.66, 0.51, 0.45, 0.83, 0.42, 0.57])


def scipy_interval(values, method):
    result = stats.bootstrap((values,), np.mean, n_resamples=20000, method=method,
                             random_state=np.random.default_rng(7))
    return np.array([result.confidence_interval.low, result.confidence_interval.high])


@pytest.mark.parametrize("method", ["BCa", "percentile"])
def test_interval_agrees_with_scipy_bootstrap(method):
    ours = mean_intervals(VALUES, Confidence(method=method, resamples=20000))[0]
    theirs = scipy_interval(VALUES, method)
    width = theirs[1] - theirs[0]
    # Two Monte Carlo estimates of the same bounds: within 3% of the width.
    assert np.abs(ours - theirs).max() < 0.03 * width
    assert ours[0] < VALUES.mean() < ours[1]


def test_bca_shifts_right_for_right_skewed_values():
    bca = mean_intervals(VALUES, Confidence(method="BCa"))[0]
    percentile = mean_intervals(VALUES, Confidence(method="percentile"))[0]
    assert bca[1] > percentile[1] and bca[0] > percentile[0]


def test_same_seed_same_interval_and_rows_independent_of_each_other():
    first = mean_intervals(np.vstack([VALUES, VALUES * 2]))
    again = mean_intervals(np.vstack([VALUES, VALUES * 2]))
    assert np.array_equal(first, again)
    np.testing.assert_allclose(first[1], first[0] * 2)  # a mean scales with its values


def test_interval_shrinks_as_images_are_added():
    rng = np.random.default_rng(3)
    values = rng.gamma(2.0, 0.25, 640)
    widths = [np.diff(mean_intervals(values[:n])[0])[0] for n in (20, 80, 320, 640)]
    assert widths == sorted(widths, reverse=True)
    assert widths[-1] < widths[0] / 4  # ~1/sqrt(n): 32x the images, ~5.7x narrower


def test_nan_left_out_as_the_mean_leaves_it_out():
    with_nan = np.append(VALUES, [np.nan, np.inf])
    low, high = mean_intervals(with_nan)[0]
    assert low < VALUES.mean() < high
    np.testing.assert_allclose([low, high], mean_intervals(VALUES)[0], rtol=0.05)


def test_degenerate_rows():
    rows = mean_intervals([[0.5, 0.5, 0.5], [1.0, np.nan, np.nan], [np.nan] * 3])
    assert rows[0].tolist() == [0.5, 0.5]
    assert np.isnan(rows[1:]).all()


def test_identical_snapshots_paired_difference_contains_zero():
    change = paired_change(np.vstack([VALUES]), np.vstack([VALUES]))
    assert change.mean.tolist() == [0.0] and change.interval[0].tolist() == [0.0, 0.0]
    assert excludes_zero(change.interval[0]) == 0 and change.p_value[0] == 1.0


def test_change_within_the_noise_is_not_significant():
    rng = np.random.default_rng(11)
    noise = rng.normal(0.0, 0.05, VALUES.size)
    change = paired_change([VALUES + noise], [VALUES])
    assert change.interval[0, 0] < 0 < change.interval[0, 1]
    assert change.p_value[0] > 0.05
    assert change.p_value[0] == pytest.approx(stats.wilcoxon(noise).pvalue)


def test_clear_regression_is_significant():
    rng = np.random.default_rng(5)
    worse = VALUES * 1.04 + rng.normal(0.0, 0.005, VALUES.size)  # every image a bit worse
    change = paired_change([worse], [VALUES])
    assert excludes_zero(change.interval[0]) == 1
    assert change.p_value[0] < 0.001
    # The unpaired intervals of the two means overlap: only the pairing sees it.
    base, cur = mean_intervals(VALUES)[0], mean_intervals(worse)[0]
    assert cur[0] < base[1]


def test_paired_images_counted_per_metric():
    current = np.array([[1.0, 2.0, np.nan, 4.0], [1.0, 1.0, 1.0, 1.0]])
    baseline = np.array([[1.5, 2.5, 3.0, np.nan], [1.0, 1.0, 1.0, 1.0]])
    change = paired_change(current, baseline)
    assert change.images.tolist() == [2, 4]
    assert change.mean.tolist() == [-0.5, 0.0]


def test_wilcoxon_matches_scipy_and_edges():
    differences = np.array([0.3, -0.1, 0.4, 0.2, 0.5, -0.2, 0.6, 0.1])
    assert wilcoxon_p(differences) == pytest.approx(stats.wilcoxon(differences).pvalue)
    assert wilcoxon_p([0.0, 0.0]) == 1.0 and np.isnan(wilcoxon_p([]))


@pytest.mark.parametrize("bad", [{"level": 1.0}, {"level": 0}, {"method": "studentized"},
                                 {"resamples": 5}])
def test_bad_confidence_settings_refused(bad):
    with pytest.raises(ValueError):
        Confidence(**bad)
