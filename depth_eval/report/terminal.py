"""What a run prints at the end: the rankings, the table, the gate's comparison and --best."""

from __future__ import annotations

from depth_eval.report import gate, rankings
from depth_eval.console import one_line
from depth_eval.scoring.keys import lower_is_better
from depth_eval.report.results import RESULTS_CSV, RESULTS_JSON


def print_results(settings, tally, document: dict, console) -> list:
    """Rankings, table, the gate's comparison and --best on stdout; returns the violations."""
    outputs, gate_settings = settings.outputs, settings.gate
    markdown = outputs.table_format == "markdown"
    console.result(rankings.format_rankings(tally.means))
    console.info()
    console.info(rankings.format_table(tally.means, tally.images, markdown=markdown))
    console.info()
    console.info(one_line(f"results: {outputs.out_dir / RESULTS_JSON}, "
                          f"{outputs.out_dir / RESULTS_CSV}"))
    violations = []
    if gate_settings.baseline is not None:
        rules = gate_settings.rules
        violations = gate.compare(document, gate_settings.baseline, rules)
        shown = (list(dict.fromkeys(r.metric for r in rules))
                 or [str(k) for k in next(iter(tally.means.values()))])
        console.info()
        console.info(gate.comparison_table(document, gate_settings.baseline, shown,
                                           markdown=markdown,
                                           violations=violations if rules else None))
        for name in gate.new_snapshots(document, gate_settings.baseline):
            console.note(f"gate: snapshot {name} is new (no evaluated row in "
                         f"{gate_settings.baseline_path}): nothing to compare, not checked")
        for violation in violations:
            console.error(f"gate: snapshot {violation.snapshot} broke '{violation.rule_text}': "
                          f"{violation.reason}")
    if gate_settings.best is not None:
        best = gate_settings.best
        console.result(one_line(gate.best_snapshot(tally.entries, str(best),
                                                   lower_is_better(best))))
    return violations
