"""The gradient evaluation end to end (``depth-eval gradients``, ``test_grad.py``, ``evaluate
--with-gradients``) on both engines, against real Caffe's run of the thesis' test_grad.py
(tests/data/golden/grad: the six golden scenes, the three tiny gradient / joint snapshots)."""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import io as _io
import json
import math
import os
import re
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from helpers import GOLDEN, GOLDEN_E2E, GOLDEN_NETS, REPO
from depth_eval import cli
from depth_eval.engines.base import DEPTH_OUTPUT, GRADIENT_OUTPUT
from depth_eval.errors import EXIT_GATE, EXIT_PARTIAL

GOLDEN_GRAD = GOLDEN / "grad"
SNAPSHOT_DIRS = {"tiny_gradient_network_abs": GOLDEN_NETS,
                 "tiny_gradient_network_norm": GOLDEN_GRAD / "snapshots",
                 "tiny_joint_architecture_A": GOLDEN_NETS}
JOINT = "tiny_joint_architecture_A"
STEMS = ["00000", "00001", "00002", "00003", "big00000", "gray00000"]
METRIC_RTOL = 1e-4
ENGINES = ["opencv", pytest.param("onnxruntime", marks=pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None,
    reason="onnxruntime not installed (pip install '.[fast]')"))]
PICTURES = ("_colors", "_grad1", "_grad2", "_gt1", "_gt2")


def reference() -> dict:
    return json.loads((GOLDEN_GRAD / "reference.json").read_text(encoding="utf-8"))


def make_grad_workspace(root, snapshots=tuple(SNAPSHOT_DIRS), stems=tuple(STEMS)):
    """colors/, depths/ (the golden scenes) and snapshots/ under ``root``."""
    for name in ("colors", "depths", "snapshots"):
        (root / name).mkdir(parents=True, exist_ok=True)
    for stem in stems:
        for kind in ("colors", "depths"):
            suffix = "colors" if kind == "colors" else "depth"
            source = GOLDEN_E2E / kind / f"{stem}_{suffix}.png"
            shutil.copy(source if source.is_file() else GOLDEN_GRAD / kind / source.name,
                        root / kind)
    for name in snapshots:
        for suffix in (".prototxt", ".caffemodel"):
            shutil.copy(SNAPSHOT_DIRS[name] / f"{name}{suffix}", root / "snapshots")
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


def run(root, *args, command="gradients", out="out") -> tuple[int, str, str]:
    """One command in this process: (status, stdout, stderr)."""
    stdout, stderr = _io.StringIO(), _io.StringIO()
    folders = [str(root / n) for n in ("colors", "depths")] + [str(root / out),
                                                                str(root / "snapshots")]
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = cli.main([command, *folders, *args])
    return status, stdout.getvalue(), stderr.getvalue()


def results(root, out="out") -> dict:
    return json.loads((root / out / "results.json").read_text())


@pytest.fixture(scope="module", params=ENGINES)
def golden_run(request, tmp_path_factory):
    """The reference run (six scenes, three snapshots) on one engine, made once."""
    root = make_grad_workspace(tmp_path_factory.mktemp(f"grad_{request.param}"))
    return (root, *run(root, "--engine", request.param, "--per-image",
                       str(root / "per_image.csv")))


def top_blocks(stdout: str) -> dict[str, list[tuple[str, float]]]:
    """``TOP k for TITLE`` blocks of the printed rankings: title -> [(snapshot, value)]."""
    blocks, title = {}, None
    for line in stdout.splitlines():
        if line.startswith("TOP "):
            title = line.split(" for ", 1)[1]
            blocks[title] = []
        elif title is not None and re.match(r"\d+\. ", line):
            name, value = line.split(". ", 1)[1].rsplit(": ", 1)
            blocks[title].append((name, float(value)))
        else:
            title = None
    return blocks


# ---------------------------------------------------------------------------------------------
# The reference run

def test_rankings_and_printed_blocks_match_caffe(golden_run):
    root, status, stdout, stderr = golden_run
    assert status == 0, stderr
    expected = reference()
    blocks = top_blocks(stdout)
    assert list(blocks) == ["RMSE", "MVN"]  # the original's two blocks, in its order
    caffe_blocks = top_blocks(expected["stdout_top"])
    for title in ("RMSE", "MVN"):
        assert [n for n, _ in blocks[title]] == [n for n, _ in expected["ranking"][title]]
        assert [n for n, _ in caffe_blocks[title]] == [n for n, _ in blocks[title]]
        for (_, value), (_, caffe) in zip(blocks[title], expected["ranking"][title]):
            assert value == pytest.approx(caffe, rel=METRIC_RTOL)
    assert stdout.index("TOP 3 for RMSE") == 0
    document = results(root)
    assert document["options"]["task"] == "gradients"
    assert not (root / "out_abs").exists()  # test_grad.py has no OUT_DIR_abs
    for name, entry in document["snapshots"].items():
        caffe = expected["snapshots"][name]
        assert entry["output_blob"] == "gradient" and entry["images_evaluated"] == 6
        assert list(entry["metrics"]) == ["RMSE", "MVN"]
        for title in ("RMSE", "MVN"):
            assert entry["metrics"][title] == pytest.approx(caffe["metrics"][title],
                                                            rel=METRIC_RTOL)
        for stem in STEMS:
            image = entry["per_image"][f"{stem}_colors"]
            channels = caffe["per_image"][f"{stem}_colors.png"]
            for title in ("RMSE", "MVN"):
                for index in (0, 1):
                    assert image[f"grad{index + 1}/{title}"] == pytest.approx(
                        channels[title][index], rel=METRIC_RTOL), (name, stem, title)
                # The per-image plain key is the mean of the two channels.
                assert image[title] == pytest.approx(sum(channels[title]) / 2, rel=METRIC_RTOL)


def test_pictures_match_caffe(golden_run):
    root, status, _, _ = golden_run
    assert status == 0
    colors = GOLDEN_E2E / "expected" / "out" / "png" / "tiny_global_context_network_abs"
    for name in SNAPSHOT_DIRS:
        folder = root / "out" / name
        assert sorted(p.name for p in folder.glob("*.png")) == sorted(
            f"{stem}{suffix}.png" for stem in STEMS for suffix in PICTURES)
        for suffix in PICTURES:
            golden = {"_colors": colors, "_gt1": GOLDEN_GRAD / "png" / "gt",
                      "_gt2": GOLDEN_GRAD / "png" / "gt"}.get(suffix, GOLDEN_GRAD / "png" / name)
            expected = cv2.imread(str(golden / f"00000{suffix}.png"), cv2.IMREAD_UNCHANGED)
            written = cv2.imread(str(folder / f"00000{suffix}.png"), cv2.IMREAD_UNCHANGED)
            assert written.shape == expected.shape and written.dtype == np.uint8
            assert np.abs(written.astype(np.int16) - expected).max() <= 1, (name, suffix)


def test_results_files_and_per_image_csv(golden_run):
    root, _, _, _ = golden_run
    with open(root / "out" / "results.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["snapshot"] for row in rows] == sorted(SNAPSHOT_DIRS)
    first = results(root)["snapshots"][rows[0]["snapshot"]]
    assert float(rows[0]["MVN"]) == first["metrics"]["MVN"]
    with open(root / "per_image.csv", newline="") as stream:
        per_image = list(csv.reader(stream))
    assert per_image[0] == ["snapshot", "image", "RMSE", "MVN", "grad1/RMSE", "grad2/RMSE",
                            "grad1/MVN", "grad2/MVN"]
    assert len(per_image) == 1 + 3 * 6


def test_test_grad_script_runs_the_original_form(tmp_path):
    root = make_grad_workspace(tmp_path, snapshots=("tiny_gradient_network_norm",),
                               stems=("00000",))
    args = [sys.executable, str(REPO / "test_grad.py")] + [
        str(root / n) for n in ("colors", "depths", "out", "snapshots")]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert done.stdout.startswith("TOP 1 for RMSE\n0. tiny_gradient_network_norm: ")
    assert (root / "out" / "tiny_gradient_network_norm" / "00000_grad2.png").is_file()
    usage = subprocess.run([sys.executable, str(REPO / "test_grad.py"), "--help"],
                           capture_output=True, text=True, timeout=60)
    assert usage.stdout.startswith("usage: test_grad.py ") and "--log" not in usage.stdout
    assert "INPUT_DIR GT_DIR OUT_DIR SNAPSHOTS_DIR" in usage.stdout


# ---------------------------------------------------------------------------------------------
# Joint networks: both outputs from one forward pass

@pytest.mark.parametrize("engine", ENGINES)
def test_with_gradients_equals_the_two_separate_runs(engine, tmp_path):
    root = make_grad_workspace(tmp_path, snapshots=(JOINT,), stems=("00000", "gray00000"))
    options = ("--engine", engine, "--quiet")
    status, stdout, _ = run(root, *options, "--with-gradients", command="evaluate", out="joint")
    assert status == 0
    assert run(root, *options, command="evaluate", out="depth")[0] == 0
    assert run(root, *options, out="grad")[0] == 0
    joint = results(root, "joint")["snapshots"][JOINT]
    depth = results(root, "depth")["snapshots"][JOINT]
    grad = results(root, "grad")["snapshots"][JOINT]
    assert joint["output_blob"] == "depth" and joint["extra_output_blobs"] == ["gradient"]
    assert joint["metrics"] == {**depth["metrics"],
                                **{f"grad/{k}": v for k, v in grad["metrics"].items()}}
    for stem, values in joint["per_image"].items():
        prefixed = {(f"grad/{k}" if "/" not in k else k): v
                    for k, v in grad["per_image"][stem].items()}
        assert values == {**depth["per_image"][stem], **prefixed}
    blocks = top_blocks(stdout)
    assert list(blocks)[-2:] == ["grad/RMSE", "grad/MVN"] and "RMSE" in blocks
    # Both halves' pictures in one folder, the colour picture once (the depth task's).
    folder = root / "joint" / JOINT
    assert {p.name for p in folder.glob("00000_*.png")} == {
        "00000_colors.png", "00000_depth.png", "00000_gt.png", "00000_grad1.png",
        "00000_grad2.png", "00000_gt1.png", "00000_gt2.png"}
    for name in ("00000_grad1.png", "00000_gt2.png", "00000_colors.png"):
        assert (folder / name).read_bytes() == (root / "grad" / JOINT / name).read_bytes()


def test_with_gradients_gate_best_table_and_figures(tmp_path):
    root = make_grad_workspace(tmp_path, snapshots=(JOINT,), stems=("00000",))
    status, stdout, _ = run(root, "--with-gradients", "--format", "markdown", "--figures",
                            "--best", "grad/MVN", command="evaluate")
    assert status == 0
    assert "| grad: | images | RMSE | MVN |" in stdout  # its own table, by prefix
    assert stdout.rstrip().splitlines()[-1] == JOINT
    figures = root / "out" / "figures"
    assert {p.name for p in figures.iterdir() if not p.name.startswith(".")} == {
        "00000_colors.png", "00000_colors_gradients.png", "metrics.png"}
    # A baseline whose grad/RMSE was 10% lower: the rule on the gradient key breaks the gate.
    baseline = results(root)
    baseline["snapshots"][JOINT]["metrics"]["grad/RMSE"] *= 0.9
    (tmp_path / "baseline.json").write_text(json.dumps(baseline))
    status, _, stderr = run(root, "--with-gradients", "--baseline", str(tmp_path / "baseline.json"),
                            "--fail-if", "grad/RMSE>+5%", "--fail-if", "RMSE>+5%",
                            command="evaluate", out="again")
    assert status == EXIT_GATE
    assert f"gate: snapshot {JOINT} broke 'grad/RMSE>+5%'" in stderr and "'RMSE>+5%'" not in stderr


def test_with_gradients_needs_a_gradient_output(tmp_path):
    root = make_grad_workspace(tmp_path, snapshots=(), stems=("00000",))
    shutil.copy(GOLDEN_E2E / "snapshots" / "tiny_global_context_network_abs.prototxt",
                root / "snapshots")
    shutil.copy(GOLDEN_E2E / "snapshots" / "tiny_global_context_network_abs.caffemodel",
                root / "snapshots")
    status, _, stderr = run(root, "--with-gradients", command="evaluate")
    assert status == 2
    assert "cannot tell which blob is the gradient map" in stderr


@pytest.mark.parametrize("engine", ENGINES)
def test_engines_return_both_outputs_of_one_pass(engine, tmp_path):
    from depth_eval.engines import engine_class

    prototxt, model = (GOLDEN_NETS / f"{JOINT}{s}" for s in (".prototxt", ".caffemodel"))
    options = {"cache_dir": tmp_path} if engine == "onnxruntime" else {}
    cls = engine_class(engine)
    joint = cls(prototxt, model, log_encoded=True, extra_outputs=(GRADIENT_OUTPUT,), **options)
    depth = cls(prototxt, model, rule=DEPTH_OUTPUT, **options)
    gradient = cls(prototxt, model, rule=GRADIENT_OUTPUT, **options)
    assert joint.output_blobs == ("depth", "gradient") and depth.output_blobs == ("depth",)
    batch = np.random.default_rng(1).uniform(-127, 128, (2, 3, 218, 298)).astype(np.float32)
    outputs = joint.forward(batch)
    assert isinstance(outputs, tuple) and isinstance(depth.forward(batch), np.ndarray)
    np.testing.assert_allclose(outputs[0], depth.forward(batch), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(outputs[1], gradient.forward(batch), rtol=1e-5, atol=1e-5)
    with np.errstate(over="ignore"):  # random weights: some log-encoded depths overflow
        depth_map, gradient_maps = joint.decode_outputs(outputs, 1)
        decoded = np.exp((outputs[0][1, 0] - 1) / 0.179581)
    assert depth_map.shape == (27, 37) and gradient_maps.shape == (2, 25, 35)
    # --log decodes the depth output only.
    np.testing.assert_allclose(depth_map, decoded, rtol=1e-6)
    np.testing.assert_array_equal(gradient_maps, outputs[1][1])


# ---------------------------------------------------------------------------------------------
# --output-blob, constant channels, the user's files

def test_output_blob_reads_another_gradient_blob(tmp_path):
    root = make_grad_workspace(tmp_path, snapshots=("tiny_gradient_network_abs",),
                               stems=("00000",))
    assert run(root, "--quiet")[0] == 0
    assert run(root, "--quiet", "--output-blob", "grad", out="raw")[0] == 0
    plain = results(root)["snapshots"]["tiny_gradient_network_abs"]
    raw = results(root, "raw")["snapshots"]["tiny_gradient_network_abs"]
    assert raw["output_blob"] == "grad"
    # The Power layer's scale 0.02 moves RMSE, not MVN (scale-free).
    assert raw["metrics"]["MVN"] == pytest.approx(plain["metrics"]["MVN"], rel=1e-5)
    assert raw["metrics"]["RMSE"] > 5 * plain["metrics"]["RMSE"]
    status, _, stderr = run(root, "--output-blob", "conv4", out="bad")
    assert status == 2 and "needs N x 2 x h x w" in stderr


def _striped_ground_truth(path) -> None:
    """420 x 320, columns 0 and 10 m (exact 0.0 / 1.0): the filtered gt1 is exactly 0."""
    columns = (np.arange(420) // 30 % 2 * 255).astype(np.uint8)
    cv2.imwrite(str(path), np.tile(columns, (320, 1)))


def test_constant_ground_truth_channel_warns_once_and_gives_nan(tmp_path):
    root = make_grad_workspace(tmp_path, snapshots=("tiny_gradient_network_abs",
                                                    "tiny_gradient_network_norm"),
                               stems=("00000", "00001"))
    _striped_ground_truth(root / "depths" / "00001_depth.png")
    status, stdout, stderr = run(root)
    assert status == 0
    warnings = [line for line in stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, stderr  # once, not once per snapshot
    assert "00001_depth.png" in warnings[0] and "MVN of grad1" in warnings[0]
    for entry in results(root)["snapshots"].values():
        image = entry["per_image"]["00001_colors"]
        assert math.isnan(image["grad1/MVN"]) and math.isnan(image["MVN"])
        assert math.isfinite(image["grad2/MVN"]) and math.isfinite(image["grad1/RMSE"])
        assert math.isnan(entry["metrics"]["MVN"]) and math.isfinite(entry["metrics"]["RMSE"])
    assert all(math.isnan(value) for _, value in top_blocks(stdout)["MVN"])


def test_constant_prediction_ranks_last(tmp_path):
    root = make_grad_workspace(tmp_path, snapshots=("tiny_gradient_network_abs",),
                               stems=("00000",))
    snapshots = root / "snapshots"
    text = (snapshots / "tiny_gradient_network_abs.prototxt").read_text()
    # "a_flat" sorts first: a Power scale of 0 makes its output constant.
    (snapshots / "a_flat.prototxt").write_text(text.replace("scale: 0.02", "scale: 0"))
    shutil.copy(snapshots / "tiny_gradient_network_abs.caffemodel", snapshots / "a_flat.caffemodel")
    status, stdout, stderr = run(root)
    assert status == 0
    mvn = top_blocks(stdout)["MVN"]
    assert [name for name, _ in mvn] == ["tiny_gradient_network_abs", "a_flat"]
    assert math.isnan(mvn[1][1]) and math.isfinite(mvn[0][1])
    assert [name for name, _ in top_blocks(stdout)["RMSE"]][0] == "a_flat"  # RMSE is defined
    warnings = [line for line in stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "snapshot a_flat, 00000_colors.png" in warnings[0]
    assert "MVN of grad1 and grad2" in warnings[0]


def test_a_users_file_is_never_overwritten(tmp_path):
    name = "tiny_gradient_network_norm"
    root = make_grad_workspace(tmp_path, snapshots=(name,), stems=("00000", "gray00000"))
    folder = root / "out" / name
    folder.mkdir(parents=True)
    (folder / "00000_gt2.png").write_bytes(b"mine")
    status, _, stderr = run(root)
    assert status == EXIT_PARTIAL
    assert (folder / "00000_gt2.png").read_bytes() == b"mine"
    assert not (folder / "00000_grad1.png").exists()  # the image is skipped as a whole
    assert "00000_gt2.png: exists and was not written by depth_eval" in stderr
    assert results(root)["snapshots"][name]["images_evaluated"] == 1
    # A rerun replaces the tool's own files and still leaves the user's alone.
    assert run(root)[0] == EXIT_PARTIAL
    assert (folder / "00000_gt2.png").read_bytes() == b"mine"


def test_figures_show_input_and_both_gradients(tmp_path):
    root = make_grad_workspace(tmp_path, snapshots=("tiny_gradient_network_norm",),
                               stems=("00000", "gray00000"))
    assert run(root, "--quiet", "--figures", "--figures-max", "1")[0] == 0
    figures = root / "out" / "figures"
    assert sorted(p.name for p in figures.glob("*.png")) == ["00000_colors_gradients.png",
                                                             "metrics.png"]
    picture = cv2.imread(str(figures / "00000_colors_gradients.png"))
    assert picture.shape[1] > picture.shape[0] > 400  # input + two channel columns + bar


def test_gradients_command_has_no_log_option(tmp_path, capsys):
    root = make_grad_workspace(tmp_path, snapshots=(), stems=())
    with pytest.raises(SystemExit) as stopped:
        run(root, "--log")
    assert stopped.value.code == 2


FULL = os.environ.get("DEPTH_EVAL_FULL_NETS", "") not in ("", "0")


@pytest.mark.skipif(not FULL, reason="full-size joint networks: set DEPTH_EVAL_FULL_NETS=1")
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("network", ["joint/architecture_A", "joint/architecture_B"])
def test_thesis_joint_networks_give_both_outputs_in_one_pass(network, engine, tmp_path):
    from caffemodel_factory import write_random_caffemodel
    from depth_eval.engines import engine_class

    prototxt = REPO / "prototxt" / f"{network}.prototxt"
    model = tmp_path / "random.caffemodel"
    write_random_caffemodel(prototxt, model, seed=7, period=1 << 18)
    options = {"cache_dir": tmp_path} if engine == "onnxruntime" else {}
    joint = engine_class(engine)(prototxt, model, extra_outputs=(GRADIENT_OUTPUT,), **options)
    single = engine_class(engine)(prototxt, model, rule=GRADIENT_OUTPUT, **options)
    batch = np.random.default_rng(2).uniform(-127, 128, (1, 3, 218, 298)).astype(np.float32)
    depth, gradient = joint.forward(batch)
    assert depth.shape == (1, 1, 27, 37) and gradient.shape == (1, 2, 25, 35)
    expected = single.forward(batch)
    assert np.abs(gradient - expected).max() <= 1e-5 * np.ptp(expected)


@pytest.mark.parametrize("command,options", [("gradients", ()), ("evaluate", ("--with-gradients",))])
def test_a_deleted_gradient_picture_makes_its_unit_computed_again(tmp_path, command, options):
    snapshot = JOINT if options else "tiny_gradient_network_abs"
    root = make_grad_workspace(tmp_path, snapshots=(snapshot,), stems=("00000", "gray00000"))
    assert run(root, "--quiet", *options, command=command)[0] == 0
    picture = root / "out" / snapshot / "gray00000_grad2.png"
    first = picture.read_bytes()
    assert run(root, "--quiet", *options, command=command)[0] == 0
    entry = results(root)["snapshots"][snapshot]
    assert (entry["images_reused"], entry["images_computed"]) == (2, 0)
    picture.unlink()
    assert run(root, "--quiet", *options, command=command)[0] == 0
    entry = results(root)["snapshots"][snapshot]
    assert (entry["images_reused"], entry["images_computed"]) == (1, 1)
    assert picture.read_bytes() == first


def test_a_reused_joint_run_writes_the_results_json_of_a_fresh_run(tmp_path):
    """Every unit of the second run comes from the store (its pictures are in OUT_DIR), and
    its results.json is the fresh run's byte for byte but for how the values were obtained."""
    root = make_grad_workspace(tmp_path, snapshots=(JOINT,), stems=("00000", "gray00000"))
    options = ("--quiet", "--with-gradients")
    assert run(root, *options, command="evaluate")[0] == 0
    fresh = results(root)
    assert run(root, *options, command="evaluate")[0] == 0
    reused = results(root)
    entry = reused["snapshots"][JOINT]
    assert (entry["images_reused"], entry["images_computed"]) == (2, 0)
    for document in (fresh, reused):
        document.pop("started"), document.pop("seconds")
        for snapshot in document["snapshots"].values():
            for field in ("seconds", "images_reused", "images_computed"):
                snapshot.pop(field)
    assert json.dumps(fresh) == json.dumps(reused)
