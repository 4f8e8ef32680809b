"""The opencv engine where OpenCV alone would not compute what Caffe does: refusals at load, a
failed forward pass named, non-finite outputs refused per image (both engines, through the CLI)."""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest
from caffemodel_factory import write_caffemodel_weights
from helpers import GOLDEN, GOOD, evaluate, results

from depth_eval.caffe.proto import read_caffemodel, write_caffemodel
from depth_eval.engines.base import ANY_OUTPUT
from depth_eval.engines.opencv import OpenCVEngine
from depth_eval.engines.opencv_fixes import corrected_definition
from depth_eval.errors import SnapshotError, UnsupportedLayerError

CATALOGUE = GOLDEN / "catalogue"
HAVE_ONNXRUNTIME = importlib.util.find_spec("onnxruntime") is not None

INPUT = """name: "{name}"
layer {{ name: "data" type: "Input" top: "data"
        input_param {{ shape {{ dim: 1 dim: 3 dim: 24 dim: 32 }} }} }}
layer {{ name: "pre" type: "Convolution" bottom: "data" top: "pre"
        convolution_param {{ num_output: 1 kernel_size: 1 }} }}
"""


def _snapshot(folder, name: str, layers: str, weights=(0.0, 0.0, 0.0), conv_bias: float = 0.0):
    """A 1 x 3 x 24 x 32 -> ``pre`` (1 channel: these weights on R, G, B, this bias) ->
    ``layers`` net."""
    prototxt = folder / f"{name}.prototxt"
    prototxt.write_text(INPUT.format(name=name))  # the weights are the convolution's alone
    caffemodel = folder / f"{name}.caffemodel"
    write_caffemodel_weights(prototxt, caffemodel, {
        "pre": [np.reshape(weights, (1, 3, 1, 1)), np.full((1,), conv_bias)]})
    prototxt.write_text(INPUT.format(name=name) + layers)
    return prototxt, caffemodel


def test_a_reduction_to_a_scalar_is_refused_at_load_in_one_line(tmp_path):
    prototxt, caffemodel = _snapshot(tmp_path, "scalar", """
layer { name: "all" type: "Reduction" bottom: "pre" top: "all" }
layer { name: "out" type: "Power" bottom: "pre" top: "depth" }
""")
    with pytest.raises(UnsupportedLayerError) as refused:
        OpenCVEngine(prototxt, caffemodel, output_blob="depth", rule=ANY_OUTPUT)
    message = str(refused.value)
    assert "\n" not in message and str(prototxt) in message
    assert "layer 'all' (Reduction)" in message and "--engine onnxruntime" in message


def test_a_private_layer_whose_output_opencv_would_reshape_is_refused_at_load(tmp_path):
    # OpenCV hands a 1-axis array back from Python as a 2-D matrix.
    prototxt, caffemodel = _snapshot(tmp_path, "rows", """
layer { name: "total" type: "Reduction" bottom: "pre" top: "total" reduction_param { axis: 1 } }
layer { name: "out" type: "Power" bottom: "pre" top: "depth" }
""")
    with pytest.raises(UnsupportedLayerError) as refused:
        OpenCVEngine(prototxt, caffemodel, output_blob="depth", rule=ANY_OUTPUT)
    message = str(refused.value)
    assert "\n" not in message and "layer 'total' (Reduction)" in message
    assert "1-axis output [1]" in message and "--engine onnxruntime" in message


def test_a_reduction_to_three_axes_runs_on_opencv(tmp_path):
    # OpenCV's Python layer interface cannot return 3 axes: the private layer returns a
    # trailing axis of 1, which a Flatten under the layer's name drops.
    prototxt, caffemodel = _snapshot(tmp_path, "rows", """
layer { name: "rowsum" type: "Reduction" bottom: "pre" top: "rows"
        reduction_param { axis: 3 operation: SUMSQ coeff: 0.5 } }
layer { name: "out" type: "Power" bottom: "pre" top: "depth" }
""", weights=(1.0, -2.0, 0.5), conv_bias=0.25)
    x = np.random.default_rng(3).normal(size=(1, 3, 24, 32)).astype(np.float32)
    rows = OpenCVEngine(prototxt, caffemodel, output_blob="rows", rule=ANY_OUTPUT).forward(x)
    pre = x[0, 0] * 1.0 - 2.0 * x[0, 1] + 0.5 * x[0, 2] + 0.25
    assert rows.shape == (1, 1, 24)
    np.testing.assert_allclose(rows[0, 0], 0.5 * (pre.astype(np.float64) ** 2).sum(axis=1),
                               rtol=1e-5)


def test_weights_that_do_not_fit_a_private_layer_name_it_and_the_caffemodel(tmp_path):
    prototxt, caffemodel = _snapshot(tmp_path, "bias", """
layer { name: "t" type: "Threshold" bottom: "pre" top: "t" }
layer { name: "b" type: "Bias" bottom: "t" top: "depth" bias_param { axis: 2 } }
""")
    model = read_caffemodel(caffemodel)
    bias = model.layer.add(name="b", type="Bias").blobs.add()
    bias.shape.dim.append(23)  # the bias of axis 2 needs 24 values, one per row
    bias.data.extend([0.5] * 23)
    write_caffemodel(model, caffemodel)
    with pytest.raises(SnapshotError) as refused:
        OpenCVEngine(prototxt, caffemodel, output_blob="depth", rule=ANY_OUTPUT)
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"{caffemodel}: does not match")
    # The shared weight check (caffe.shapes) knows Bias' shape rule and refuses it first.
    assert "layer 'b' weights are 23, the prototxt needs 24" in message


def test_a_legacy_v1_net_needing_a_correction_is_upgraded_for_opencv(tmp_path):
    # The catalogue's lrn_across (LRN k 3) in the V1 form: the type enums cannot name the
    # private type, so OpenCV reads the definition upgraded to the current form.
    folder = CATALOGUE / "lrn_across"
    text = (folder / "lrn_across.prototxt").read_text()
    lrn = re.search(r"lrn_param \{[^}]*\}", text)[0]
    prototxt = tmp_path / "v1.prototxt"
    prototxt.write_text(
        'name: "v1"\ninput: "data"\ninput_dim: 1 input_dim: 3 input_dim: 24 input_dim: 32\n'
        'layers { name: "pre" type: CONVOLUTION bottom: "data" top: "pre" blobs_lr: 1\n'
        '  blobs_lr: 2 weight_decay: 1 weight_decay: 0\n'
        '  convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }\n'
        f'layers {{ name: "x" type: LRN bottom: "pre" top: "x" {lrn} }}\n'
        'layers { name: "head" type: CONVOLUTION bottom: "x" top: "depth"\n'
        '  convolution_param { num_output: 1 kernel_size: 1 pad: 0 } }\n')
    corrected, swapped = corrected_definition(prototxt.read_text())
    assert swapped == [("x", "LRN", "DepthEvalCaffeLRN")] and "layers" not in corrected
    for blob in ("x", "depth"):
        engine = OpenCVEngine(prototxt, folder / "lrn_across.caffemodel", output_blob=blob,
                              rule=ANY_OUTPUT)
        expected = np.load(folder / f"{blob}.npy")
        got = engine.forward(np.load(folder / "input.npy"))
        assert np.max(np.abs(got - expected)) < 1e-4 * np.ptp(expected), blob


def test_only_the_layers_that_need_it_are_swapped_and_the_rest_of_the_text_is_kept():
    text = (CATALOGUE / "lrn_across" / "lrn_across.prototxt").read_text()
    corrected, swapped = corrected_definition(text)
    assert swapped == [("x", "LRN", "DepthEvalCaffeLRN")]
    assert corrected.replace('"DepthEvalCaffeLRN"', '"LRN"') == text
    within = (CATALOGUE / "lrn_within" / "lrn_within.prototxt").read_text()
    assert corrected_definition(within) == (None, [])


@pytest.mark.parametrize("output_blob", ["aux", "depth"])
def test_any_top_of_a_multi_top_layer_is_read_by_its_name(output_blob):
    folder = CATALOGUE / "slice_depth_second"
    engine = OpenCVEngine(folder / "slice_depth_second.prototxt",
                          folder / "slice_depth_second.caffemodel", output_blob=output_blob,
                          rule=ANY_OUTPUT)
    expected = np.load(folder / f"{output_blob}.npy")
    got = engine.forward(np.load(folder / "input.npy"))
    assert np.max(np.abs(got - expected)) < 1e-4 * np.ptp(expected)


def test_a_failed_forward_pass_names_the_caffemodel_and_the_layer():
    folder = CATALOGUE / "ip_reshape"
    engine = OpenCVEngine(folder / "ip_reshape.prototxt", folder / "ip_reshape.caffemodel",
                          output_blob="depth", rule=ANY_OUTPUT)
    with pytest.raises(SnapshotError) as failed:  # an input the InnerProduct was not made for
        engine.forward(np.zeros((1, 3, 12, 16), np.float32))
    message = str(failed.value)
    assert "\n" not in message and str(folder / "ip_reshape.caffemodel") in message
    assert "layer 'ip' (InnerProduct)" in message


ENGINES = ["opencv", pytest.param("onnxruntime", marks=pytest.mark.skipif(
    not HAVE_ONNXRUNTIME, reason="onnxruntime not installed"))]


@pytest.mark.parametrize("batch", ["1", "2"])
@pytest.mark.parametrize("engine", ENGINES)
def test_a_network_computing_nan_is_refused_per_image(workspace, engine, batch, capsys):
    # sqrt(2 + R - G + B / 100): finite on the grey image (input in [-127, 128]), NaN where a
    # colour pixel has G well above R (Caffe's Power of a negative base to a fractional power
    # is NaN, as C's pow).
    _snapshot(workspace / "snapshots", "nan_net", """
layer { name: "root" type: "Power" bottom: "pre" top: "depth" power_param { power: 0.5 } }
""", weights=(1.0, -1.0, 0.01), conv_bias=2.0)
    with _no_warnings():
        # In a batch of two, the other image is evaluated all the same.
        status = evaluate(workspace, "--engine", engine, "--batch", batch, "--quiet")
    captured = capsys.readouterr()
    assert status == 1, captured.err
    refusals = [line for line in captured.err.splitlines() if "NaN" in line]
    assert len(refusals) == 1, captured.err  # the colour image, one line
    assert re.fullmatch(r"error: image skipped: \S*/00000_colors\.png: output blob 'depth' has "
                        r"[1-9]\d* NaN or infinite values \(of \d+\)", refusals[0]), refusals
    assert "Traceback" not in captured.err and "RuntimeWarning" not in captured.err
    snapshots = results(workspace)["snapshots"]
    assert GOOD in snapshots and "nan_net" in snapshots


class _no_warnings:
    """No warning (numpy's RuntimeWarning on NaN) escapes the block."""

    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings(record=True)
        self._caught = self._catch.__enter__()
        warnings.simplefilter("always")

    def __exit__(self, *exc):
        self._catch.__exit__(*exc)
        leaked = [str(w.message) for w in self._caught]
        assert not leaked, leaked


def test_batchnorm_with_a_zero_scale_factor_zeroes_mean_and_variance_as_caffe_does(tmp_path):
    # Caffe 1.0's batch_norm_layer.cpp: scale_factor = blobs[2] == 0 ? 0 : 1 / blobs[2], so a
    # zero factor (not one) scales the stored mean and variance: y = x / sqrt(eps).
    folder = CATALOGUE / "batchnorm"
    model = read_caffemodel(folder / "batchnorm.caffemodel")
    layer = next(one for one in model.layer if one.name == "x")
    layer.blobs[2].data[0] = 0.0
    write_caffemodel(model, tmp_path / "zero.caffemodel")
    batch = np.load(folder / "input.npy")
    engines = {blob: OpenCVEngine(folder / "batchnorm.prototxt", tmp_path / "zero.caffemodel",
                                  output_blob=blob, rule=ANY_OUTPUT) for blob in ("pre", "x")}
    eps = 0.01  # batchnorm.prototxt's batch_norm_param
    expected = engines["pre"].forward(batch) / np.sqrt(eps)
    assert np.max(np.abs(engines["x"].forward(batch) - expected)) < 1e-5 * np.ptp(expected)
