"""CI verdicts end to end on the shipped example (2 snapshots x 12 images): intervals in the
results files, the paired gate with and without --significant, an older baseline, JUnit XML."""

import csv
import json
import shutil
from xml.etree import ElementTree

import numpy as np
import pytest
from helpers import REPO

from depth_eval import cli
from depth_eval.report import html, junit
from depth_eval.scoring import uncertainty

EXAMPLES = REPO / "examples"
LATE, EARLY = "demo_refine_iter_3200", "demo_refine_iter_200"


def run(root, out, *options):
    return cli.main([str(EXAMPLES / "colors"), str(EXAMPLES / "depths"), str(root / out),
                     str(EXAMPLES / "snapshots"), "--store", str(root / "store.sqlite"), *options])


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """One evaluation of the examples: its folder and results.json."""
    root = tmp_path_factory.mktemp("verdicts")
    assert run(root, "made", "--quiet") == 0
    return root, json.loads((root / "made" / "results.json").read_text())


def baseline(root, document, name, scale=None, noise=None, per_image=True, version=None):
    """The run's results.json as a baseline, each image's RMSE divided by ``scale`` and shifted
    by ``noise`` (a per-image array), the mean made to match."""
    document = json.loads(json.dumps(document))
    for entry in document["snapshots"].values():
        values = [entry["per_image"][image]["RMSE"] for image in entry["per_image"]]
        new = np.array(values) / (scale or 1.0) + (0.0 if noise is None else noise)
        for image, value in zip(entry["per_image"], new):
            entry["per_image"][image]["RMSE"] = float(value)
        entry["metrics"]["RMSE"] = float(new.mean())
        if not per_image:
            del entry["per_image"], entry["metrics_ci"]
    if version is not None:
        document["schema_version"] = version
        del document["confidence"]
    path = root / f"{name}.json"
    path.write_text(json.dumps(document))
    return path


def gate(root, out, base, *options):
    return run(root, out, "--baseline", str(base), "--fail-if", "RMSE>+2%",
               "--junit", str(root / f"{out}.xml"), *options)


def junit_cases(path):
    tree = ElementTree.parse(path)
    assert tree.getroot().tag == "testsuites"
    return {case.get("name"): case for case in tree.iter("testcase")}


def test_intervals_in_results_json_and_csv(made):
    root, document = made
    assert document["confidence"] == {"level": 0.95, "method": "BCa", "resamples": 2000, "seed": 0}
    for name, entry in document["snapshots"].items():
        assert set(entry["metrics_ci"]) == set(entry["metrics"])
        for key, (low, high) in entry["metrics_ci"].items():
            assert low <= entry["metrics"][key] <= high, (name, key)
        values = [entry["per_image"][image]["RMSE"] for image in entry["per_image"]]
        expected = uncertainty.mean_intervals(values)[0]
        assert entry["metrics_ci"]["RMSE"] == pytest.approx(list(expected), rel=1e-12)
    with open(root / "made" / "results.csv", newline="") as stream:
        rows = {row["snapshot"]: row for row in csv.DictReader(stream)}
    assert float(rows[LATE]["RMSE ci_low"]) == document["snapshots"][LATE]["metrics_ci"]["RMSE"][0]
    assert float(rows[LATE]["RMSE ci_high"]) == document["snapshots"][LATE]["metrics_ci"]["RMSE"][1]


def test_a_rerun_gives_the_same_intervals(made, tmp_path):
    _, document = made
    assert run(tmp_path, "again", "--quiet") == 0
    again = json.loads((tmp_path / "again" / "results.json").read_text())
    for name in document["snapshots"]:
        assert again["snapshots"][name]["metrics_ci"] == document["snapshots"][name]["metrics_ci"]


def test_table_shows_intervals_and_the_best(made, capsys):
    root, document = made
    assert run(root, "table") == 0
    out = capsys.readouterr().out
    low, high = document["snapshots"][LATE]["metrics_ci"]["RMSE"]
    assert f"{document['snapshots'][LATE]['metrics']['RMSE']:.4f} [{low:.4f}, {high:.4f}]*" in out
    assert "0.95 bootstrap interval of the mean" in out


def test_identical_baseline_passes_and_pairs_every_image(made, capsys):
    root, document = made
    base = baseline(root, document, "same")
    assert gate(root, "same", base, "--significant") == 0
    out = capsys.readouterr().out
    assert "paired interval" in out and "[+0.00%, +0.00%]" in out
    cases = junit_cases(root / "same.xml")
    assert f"{LATE}: RMSE>+2%" in cases and f"{EARLY}: RMSE>+2%" in cases
    assert not any(case.find("failure") is not None for case in cases.values())


def test_consistent_regression_fails_with_and_without_significant(made, capsys):
    root, document = made
    base = baseline(root, document, "better", scale=1.05)  # the baseline 5% better everywhere
    for options in ((), ("--significant",)):
        assert gate(root, "worse", base, *options) == 3
        err = capsys.readouterr().err
        assert f"error: gate: snapshot {LATE} broke 'RMSE>+2%': RMSE rose 5.00%" in err
        cases = junit_cases(root / "worse.xml")
        failure = cases[f"{LATE}: RMSE>+2%"].find("failure")
        assert failure is not None
        assert failure.get("message") in err  # the message the gate prints
        assert failure.get("message").startswith(f"gate: snapshot {LATE} broke 'RMSE>+2%'")


def test_change_within_the_noise_fails_only_without_significant(made, capsys):
    root, document = made
    # Each image's baseline RMSE moved at random by +-40% of the mean; the mean 3% lower.
    images = len(document["snapshots"][LATE]["per_image"])
    mean = document["snapshots"][LATE]["metrics"]["RMSE"]
    rng = np.random.default_rng(1)
    noise = rng.normal(0.0, 0.4 * mean, images)
    noise += -0.03 * mean - noise.mean()
    base = baseline(root, document, "noisy", noise=noise)
    assert gate(root, "noisy", base) == 3
    capsys.readouterr()
    assert gate(root, "noisy", base, "--significant") == 0
    captured = capsys.readouterr()
    assert "passed 'RMSE>+2%' within the noise" in captured.err
    assert "noise" in captured.out  # the comparison table's check column
    cases = junit_cases(root / "noisy.xml")
    assert cases[f"{LATE}: RMSE>+2%"].find("failure") is None
    assert "within the noise" in cases[f"{LATE}: RMSE>+2%"].find("system-out").text


def test_older_baseline_falls_back_to_the_unpaired_gate_saying_so_once(made, capsys):
    root, document = made
    base = baseline(root, document, "old", scale=1.05, per_image=False, version=1)
    assert gate(root, "old", base, "--significant") == 3
    captured = capsys.readouterr()
    notes = [line for line in captured.err.splitlines() if "no per-image values" in line]
    assert len(notes) == 1 and "unpaired" in notes[0] and EARLY in notes[0] and LATE in notes[0]
    assert "  paired interval  " not in captured.out  # no such column in the comparison


def test_baseline_pairing_fewer_images_says_so(made, capsys):
    root, document = made
    edited = json.loads(json.dumps(document))
    for entry in edited["snapshots"].values():
        entry["per_image"]["extra_colors"] = dict(next(iter(entry["per_image"].values())))
    path = root / "extra.json"
    path.write_text(json.dumps(edited))
    assert run(root, "extra", "--baseline", str(path)) == 0
    err = capsys.readouterr().err
    assert f"gate: snapshot {LATE}: paired on 12 of the baseline's 13 images" in err


def test_junit_skipped_snapshot_and_exit_status(made, tmp_path, capsys):
    snapshots = tmp_path / "snapshots"
    shutil.copytree(EXAMPLES / "snapshots", snapshots)
    (snapshots / "broken.caffemodel").write_bytes(b"not a model")
    shutil.copy(snapshots / f"{LATE}.prototxt", snapshots / "broken.prototxt")
    status = cli.main([str(EXAMPLES / "colors"), str(EXAMPLES / "depths"), str(tmp_path / "out"),
                       str(snapshots), "--quiet", "--junit", str(tmp_path / "j.xml")])
    assert status == 1
    cases = junit_cases(tmp_path / "j.xml")
    assert cases["broken"].find("error") is not None
    assert cases[LATE].find("error") is None and cases[EARLY].find("error") is None
    root = ElementTree.parse(tmp_path / "j.xml").getroot()
    assert root.get("errors") == "1" and root.get("failures") == "0"
    assert (tmp_path / "j.xml").read_bytes().startswith(junit.HEADER)


def test_junit_file_not_ours_is_refused_before_any_work(tmp_path, capsys):
    (tmp_path / "mine.xml").write_text("<x/>")
    status = cli.main([str(EXAMPLES / "colors"), str(EXAMPLES / "depths"), str(tmp_path / "out"),
                       str(EXAMPLES / "snapshots"), "--junit", str(tmp_path / "mine.xml")])
    assert status == 2
    assert "--junit" in capsys.readouterr().err and not (tmp_path / "out").exists()
    assert (tmp_path / "mine.xml").read_text() == "<x/>"


def test_significant_needs_rules_and_confidence_its_range(tmp_path, capsys):
    base = [str(EXAMPLES / "colors"), str(EXAMPLES / "depths"), str(tmp_path / "out"),
            str(EXAMPLES / "snapshots")]
    assert cli.main([*base, "--significant"]) == 2
    assert "--significant" in capsys.readouterr().err
    assert cli.main([*base, "--confidence", "1.5"]) == 2
    assert "--confidence" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_charts_draw_intervals_as_error_bars_and_bands():
    from matplotlib.collections import LineCollection, PolyCollection

    from depth_eval.inputs.discover import training_runs
    from depth_eval.pictures import charts

    means = {"a_iter_1": {"RMSE": 1.0}, "a_iter_2": {"RMSE": 0.8}}
    intervals = {"a_iter_1": {"RMSE": [0.9, 1.2]}, "a_iter_2": {"RMSE": [0.7, 0.85]}}
    bars = charts.build_metrics_figure(means, {"RMSE": True}, intervals).axes[0]
    segments = [c for c in bars.collections if isinstance(c, LineCollection)]
    spans = sorted(tuple(np.round(s[:, 0], 6)) for c in segments for s in c.get_segments())
    assert spans == [(0.7, 0.85), (0.9, 1.2)]
    runs = training_runs(means)
    curve = charts.build_curve_figure(means, {"RMSE": True}, runs, intervals).axes[0]
    band, = [c for c in curve.collections if isinstance(c, PolyCollection)]
    ys = band.get_paths()[0].vertices[:, 1]
    assert ys.min() == pytest.approx(0.7) and ys.max() == pytest.approx(1.2)
    plain = charts.build_metrics_figure(means, {"RMSE": True}).axes[0]
    assert not [c for c in plain.collections if isinstance(c, LineCollection)]


def test_report_elsewhere_replaces_only_its_own_report(made, tmp_path):
    root, _ = made
    elsewhere = tmp_path / "pages"
    elsewhere.mkdir()
    target = elsewhere / "run.html"
    assert run(root, "page", "--quiet", "--report", str(target)) == 0
    first = target.read_bytes()
    assert first.startswith(html.HEADER) and b"demo_refine_iter_3200" in first
    assert not (root / "page" / html.REPORT_HTML).exists()
    assert sorted(p.name for p in elsewhere.iterdir()) == ["run.html"]  # no manifest
    assert b"data:image/png;base64," in first  # the error maps are in the page
    assert run(root, "page", "--quiet", "--report", str(target)) == 0  # its own: replaced
    (elsewhere / "theirs.html").write_text("<html>mine</html>")
    assert run(root, "page", "--quiet", "--report", str(elsewhere / "theirs.html")) == 2
    assert (elsewhere / "theirs.html").read_text() == "<html>mine</html>"


def test_report_links_pictures_relatively_with_names_encoded(made):
    root, _ = made
    text = (root / "made" / html.REPORT_HTML).read_text()
    data = json.loads(text.split('<script type="application/json" id="data">')[1]
                      .split("</script>")[0])
    row = data["images"]["rows"][0]
    late = row["snapshots"][LATE]["pictures"]
    assert late["fitted"] == f"{LATE}/{row['image'][:-len('_colors')]}_depth.png"
    assert late["raw"].startswith("../made_abs/")
    assert late["error"].startswith("data:image/png;base64,")
    with_maps = [r for r in data["images"]["rows"] if "error" in r["snapshots"][LATE]["pictures"]]
    assert len(with_maps) == min(html.ERROR_MAP_IMAGES, 12)
    worst = [r["snapshots"][LATE]["value"] for r in data["images"]["rows"]]
    mean = [np.mean([s["value"] for s in r["snapshots"].values()]) for r in data["images"]["rows"]]
    assert mean == sorted(mean, reverse=True) and len(worst) == 12


def test_junit_new_snapshot_is_skipped_not_failed(made, capsys):
    root, document = made
    edited = json.loads(json.dumps(document))
    del edited["snapshots"][EARLY]
    path = root / "one.json"
    path.write_text(json.dumps(edited))
    assert gate(root, "one", path) == 0
    cases = junit_cases(root / "one.xml")
    assert cases[f"{EARLY}: RMSE>+2%"].find("skipped") is not None
    assert cases[f"{LATE}: RMSE>+2%"].find("failure") is None


def _document(per_image):
    """A results.json of one snapshot ``s`` with these per-image RMSE values (None: none kept)."""
    entry = {"status": "evaluated", "metrics": {"RMSE": float(np.mean(per_image)),
                                                "median/scale_std": 0.1}}
    entry["per_image"] = {f"{i:05d}_colors": {"RMSE": v} for i, v in enumerate(per_image)}
    return {"schema_version": 2, "snapshots": {"s": entry}}


def _decide(current, base, rule, significant=True):
    from types import SimpleNamespace

    from depth_eval.report import gate as gate_module
    from depth_eval.report.verdict import decide
    from depth_eval.scoring.keys import MetricKey
    from depth_eval.settings import GateSettings

    rules = (gate_module.parse_rule(rule),)
    settings = SimpleNamespace(gate=GateSettings("base.json", base, rules,
                                                 significant=significant))
    means = {"s": {MetricKey.parse(k): v for k, v in current["snapshots"]["s"]["metrics"].items()}}
    return decide(settings, current, means)


def test_a_metric_without_per_image_values_keeps_the_threshold_rule():
    values = np.linspace(1.0, 2.0, 40)
    base, current = _document(values), _document(values)
    current["snapshots"]["s"]["metrics"]["median/scale_std"] = 0.2  # doubled, not per image
    verdict = _decide(current, base, "median/scale_std>+10%")
    check, = verdict.checks
    assert check.fails and check.interval is None and verdict.failed


def test_decide_on_hand_made_values():
    rng = np.random.default_rng(2)
    values = rng.gamma(2.0, 0.5, 200)
    worse = _decide(_document(values * 1.05), _document(values), "RMSE>+2%")
    assert worse.failed and worse.checks[0].significant
    assert worse.checks[0].interval[0] > 0 and worse.checks[0].p_value < 1e-6
    noisy_values = values + rng.normal(0.0, 0.5, values.size)
    noisy_values += values.mean() * 1.03 - noisy_values.mean()
    noisy = _decide(_document(noisy_values), _document(values), "RMSE>+2%")
    assert not noisy.failed and noisy.checks[0].outcome == "noise"
    plain = _decide(_document(noisy_values), _document(values), "RMSE>+2%", significant=False)
    assert plain.failed and plain.checks[0].outcome == "FAIL"
    same = _decide(_document(values), _document(values), "RMSE>+2%")
    assert same.checks[0].outcome == "ok" and same.checks[0].interval == (0.0, 0.0)


class RecordingReporter:
    """A reporter added by one registry line: records what it receives."""

    prints = False
    seen = []

    def wanted(self, run):
        return True

    def report(self, run, console):
        RecordingReporter.seen.append(run)
        return ["recording: one problem, reported like any output's"]


def test_a_reporter_is_one_registry_line_and_gets_the_decided_verdict(made, monkeypatch, capsys):
    from depth_eval.report import reporters

    root, document = made
    monkeypatch.setitem(reporters.REPORTERS, "recording", "test_verdicts:RecordingReporter")
    RecordingReporter.seen.clear()
    base = baseline(root, document, "rec", scale=1.05)
    assert gate(root, "rec", base) == 3
    run_seen, = RecordingReporter.seen
    assert [v.snapshot for v in run_seen.verdict.violations] == [EARLY, LATE]
    assert run_seen.document["snapshots"].keys() == {EARLY, LATE}
    captured = capsys.readouterr()
    assert "error: recording: one problem, reported like any output's" in captured.err
    # The problems come before the rankings, which are printed once the files are written.
    assert captured.out.startswith("TOP 2 for AbsRelDiff")


def test_table_cells_with_intervals_and_marks():
    from depth_eval.report import rankings
    from depth_eval.scoring.keys import MetricKey

    rmse = MetricKey.parse("RMSE")
    means = {"a": {rmse: 0.8266}, "b": {rmse: 0.9}, "c": {rmse: 1.5}}
    intervals = {"a": {"RMSE": [0.64, 1.25]}, "b": {"RMSE": [0.7, 1.1]}, "c": {"RMSE": [1.4, 1.6]}}
    text = rankings.format_table(means, {"a": 3, "b": 3, "c": 3}, markdown=True,
                                 intervals=intervals, ties={rmse: ("a", {"b"})})
    rows = text.splitlines()[2:]
    assert rows == ["| a | 3 | 0.8266 [0.6400, 1.2500]* |", "| b | 3 | 0.9000 [0.7000, 1.1000]~ |",
                    "| c | 3 | 1.5000 [1.4000, 1.6000]  |"]
    assert rankings.interval_legend(None) == ""
    assert rankings.interval_legend({"level": 0.9, "method": "percentile", "resamples": 500,
                                     "seed": 0}).startswith("[low, high]: 0.9 bootstrap interval")
