"""Hostile situations around the outputs (issue 11, items 3, 4, 7, 8 and 9): a CI gate that
must not pass quietly, a --per-image file that must not replace anything, names with newlines,
snapshot names that collide with the tool's own files, a disk that refuses writes.

Inputs (items 5, 6, 10) are in test_hostile.py.
"""

import errno
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from depth_eval import writing as files
from depth_eval.errors import OutputError
from depth_eval.writing import MANIFEST_NAME, OutputFolder
from helpers import GOLDEN_E2E, GOOD, STEMS, add_snapshot, evaluate, results


def errors_of(stderr: str) -> list[str]:
    assert "unexpected" not in stderr and "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def baseline_file(workspace, edit, name="base.json"):
    """A baseline: this workspace's results.json (made once) with ``edit(snapshots)`` applied."""
    made = workspace / "made" / "results.json"
    if not made.exists():
        assert evaluate(workspace, "--quiet", out="made") == 0
    document = json.loads(made.read_text())
    edit(document["snapshots"])
    path = workspace / name
    path.write_text(json.dumps(document))
    return path


# --- item 3: the CI gate --------------------------------------------------------------------------

def test_gate_fails_when_the_baseline_lacks_the_metric_or_holds_nan(workspace, capsys):
    def other_has_rmse_good_lacks_it(snapshots):
        snapshots["other"] = json.loads(json.dumps(snapshots[GOOD]))
        del snapshots[GOOD]["metrics"]["RMSE"]

    base = baseline_file(workspace, other_has_rmse_good_lacks_it)
    assert evaluate(workspace, "--baseline", str(base), "--fail-if", "RMSE>+2%") == 3
    captured = capsys.readouterr()
    assert errors_of(captured.err) == [
        "error: gate: snapshot other broke 'RMSE>+2%': snapshot not in this run (renamed or "
        f"removed?; baseline RMSE {results(workspace)['snapshots'][GOOD]['metrics']['RMSE']:g}): "
        "the rule cannot be checked",
        f"error: gate: snapshot {GOOD} broke 'RMSE>+2%': RMSE is missing in the baseline: the "
        "rule cannot be checked"]
    assert f"{GOOD}  RMSE" in captured.out and captured.out.count("FAIL") == 2

    def nan_rmse(snapshots):
        snapshots[GOOD]["metrics"]["RMSE"] = float("nan")

    base = baseline_file(workspace, nan_rmse)
    assert evaluate(workspace, "--baseline", str(base), "--fail-if", "RMSE>+2%", out="o2") == 3
    assert errors_of(capsys.readouterr().err) == [
        f"error: gate: snapshot {GOOD} broke 'RMSE>+2%': RMSE is not a number in the baseline: "
        "the rule cannot be checked"]


def test_renamed_snapshot_is_a_new_row_and_the_old_name_fails(workspace, capsys):
    def rename(snapshots):
        snapshots["renamed_from"] = snapshots.pop(GOOD)

    base = baseline_file(workspace, rename)
    assert evaluate(workspace, "--baseline", str(base), "--fail-if", "RMSE>+2%") == 3
    captured = capsys.readouterr()
    rows = [line.split() for line in captured.out.splitlines() if " RMSE " in f" {line} "]
    assert [row[0] for row in rows[-2:]] == [GOOD, "renamed_from"]
    assert rows[-2][-1] == "new" and rows[-1][-1] == "FAIL"
    assert f"note: gate: snapshot {GOOD} is new (no evaluated row in {base}): nothing to " \
           "compare, not checked" in captured.err
    assert len(errors_of(captured.err)) == 1 and "renamed_from" in errors_of(captured.err)[0]


def test_rules_that_can_never_be_checked_are_refused_before_any_work(workspace, capsys):
    base = baseline_file(workspace, lambda snapshots: None)
    assert evaluate(workspace, "--baseline", str(base), "--fail-if", "RMS>+1%", out="o1") == 2
    assert errors_of(capsys.readouterr().err) == [
        "error: --fail-if 'RMS>+1%': 'RMS' is not a metric of this run (--metrics and --align "
        "choose them: AbsRelDiff, SqrRelDiff, RMSE, RMSELog, SIMSE, Log10, MVN, Threshold 1.25, "
        "Threshold 1.25^2, Threshold 1.25^3)"]
    assert evaluate(workspace, "--baseline", str(base), "--fail-if", "abs_rel>+1%", out="o2") == 2
    assert "'abs_rel' is not a metric of this run" in capsys.readouterr().err
    assert evaluate(workspace, "--baseline", str(base), "--metrics", "thesis,standard",
                    "--fail-if", "abs_rel>+1%", out="o3") == 2
    assert errors_of(capsys.readouterr().err) == [
        f"error: {base}: no evaluated snapshot of the baseline has 'abs_rel', so --fail-if "
        "'abs_rel>+1%' cannot be checked (its metrics: AbsRelDiff, Log10, MVN, RMSE, RMSELog, "
        "SIMSE, SqrRelDiff, Threshold 1.25, Threshold 1.25^2, Threshold 1.25^3)"]
    assert not any((workspace / out).exists() for out in ("o1", "o2", "o3"))


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.update({GOOD: 3}), f"snapshot '{GOOD}' is a number, not an object"),
    (lambda s: s[GOOD].update(metrics=[1, 2]), f"snapshot '{GOOD}': 'metrics' is a list, not an object"),
    (lambda s: s[GOOD]["metrics"].update(RMSE="0.5"),
     f"snapshot '{GOOD}': metric 'RMSE' is a string, not a number"),
    (lambda s: s[GOOD]["metrics"].update(RMSE=True),
     f"snapshot '{GOOD}': metric 'RMSE' is true/false, not a number"),
    (lambda s: s[GOOD].update(status=None), f"snapshot '{GOOD}': 'status' is null, not a string"),
])
def test_wrong_json_types_in_the_baseline_are_one_line_naming_the_file(workspace, capsys, edit,
                                                                       message):
    base = baseline_file(workspace, edit)
    assert evaluate(workspace, "--baseline", str(base), "--fail-if", "RMSE>+2%", out="o") == 2
    assert errors_of(capsys.readouterr().err) == [f"error: {base}: {message}"]
    assert not (workspace / "o").exists()


# --- item 4: --per-image --------------------------------------------------------------------------

@pytest.mark.parametrize("target, message", [
    ("out/results.json", "the name must end in .csv"),
    ("out/results.csv", "that is one of the tool's own files in OUT_DIR"),
    ("missing/deeper/per.csv", "the folder missing/deeper does not exist; only OUT_DIR is created"),
    ("colors/00000_colors.png/per.csv", "the folder colors/00000_colors.png is a regular file"),
    ("colors", "the name must end in .csv"),
])
def test_per_image_targets_that_would_replace_or_create_are_refused(workspace, capsys,
                                                                    monkeypatch, target, message):
    monkeypatch.chdir(workspace)
    assert evaluate(workspace, "--per-image", target) == 2
    line, = errors_of(capsys.readouterr().err)
    assert line.startswith(f"error: --per-image {target}: ") and message in line
    assert not (workspace / "out").exists() and not (workspace / "missing").exists()


def test_per_image_outside_out_dir_leaves_no_manifest_and_replaces_only_its_own_csv(
        workspace, capsys, monkeypatch):
    monkeypatch.chdir(workspace)
    assert evaluate(workspace, "--quiet", "--per-image", "per.csv") == 0
    assert not (workspace / MANIFEST_NAME).exists()
    first = (workspace / "per.csv").read_bytes()
    assert first.startswith(b"snapshot,image,AbsRelDiff,") and first.count(b"\n") == 1 + len(STEMS)
    assert evaluate(workspace, "--quiet", "--per-image", "per.csv") == 0  # its own file: replaced
    assert (workspace / "per.csv").read_bytes() == first
    (workspace / "mine.csv").write_text("name,score\nx,1\n")
    assert evaluate(workspace, "--quiet", "--per-image", "mine.csv", out="o2") == 2
    assert errors_of(capsys.readouterr().err) == [
        "error: --per-image mine.csv: exists and was not written by depth_eval (its first line is "
        "not a --per-image header); left untouched, choose another name"]
    assert (workspace / "mine.csv").read_text() == "name,score\nx,1\n"
    assert not (workspace / "o2").exists()


def test_per_image_inside_out_dir_goes_through_its_manifest(workspace, capsys):
    assert evaluate(workspace, "--quiet", "--per-image", str(workspace / "out" / "per.csv")) == 0
    assert "per.csv" in files.read_manifest((workspace / "out" / MANIFEST_NAME).read_bytes())
    (workspace / "out" / "theirs.csv").write_text("keep me\n")
    assert evaluate(workspace, "--per-image", str(workspace / "out" / "theirs.csv")) == 2
    assert "exists and was not written by depth_eval" in capsys.readouterr().err
    assert (workspace / "out" / "theirs.csv").read_text() == "keep me\n"


# --- item 7: names with newlines ------------------------------------------------------------------

def test_a_newline_in_a_name_never_overwrites_and_never_splits_a_line(workspace, capsys):
    colors, depths, out = workspace / "colors", workspace / "depths", workspace / "out"
    shutil.copy(colors / "00000_colors.png", colors / "x\nmine_colors.png")
    shutil.copy(depths / "00000_depth.png", depths / "x\nmine_depth.png")
    assert evaluate(workspace, "--per-image", str(out / "per.csv")) == 0
    listed = json.loads((out / GOOD / MANIFEST_NAME).read_text())["written"]
    assert "x\nmine_depth.png" in listed and "mine_depth.png" not in listed
    # The user's own file of the name the old newline manifest would have claimed.
    (out / GOOD / "mine_depth.png").write_bytes(b"the user's picture")
    shutil.copy(colors / "00000_colors.png", colors / "mine_colors.png")
    shutil.copy(depths / "00000_depth.png", depths / "mine_depth.png")
    capsys.readouterr()
    assert evaluate(workspace) == 1
    assert (out / GOOD / "mine_depth.png").read_bytes() == b"the user's picture"
    captured = capsys.readouterr()
    error, = errors_of(captured.err)
    assert "mine_depth.png: exists and was not written by depth_eval" in error
    for line in captured.out.splitlines() + captured.err.splitlines():
        assert not line.startswith("mine"), line  # "x\nmine..." printed on one line, escaped


def test_old_newline_manifest_is_read_once_and_rewritten_as_json(tmp_path):
    (tmp_path / "a.png").write_bytes(b"tool's")
    (tmp_path / MANIFEST_NAME).write_text("a.png\nb.png\n")
    folder = OutputFolder(tmp_path)
    assert folder.claim(["a.png", "c.png"]) == []
    assert json.loads((tmp_path / MANIFEST_NAME).read_text())["written"] == ["a.png", "b.png",
                                                                             "c.png"]


def test_a_folder_in_place_of_the_manifest_stops_the_run_with_one_line(workspace, capsys):
    (workspace / "out" / GOOD / MANIFEST_NAME).mkdir(parents=True)
    assert evaluate(workspace, "--quiet") == 2
    assert errors_of(capsys.readouterr().err) == [
        f"error: {workspace}/out/{GOOD}/{MANIFEST_NAME}: cannot write (Is a directory); the run "
        "stops, files written before are kept"]


def test_snapshot_name_with_a_newline_is_refused_on_one_line(workspace, capsys):
    add_snapshot(workspace, "bad\nname")
    assert evaluate(workspace) == 1
    captured = capsys.readouterr()
    error, = errors_of(captured.err)
    assert error.startswith("error: snapshot bad\\nname skipped: ") and "control characters" in error
    assert not any(line.startswith("name") for line in (captured.out + captured.err).splitlines())


# --- item 8: names of the tool's own files --------------------------------------------------------

@pytest.mark.parametrize("name", ["..", ".", "results.json", "results.csv", MANIFEST_NAME,
                                  "results.sqlite", "figures"])
def test_snapshot_names_of_the_tool_s_own_outputs_are_refused(workspace, capsys, name):
    add_snapshot(workspace, name)
    before = sorted(p.name for p in workspace.iterdir())
    assert evaluate(workspace, "--quiet", "--figures") == 1
    error, = errors_of(capsys.readouterr().err)
    assert error.startswith(f"error: snapshot {name} skipped: ") and "rename the file" in error
    assert sorted(p.name for p in workspace.iterdir()) == sorted(before + ["out", "out_abs"])
    assert list(results(workspace)["snapshots"]) == sorted([GOOD, name])
    assert (workspace / "out" / "figures" / "metrics.png").is_file()


def test_predict_with_two_images_of_one_stem_predicts_one_and_says_so(workspace, capsys):
    from depth_eval import cli

    shutil.copy(GOLDEN_E2E / "colors" / "00000_colors.png", workspace / "colors" / "a.png")
    shutil.copy(GOLDEN_E2E / "colors" / "00001_colors.png", workspace / "colors" / "a.ppm")
    # An input left out: exit status 1, as for any input skipped.
    assert cli.main(["predict", str(workspace / "colors"), str(workspace / "out"),
                     str(workspace / "snapshots")]) == 1
    captured = capsys.readouterr()
    assert "warning: 1 file(s) in INPUT_DIR not predicted: a.ppm (same stem as a.png)" in captured.err
    assert f"{GOOD}: {len(STEMS) + 1} depth maps in " in captured.out


# --- item 9: disk full, read-only -----------------------------------------------------------------

def immutable(path, on: bool) -> bool:
    """chattr +i / -i: a file or folder even root cannot change (False where unsupported)."""
    done = subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True)
    return done.returncode == 0


def test_a_file_the_disk_refuses_stops_the_run_keeping_results(workspace, capsys):
    assert evaluate(workspace, "--quiet") == 0
    kept = (workspace / "out" / "results.json").read_bytes()
    picture = workspace / "out" / GOOD / "00000_depth.png"
    if shutil.which("chattr") is None or not immutable(picture, True):
        pytest.skip("chattr +i is not available here")
    try:  # --recompute: the stored units would otherwise be reused, no picture written
        assert evaluate(workspace, "--quiet", "--recompute") == 2
    finally:
        immutable(picture, False)
    assert errors_of(capsys.readouterr().err) == [
        f"error: {picture}: cannot write (Operation not permitted); the run stops, files "
        "written before are kept"]
    assert (workspace / "out" / "results.json").read_bytes() == kept
    assert [p for p in workspace.rglob("*") if p.name.endswith(".tmp")] == []


@pytest.mark.skipif(not os.path.isdir("/sys"), reason="needs /sys, where no one may create a folder")
def test_an_out_dir_that_cannot_be_created_is_one_line(workspace, capsys):
    assert evaluate(workspace, "--quiet", out="/sys/depth_eval_out") == 2
    error, = errors_of(capsys.readouterr().err)
    assert error.startswith("error: /sys/depth_eval_out") and "cannot write (" in error


def test_disk_full_stops_at_the_first_picture_with_its_path(workspace, capsys, monkeypatch):
    # No real full disk exists here: os.replace fails as a full disk does (the only mock).
    assert evaluate(workspace, "--quiet") == 0
    kept = (workspace / "out" / "results.json").read_bytes()
    real_replace = os.replace

    def full(source, target):
        if str(target).endswith(".png"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_replace(source, target)

    monkeypatch.setattr(files.os, "replace", full)
    assert evaluate(workspace, "--quiet", "--jobs", "1", "--recompute") == 2
    error, = errors_of(capsys.readouterr().err)
    assert error.startswith(f"error: {workspace}/out") and error.endswith(
        ".png: cannot write (No space left on device); the run stops, files written before are kept")
    assert (workspace / "out" / "results.json").read_bytes() == kept
    assert [p for p in workspace.rglob("*") if p.name.endswith(".tmp")] == []


def test_write_errors_that_stop_the_run_and_those_that_do_not(tmp_path):
    if os.path.isdir("/sys"):  # sysfs: no one may create a file there, root included
        with pytest.raises(OutputError, match=r"^/sys/depth_eval_x: cannot write \(Permission"):
            files.write_atomic(Path("/sys/depth_eval_x"), b"x")
    with pytest.raises(OSError) as caught:  # one name too long: that image only
        files.write_atomic(tmp_path / ("n" * 300), b"x")
    assert caught.value.errno == errno.ENAMETOOLONG and not isinstance(caught.value, OutputError)
