"""The gradient-network evaluation's numbers and pictures against real Caffe (golden/grad).

Tolerances of issue 12: filtered GT within 1e-5, zoom within 1e-5, engine outputs within 1e-4 of
the blob's range, metrics within 1e-4 relative, PNGs within 1 grey level.  Measured: the filtered
GT, the zoom, every metric and every PNG pixel fed Caffe's blobs are Caffe's bit for bit (the GT
of the 640 x 480 scene within 2.4e-7, OpenCV's shrinking resize); both engines within 1.3e-6 of
the range.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import warnings

import cv2
import numpy as np
import pytest
from scipy.ndimage import zoom

from caffemodel_factory import write_random_caffemodel
from helpers import GOLDEN, GOLDEN_E2E, GOLDEN_NETS, relative_range_error
from depth_eval import thesis
from depth_eval.scoring import gradient_metrics as gradients
from depth_eval.pictures import pngs as pictures
from depth_eval.inputs.ground_truth import load_ground_truth
from depth_eval.engines.base import GRADIENT_OUTPUT
from depth_eval.tasks.depth import prepare_image
from depth_eval.inputs.discover import ImagePair
from depth_eval.engines.opencv import OpenCVEngine

GOLDEN_GRAD = GOLDEN / "grad"
PROTOTXT_DIR = GOLDEN.parents[2] / "prototxt"
SNAPSHOT_DIRS = {"tiny_gradient_network_abs": GOLDEN_NETS,
                 "tiny_gradient_network_norm": GOLDEN_GRAD / "snapshots",
                 "tiny_joint_architecture_A": GOLDEN_NETS}
SNAPSHOTS = sorted(SNAPSHOT_DIRS)
# The OpenCV layer that writes blob `gradient`: the Power layer in the gradient nets; in the
# joint nets conv5-grad, which OpenCV's importer renames to its top.
OPENCV_LAYER = {"tiny_gradient_network_abs": "power", "tiny_gradient_network_norm": "power",
                "tiny_joint_architecture_A": "gradient"}
STEMS = ["00000", "00001", "00002", "00003", "big00000", "gray00000"]
E2E_STEMS = ["00000", "00001", "big00000", "gray00000"]  # colour inputs kept in tests/data
BLOB_TOLERANCE = 1e-4
METRIC_RTOL = 1e-4
HAVE_ONNXRUNTIME = importlib.util.find_spec("onnxruntime") is not None
ENGINES = ["opencv", pytest.param("onnxruntime", marks=pytest.mark.skipif(
    not HAVE_ONNXRUNTIME, reason="onnxruntime not installed (pip install '.[fast]')"))]


def _reference():
    return json.loads((GOLDEN_GRAD / "reference.json").read_text(encoding="utf-8"))


def _depth_path(stem):
    path = GOLDEN_E2E / "depths" / f"{stem}_depth.png"
    return path if path.is_file() else GOLDEN_GRAD / "depths" / f"{stem}_depth.png"


@functools.lru_cache(maxsize=None)
def _filtered_gt(stem):
    """The filtered GT from the depth task's own loading functions (thesis 8-bit PNGs)."""
    unit, _ = load_ground_truth(_depth_path(stem)).on_thesis_grid()
    return gradients.ground_truth_gradients(unit)


def _caffe_blob(snapshot, stem):
    return np.load(GOLDEN_GRAD / "raw" / snapshot / f"{stem}_colors.gradient.npy")


@functools.lru_cache(maxsize=None)
def _prepared(stem):
    pair = ImagePair(f"{stem}_colors", GOLDEN_E2E / "colors" / f"{stem}_colors.png",
                     _depth_path(stem))
    return prepare_image(pair, (218, 298))


def _network(engine, snapshot, tmp_path):
    prototxt = SNAPSHOT_DIRS[snapshot] / f"{snapshot}.prototxt"
    caffemodel = SNAPSHOT_DIRS[snapshot] / f"{snapshot}.caffemodel"
    if engine == "onnxruntime":
        from depth_eval.engines.onnx_runtime import OnnxRuntimeEngine

        return OnnxRuntimeEngine(prototxt, caffemodel, rule=GRADIENT_OUTPUT, cache_dir=tmp_path)
    return OpenCVEngine(prototxt, caffemodel, rule=GRADIENT_OUTPUT)


def _golden_png(path):
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def _assert_metrics_close(actual, expected):
    assert list(actual) == list(gradients.METRIC_TITLES)
    for title in gradients.METRIC_TITLES:
        np.testing.assert_allclose(actual[title], expected[title], rtol=METRIC_RTOL, atol=0,
                                   err_msg=title)


# ---------------------------------------------------------------------------------------------
# The ground-truth filter

def test_constants():
    assert gradients.GT_SHAPE == (320, 420) == thesis.GT_SHAPE
    assert gradients.FILTERED_SHAPE == (318, 418)
    assert gradients.METRIC_TITLES == ("RMSE", "MVN")
    assert all(gradients.LOWER_IS_BETTER[title] for title in gradients.METRIC_TITLES)
    assert gradients.PICTURE_SUFFIXES == ("_grad1", "_grad2", "_gt1", "_gt2")


def test_filter_is_the_thesis_formula():
    g = np.random.default_rng(3).random((7, 9)).astype(np.float32)
    result = gradients.ground_truth_gradients(g)
    assert result.shape == (2, 5, 7) and result.dtype == np.float32
    g64 = g.astype(np.float64)
    down_minus_up = sum(g64[2:, j:j + 7] - g64[:-2, j:j + 7] for j in range(3))
    right_minus_left = sum(g64[i:i + 5, 2:] - g64[i:i + 5, :-2] for i in range(3))
    np.testing.assert_allclose(result[0], down_minus_up, rtol=0, atol=3e-7)
    np.testing.assert_allclose(result[1], right_minus_left, rtol=0, atol=3e-7)
    # A ramp a*y + b*x: 3 x the central difference over 2 pixels, exactly.
    y, x = np.mgrid[0:6, 0:8].astype(np.float32)
    ramp = gradients.ground_truth_gradients(0.25 * y + 0.125 * x)
    np.testing.assert_array_equal(ramp[0], np.full((4, 6), 1.5, np.float32))
    np.testing.assert_array_equal(ramp[1], np.full((4, 6), 0.75, np.float32))


@pytest.mark.parametrize("shape", [(320,), (2, 320, 420), (2, 420), (420, 2)])
def test_filter_refuses_a_map_it_cannot_filter(shape):
    with pytest.raises(ValueError, match="2-D map"):
        gradients.ground_truth_gradients(np.zeros(shape, np.float32))


def test_filtered_gt_matches_caffe():
    with np.load(GOLDEN_GRAD / "raw" / "gt_filtered.npz") as caffe:
        # A 320 x 420 GT (no resize): the float32 sums in Caffe's order are its bits.
        np.testing.assert_array_equal(_filtered_gt("00000"), caffe["00000"])
        # 640 x 480 shrunk by OpenCV's bilinear resize (skimage's within 6e-8): measured 2.4e-7.
        big = _filtered_gt("big00000")
        assert big.shape == (2, 318, 418) and big.dtype == np.float32
        assert np.abs(big - caffe["big00000"]).max() <= 1e-5
        # The depth task's prepared ground truth is the same map.
        prepared = gradients.ground_truth_gradients(_prepared("big00000").extra["ground_truth"])
        np.testing.assert_array_equal(prepared, big)


# ---------------------------------------------------------------------------------------------
# The zoom

def test_zoom_matches_caffe_run_and_scipy():
    blob = _caffe_blob("tiny_gradient_network_abs", "00000")
    assert blob.shape == (2, 25, 35)
    with np.load(GOLDEN_GRAD / "raw" / "tiny_gradient_network_abs" / "00000_colors.zoomed.npz") as z:
        golden = z["zoomed"]
    zoomed = gradients.upsample_gradients(blob)
    assert zoomed.shape == (2, 318, 418) and zoomed.dtype == np.float32
    assert np.abs(zoomed - golden).max() <= 1e-5  # measured: 0 (bit-identical)
    np.testing.assert_array_equal(gradients.upsample_gradients(blob[np.newaxis]), zoomed)
    whole = zoom(blob, (1, 318 / 25, 418 / 35), order=3)  # the 2 x h x w zoom: same values
    np.testing.assert_array_equal(zoomed, whole)


def test_zoom_reads_the_size_from_the_output():
    blob = np.random.default_rng(4).standard_normal((1, 2, 27, 37)).astype(np.float32)
    zoomed = gradients.upsample_gradients(blob)
    expected = np.stack([zoom(c, (318 / 27, 418 / 37), order=3) for c in blob[0]])
    assert zoomed.shape == expected.shape == (2, 318, 418)
    np.testing.assert_allclose(zoomed, expected, rtol=0, atol=4 * np.spacing(np.float32(4)))


@pytest.mark.parametrize("shape", [(25, 35), (1, 25, 35), (3, 25, 35), (2, 2, 25, 35)])
def test_zoom_refuses_other_blob_shapes(shape):
    with pytest.raises(ValueError, match="2 x h x w"):
        gradients.upsample_gradients(np.zeros(shape, np.float32))


# ---------------------------------------------------------------------------------------------
# Metrics and pictures from Caffe's own gradient blobs

@pytest.mark.parametrize("snapshot", SNAPSHOTS)
def test_per_image_metrics_match_caffe(snapshot):
    expected = _reference()["snapshots"][snapshot]["per_image"]
    for stem in STEMS:
        prediction = gradients.upsample_gradients(_caffe_blob(snapshot, stem))
        actual = gradients.gradient_metrics(prediction, _filtered_gt(stem))
        _assert_metrics_close(actual, expected[f"{stem}_colors.png"])
        # Bit for bit, because the sums run as the original's numpy 1.x ran them.
        assert actual == expected[f"{stem}_colors.png"], stem


def test_snapshot_means_and_ranking_match_caffe():
    reference = _reference()
    means = {}
    for snapshot in SNAPSHOTS:
        per_image = [gradients.gradient_metrics(
            gradients.upsample_gradients(_caffe_blob(snapshot, stem)), _filtered_gt(stem))
            for stem in STEMS]
        means[snapshot] = gradients.mean_over_images(per_image)
        expected = reference["snapshots"][snapshot]
        for title in gradients.METRIC_TITLES:
            assert means[snapshot][title] == pytest.approx(expected["metrics"][title],
                                                           rel=METRIC_RTOL), (snapshot, title)
            total = sum(gradients.image_contribution(values)[title] for values in per_image)
            assert total == pytest.approx(expected["sums"][title], rel=1e-12)
        assert means[snapshot] == expected["metrics"]  # measured: equal, sums in the same order
    for title in gradients.METRIC_TITLES:
        ranked = sorted(SNAPSHOTS, key=lambda s: means[s][title])
        assert ranked == [name for name, _ in reference["ranking"][title]], title


@pytest.mark.parametrize("snapshot", SNAPSHOTS)
def test_pictures_match_caffe(snapshot):
    prediction = gradients.upsample_gradients(_caffe_blob(snapshot, "00000"))
    pictures = gradients.gradient_pictures(prediction, _filtered_gt("00000"))
    assert list(pictures) == list(gradients.PICTURE_SUFFIXES)
    for suffix, picture in pictures.items():
        folder = "gt" if suffix.startswith("_gt") else snapshot
        golden = _golden_png(GOLDEN_GRAD / "png" / folder / f"00000{suffix}.png")
        assert picture.shape == golden.shape == (318, 418) and picture.dtype == np.uint8
        difference = np.abs(picture.astype(np.int16) - golden)
        assert difference.max() <= 1, suffix
        assert not difference.any(), suffix  # measured: byte-identical pixels


def test_colour_picture_is_the_depth_tasks():
    golden = _golden_png(GOLDEN_E2E / "expected" / "out" / "png"
                         / "tiny_global_context_network_abs" / "00000_colors.png")
    np.testing.assert_array_equal(pictures.input_visual(_prepared("00000").blob), golden)


def test_pictures_leave_their_inputs_alone():
    prediction = gradients.upsample_gradients(_caffe_blob("tiny_gradient_network_abs", "00000"))
    target = _filtered_gt("00000")
    before = prediction.copy(), target.copy()
    gradients.gradient_pictures(prediction, target)
    gradients.gradient_metrics(prediction, target)
    np.testing.assert_array_equal(prediction, before[0])
    np.testing.assert_array_equal(target, before[1])


# ---------------------------------------------------------------------------------------------
# Constant channels: MVN undefined, pictures defined, no numpy warning

def test_constant_channels_give_nan_mvn_and_black_pictures():
    rng = np.random.default_rng(5)
    # No vertical variation, values whose float32 sums are exact (k / 256): gt1 is exactly 0.
    levels = np.tile(rng.integers(0, 256, 420).astype(np.float32), (320, 1))
    target = gradients.ground_truth_gradients(levels / np.float32(256))
    assert not target[0].any() and target[1].std() > 0
    # With 8-bit values (k / 255), Caffe's float32 order leaves rounding noise, not 0 (nor NaN).
    noisy = gradients.ground_truth_gradients(levels / np.float32(255))
    assert noisy[0].any() and np.abs(noisy[0]).max() <= 2.4e-7
    prediction = rng.standard_normal((2, 318, 418)).astype(np.float32)
    prediction[1] = 0.5  # a constant prediction channel
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values = gradients.gradient_metrics(prediction, target)
        pictures = gradients.gradient_pictures(prediction, target)
        mean = gradients.mean_over_images([values])
    assert np.isnan(values["MVN"]).all()  # channel 1: constant GT; channel 2: constant output
    assert values["RMSE"][0] == pytest.approx(float(np.sqrt(np.mean(prediction[0] ** 2))), rel=1e-5)
    assert values["RMSE"][1] == pytest.approx(
        float(np.sqrt(np.mean((0.5 - target[1].astype(np.float64)) ** 2))), rel=1e-5)
    assert gradients.undefined_channels(values) == {"MVN": [1, 2]}
    assert np.isnan(mean["MVN"]) and np.isfinite(mean["RMSE"])
    for suffix in ("_gt1", "_grad1", "_grad2"):  # 0 / 0 is written 0, as the original's files
        assert not pictures[suffix].any(), suffix
    assert pictures["_gt2"].min() == 0 and pictures["_gt2"].max() == 255


def test_metric_helpers():
    values = {"RMSE": [1.5, 2.25], "MVN": [0.5, 1.0]}
    assert gradients.image_contribution(values) == {"RMSE": 3.75, "MVN": 1.5}
    assert gradients.undefined_channels(values) == {}
    other = {"RMSE": [0.5, 0.25], "MVN": [1.0, 1.5]}
    assert gradients.mean_over_images([values, other]) == {"RMSE": 4.5 / 4, "MVN": 4.0 / 4}
    assert all(np.isnan(v) for v in gradients.mean_over_images([]).values())
    with pytest.raises(ValueError, match="shapes differ"):
        gradients.gradient_metrics(np.zeros((2, 4, 4)), np.zeros((2, 4, 5)))


# ---------------------------------------------------------------------------------------------
# Both engines on the project's own preprocessing, against Caffe

@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("snapshot", SNAPSHOTS)
def test_engines_reproduce_caffe_gradients(engine, snapshot, tmp_path):
    network = _network(engine, snapshot, tmp_path)
    assert network.output_blob == "gradient" and network.input_hw == (218, 298)
    if engine == "opencv":
        assert network._output_layer == OPENCV_LAYER[snapshot]
    expected = _reference()["snapshots"][snapshot]["per_image"]
    for stem in E2E_STEMS:
        prepared = _prepared(stem)
        output = network.forward(prepared.blob)
        caffe = _caffe_blob(snapshot, stem)
        assert output.shape == (1, 2, 25, 35)
        assert relative_range_error(output[0], caffe) < BLOB_TOLERANCE, stem  # measured 1.3e-6
        prediction = gradients.upsample_gradients(output)
        target = gradients.ground_truth_gradients(prepared.extra["ground_truth"])
        _assert_metrics_close(gradients.gradient_metrics(prediction, target),
                              expected[f"{stem}_colors.png"])
        if stem == "00000":
            for suffix, picture in gradients.gradient_pictures(prediction, target).items():
                folder = "gt" if suffix.startswith("_gt") else snapshot
                golden = _golden_png(GOLDEN_GRAD / "png" / folder / f"00000{suffix}.png")
                assert np.abs(picture.astype(np.int16) - golden).max() <= 1, suffix


# ---------------------------------------------------------------------------------------------
# The thesis' full-size gradient and joint networks, random weights, in OpenCV

FULL = os.environ.get("DEPTH_EVAL_FULL_NETS", "") not in ("", "0")
# The joint nets carry the 61 M-weight fc-main (seconds to write and load); test_prototxts.py
# already runs them by layer name, here they need DEPTH_EVAL_FULL_NETS=1.
THESIS_NETS = ["gradient_network/abs", "gradient_network/norm",
               pytest.param("joint/architecture_A", marks=pytest.mark.skipif(
                   not FULL, reason="full-size joint network: set DEPTH_EVAL_FULL_NETS=1")),
               pytest.param("joint/architecture_B", marks=pytest.mark.skipif(
                   not FULL, reason="full-size joint network: set DEPTH_EVAL_FULL_NETS=1"))]


@pytest.mark.parametrize("network", THESIS_NETS)
def test_thesis_networks_give_two_channel_gradients(network, tmp_path):
    prototxt = PROTOTXT_DIR / f"{network}.prototxt"
    caffemodel = tmp_path / "random.caffemodel"
    write_random_caffemodel(prototxt, caffemodel, seed=7, period=1 << 18)
    net = OpenCVEngine(prototxt, caffemodel, rule=GRADIENT_OUTPUT)
    assert net._output_layer == ("gradient" if network.startswith("joint") else "power")
    output = net.forward(_prepared("00000").blob)
    assert output.shape == (1, 2, 25, 35)
    assert np.isfinite(output).all() and np.abs(output).max() > 0
    prediction = gradients.upsample_gradients(output)
    values = gradients.gradient_metrics(prediction, _filtered_gt("00000"))
    assert all(np.isfinite(v) and v > 0 for vs in values.values() for v in vs)
