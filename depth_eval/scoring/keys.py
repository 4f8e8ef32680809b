"""Names of the numbers a run reports: ``MetricKey(align, name)``, and which way is better.

A key is written ``NAME`` without alignment (the thesis titles, exactly as the original printed
them) and ``ALIGNMENT/NAME`` with one (``median/rmse``); results.json, the CSV files, the
rankings and the gate all use that text, and only :meth:`MetricKey.parse` reads it back.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

from depth_eval.scoring.thesis_metrics import THESIS_METRICS, Metric
from depth_eval.scoring.standard_metrics import STANDARD_METRICS

# The key of a metric computed on the prediction as it is (no alignment).
NO_ALIGNMENT = "none"
# Per-image values recorded beside the metrics but summarised, not ranked (``median/scale``).
SCALE_NAME = "scale"


class MetricKey(NamedTuple):
    """One reported number: the alignment it was computed after and its name."""

    align: str
    name: str

    def __str__(self) -> str:
        return self.name if self.align == NO_ALIGNMENT else f"{self.align}/{self.name}"

    @classmethod
    def parse(cls, text: str) -> "MetricKey":
        """``"RMSE"`` -> ``MetricKey("none", "RMSE")``; ``"median/rmse"`` -> ``("median", "rmse")``."""
        align, _, name = str(text).strip().rpartition("/")
        return cls(align or NO_ALIGNMENT, name)


def _directions(definitions: Iterable[Metric]) -> dict[str, bool]:
    return {metric.title: metric.lower_is_better for metric in definitions}


# Metric name -> lower is better, for every metric any task ranks (the gradient task's RMSE and
# MVN share the thesis' names and directions).
LOWER_IS_BETTER = _directions((*THESIS_METRICS, *STANDARD_METRICS))


def lower_is_better(key: MetricKey) -> bool | None:
    """Whether lower values of ``key`` are better; None for a summary that is not ranked."""
    return LOWER_IS_BETTER.get(key.name)


def ranked(keys: Iterable[MetricKey]) -> dict[MetricKey, bool]:
    """The keys that are ranked, in order, each with its direction (lower is better)."""
    return {key: LOWER_IS_BETTER[key.name] for key in keys if key.name in LOWER_IS_BETTER}


def keyed(values: dict[str, float], align: str = NO_ALIGNMENT) -> dict[MetricKey, float]:
    """A metric function's ``{name: value}`` under one alignment's keys."""
    return {MetricKey(align, name): value for name, value in values.items()}


def as_text(values: dict[MetricKey, float]) -> dict[str, float]:
    """Keys as their text (results files)."""
    return {str(key): value for key, value in values.items()}
