"""How sure a mean over images is: bootstrap confidence intervals and paired comparisons.

The images are the sampling unit: a snapshot's metric is the mean of its per-image values, so
its uncertainty is that of a mean over a sample of images.  Intervals are bootstrap intervals
(BCa by default, percentile on request) computed for every metric at once: each resample is a
vector of counts, how often each image was drawn, and the resampled means of all metrics are
one matrix product of those counts with the per-image values (the same resamples for every
metric, so a few thousand of them over 654 images and 30 metrics take milliseconds, where
materialising each resample would take seconds).  The results agree with
:func:`scipy.stats.bootstrap` within Monte Carlo error (tests/test_uncertainty.py).

A value that is not finite (the metric undefined for an image) is left out of the mean, as
:func:`depth_eval.scoring.score.summarise` leaves it out; the resampled mean is over the drawn
images where it is defined.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from statistics import NormalDist
from typing import NamedTuple

import numpy as np

from depth_eval import choices

METHODS = choices.INTERVAL_METHODS
# Resamples per interval: the 2.5% tail of 2,000 resamples holds 50 of them, which puts the
# 95% bounds' Monte Carlo error well below the interval's width (Efron & Tibshirani, ch. 19).
DEFAULT_RESAMPLES = 2000
DEFAULT_LEVEL = choices.DEFAULT_CONFIDENCE
# A fixed seed: the same values give the same interval on every run and machine.
DEFAULT_SEED = 0


@dataclass(frozen=True)
class Confidence:
    """How intervals are made: ``level`` in (0, 1), ``method``, ``resamples``, ``seed``."""

    level: float = DEFAULT_LEVEL
    method: str = choices.DEFAULT_INTERVAL_METHOD
    resamples: int = DEFAULT_RESAMPLES
    seed: int = DEFAULT_SEED

    def __post_init__(self):
        if not 0 < self.level < 1:
            raise ValueError(f"confidence level {self.level}: must lie strictly between 0 and 1")
        if self.method not in METHODS:
            raise ValueError(f"interval method {self.method!r}: expected {' or '.join(METHODS)}")
        if self.resamples < 10:
            raise ValueError(f"{self.resamples} resamples: at least 10 are needed")

    def document(self) -> dict:
        """results.json's ``confidence`` object."""
        return {"level": self.level, "method": self.method, "resamples": self.resamples,
                "seed": self.seed}


def _as_rows(values) -> np.ndarray:
    """(metrics, images) float64, every non-finite value NaN."""
    array = np.array(values, dtype=np.float64, ndmin=2)
    array[~np.isfinite(array)] = np.nan
    return array


@functools.lru_cache(maxsize=8)
def _counts(images: int, confidence: Confidence) -> np.ndarray:
    """(resamples, images), read-only: how often each resample drew each image.

    Kept for the next call: every snapshot of a run has the same number of images.
    """
    rng = np.random.default_rng(confidence.seed)
    drawn = rng.integers(0, images, size=(confidence.resamples, images))
    drawn += images * np.arange(confidence.resamples)[:, None]
    counts = np.bincount(drawn.ravel(), minlength=confidence.resamples * images)
    counts = counts.reshape(confidence.resamples, images).astype(np.float64)
    counts.flags.writeable = False
    return counts


def mean_intervals(values, confidence: Confidence = Confidence()) -> np.ndarray:
    """The bootstrap interval of each row's mean over its finite values.

    Parameters
    ----------
    values : array_like, (metrics, images) or (images,)
        Per-image values; NaN and inf are left out.
    confidence : Confidence

    Returns
    -------
    numpy.ndarray, (metrics, 2)
        ``[low, high]`` per row.  A row whose finite values are all equal gets ``[v, v]``; a
        row with fewer than 2 finite values ``[nan, nan]``.
    """
    rows = _as_rows(values)
    metrics, images = rows.shape
    result = np.full((metrics, 2), np.nan)
    if images < 2:
        return result
    defined = np.isfinite(rows)
    zeroed = np.where(defined, rows, 0.0)
    mask = defined.astype(np.float64)
    counts = _counts(images, confidence)
    with np.errstate(invalid="ignore", divide="ignore"):
        resampled = (counts @ zeroed.T) / (counts @ mask.T)    # (resamples, metrics)
        totals, defined_n = zeroed.sum(axis=1), mask.sum(axis=1)
        estimate = totals / defined_n
        # Leave-one-out means, for BCa's acceleration.
        jackknife = (totals[:, None] - zeroed) / (defined_n[:, None] - mask)
    for row in range(metrics):
        finite = rows[row][defined[row]]
        if finite.size < 2:
            continue
        if np.all(finite == finite[0]):
            result[row] = finite[0], finite[0]
            continue
        result[row] = _interval(resampled[:, row], estimate[row], jackknife[row][defined[row]],
                                confidence)
    return result


def _interval(resampled: np.ndarray, estimate: float, jackknife: np.ndarray,
              confidence: Confidence) -> tuple[float, float]:
    resampled = resampled[np.isfinite(resampled)]
    alpha = (1.0 - confidence.level) / 2.0
    tails = np.array([alpha, 1.0 - alpha])
    if confidence.method == "BCa":
        tails = _bca_tails(resampled, estimate, jackknife, tails)
    low, high = np.quantile(resampled, tails)
    return float(low), float(high)


# The standard normal distribution of the BCa correction, from the standard library: scipy's
# ndtr / ndtri would cost every run scipy.special's import (0.2-0.3 s) for a few numbers.
_STANDARD_NORMAL = NormalDist()


def _normal_quantile(p: float) -> float:
    """The standard normal quantile, -inf and inf at 0 and 1 (as scipy.special.ndtri)."""
    if math.isnan(p):
        return math.nan
    if p <= 0.0 or p >= 1.0:
        return -math.inf if p <= 0.0 else math.inf
    return _STANDARD_NORMAL.inv_cdf(p)


def _bca_tails(resampled, estimate, jackknife, tails) -> np.ndarray:
    """Efron's bias-corrected and accelerated percentiles (what scipy.stats.bootstrap uses)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        bias = _normal_quantile((np.mean(resampled < estimate)
                                 + np.mean(resampled <= estimate)) / 2)
        spread = jackknife.mean() - jackknife
        acceleration = (np.sum(spread ** 3) / (6.0 * np.sum(spread ** 2) ** 1.5))
        z = np.array([_normal_quantile(tail) for tail in tails])
        adjusted = np.array([_STANDARD_NORMAL.cdf(x) if not math.isnan(x) else math.nan
                             for x in bias + (bias + z) / (1.0 - acceleration * (bias + z))])
    if not np.all(np.isfinite(adjusted)):  # every resample on one side: the percentile bounds
        return tails
    return adjusted


class PairedChange(NamedTuple):
    """Current minus baseline, image by image, per metric (arrays over the metrics)."""

    mean: np.ndarray        # mean per-image difference over the images both have a value for
    interval: np.ndarray    # (metrics, 2) its bootstrap interval
    images: np.ndarray      # images paired per metric
    p_value: np.ndarray     # two-sided Wilcoxon signed-rank p-value (1.0: no difference at all)


def paired_change(current, baseline, confidence: Confidence = Confidence()) -> PairedChange:
    """Paired comparison of two snapshots on the same images (columns in the same order).

    Parameters
    ----------
    current, baseline : array_like, (metrics, images)
        Per-image values; an image where either is not finite is left out for that metric.
    confidence : Confidence

    Returns
    -------
    PairedChange
    """
    difference = _as_rows(current) - _as_rows(baseline)
    defined = np.isfinite(difference)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(difference, axis=1)
    mean[defined.sum(axis=1) == 0] = np.nan
    p_values = np.array([wilcoxon_p(row[ok]) for row, ok in zip(difference, defined)])
    return PairedChange(mean, mean_intervals(difference, confidence), defined.sum(axis=1),
                        p_values)


def wilcoxon_p(differences) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired differences (scipy.stats.wilcoxon).

    1.0 when every difference is 0 (nothing changed); NaN with no differences.
    """
    # Imported here, not at the top: scipy.stats takes 0.5-1.5 s to import.
    from scipy import stats

    differences = np.asarray(differences, dtype=np.float64)
    if differences.size == 0:
        return math.nan
    if not np.any(differences):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's note on ties and zeros: the p-value allows them
        return float(stats.wilcoxon(differences, zero_method="wilcox").pvalue)


def excludes_zero(interval) -> int:
    """+1 when an interval lies entirely above 0, -1 entirely below, 0 otherwise (or NaN)."""
    low, high = interval
    if low > 0:
        return 1
    if high < 0:
        return -1
    return 0
