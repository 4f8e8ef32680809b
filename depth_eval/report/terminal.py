"""What a run prints at the end: the rankings, the table, the gate's comparison and --best."""

from __future__ import annotations

import math

from depth_eval.report import gate, rankings
from depth_eval.console import one_line
from depth_eval.report.reporters import Reporter
from depth_eval.report.results import RESULTS_CSV, RESULTS_JSON

# Digits of the p-values in the comparison table.
P_DECIMALS = 3


class TerminalReporter(Reporter):
    """The end of the run on stdout and stderr."""

    prints = True

    def report(self, run, console) -> list[str]:
        print_results(run.settings, run.tally, run.document, run.verdict, console)
        return []


def print_results(settings, tally, document: dict, verdict, console) -> None:
    """Rankings, table, the gate's comparison and verdict, and --best."""
    outputs, gate_settings = settings.outputs, settings.gate
    markdown = outputs.table_format == "markdown"
    console.result(rankings.format_rankings(tally.means))
    console.info()
    intervals = {name: entry.get("metrics_ci", {}) for name, entry in tally.entries.items()}
    console.info(rankings.format_table(tally.means, tally.images, markdown=markdown,
                                       intervals=intervals, ties=verdict.ties))
    console.info(rankings.interval_legend(document.get("confidence")))
    console.info()
    console.info(one_line(f"results: {outputs.out_dir / RESULTS_JSON}, "
                          f"{outputs.out_dir / RESULTS_CSV}, {outputs.report_path}"
                          + (f", {outputs.junit}" if outputs.junit is not None else "")))
    if gate_settings.baseline is not None:
        console.info()
        console.info(comparison(document, gate_settings, verdict, markdown))
        for note in verdict.notes:
            console.note(note)
        for name in verdict.new:
            console.note(f"gate: snapshot {name} is new (no evaluated row in "
                         f"{gate_settings.baseline_path}): nothing to compare, not checked")
        for check in verdict.checks:
            if check.violation is None:
                continue
            if check.fails:
                console.error(f"gate: snapshot {check.snapshot} broke '{check.rule.text}': "
                              f"{check.violation.reason}")
            else:
                console.note(f"gate: snapshot {check.snapshot} passed '{check.rule.text}' within "
                             f"the noise: {check.violation.reason}" + _sureness(check))
    if verdict.best is not None:
        console.result(one_line(verdict.best))


def _sureness(check) -> str:
    """The paired interval and p-value after a violation's reason, where there are any."""
    if check.interval is None:
        return ""
    unit = "%" if check.rule.relative else ""
    return (f"; paired change in [{check.interval[0]:+.4g}{unit}, {check.interval[1]:+.4g}{unit}]"
            f", Wilcoxon p={_p_text(check.p_value)}")


def _p_text(p_value) -> str:
    if p_value is None or not math.isfinite(p_value):
        return "-"
    return f"{p_value:.{P_DECIMALS}f}" if p_value >= 10 ** -P_DECIMALS else f"{p_value:.1e}"


def comparison(document, gate_settings, verdict, markdown: bool) -> str:
    """The comparison table: with the paired interval of the change (percent) and the
    Wilcoxon p-value where the snapshot was paired, and each rule's verdict."""
    intervals, p_values = {}, {}
    for name, pairing in verdict.pairings.items():
        for metric in pairing.metrics:
            low, high = pairing.relative_interval(metric)
            if math.isfinite(low) and math.isfinite(high):
                intervals[(name, metric)] = f"[{low:+.{gate.CHANGE_DECIMALS}f}%, " \
                                            f"{high:+.{gate.CHANGE_DECIMALS}f}%]"
            p_values[(name, metric)] = _p_text(pairing.p_value(metric))
    extra = {"paired interval": intervals, "p": p_values} if verdict.pairings else None
    checks = {}
    for check in verdict.checks:
        cell = checks.get((check.snapshot, check.rule.metric), "ok")
        if cell != "FAIL":
            checks[(check.snapshot, check.rule.metric)] = (
                check.outcome if check.outcome != "ok" else cell)
    rules = gate_settings.rules
    return gate.comparison_table(document, gate_settings.baseline, verdict.shown,
                                 markdown=markdown,
                                 violations=[c.violation for c in verdict.checks
                                             if c.violation is not None] if rules else None,
                                 extra=extra, checks=checks if rules else None)
