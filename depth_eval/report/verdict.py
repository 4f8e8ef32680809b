"""The run's verdict, decided once before anything is printed or written: the gate's rules
checked against the baseline, each change paired image by image where both runs kept their
per-image values, and which snapshots of this run the images cannot tell from the best.

Every reporter (:mod:`depth_eval.report.reporters`) shows this one verdict; none decides.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from depth_eval.report import gate
from depth_eval.report.rankings import ranking
from depth_eval.scoring.keys import MetricKey, lower_is_better, ranked
from depth_eval.scoring.uncertainty import (
    Confidence,
    PairedChange,
    excludes_zero,
    mean_intervals,
    paired_change,
)


@dataclass(frozen=True)
class Pairing:
    """One snapshot's metrics paired with the baseline's on the images both evaluated."""

    snapshot: str
    metrics: tuple[str, ...]
    change: PairedChange          # current - baseline, per metric (arrays in ``metrics`` order)
    baseline_means: np.ndarray    # the baseline's mean over the paired images, per metric
    images: int                   # images both runs evaluated
    baseline_images: int          # images the baseline evaluated

    def row(self, metric: str) -> int:
        return self.metrics.index(metric)

    def relative_interval(self, metric: str) -> tuple[float, float]:
        """The interval of the change in percent of the baseline's mean (paired images)."""
        i = self.row(metric)
        base = abs(self.baseline_means[i])
        low, high = self.change.interval[i]
        if base == 0 or not math.isfinite(base):
            return math.nan, math.nan
        return low / base * 100.0, high / base * 100.0

    def interval(self, metric: str, relative: bool) -> tuple[float, float]:
        """The change's interval in a rule's unit (absolute, or percent of the baseline)."""
        if relative:
            return self.relative_interval(metric)
        low, high = self.change.interval[self.row(metric)]
        return float(low), float(high)

    def p_value(self, metric: str) -> float:
        return float(self.change.p_value[self.row(metric)])


@dataclass(frozen=True)
class RuleCheck:
    """One rule on one snapshot of the baseline: what the gate found."""

    snapshot: str
    rule: gate.Rule
    violation: gate.Violation | None    # the threshold rule broke (or could not be checked)
    interval: tuple[float, float] | None  # the paired interval of the change, in the rule's unit
    p_value: float | None
    significant: bool | None            # the interval lies entirely on the worse side
    fails: bool                         # what the run's exit status counts

    @property
    def outcome(self) -> str:
        """``FAIL``, ``noise`` (past the limit, but the interval reaches the better side) or
        ``ok``."""
        if self.fails:
            return "FAIL"
        return "noise" if self.violation is not None else "ok"


@dataclass
class Verdict:
    """What the gate decided and what the reporters show."""

    checks: list[RuleCheck] = field(default_factory=list)
    new: list[str] = field(default_factory=list)          # snapshots without a baseline row
    pairings: dict[str, Pairing] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)        # said once, before the violations
    ties: dict[MetricKey, tuple[str, set[str]]] = field(default_factory=dict)
    best: str | None = None                               # --best's snapshot
    shown: list[str] = field(default_factory=list)        # metrics of the comparison table

    @property
    def violations(self) -> list[gate.Violation]:
        """The violations that fail the run (exit status 3)."""
        return [check.violation for check in self.checks if check.fails]

    @property
    def failed(self) -> bool:
        return any(check.fails for check in self.checks)


def image_values(entry: Mapping | None, metrics, images) -> np.ndarray:
    """(metrics, images): a results.json entry's per-image values, NaN where it has none."""
    per_image = (entry or {}).get("per_image")
    values = np.full((len(metrics), len(images)), np.nan)
    if not isinstance(per_image, Mapping):
        return values
    for column, image in enumerate(images):
        row = per_image.get(image)
        if not isinstance(row, Mapping):
            continue
        for i, metric in enumerate(metrics):
            value = row.get(metric)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                values[i, column] = value
    return values


def has_image_values(entry: Mapping | None) -> bool:
    """Whether a results.json entry keeps its images' values as this version writes them."""
    per_image = (entry or {}).get("per_image")
    return (isinstance(per_image, Mapping) and bool(per_image)
            and all(isinstance(row, Mapping) for row in per_image.values()))


def pair(name: str, current: Mapping, baseline: Mapping, metrics,
         confidence: Confidence) -> Pairing:
    """A snapshot paired with its baseline row on the images both evaluated."""
    metrics = tuple(metrics)
    common = sorted(set(current["per_image"]) & set(baseline["per_image"]))
    base = image_values(baseline, metrics, common)
    change = paired_change(image_values(current, metrics, common), base, confidence)
    with np.errstate(invalid="ignore"):
        defined = np.isfinite(base) & np.isfinite(image_values(current, metrics, common))
        base_means = np.array([row[ok].mean() if ok.any() else math.nan
                               for row, ok in zip(base, defined)])
    return Pairing(name, metrics, change, base_means, len(common), len(baseline["per_image"]))


def ties_with_best(entries: Mapping[str, Mapping], means: Mapping[str, Mapping[MetricKey, float]],
                   confidence: Confidence) -> dict[MetricKey, tuple[str, set[str]]]:
    """Per ranked metric, the best snapshot and the others whose paired interval of the
    difference to it (on the images both evaluated) contains 0: the images cannot tell them
    from the best."""
    keys = list(next(iter(means.values()))) if means else []
    directions = ranked(keys)
    ties: dict[MetricKey, tuple[str, set[str]]] = {key: (ranking(means, key, lower)[0][0], set())
                                                   for key, lower in directions.items()}
    if not directions:
        return ties
    for name in means:
        wanted = [key for key, (best, _) in ties.items() if best != name]
        if not wanted or not has_image_values(entries[name]):
            continue
        images = list(entries[name]["per_image"])
        mine = image_values(entries[name], [str(k) for k in wanted], images)
        theirs = np.vstack([image_values(entries[ties[key][0]], [str(key)], images)
                            for key in wanted])
        for key, interval in zip(wanted, mean_intervals(mine - theirs, confidence)):
            if np.all(np.isfinite(interval)) and excludes_zero(interval) == 0:
                ties[key][1].add(name)
    return ties


def decide(settings, document: Mapping, means: Mapping[str, Mapping[MetricKey, float]]) -> Verdict:
    """The verdict of a finished run (``document``: its results.json)."""
    gate_settings = settings.gate
    confidence = gate_settings.confidence
    verdict = Verdict()
    entries = document["snapshots"]
    if means:
        verdict.ties = ties_with_best(entries, means, confidence)
    if gate_settings.best is not None:
        best = gate_settings.best
        verdict.best = gate.best_snapshot(entries, str(best), lower_is_better(best))
    baseline = gate_settings.baseline
    if baseline is None:
        return verdict
    rules = gate_settings.rules
    verdict.shown = (list(dict.fromkeys(r.metric for r in rules))
                     or ([str(k) for k in next(iter(means.values()))] if means else []))
    verdict.new = gate.new_snapshots(document, baseline)
    violations = {(v.snapshot, v.rule_text): v for v in gate.compare(document, baseline, rules)}
    base_entries = baseline["snapshots"]
    unpaired = []
    for name in sorted(base_entries):
        current = entries.get(name)
        if current is None or current.get("status") != "evaluated" \
                or base_entries[name].get("status", "evaluated") != "evaluated":
            continue
        if not (has_image_values(current) and has_image_values(base_entries[name])) \
                or not set(current["per_image"]) & set(base_entries[name]["per_image"]):
            unpaired.append(name)  # nothing to pair: no values, or no image in common
            continue
        pairing = pair(name, current, base_entries[name], verdict.shown, confidence)
        verdict.pairings[name] = pairing
        if pairing.images < pairing.baseline_images:
            verdict.notes.append(
                f"gate: snapshot {name}: paired on {pairing.images} of the baseline's "
                f"{pairing.baseline_images} images (the others are not in this run)")
    if unpaired:
        verdict.notes.insert(0, f"gate: {gate_settings.baseline_path} has no per-image values "
                                f"to pair with for {', '.join(unpaired)} (an older "
                                "results.json, or no image in common): those are compared by "
                                "their means alone, unpaired"
                                + (", and --significant cannot apply to them"
                                   if gate_settings.significant else ""))
    for name in sorted(base_entries):
        if base_entries[name].get("status", "evaluated") != "evaluated":
            continue
        for rule in rules:
            verdict.checks.append(_check(name, rule, violations.get((name, rule.text)),
                                         verdict.pairings.get(name), gate_settings.significant))
    return verdict


def _check(name, rule, violation, pairing: Pairing | None, significant: bool) -> RuleCheck:
    interval = p_value = sure = None
    if pairing is not None and rule.metric in pairing.metrics:
        interval = pairing.interval(rule.metric, rule.relative)
        p_value = pairing.p_value(rule.metric)
        if all(map(math.isfinite, interval)):
            sure = excludes_zero(interval) == (1 if rule.op == ">" else -1)
        else:  # no per-image values to pair (a summary such as a scale's spread): the threshold
            interval = None
    fails = violation is not None
    if fails and significant and sure is False and math.isfinite(violation.change):
        fails = False  # past the limit, but within the noise of the images
    return RuleCheck(name, rule, violation, interval, p_value, sure, fails)
