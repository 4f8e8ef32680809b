"""Parity with real Caffe: the golden networks, raw maps, metrics and PNGs of ../shared/golden,
for both engines (OpenCV dnn, the reference, and onnxruntime)."""

import importlib.util
import json

import cv2
import numpy as np
import pytest

from depth_eval import cli
from depth_eval.engines.base import ANY_OUTPUT
from depth_eval.engines.opencv import OpenCVEngine
from depth_eval.inputs.discover import find_pairs
from depth_eval.scoring.thesis_metrics import THESIS_METRIC_TITLES
from helpers import GOLDEN_E2E, GOLDEN_NETS, evaluate_pairs, relative_range_error

# Tolerances of the port (issue 2): outputs and raw maps within 1e-4 of the range, continuous
# metrics within 1e-4 relative, pixel-fraction metrics within 1e-4 absolute, PNGs within 1 level.
BLOB_TOLERANCE = 1e-4
METRIC_RTOL = 1e-4
THRESHOLD_ATOL = 1e-4
THRESHOLD_TITLES = {"Threshold 1.25", "Threshold 1.25^2", "Threshold 1.25^3"}

HAVE_ONNXRUNTIME = importlib.util.find_spec("onnxruntime") is not None
ENGINES = ["opencv", pytest.param("onnxruntime", marks=pytest.mark.skipif(
    not HAVE_ONNXRUNTIME, reason="onnxruntime not installed (pip install '.[fast]')"))]
GOLDEN_NET_NAMES = sorted(p.name[: -len(".blobs.npz")] for p in GOLDEN_NETS.glob("*.blobs.npz"))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", GOLDEN_NET_NAMES)
def test_network_outputs_match_caffe(name, engine):
    prototxt = GOLDEN_NETS / f"{name}.prototxt"
    caffemodel = GOLDEN_NETS / f"{name}.caffemodel"
    blobs = np.load(GOLDEN_NETS / f"{name}.blobs.npz")
    (input_key,) = [k for k in blobs if k.startswith("input:")]
    outputs_checked = [k for k in blobs if not k.startswith("input:")]
    assert outputs_checked
    for blob_name in outputs_checked:
        network = _network(engine, prototxt, caffemodel, output_blob=blob_name, rule=ANY_OUTPUT)
        assert network.info.input_name == input_key.split(":", 1)[1]
        result = network.forward(blobs[input_key])
        assert result.shape == blobs[blob_name].shape
        assert relative_range_error(result, blobs[blob_name]) < BLOB_TOLERANCE, blob_name


def _reference(run_name):
    return json.loads((GOLDEN_E2E / "expected" / run_name / "reference.json").read_text())


def _expected_means(reference, snapshot, stems):
    per_image = reference["snapshots"][snapshot]["per_image"]
    return dict(zip(THESIS_METRIC_TITLES, np.mean([per_image[s] for s in stems], axis=0)))


def _assert_metrics_close(actual, expected):
    for title in THESIS_METRIC_TITLES:
        if title in THRESHOLD_TITLES:
            assert actual[title] == pytest.approx(expected[title], abs=THRESHOLD_ATOL), title
        else:
            assert actual[title] == pytest.approx(expected[title], rel=METRIC_RTOL), title


RUNS = [("out", "snapshots", []), ("out_log", "snapshots_log", ["--log"]),
        ("out", "snapshots", ["--batch", "3"])]  # several images per forward pass


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("run_name,snapshots,flags", RUNS)
def test_cli_reproduces_caffe_metrics_and_pngs(tmp_path, run_name, snapshots, flags, engine):
    out = tmp_path / "out"
    status = cli.main([str(GOLDEN_E2E / "colors"), str(GOLDEN_E2E / "depths"), str(out),
                       str(GOLDEN_E2E / snapshots), "--quiet", "--engine", engine, *flags])
    assert status == 0
    results = json.loads((out / "results.json").read_text())
    reference = _reference(run_name)
    assert set(results["snapshots"]) == set(reference["snapshots"])
    stems = sorted(p.name for p in (GOLDEN_E2E / "colors").iterdir())
    for snapshot, entry in results["snapshots"].items():
        ref_entry = reference["snapshots"][snapshot]
        assert entry["status"] == "evaluated" and entry["engine"] == engine
        assert entry["images_evaluated"] == len(stems)
        assert entry["output_blob"] == ref_entry["output_blob"]
        assert entry["input_size"] == ref_entry["input"]
        _assert_metrics_close(entry["metrics"], _expected_means(reference, snapshot, stems))
        for stem in stems:
            expected = dict(zip(THESIS_METRIC_TITLES, ref_entry["per_image"][stem]))
            _assert_metrics_close(entry["per_image"][stem[: -len(".png")]], expected)
        for folder, suffix in ((out, ""), (tmp_path / "out_abs", "_abs")):
            expected_dir = GOLDEN_E2E / "expected" / f"{run_name}{suffix}" / "png" / snapshot
            for reference_png in sorted(expected_dir.iterdir()):
                expected_png = cv2.imread(str(reference_png), cv2.IMREAD_UNCHANGED)
                written = cv2.imread(str(folder / snapshot / reference_png.name), cv2.IMREAD_UNCHANGED)
                assert written.shape == expected_png.shape, reference_png.name
                difference = np.abs(written.astype(int) - expected_png.astype(int)).max()
                assert difference <= 1, f"{snapshot}/{reference_png.name}{suffix}"


def _network(engine, prototxt, caffemodel, **options):
    if engine == "onnxruntime":
        from depth_eval.engines.onnx_runtime import OnnxRuntimeEngine

        return OnnxRuntimeEngine(prototxt, caffemodel, **options)
    return OpenCVEngine(prototxt, caffemodel, **options)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("run_name,snapshots,flags", RUNS)
def test_raw_maps_match_caffe(tmp_path, run_name, snapshots, flags, engine):
    pairs = find_pairs(GOLDEN_E2E / "colors", GOLDEN_E2E / "depths").pairs
    for raw_dir in sorted((GOLDEN_E2E / "expected" / run_name / "raw").iterdir()):
        snapshot = raw_dir.name
        folder = GOLDEN_E2E / snapshots
        network = _network(engine, folder / f"{snapshot}.prototxt",
                           folder / f"{snapshot}.caffemodel", log_encoded="--log" in flags)
        wanted = [p for p in pairs if (raw_dir / f"{p.stem}.npy").exists()]
        run = evaluate_pairs(network, wanted, tmp_path / "out", snapshot,
                             batch=int(flags[1]) if "--batch" in flags else 1)
        assert [r.stem for r in run.results] == [p.stem for p in wanted] and wanted
        for result in run.results:
            expected = np.load(raw_dir / f"{result.stem}.npy")
            assert result.kept.shape == expected.shape == (320, 420)
            assert relative_range_error(result.kept, expected) < BLOB_TOLERANCE


def test_parallel_run_equals_serial_run(tmp_path):
    folder = GOLDEN_E2E / "snapshots"
    name = "tiny_refining_network_norm_abs"
    network = OpenCVEngine(folder / f"{name}.prototxt", folder / f"{name}.caffemodel")
    pairs = find_pairs(GOLDEN_E2E / "colors", GOLDEN_E2E / "depths").pairs
    runs = [evaluate_pairs(network, pairs, tmp_path / f"jobs{jobs}", name, jobs=jobs)
            for jobs in (1, 4)]
    assert [r.stem for r in runs[0].results] == [r.stem for r in runs[1].results]
    assert [r.metrics for r in runs[0].results] == [r.metrics for r in runs[1].results]
    pngs = sorted((tmp_path / "jobs1" / name).glob("*.png"))
    assert pngs
    for png in pngs:
        assert png.read_bytes() == (tmp_path / "jobs4" / name / png.name).read_bytes()


def test_default_png_strategy_writes_the_originals_bytes(tmp_path):
    out = tmp_path / "out"
    status = cli.main([str(GOLDEN_E2E / "colors"), str(GOLDEN_E2E / "depths"), str(out),
                       str(GOLDEN_E2E / "snapshots"), "--quiet", "--png-strategy", "default"])
    assert status == 0
    expected_dir = GOLDEN_E2E / "expected" / "out" / "png" / "tiny_refining_network_norm_abs"
    # Inputs and ground truths are pixel-identical to Caffe's run, so their files are too.
    for name in ("00000_colors.png", "00000_gt.png", "gray00000_colors.png", "gray00000_gt.png"):
        written = out / "tiny_refining_network_norm_abs" / name
        assert written.read_bytes() == (expected_dir / name).read_bytes(), name
