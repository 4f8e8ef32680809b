"""The command line on good and bad input: messages, exit status, and no user file lost."""

import shutil

import cv2
import numpy as np

from helpers import GLOBAL, GOLDEN_E2E, GOOD, add_snapshot, results, run_cli
from depth_eval import cli

def test_good_run_prints_rankings_table_and_writes_results(workspace):
    status, stdout, stderr = run_cli(workspace)
    assert status == 0, stderr
    lines = stdout.splitlines()
    assert lines[0] == "TOP 1 for AbsRelDiff"
    assert lines[1].startswith(f"0. {GOOD}: ")
    assert "TOP 1 for Threshold 1.25^3" in lines
    assert any(line.startswith("snapshot") and "RMSE" in line for line in lines)
    doc = results(workspace)
    entry = doc["snapshots"][GOOD]
    assert entry["status"] == "evaluated" and entry["images_evaluated"] == 2
    assert len(entry["caffemodel"]["sha256"]) == 64 and len(entry["prototxt"]["sha256"]) == 64
    assert doc["versions"]["opencv"] == cv2.__version__
    assert doc["options"]["log"] is False
    csv_lines = (workspace / "out" / "results.csv").read_text().splitlines()
    assert csv_lines[0].startswith("snapshot,status,images_evaluated") and len(csv_lines) == 2
    for folder in (workspace / "out" / GOOD, workspace / "out_abs" / GOOD):
        assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
            "00000_colors.png", "00000_depth.png", "00000_gt.png",
            "gray00000_colors.png", "gray00000_depth.png", "gray00000_gt.png"]
    # MVN-fitted and raw pictures differ; inputs and ground truths are the same in both.
    fitted, raw = (workspace / d / GOOD / "00000_depth.png" for d in ("out", "out_abs"))
    assert fitted.read_bytes() != raw.read_bytes()


def test_quiet_prints_only_the_rankings(workspace):
    status, stdout, stderr = run_cli(workspace, "--quiet")
    assert status == 0
    assert all(line.startswith(("TOP ", "0. ")) for line in stdout.splitlines())
    assert stderr == ""


def test_trailing_slash_keeps_out_abs_beside_out(workspace):
    status, _, _ = run_cli(workspace, "--quiet", out="out/")
    assert status == 0
    assert (workspace / "out_abs" / GOOD).is_dir() and not (workspace / "out" / "_abs").exists()


def test_corrupt_caffemodel_is_skipped_and_the_rest_evaluated(workspace):
    good = (GOLDEN_E2E / "snapshots" / f"{GOOD}.caffemodel").read_bytes()
    add_snapshot(workspace, "truncated", model_bytes=good[: len(good) // 3])
    status, stdout, stderr = run_cli(workspace)
    assert status == 1
    assert "truncated.caffemodel" in stderr and "corrupt or truncated" in stderr
    doc = results(workspace)
    assert doc["snapshots"]["truncated"]["status"] == "skipped"
    assert "truncated" in doc["snapshots"]["truncated"]["error"]
    assert doc["snapshots"][GOOD]["status"] == "evaluated"
    assert f"0. {GOOD}:" in stdout and "truncated:" not in stdout


def test_prototxt_that_does_not_parse(workspace):
    add_snapshot(workspace, "broken", prototxt_text='layer { name: "conv1" type: "Convolution" \n bogus')
    status, _, stderr = run_cli(workspace)
    assert status == 1
    assert "broken.prototxt" in stderr and "does not parse" in stderr
    assert len([line for line in stderr.splitlines() if line.startswith("error:")]) == 1


def test_weights_that_do_not_fit_the_prototxt(workspace):
    text = (GOLDEN_E2E / "snapshots" / f"{GOOD}.prototxt").read_text()
    # conv2 of the refining net has group 2; OpenCV would silently run it with group 1.
    add_snapshot(workspace, "regrouped", prototxt_text=text.replace("group: 2", "group: 1", 1))
    status, _, stderr = run_cli(workspace)
    assert status == 1
    assert "regrouped.caffemodel" in stderr and "layer 'conv2' weights are" in stderr
    assert results(workspace)["snapshots"]["regrouped"]["status"] == "skipped"


def test_snapshot_without_definition_is_named_and_skipped_then_shared_prototxt(workspace):
    snapshots = workspace / "snapshots"
    shutil.copy(snapshots / f"{GOOD}.caffemodel", snapshots / "iter_200.caffemodel")
    status, _, stderr = run_cli(workspace)
    assert status == 1 and "iter_200" in stderr and "--prototxt" in stderr
    status, stdout, _ = run_cli(workspace, "--prototxt", str(snapshots / f"{GOOD}.prototxt"))
    assert status == 0 and "iter_200" in stdout
    doc = results(workspace)
    assert doc["snapshots"]["iter_200"]["prototxt"]["path"].endswith(f"{GOOD}.prototxt")


def test_unreadable_image_and_mismatched_pair_are_skipped_and_counted(workspace):
    (workspace / "colors" / "bad_colors.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (workspace / "depths" / "bad_depth.png").write_bytes(
        (workspace / "depths" / "00000_depth.png").read_bytes())
    shutil.copy(workspace / "colors" / "00000_colors.png", workspace / "colors" / "odd_colors.png")
    cv2.imwrite(str(workspace / "depths" / "odd_depth.png"), np.full((320, 320), 100, np.uint8))
    status, stdout, stderr = run_cli(workspace)
    assert status == 1
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2
    assert any("bad_colors.png" in e and "not a readable image" in e for e in errors)
    assert any("odd_depth.png" in e and "aspect" in e for e in errors)
    entry = results(workspace)["snapshots"][GOOD]
    assert entry["images_evaluated"] == 2
    assert sorted(entry["images_skipped"]) == ["bad_colors.png", "odd_colors.png"]


def test_unpaired_and_non_image_files_are_listed_once_and_not_counted(workspace):
    (workspace / "colors" / "notes.txt").write_text("hello")
    shutil.copy(workspace / "colors" / "00000_colors.png", workspace / "colors" / "lonely_colors.png")
    status, _, stderr = run_cli(workspace)
    assert status == 0
    warnings = [line for line in stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert "lonely_colors.png (no ground truth" in warnings[0] and "notes.txt" in warnings[0]
    assert results(workspace)["snapshots"][GOOD]["images_evaluated"] == 2


def test_jpeg_inputs_pair_with_png_ground_truth(workspace):
    color = cv2.imread(str(workspace / "colors" / "00000_colors.png"))
    (workspace / "colors" / "00000_colors.png").unlink()
    cv2.imwrite(str(workspace / "colors" / "00000_colors.jpg"), color)
    status, _, _ = run_cli(workspace, "--quiet")
    assert status == 0
    assert (workspace / "out" / GOOD / "00000_colors.png").is_file()
    assert results(workspace)["snapshots"][GOOD]["images_evaluated"] == 2


def test_user_files_survive_a_rerun(workspace):
    assert run_cli(workspace, "--quiet")[0] == 0
    mine = workspace / "out" / GOOD / "my_notes.txt"
    mine.write_text("keep me")
    ours = workspace / "out_abs" / GOOD / "00000_depth.png"
    picture = ours.read_bytes()
    ours.write_bytes(b"stale")  # a file the tool wrote is replaced by a rerun that computes
    assert run_cli(workspace, "--quiet", "--recompute")[0] == 0  # (the store checks presence)
    assert mine.read_text() == "keep me"
    assert ours.read_bytes() == picture


def test_a_file_the_tool_did_not_write_is_never_overwritten(workspace):
    folder = workspace / "out" / GOOD
    folder.mkdir(parents=True)
    (folder / "00000_depth.png").write_bytes(b"user data")
    (workspace / "out" / "results.json").write_text("{}")
    status, _, stderr = run_cli(workspace)
    assert status == 1
    assert (folder / "00000_depth.png").read_bytes() == b"user data"
    assert (workspace / "out" / "results.json").read_text() == "{}"
    assert "00000_depth.png: exists and was not written by depth_eval" in stderr
    assert "results.json: exists and was not written by depth_eval" in stderr
    assert (workspace / "out" / "results.csv").is_file()


def test_out_dir_that_is_a_file(workspace):
    (workspace / "out").write_text("precious")
    status, stdout, stderr = run_cli(workspace)
    assert status == 2 and stdout == ""
    assert "out: exists and is not a folder" in stderr
    assert (workspace / "out").read_text() == "precious"


def test_missing_or_empty_snapshots_dir(workspace):
    shutil.rmtree(workspace / "snapshots")
    status, _, stderr = run_cli(workspace)
    assert status == 2 and "SNAPSHOTS_DIR does not exist" in stderr
    (workspace / "snapshots").mkdir()
    status, _, stderr = run_cli(workspace)
    assert status == 2 and "no *.caffemodel snapshot" in stderr


def test_input_dir_without_pairs(workspace):
    for path in (workspace / "depths").iterdir():
        path.unlink()
    status, _, stderr = run_cli(workspace)
    assert status == 2 and "no <stem>_colors image with a <stem>_depth" in stderr
    assert not (workspace / "out").exists()


def test_nothing_evaluated_when_every_snapshot_fails(workspace):
    (workspace / "snapshots" / f"{GOOD}.caffemodel").write_bytes(b"\x00garbage")
    status, stdout, stderr = run_cli(workspace)
    assert status == 2 and stdout == ""
    assert "nothing could be evaluated" in stderr
    assert results(workspace)["snapshots"][GOOD]["status"] == "skipped"


def test_output_blob_option_and_detection(workspace):
    for suffix in (".prototxt", ".caffemodel"):
        shutil.copy(GOLDEN_E2E / "snapshots" / f"{GLOBAL}{suffix}", workspace / "snapshots")
    status, _, _ = run_cli(workspace, "--quiet")
    doc = results(workspace)
    assert status == 0
    assert doc["snapshots"][GOOD]["output_blob"] == "depth-refine"
    assert doc["snapshots"][GLOBAL]["output_blob"] == "depth"
    status, _, _ = run_cli(workspace, "--quiet", "--output-blob", "depth")
    assert status == 0
    assert results(workspace)["snapshots"][GOOD]["output_blob"] == "depth"
    status, _, stderr = run_cli(workspace, "--output-blob", "nope")
    assert status == 2 and "no blob named 'nope'" in stderr


def test_main_returns_usage_status_in_process(workspace, capsys):
    status = cli.main([str(workspace / "nowhere"), str(workspace / "depths"),
                       str(workspace / "out"), str(workspace / "snapshots")])
    assert status == 2
    assert "INPUT_DIR does not exist" in capsys.readouterr().err
