"""A snapshot's summary over its images: the rule results.json and ``depth-eval history`` share.

Pure functions of the per-image metrics (as the store keeps them), so a summary rebuilt from
stored units equals the one the run computed, bit for bit, when the images come in the run's
order.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .metrics import THESIS_METRIC_TITLES

__all__ = ["SCALE_SUFFIX", "summarise", "summary_value"]

# pipeline.SCALE_SUFFIX: per-image fitted scales, summarised by median and spread.
SCALE_SUFFIX = "/scale"
# The summary names of a per-image scale ``ALIGN/scale``.
SCALE_STATISTICS = ("_median", "_std")


def summarise(per_image: list[Mapping[str, float]]) -> dict[str, float]:
    """A snapshot's summary over its images, by the rule results.json uses.

    The thesis metrics are plain means (a NaN image makes the mean NaN, as the original);
    the others skip NaN images; a per-image fitted scale (``ALIGN/scale``) is summarised by
    its median and standard deviation (``ALIGN/scale_median``, ``ALIGN/scale_std``).  Values
    are taken in the order given (the run's image order), so the sums match the run's.
    """
    summary: dict[str, float] = {}
    for name in per_image[0] if per_image else ():
        scale = name.endswith(SCALE_SUFFIX)
        for summary_name in [name + s for s in SCALE_STATISTICS] if scale else [name]:
            summary[summary_name] = summary_value(summary_name, per_image)
    return summary


def summary_value(name: str, per_image: list[Mapping[str, float]]) -> float | None:
    """One entry of :func:`summarise` (``ALIGN/scale_median`` included); None if not recorded."""
    base, statistic = name, None
    for suffix in SCALE_STATISTICS:
        if name.endswith(SCALE_SUFFIX + suffix):
            base, statistic = name[:-len(suffix)], suffix
    if not per_image or any(base not in image for image in per_image):
        return None
    values = np.array([image[base] for image in per_image], dtype=np.float64)
    if base.endswith(SCALE_SUFFIX):
        if statistic is None:
            return None  # only its median and spread are summaries
        return float(np.nanmedian(values) if statistic == "_median" else np.nanstd(values))
    if base in THESIS_METRIC_TITLES or np.isnan(values).all():
        return float(np.mean(values))
    return float(np.nanmean(values))
