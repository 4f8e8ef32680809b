"""The evaluator's modern options end to end: standard metrics, alignments, encodings, extra
outputs, the CI gate, predict, figures."""

import csv
import json
import shutil

import cv2
import numpy as np
import png
import pytest

from helpers import GLOBAL, GOLDEN_E2E, GOOD, REPO as REPO_ROOT, STEMS, evaluate, results
from depth_eval import cli
from depth_eval.scoring import thesis_metrics as metrics, standard_metrics
from depth_eval.errors import EXIT_GATE
from depth_eval.inputs.ground_truth import load_ground_truth

pytestmark = pytest.mark.snapshots(GOOD, GLOBAL)


def test_standard_metrics_and_alignments_match_the_library_on_saved_maps(workspace):
    status = evaluate(workspace, "--quiet", "--metrics", "thesis,standard",
                      "--align", "none,mvn,median,lsq", "--save-raw")
    assert status == 0
    entry = results(workspace)["snapshots"][GOOD]
    gts = [load_ground_truth(workspace / "depths" / f"{s}_depth.png").on_thesis_grid()[1]
           for s in STEMS]
    preds = [np.load(workspace / "out_abs" / GOOD / f"{s}_depth.npy") for s in STEMS]
    for align in ("none", "median", "lsq", "mvn"):
        expected = [standard_metrics.evaluate_standard(p.astype(np.float64), g, align=align)[0]
                    for p, g in zip(preds, gts)]
        prefix = "" if align == "none" else f"{align}/"
        for key in standard_metrics.STANDARD_METRIC_TITLES:
            # The run scores metres in float64, the saved .npy holds them in float32: a pixel
            # whose ratio sits on a d threshold may count on one side only (one pixel here).
            one_pixel = 1.0 / (320 * 420) if key in ("d1", "d2", "d3") else 0.0
            assert entry["metrics"][prefix + key] == pytest.approx(
                np.mean([e[key] for e in expected]), rel=1e-5, abs=one_pixel), prefix + key
    # The thesis oracle ("With Oracle"): thesis metrics of the MVN-fitted prediction.
    oracle = [metrics.thesis_metrics(metrics.mvn_fit(p.astype(np.float64), g), g)
              for p, g in zip(preds, gts)]
    assert entry["metrics"]["mvn/RMSE"] == pytest.approx(np.mean([o["RMSE"] for o in oracle]), rel=1e-5)
    assert entry["metrics"]["mvn/RMSE"] < entry["metrics"]["RMSE"]
    scales = [np.median(g) / np.median(p) for p, g in zip(preds, gts)]
    assert entry["metrics"]["median/scale_median"] == pytest.approx(np.median(scales), rel=1e-5)
    # monodepth2 prints the spread of the scales relative to their median (issue 10, fix 6).
    relative = np.array(scales) / np.median(scales)
    assert entry["metrics"]["median/scale_std"] == pytest.approx(np.std(relative), rel=1e-5)
    # The thesis default columns are unchanged by the extra sets.
    plain = evaluate(workspace, "--quiet", out="plain")
    assert plain == 0
    for title in metrics.THESIS_METRIC_TITLES:
        assert entry["metrics"][title] == results(workspace, "plain")["snapshots"][GOOD]["metrics"][title]


def test_save_raw_writes_metres_and_millimetres(workspace):
    assert evaluate(workspace, "--quiet", "--save-raw") == 0
    folder = workspace / "out_abs" / GOOD
    metres = np.load(folder / "00000_depth.npy")
    assert metres.dtype == np.float32 and metres.shape == (320, 420)
    width, height, rows, info = png.Reader(filename=str(folder / "00000_depth_mm.png")).read()
    millimetres = np.vstack([np.asarray(row, np.uint16) for row in rows])
    assert info["bitdepth"] == 16 and (width, height) == (420, 320)
    np.testing.assert_array_equal(millimetres, np.floor(metres.astype(np.float64) * 1000 + 0.5))
    assert not (workspace / "out" / GOOD / "00000_depth.npy").exists()


def test_millimetre_ground_truth_gives_the_same_numbers(workspace):
    mm = workspace / "depths_mm"
    mm.mkdir()
    for stem in STEMS:
        grey = cv2.imread(str(workspace / "depths" / f"{stem}_depth.png"), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(mm / f"{stem}_depth.png"), np.rint(grey / 255.0 * 10_000).astype(np.uint16))
    assert evaluate(workspace, "--quiet") == 0
    assert evaluate(workspace, "--quiet", "--gt-encoding", "mm", out="out_mm", depths="depths_mm") == 0
    thesis = results(workspace)["snapshots"][GOOD]["metrics"]
    from_mm = results(workspace, "out_mm")["snapshots"][GOOD]["metrics"]
    for title in ("RMSE", "AbsRelDiff", "MVN"):
        assert from_mm[title] == pytest.approx(thesis[title], rel=1e-3)
    assert results(workspace, "out_mm")["ground_truth_encodings"] == ["mm"]
    # auto decides the same from the 16-bit samples, and says so once
    assert evaluate(workspace, out="out_auto", depths="depths_mm") == 0
    assert results(workspace, "out_auto")["ground_truth_encodings"] == ["mm"]


def test_eight_bit_ground_truth_refused_as_millimetres(workspace, capsys):
    status = evaluate(workspace, "--quiet", "--gt-encoding", "mm")
    assert status == 2
    assert "8-bit ground truth but --gt-encoding mm expects 16-bit" in capsys.readouterr().err


def test_gate_passes_a_better_run_and_fails_a_worse_one(workspace, capsys):
    assert evaluate(workspace, "--quiet") == 0
    baseline = json.loads((workspace / "out" / "results.json").read_text())
    better = workspace / "baseline_worse.json"  # the baseline was worse: this run is better
    worse = workspace / "baseline_better.json"  # the baseline was better: this run is worse
    for path, factor in ((better, 1.10), (worse, 0.90)):
        document = json.loads(json.dumps(baseline))
        document["snapshots"][GOOD]["metrics"]["RMSE"] *= factor
        path.write_text(json.dumps(document))
    capsys.readouterr()
    assert evaluate(workspace, "--baseline", str(better), "--fail-if", "RMSE>+2%", out="o1") == 0
    assert evaluate(workspace, "--baseline", str(worse), "--fail-if", "RMSE>+2%",
                    "--fail-if", "Threshold 1.25<-0.01", out="o2") == EXIT_GATE
    gate_lines = [line for line in capsys.readouterr().err.splitlines() if "gate:" in line]
    assert len(gate_lines) == 1
    assert GOOD in gate_lines[0] and "RMSE>+2%" in gate_lines[0] and "11.11%" in gate_lines[0]


def test_gate_rules_are_checked_before_any_work(workspace, capsys):
    assert evaluate(workspace, "--fail-if", "RMSE>+2%") == 2
    assert "--fail-if needs --baseline" in capsys.readouterr().err
    (workspace / "base.json").write_text(json.dumps({"schema_version": 1, "snapshots": {}}))
    assert evaluate(workspace, "--baseline", str(workspace / "base.json"), "--fail-if", "RMSE~2") == 2
    assert "bad --fail-if rule" in capsys.readouterr().err
    assert not (workspace / "out").exists()


def test_best_prints_the_name_alone_on_the_last_line(workspace, capsys):
    assert evaluate(workspace, "--quiet", "--best", "RMSE") == 0
    entries = results(workspace)["snapshots"]
    best = min(entries, key=lambda name: entries[name]["metrics"]["RMSE"])
    assert capsys.readouterr().out.splitlines()[-1] == best


def test_markdown_tables_and_per_image_csv(workspace, capsys):
    status = evaluate(workspace, "--format", "markdown", "--per-image", str(workspace / "per.csv"))
    assert status == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| snapshot | images |"))
    assert lines[header + 1].startswith("| --- | ---: |")
    with open(workspace / "per.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 2 * len(STEMS)
    per_image = results(workspace)["snapshots"][GOOD]["per_image"]
    row = next(r for r in rows if r["snapshot"] == GOOD and r["image"] == "00000_colors")
    assert float(row["RMSE"]) == per_image["00000_colors"]["RMSE"]


def test_colormap_pictures(workspace):
    assert evaluate(workspace, "--quiet", "--colormap", "magma") == 0
    for folder in ("out", "out_abs"):
        picture = cv2.imread(str(workspace / folder / GOOD / "00000_depth_magma.png"))
        assert picture.shape == (320, 420, 3)
        assert not np.all(picture[..., 0] == picture[..., 1])  # colour, not grey
    assert evaluate(workspace, "--colormap", "no_such_map") == 2


@pytest.mark.parametrize("snapshots", [1, 3])
def test_figures_for_one_and_three_snapshots(workspace, snapshots):
    folder = workspace / "snapshots"
    for path in folder.iterdir():
        path.unlink()
    for k in range(snapshots):
        for suffix in (".prototxt", ".caffemodel"):
            shutil.copy(GOLDEN_E2E / "snapshots" / f"{GOOD}{suffix}",
                        folder / f"refine_iter_{(k + 1) * 100}{suffix}")
    assert evaluate(workspace, "--quiet", "--figures", "--figures-max", "1") == 0
    figures = workspace / "out" / "figures"
    expected = {"00000_colors.png", "metrics.png"} | ({"metrics_curve.png"} if snapshots > 1 else set())
    assert {p.name for p in figures.iterdir() if not p.name.startswith(".")} == expected
    one_row = cv2.imread(str(figures / "00000_colors.png")).shape[:2]
    if snapshots == 1:
        assert one_row[1] > 3 * one_row[0]  # one row of panels
    else:
        assert one_row[0] > one_row[1]  # a grid: one row per snapshot below input | truth


def test_predict_writes_maps_without_ground_truth(workspace, capsys):
    (workspace / "colors" / "photo.jpg").write_bytes(
        cv2.imencode(".jpg", cv2.imread(str(workspace / "colors" / "00000_colors.png")))[1].tobytes())
    assert cli.main(["predict", str(workspace / "colors"), str(workspace / "pred"),
                     str(workspace / "snapshots"), "--quiet"]) == 0
    folder = workspace / "pred_abs" / GOOD
    assert sorted(p.name for p in folder.glob("*.npy")) == ["00000_depth.npy", "gray00000_depth.npy",
                                                            "photo_depth.npy"]
    assert cv2.imread(str(folder / "photo_depth.png"), cv2.IMREAD_UNCHANGED).shape == (320, 420)
    # the same raw map the evaluation writes
    assert evaluate(workspace, "--quiet", "--save-raw") == 0
    np.testing.assert_array_equal(np.load(folder / "00000_depth.npy"),
                                  np.load(workspace / "out_abs" / GOOD / "00000_depth.npy"))


def test_cuda_without_provider_is_a_clear_error(workspace, capsys):
    pytest.importorskip("onnxruntime")
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has CUDA")
    assert evaluate(workspace, "--engine", "onnxruntime", "--device", "cuda") == 2
    err = capsys.readouterr().err
    assert "CUDAExecutionProvider" in err and "Traceback" not in err


def test_onnxruntime_engine_records_itself_and_matches_opencv(workspace, user_cache):
    pytest.importorskip("onnxruntime")
    assert evaluate(workspace, "--quiet") == 0
    assert evaluate(workspace, "--quiet", "--engine", "onnxruntime", out="ort") == 0
    reference = results(workspace)["snapshots"]
    fast = results(workspace, "ort")
    assert fast["options"]["engine"] == "onnxruntime"
    for name, entry in fast["snapshots"].items():
        assert entry["engine"] == "onnxruntime"
        for title, value in entry["metrics"].items():
            assert value == pytest.approx(reference[name]["metrics"][title], rel=1e-4, abs=1e-4)
    # The translation and its optimised graph are in the user cache ($XDG_CACHE_HOME/
    # depth_eval), not in OUT_DIR: two graphs (and their weights files) per snapshot.
    assert len(list(user_cache.glob("*.onnx"))) == 2 * len(fast["snapshots"])
    assert not (workspace / "ort" / ".depth_eval-cache").exists()


def test_predict_on_the_shipped_examples(tmp_path):
    examples = REPO_ROOT / "examples"
    assert cli.main(["predict", str(examples / "colors"), str(tmp_path / "pred"),
                     str(examples / "snapshots"), "--quiet"]) == 0
    late = tmp_path / "pred_abs" / "demo_refine_iter_3200"
    maps = sorted(late.glob("*_depth.npy"))
    assert len(maps) == 12
    errors = []
    for path in maps:
        truth = load_ground_truth(examples / "depths" / path.name.replace(".npy", ".png"))
        truth = truth.on_thesis_grid()[1]
        errors.append(np.sqrt(np.mean((np.load(path) - truth) ** 2)))
    # real depth, not noise: well under a constant map's error (1.43 m, tools/README.md)
    assert np.mean(errors) < 1.1
