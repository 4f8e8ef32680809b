"""The CI gate: rule parsing, comparisons with the right numbers, tables, best snapshot."""

import json
import math

import numpy as np
import pytest

from depth_eval.report import rankings as report
from depth_eval.report.gate import (SUPPORTED_SCHEMA_VERSION, Rule, best_snapshot, compare, comparison_table,
    load_results, new_snapshots, parse_rule)
from depth_eval.scoring.thesis_metrics import THESIS_METRICS
from depth_eval.scoring.standard_metrics import STANDARD_METRICS

DIRECTIONS = {m.title: m.lower_is_better for m in THESIS_METRICS + STANDARD_METRICS}


def results(**snapshots):
    """A results.json document; each snapshot given as a metrics dict, or None for skipped."""
    entries = {}
    for name, metrics in snapshots.items():
        if metrics is None:
            entries[name] = {"status": "skipped", "error": "broken", "metrics": {}}
        else:
            entries[name] = {"status": "evaluated", "metrics": metrics}
    return {"schema_version": 1, "snapshots": entries}


BASELINE = results(a={"RMSE": 0.5, "Threshold 1.25": 0.8, "AbsRelDiff": 0.1},
                   b={"RMSE": 0.6, "Threshold 1.25": 0.7, "AbsRelDiff": 0.2})


# --- parse_rule --------------------------------------------------------------------------------

@pytest.mark.parametrize("text, metric, op, limit, relative", [
    ("RMSE>+2%", "RMSE", ">", 2.0, True),
    ("Threshold 1.25<-0.01", "Threshold 1.25", "<", 0.01, False),
    ("AbsRelDiff>+0.005", "AbsRelDiff", ">", 0.005, False),
    ("Threshold 1.25^2<-1.5%", "Threshold 1.25^2", "<", 1.5, True),
    ("median/rmse>+.5%", "median/rmse", ">", 0.5, True),
    ("  RMSE > 2 % ", "RMSE", ">", 2.0, True),
    ("SIMSE>+1e-3", "SIMSE", ">", 0.001, False),
    ("RMSE>+0", "RMSE", ">", 0.0, False),
])
def test_parse_good_rules(text, metric, op, limit, relative):
    rule = parse_rule(text)
    assert (rule.metric, rule.op, rule.limit, rule.relative) == (metric, op, limit, relative)
    assert rule.text == text.strip() and rule.guards_better_side is False


@pytest.mark.parametrize("text", ["x", "RMSE", "RMSE>", ">+2%", "RMSE>+2%%", "RMSE>=+2", "RMSE>+2 m",
                                  "RMSE>+-2", "RMSE>+1e999", "RMSE<>2", ""])
def test_parse_bad_rules(text):
    with pytest.raises(ValueError, match=r"^bad --fail-if rule '.*'"):
        parse_rule(text)


def test_bad_rule_message_shows_the_grammar():
    with pytest.raises(ValueError) as caught:
        parse_rule("x")
    assert str(caught.value) == "bad --fail-if rule 'x': expected METRIC>+N[%] or METRIC<-N[%]"


def test_sign_must_agree_with_the_direction():
    with pytest.raises(ValueError, match="'>' takes a rise"):
        parse_rule("RMSE>-2%")
    with pytest.raises(ValueError, match="'<' a drop"):
        parse_rule("Threshold 1.25<+0.01")


def test_rules_guarding_the_better_side_are_flagged():
    assert not parse_rule("RMSE>+2%", DIRECTIONS).guards_better_side
    assert parse_rule("RMSE<-2%", DIRECTIONS).guards_better_side
    assert parse_rule("Threshold 1.25>+1%", DIRECTIONS).guards_better_side
    assert not parse_rule("Threshold 1.25<-1%", DIRECTIONS).guards_better_side
    assert parse_rule("median/d1>+1%", DIRECTIONS).guards_better_side  # prefix falls back to d1
    assert not parse_rule("lsq/abs_rel>+1%", DIRECTIONS).guards_better_side
    assert not parse_rule("Unknown<-1", DIRECTIONS).guards_better_side


# --- compare -------------------------------------------------------------------------------------

def test_a_better_run_passes():
    current = results(a={"RMSE": 0.45, "Threshold 1.25": 0.85, "AbsRelDiff": 0.09},
                      b={"RMSE": 0.6, "Threshold 1.25": 0.7, "AbsRelDiff": 0.2})
    rules = [parse_rule(r) for r in ("RMSE>+0%", "Threshold 1.25<-0", "AbsRelDiff>+0")]
    assert compare(current, BASELINE, rules) == []


def test_a_worse_run_violates_with_the_numbers():
    current = results(a={"RMSE": 0.52, "Threshold 1.25": 0.78, "AbsRelDiff": 0.1},
                      b={"RMSE": 0.606, "Threshold 1.25": 0.7, "AbsRelDiff": 0.2})
    rules = [parse_rule("RMSE>+2%"), parse_rule("Threshold 1.25<-0.01")]
    violations = compare(current, BASELINE, rules)
    assert [(v.snapshot, v.metric) for v in violations] == [("a", "RMSE"), ("a", "Threshold 1.25")]
    rmse, delta = violations
    assert (rmse.baseline_value, rmse.current_value, rmse.rule_text) == (0.5, 0.52, "RMSE>+2%")
    assert rmse.change == pytest.approx(4.0)  # percent
    assert rmse.reason == "RMSE rose 4.00% (0.5 -> 0.52; limit >+2%)"
    assert delta.change == pytest.approx(-0.02)  # absolute
    assert delta.reason == "Threshold 1.25 fell 0.02 (0.8 -> 0.78; limit <-0.01)"
    # b's RMSE rose 1% only: within the 2% limit.


def test_relative_and_absolute_limits_differ():
    baseline = results(s={"RMSE": 2.0})
    current = results(s={"RMSE": 2.03})  # +0.03 absolute, +1.5% relative
    assert compare(current, baseline, [parse_rule("RMSE>+1%")])[0].change == pytest.approx(1.5)
    assert compare(current, baseline, [parse_rule("RMSE>+2%")]) == []
    assert compare(current, baseline, [parse_rule("RMSE>+0.02")])[0].change == pytest.approx(0.03)
    assert compare(current, baseline, [parse_rule("RMSE>+0.05")]) == []


def test_limits_are_exclusive_and_one_sided():
    baseline, current = results(s={"RMSE": 1.0}), results(s={"RMSE": 1.5})
    assert compare(current, baseline, [parse_rule("RMSE>+0.5")]) == []
    assert compare(current, baseline, [parse_rule("RMSE<-0.1")]) == []  # a rise never trips '<'
    assert compare(baseline, current, [parse_rule("RMSE>+0")]) == []    # a drop never trips '>'


def test_zero_baseline_relative_change():
    baseline = results(s={"SIMSE": 0.0})
    assert compare(results(s={"SIMSE": 0.0}), baseline, [parse_rule("SIMSE>+1%")]) == []
    violation, = compare(results(s={"SIMSE": 0.1}), baseline, [parse_rule("SIMSE>+1%")])
    assert violation.change == math.inf


def test_skipped_missing_and_nan_current_values_violate():
    current = results(a=None, b={"Threshold 1.25": 0.7, "RMSE": math.nan})
    rules = [parse_rule("RMSE>+2%")]
    violations = compare(current, BASELINE, rules)
    assert [v.snapshot for v in violations] == ["a", "b"]
    assert all(math.isnan(v.current_value) and math.isnan(v.change) for v in violations)
    assert "snapshot skipped" in violations[0].reason and "NaN" in violations[1].reason
    current = results(a={"Threshold 1.25": 0.8}, b={"RMSE": 0.6})
    violation, = compare(current, BASELINE, rules)
    assert "metric missing" in violation.reason


def test_a_skipped_baseline_row_is_new_and_a_nan_baseline_cannot_be_checked():
    # Issue 11 item 3: a NaN in the baseline used to pass quietly.
    baseline = results(a=None, b={"RMSE": math.nan}, c={"AbsRelDiff": 0.1})
    current = results(a={"RMSE": 9.0}, b={"RMSE": 9.0}, c={"RMSE": 9.0})
    violations = compare(current, baseline, [parse_rule("RMSE>+0")])
    assert [(v.snapshot, v.reason) for v in violations] == [
        ("b", "RMSE is not a number in the baseline: the rule cannot be checked"),
        ("c", "RMSE is missing in the baseline: the rule cannot be checked")]
    assert new_snapshots(current, baseline) == ["a"]


def test_unknown_metric_is_an_error():
    with pytest.raises(ValueError, match=r"'RMS' is in neither results.json \(metrics: AbsRelDiff, RMSE"):
        compare(BASELINE, BASELINE, [parse_rule("RMS>+1%")])
    # Present in the current run only: no baseline value to check against, a violation each
    # (the command line refuses such a rule before any work: gate.check_rules).
    current = results(a={"RMSE": 0.5, "median/rmse": 0.3})
    violations = compare(current, BASELINE, [parse_rule("median/rmse>+1%")])
    assert [v.snapshot for v in violations] == ["a", "b"]
    assert all("missing in the baseline" in v.reason for v in violations)


def test_new_snapshots_are_not_compared_and_gone_ones_fail():
    # Issue 11 item 3: a renamed snapshot (b -> c) used to pass quietly.
    current = results(a={"RMSE": 0.5}, c={"RMSE": 9.0}, d={"RMSE": 1.0})
    assert new_snapshots(current, BASELINE) == ["c", "d"]
    violation, = compare(current, BASELINE, [parse_rule("RMSE>+0")])
    assert violation.snapshot == "b" and violation.baseline_value == 0.6
    assert violation.reason.startswith("snapshot not in this run (renamed or removed?")
    table = comparison_table(current, BASELINE, ["RMSE"], markdown=True, violations=[violation])
    assert table.split("\n")[2:] == ["| a | RMSE | 0.5000 | 0.5000 | +0.00% | ok |",
                                     "| c | RMSE | - | 9.0000 | - | new |",
                                     "| d | RMSE | - | 1.0000 | - | new |",
                                     "| b | RMSE | 0.6000 | - | - | FAIL |"]


def test_documents_are_checked():
    with pytest.raises(ValueError, match="current results: not a depth_eval results.json"):
        compare({"metrics": {}}, BASELINE, [])
    with pytest.raises(ValueError, match="baseline results: results.json schema_version 3"):
        compare(BASELINE, {"schema_version": 3, "snapshots": {}}, [])
    assert new_snapshots(BASELINE, {"schema_version": 2, "snapshots": {}}) == ["a", "b"]


def test_the_gate_reads_what_the_tool_writes():
    assert SUPPORTED_SCHEMA_VERSION == report.RESULTS_SCHEMA_VERSION == 2


def test_version_1_baseline_is_read_with_scale_std_made_relative(tmp_path):
    # Version 1 stored std(ratios) as median/scale_std; version 2 stores monodepth2's
    # std(ratios / median(ratios)) = std(ratios) / median(ratios): the gate converts.
    ratios = [0.8, 1.1, 1.3, 0.95, 2.4]
    median, spread = float(np.median(ratios)), float(np.std(ratios))
    version_1 = {"schema_version": 1, "snapshots": {
        "a": {"status": "evaluated", "metrics": {"RMSE": 0.5, "median/scale_median": median,
                                                 "median/scale_std": spread,
                                                 "lsq/scale_median": 2.0, "lsq/scale_std": 0.5}},
        "b": {"status": "skipped", "error": "broken"}}}
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(version_1))
    loaded = load_results(path)
    assert loaded["schema_version"] == 2
    metrics = loaded["snapshots"]["a"]["metrics"]
    assert metrics["median/scale_std"] == pytest.approx(np.std(np.array(ratios) / median), rel=1e-15)
    assert metrics["lsq/scale_std"] == 0.25
    assert metrics["RMSE"] == 0.5 and metrics["median/scale_median"] == median
    assert loaded["snapshots"]["b"] == version_1["snapshots"]["b"]
    # Version 2 files are read as they are.
    version_2 = dict(version_1, schema_version=2)
    path.write_text(json.dumps(version_2))
    assert load_results(path) == version_2


def test_load_results(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results(a={"RMSE": math.nan})))  # json writes NaN as NaN
    assert math.isnan(load_results(path)["snapshots"]["a"]["metrics"]["RMSE"])
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="bad.json: not a JSON file"):
        load_results(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="none.json: cannot read file"):
        load_results(tmp_path / "none.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(ValueError, match="list.json: not a depth_eval results.json"):
        load_results(tmp_path / "list.json")


# --- tables ----------------------------------------------------------------------------------------

CURRENT = results(a={"RMSE": 0.51, "Threshold 1.25": 0.8}, c={"RMSE": 1.0})


def test_markdown_table():
    table = comparison_table(CURRENT, BASELINE, ["RMSE", "Threshold 1.25"], markdown=True)
    lines = table.split("\n")
    assert lines[0] == "| snapshot | metric | baseline | current | change |"
    assert lines[1] == "| --- | --- | ---: | ---: | ---: |"
    assert lines[2] == "| a | RMSE | 0.5000 | 0.5100 | +2.00% |"
    assert lines[3] == "| a | Threshold 1.25 | 0.8000 | 0.8000 | +0.00% |"
    assert lines[4] == "| c | RMSE | - | 1.0000 | - |"
    assert lines[6] == "| b | RMSE | 0.6000 | - | - |"  # only in the baseline, last
    assert len(lines) == 8 and not table.endswith("\n")


def test_markdown_table_escapes_pipes_and_marks_failures():
    current = results(**{"x|y": {"RMSE": 2.0}})
    baseline = results(**{"x|y": {"RMSE": 1.0}})
    violations = compare(current, baseline, [parse_rule("RMSE>+10%")])
    table = comparison_table(current, baseline, ["RMSE"], markdown=True, violations=violations)
    assert table.split("\n")[0].endswith("| change | check |")
    assert table.split("\n")[2] == "| x\\|y | RMSE | 1.0000 | 2.0000 | +100.00% | FAIL |"


def test_text_table_is_aligned():
    table = comparison_table(CURRENT, BASELINE, ["RMSE"], violations=[])
    lines = table.split("\n")
    assert lines[0].split() == ["snapshot", "metric", "baseline", "current", "change", "check"]
    assert set(lines[1]) == {"-", " "}
    assert lines[2].split() == ["a", "RMSE", "0.5000", "0.5100", "+2.00%", "ok"]
    # Right-aligned numbers end in the same column as their header.
    header_end = lines[0].index("baseline") + len("baseline")
    assert all(line[:header_end].endswith(("0", "-")) for line in lines[2:])
    assert len({len(line) for line in lines[:2]}) == 1


def test_table_change_from_zero():
    table = comparison_table(results(s={"SIMSE": 0.5}), results(s={"SIMSE": 0.0}), ["SIMSE"], True)
    assert table.split("\n")[2] == "| s | SIMSE | 0.0000 | 0.5000 | n/a |"


# --- best_snapshot ---------------------------------------------------------------------------------

def test_best_snapshot():
    snapshots = results(a={"RMSE": 0.5, "d1": 0.9}, b={"RMSE": 0.4, "d1": 0.95},
                        c={"RMSE": math.nan, "d1": 0.95}, d=None, e={"RMSE": 0.4})["snapshots"]
    assert best_snapshot(snapshots, "RMSE", lower_is_better=True) == "b"   # tie with e: name order
    assert best_snapshot(snapshots, "d1", lower_is_better=False) == "b"    # tie with c
    snapshots["d"]["metrics"] = {"RMSE": 0.0}  # a skipped snapshot never wins
    assert best_snapshot(snapshots, "RMSE", True) == "b"
    with pytest.raises(ValueError, match="no evaluated snapshot has a value for 'MVN'"):
        best_snapshot(snapshots, "MVN", True)


def test_rule_change_helper():
    rule = Rule("RMSE>+2%", "RMSE", ">", 2.0, True, False)
    assert rule.change(2.0, 2.1) == pytest.approx(5.0)
    assert rule.is_violated_by(2.0001) and not rule.is_violated_by(2.0)
