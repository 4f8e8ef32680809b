"""A CI gate: compare this run's results.json with a baseline's and flag metrics that got worse.

Rules (``--fail-if``) read ``METRIC>+N`` / ``METRIC>+N%`` ("fail if METRIC rose by more than N,
absolute or relative to the baseline") and ``METRIC<-N`` / ``METRIC<-N%`` ("fail if it fell by
more than N").  Snapshots are matched by name.  The gate never passes quietly: a rule that
cannot be checked for a snapshot of the baseline (the snapshot gone from this run, skipped, the
metric missing or NaN on either side) is a violation saying why; a snapshot of this run without
an evaluated baseline row is "new" (:func:`new_snapshots`), shown as such and not checked.
Pure functions over the parsed results.json dictionaries (layout in docs/outputs.md); reading and
checking the baseline file is :mod:`depth_eval.report.baseline` (:func:`load_results`).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Iterable, Mapping, NamedTuple

from depth_eval.report.baseline import (READABLE_SCHEMA_VERSIONS, SUPPORTED_SCHEMA_VERSION, check_results as _check_results,
    load_results, upgrade_results)  # noqa: F401
from depth_eval.console import one_line
from depth_eval.report.tables import render

# Digits of metric values in comparison_table (report.format_table prints 4 as well).
VALUE_DECIMALS = 4
# Digits of the relative change (percent) in comparison_table.
CHANGE_DECIMALS = 2

# The limit after the operator and its sign.  The rule is cut into its parts with str.find and
# strip, so parsing takes time linear in its length (no pattern backtracks over spaces).
_NUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_RULE_SYNTAX = "expected METRIC>+N[%] or METRIC<-N[%]"


class Rule(NamedTuple):
    """One parsed ``--fail-if`` rule."""

    text: str               # the rule as written
    metric: str             # metric title, e.g. "RMSE", "Threshold 1.25", "median/rmse"
    op: str                 # ">" fail on a rise, "<" fail on a drop
    limit: float            # allowed change, >= 0 (percent when relative)
    relative: bool          # limit in percent of the baseline value
    guards_better_side: bool  # the rule fires when the metric improves (the caller should warn)

    def change(self, baseline_value: float, current_value: float) -> float:
        """``current - baseline`` in the rule's unit: absolute, or percent of ``abs(baseline)``.

        A relative change from a baseline of 0 is 0 when the value stayed 0, else +-inf.
        """
        if not self.relative:
            return current_value - baseline_value
        return relative_change_percent(baseline_value, current_value)

    def is_violated_by(self, change: float) -> bool:
        """Whether a change (in the rule's unit) goes past the limit in the rule's direction."""
        return change > self.limit if self.op == ">" else change < -self.limit


class Violation(NamedTuple):
    """A snapshot whose metric broke a rule."""

    snapshot: str
    metric: str
    baseline_value: float
    current_value: float    # NaN when the metric is NaN or missing in the current run
    change: float           # in the rule's unit (percent for % rules); NaN when not computable
    rule_text: str
    reason: str             # one line for the log, e.g. "RMSE rose 3.10% (limit +2%)"


def parse_rule(text: str, lower_is_better: Mapping[str, bool] | None = None) -> Rule:
    """Parse a ``--fail-if`` rule.

    Grammar: ``METRIC`` (any text without ``<`` or ``>``; spaces, dots, ``^`` and ``/`` are
    fine), then ``>`` or ``<``, then a number with an optional sign, then an optional ``%``.
    ``>`` means "fail if the value rose by more than N", ``<`` "fail if it fell by more than N";
    a sign, when written, must agree (``>+N``, ``<-N``).  ``%`` makes N relative to the
    baseline value, in percent.  Spaces around the parts are ignored.

    Parameters
    ----------
    text : str
        E.g. ``"RMSE>+2%"``, ``"Threshold 1.25<-0.01"``, ``"AbsRelDiff>+0.005"``.
    lower_is_better : mapping, optional
        Metric title -> direction, to set ``Rule.guards_better_side`` (a rise of a lower-is-better
        metric is a regression; a ``<`` rule on it guards the better side).  A title with an
        alignment prefix ("median/rmse") falls back to the part after the last ``/``.  Unknown
        metrics, or no mapping, give False.

    Returns
    -------
    Rule

    Raises
    ------
    ValueError
        ``bad --fail-if rule '...': ...`` for text that does not follow the grammar.
    """
    stripped = text.strip()
    at = min((i for i in (stripped.find("<"), stripped.find(">")) if i >= 0), default=-1)
    rest = stripped[at + 1:].strip()
    sign = rest[:1] if rest[:1] in ("+", "-") else ""
    rest = rest[len(sign):].lstrip()
    percent = rest.endswith("%")
    number = rest[:-1].rstrip() if percent else rest
    quoted = one_line(_shortened(stripped))
    if at < 0 or not stripped[:at].strip() or not _NUMBER.fullmatch(number):
        raise ValueError(f"bad --fail-if rule {quoted!r}: {_RULE_SYNTAX}")
    op = stripped[at]
    if sign and sign != ("+" if op == ">" else "-"):
        raise ValueError(f"bad --fail-if rule {quoted!r}: '>' takes a rise (+N), '<' a drop (-N)")
    limit = float(number)
    if not math.isfinite(limit):
        raise ValueError(f"bad --fail-if rule {quoted!r}: the limit is not a finite number")
    metric = stripped[:at].strip()
    direction = _direction(metric, lower_is_better or {})
    guards_better = direction is not None and (op == ">") != direction
    return Rule(text=text.strip(), metric=metric, op=op, limit=limit,
                relative=percent, guards_better_side=guards_better)


def _shortened(text: str, keep: int = 60) -> str:
    """A rule as quoted in a message: its start and end around an ellipsis when long."""
    return text if len(text) <= 2 * keep else f"{text[:keep]}...{text[-keep:]}"


def _direction(metric: str, lower_is_better: Mapping[str, bool]) -> bool | None:
    if metric in lower_is_better:
        return bool(lower_is_better[metric])
    base = metric.rsplit("/", 1)[-1]
    return bool(lower_is_better[base]) if base in lower_is_better else None


def relative_change_percent(baseline_value: float, current_value: float) -> float:
    """``(current - baseline) / abs(baseline) * 100``; 0 -> 0 is 0, 0 -> x is +-inf."""
    difference = current_value - baseline_value
    if baseline_value == 0:
        return 0.0 if difference == 0 else math.copysign(math.inf, difference)
    return difference / abs(baseline_value) * 100.0


def check_rules(rules: Iterable[Rule], run_metrics: Iterable[str], baseline: Mapping,
                baseline_name: str | Path = "baseline") -> None:
    """Refuse, before any work, rules the gate could never check.

    A rule's metric must be one this run computes (``run_metrics``: its ``--metrics`` and
    ``--align``) and one that at least one evaluated snapshot of the baseline holds.

    Raises
    ------
    ValueError
        One line naming the rule (and the baseline file) and the metrics there are.
    """
    run_metrics = list(run_metrics)
    held = _all_metrics({name: entry for name, entry in baseline["snapshots"].items()
                         if _has_row(entry)})
    for rule in rules:
        if rule.metric not in run_metrics:
            raise ValueError(f"--fail-if {rule.text!r}: {rule.metric!r} is not a metric of this "
                             f"run (--metrics and --align choose them: {', '.join(run_metrics)})")
        if rule.metric not in held:
            raise ValueError(f"{baseline_name}: no evaluated snapshot of the baseline has "
                             f"{rule.metric!r}, so --fail-if {rule.text!r} cannot be checked "
                             f"(its metrics: {', '.join(sorted(held)) or 'none'})")


def _has_row(entry: Mapping | None) -> bool:
    """Whether a baseline entry is an evaluated snapshot (one the rules compare against)."""
    return entry is not None and entry.get("status", "evaluated") == "evaluated"


def new_snapshots(current: Mapping, baseline: Mapping) -> list[str]:
    """Snapshots of the current run without an evaluated row in the baseline, in name order:
    nothing to compare them with, so the gate shows them as "new" and checks nothing."""
    current_snaps = _check_results(current, "current results")
    baseline_snaps = _check_results(baseline, "baseline results")
    return sorted(name for name in current_snaps if not _has_row(baseline_snaps.get(name)))


def _metric_value(entry: Mapping | None, metric: str) -> float | None:
    """The snapshot's metric as a float; None when absent; NaN for null / non-numbers."""
    if not entry:
        return None
    metrics = entry.get("metrics") or {}
    if metric not in metrics:
        return None
    try:
        return float(metrics[metric])
    except (TypeError, ValueError):
        return math.nan


def _all_metrics(snapshots: Mapping[str, Mapping]) -> set[str]:
    return {title for entry in snapshots.values() for title in (entry.get("metrics") or {})}


def compare(current: Mapping, baseline: Mapping, rules: Iterable[Rule]) -> list[Violation]:
    """Check every rule on every snapshot the baseline evaluated.

    For each such snapshot and rule, with the baseline value ``b`` and current value ``c``:

    - the snapshot is not in this run (renamed, removed): a violation;
    - ``b`` missing or NaN: the rule cannot be checked, a violation saying so;
    - ``c`` missing (snapshot skipped, metric gone) or NaN: a violation with ``current_value``
      and ``change`` NaN;
    - otherwise a violation when ``rule.change(b, c)`` passes the rule's limit.

    Snapshots without an evaluated baseline row are new (:func:`new_snapshots`): not checked.

    Parameters
    ----------
    current, baseline : mapping
        Parsed results.json documents (``{"schema_version": 2, "snapshots": {...}}``).
    rules : iterable of Rule

    Returns
    -------
    list of Violation
        In snapshot-name order, then rule order.

    Raises
    ------
    ValueError
        A document without ``snapshots``, or a rule whose metric appears in neither run.
    """
    current_snaps = _check_results(current, "current results")
    baseline_snaps = _check_results(baseline, "baseline results")
    rules = list(rules)
    known = _all_metrics(current_snaps) | _all_metrics(baseline_snaps)
    for rule in rules:
        if rule.metric not in known:
            raise ValueError(f"--fail-if rule {rule.text!r}: metric {rule.metric!r} is in neither "
                             f"results.json (metrics: {', '.join(sorted(known)) or 'none'})")
    violations = []
    for name in sorted(baseline_snaps):
        if not _has_row(baseline_snaps[name]):
            continue
        for rule in rules:
            violation = _check(name, rule, current_snaps.get(name), baseline_snaps[name])
            if violation is not None:
                violations.append(violation)
    return violations


def _check(name: str, rule: Rule, current_entry: Mapping | None,
           baseline_entry: Mapping) -> Violation | None:
    base = _metric_value(baseline_entry, rule.metric)
    if base is None or not math.isfinite(base):
        state = "missing" if base is None else ("not a number" if math.isnan(base)
                                                else f"{base:g}, not a finite number")
        return Violation(name, rule.metric, math.nan, math.nan, math.nan, rule.text,
                         f"{rule.metric} is {state} in the baseline: the rule cannot be checked")
    if current_entry is None:
        return Violation(name, rule.metric, base, math.nan, math.nan, rule.text,
                         f"snapshot not in this run (renamed or removed?; baseline "
                         f"{rule.metric} {base:g}): the rule cannot be checked")
    cur = _metric_value(current_entry, rule.metric)
    if cur is None or math.isnan(cur):
        if cur is None:
            status = current_entry.get("status")
            why = "snapshot skipped" if status == "skipped" else "metric missing"
            reason = f"{rule.metric} missing in the current run ({why}; baseline {base:g})"
        else:
            reason = f"{rule.metric} is NaN in the current run (baseline {base:g})"
        return Violation(name, rule.metric, base, math.nan, math.nan, rule.text, reason)
    change = rule.change(base, cur)
    if not rule.is_violated_by(change):
        return None
    verb = "rose" if change > 0 else "fell"
    limit = f"{rule.op}{'+' if rule.op == '>' else '-'}{rule.limit:g}{'%' if rule.relative else ''}"
    amount = f"{abs(change):.{CHANGE_DECIMALS}f}%" if rule.relative else f"{abs(change):.6g}"
    reason = f"{rule.metric} {verb} {amount} ({base:g} -> {cur:g}; limit {limit})"
    return Violation(name, rule.metric, base, cur, change, rule.text, reason)


def comparison_table(current: Mapping, baseline: Mapping, metrics: Iterable[str],
                     markdown: bool = False, violations: Iterable[Violation] | None = None,
                     extra: Mapping[str, Mapping[tuple[str, str], str]] | None = None,
                     checks: Mapping[tuple[str, str], str] | None = None) -> str:
    """Baseline, current value and relative change per snapshot and metric.

    Parameters
    ----------
    current, baseline : mapping
        Parsed results.json documents.
    metrics : iterable of str
        Metric titles, one row each per snapshot, in this order.
    markdown : bool
        A GitHub Markdown table (header row, ``| --- |`` separator, numbers right-aligned)
        instead of a plain table aligned with spaces.
    violations : iterable of Violation, optional
        Adds a ``check`` column: ``FAIL`` on the rows with a violation, ``new`` on the rows of
        snapshots without an evaluated baseline row (:func:`new_snapshots`), ``ok`` elsewhere.
    extra : mapping, optional
        More columns after ``change``: header -> (snapshot, metric) -> cell (``-`` where absent).
    checks : mapping, optional
        (snapshot, metric) -> the ``check`` cell, instead of the one ``violations`` gives.

    Returns
    -------
    str
        Rows for the snapshots of the current run, then those only in the baseline, in name
        order.  Missing values print ``-``; a change from a baseline of 0 prints ``n/a``.
        No trailing newline.
    """
    current_snaps = _check_results(current, "current results")
    baseline_snaps = _check_results(baseline, "baseline results")
    metrics = list(metrics)
    failed = None if violations is None else {(v.snapshot, v.metric) for v in violations}
    new = set(new_snapshots(current, baseline))
    headers = ["snapshot", "metric", "baseline", "current", "change", *(extra or {})]
    if failed is not None:
        headers.append("check")
    names = sorted(current_snaps) + sorted(set(baseline_snaps) - set(current_snaps))
    rows = []
    for name in names:
        for metric in metrics:
            base = _metric_value(baseline_snaps.get(name), metric)
            cur = _metric_value(current_snaps.get(name), metric)
            row = [one_line(name), one_line(metric), _format_value(base), _format_value(cur),
                   _format_change(base, cur)]
            row += [cells.get((name, metric), "-") for cells in (extra or {}).values()]
            if failed is not None:
                cell = "FAIL" if (name, metric) in failed else "new" if name in new else "ok"
                row.append((checks or {}).get((name, metric), cell))
            rows.append(row)
    numeric = ([False, False, True, True, True] + [True] * len(extra or {})
               + [False])[:len(headers)]
    return render(headers, rows, numeric, markdown, gap="  ", underline=True)


def _format_value(value: float | None) -> str:
    return "-" if value is None else f"{value:.{VALUE_DECIMALS}f}"


def _format_change(base: float | None, cur: float | None) -> str:
    if base is None or cur is None or math.isnan(base) or math.isnan(cur):
        return "-"
    change = relative_change_percent(base, cur)
    if math.isnan(change):
        return "-"
    if math.isinf(change):
        return "n/a"
    return f"{change:+.{CHANGE_DECIMALS}f}%"


def best_snapshot(results_snapshots: Mapping[str, Mapping], metric: str, lower_is_better: bool) -> str:
    """Name of the evaluated snapshot with the best value of ``metric``.

    Parameters
    ----------
    results_snapshots : mapping
        The ``snapshots`` object of a results.json.
    metric : str
    lower_is_better : bool

    Returns
    -------
    str
        Ties go to the first name in sorted order; skipped snapshots and NaN values never win.

    Raises
    ------
    ValueError
        No evaluated snapshot has a number for ``metric``.
    """
    candidates = []
    for name, entry in results_snapshots.items():
        if entry.get("status", "evaluated") != "evaluated":
            continue
        value = _metric_value(entry, metric)
        if value is not None and not math.isnan(value):
            candidates.append((value if lower_is_better else -value, name))
    if not candidates:
        raise ValueError(f"no evaluated snapshot has a value for {metric!r}")
    return min(candidates)[1]
