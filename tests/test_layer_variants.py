"""Layer parameters where an engine computed other numbers than Caffe 1.0 (found by comparing
both engines with real Caffe on fuzzed variants of the catalogue's networks).  Each test writes
a small real network and restates Caffe's forward pass (src/caffe/layers/*.cpp) in numpy."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from caffemodel_factory import write_caffemodel_weights

from depth_eval.engines import opencv_fixes
from depth_eval.engines.base import ANY_OUTPUT
from depth_eval.engines.opencv import OpenCVEngine
from depth_eval.errors import UnsupportedLayerError

HAVE_ONNXRUNTIME = importlib.util.find_spec("onnxruntime") is not None
ENGINES = ["opencv", pytest.param("onnxruntime", marks=pytest.mark.skipif(
    not HAVE_ONNXRUNTIME, reason="onnxruntime not installed (pip install '.[fast]')"))]
# The catalogue's parity tolerance, relative to the range of the expected blob.
TOLERANCE = 1e-4

RNG = np.random.default_rng(20)
X = RNG.normal(size=(1, 4, 5, 7)).astype(np.float32)


def _network(folder, layers: str, weights=None, shape=X.shape):
    prototxt, caffemodel = folder / "net.prototxt", folder / "net.caffemodel"
    dims = " ".join(f"dim: {d}" for d in shape)
    prototxt.write_text(f'name: "variant"\nlayer {{ name: "data" type: "Input" top: "data" '
                        f'input_param {{ shape {{ {dims} }} }} }}\n{layers}')
    write_caffemodel_weights(prototxt, caffemodel, weights or {})
    return prototxt, caffemodel


def _forward(engine: str, files, blob: str, x=X) -> np.ndarray:
    if engine == "onnxruntime":
        from depth_eval.engines.onnx_runtime import OnnxRuntimeEngine as Engine
    else:
        Engine = OpenCVEngine
    return Engine(*files, output_blob=blob, rule=ANY_OUTPUT).forward(x)


def _assert_caffe(result, expected) -> None:
    assert result.shape == expected.shape
    value_range = float(np.ptp(expected)) or 1.0
    assert float(np.max(np.abs(result - expected))) / value_range < TOLERANCE


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("region", ["ACROSS_CHANNELS", "WITHIN_CHANNEL"])
def test_lrn_without_alpha_uses_caffes_default_of_one(tmp_path, engine, region):
    files = _network(tmp_path, f'layer {{ name: "n" type: "LRN" bottom: "data" top: "y" '
                               f'lrn_param {{ norm_region: {region} local_size: 3 }} }}')
    x = X.astype(np.float64)
    squares = np.pad(x * x, [(0, 0), (1, 1), (1, 1), (1, 1)])
    if region == "ACROSS_CHANNELS":  # k + alpha / n * the sum over n channels
        window = sum(squares[:, i:i + 4, 1:-1, 1:-1] for i in range(3))
        expected = x * (1.0 + window / 3) ** -0.75
    else:  # 1 + alpha * the n x n zero-padded box average
        box = sum(squares[:, 1:-1, i:i + 5, j:j + 7] for i in range(3) for j in range(3))
        expected = x * (1.0 + box / 9) ** -0.75
    _assert_caffe(_forward(engine, files, "y"), expected)


@pytest.mark.parametrize("engine", ENGINES)
def test_deconvolution_with_dilation_and_groups(tmp_path, engine):
    weights = RNG.normal(size=(4, 3, 3, 2)).astype(np.float32)  # C_in x C_out / group x kh x kw
    bias = np.array([0.5, -1.0, 2.0, 0.0, 1.0, 3.0], np.float32)
    files = _network(tmp_path, 'layer { name: "d" type: "Deconvolution" bottom: "data" top: "y" '
                               'convolution_param { num_output: 6 kernel_h: 3 kernel_w: 2 '
                               'stride: 2 pad: 1 dilation: 2 group: 2 } }',
                     {"d": [weights, bias]})
    # Caffe's col2im: input pixel (h, w) adds weight tap (i, j) at (h * 2 + i * 2, w * 2 + j * 2)
    # of the padded top, which is then cut by 1 on each side.
    full = np.zeros((1, 6, 2 * 4 + 2 * 2 + 1, 2 * 6 + 2 * 1 + 1))
    for c in range(4):
        group = c // 2
        for o in range(3):
            for i in range(3):
                for j in range(2):
                    full[0, group * 3 + o, 2 * i:2 * i + 9:2, 2 * j:2 * j + 13:2] += \
                        X[0, c].astype(np.float64) * weights[c, o, i, j]
    expected = full[:, :, 1:-1, 1:-1] + bias.reshape(1, 6, 1, 1)
    assert expected.shape == (1, 6, 11, 13)
    _assert_caffe(_forward(engine, files, "y"), expected)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("top", ["a", "b"])
def test_slice_without_points_and_unread_tops(tmp_path, engine, top):
    # Neither top is read by another layer: OpenCV alone returned the whole blob or failed.
    files = _network(tmp_path, 'layer { name: "s" type: "Slice" bottom: "data" top: "a" '
                               'top: "b" slice_param { axis: 3 } }', shape=(1, 4, 5, 8))
    x = RNG.normal(size=(1, 4, 5, 8)).astype(np.float32)
    expected = x[..., :4] if top == "a" else x[..., 4:]
    _assert_caffe(_forward(engine, files, top, x), expected)


@pytest.mark.parametrize("engine", ENGINES)
def test_scale_with_a_second_bottom_on_a_negative_axis(tmp_path, engine):
    factor = RNG.normal(size=(4, 5)).astype(np.float32)
    files = _network(tmp_path, 'layer { name: "p" type: "Parameter" top: "f" '
                               'parameter_param { shape { dim: 4 dim: 5 } } }\n'
                               'layer { name: "s" type: "Scale" bottom: "data" bottom: "f" '
                               'top: "y" scale_param { axis: -3 } }', {"p": [factor]})
    _assert_caffe(_forward(engine, files, "y"), X * factor[None, :, :, None])


@pytest.mark.parametrize("engine", ENGINES)
def test_mvn_after_an_inner_product_has_a_four_axis_top(tmp_path, engine):
    weights = RNG.normal(size=(6, 140)).astype(np.float32)
    files = _network(tmp_path, 'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "h" '
                               'inner_product_param { num_output: 6 bias_term: false } }\n'
                               'layer { name: "m" type: "MVN" bottom: "h" top: "y" '
                               'mvn_param { across_channels: true eps: 0.5 } }',
                     {"ip": [weights]})
    # Caffe reshapes MVN's top through num/channels/height/width: 1 x 6 becomes 1 x 6 x 1 x 1.
    h = X.reshape(1, 140).astype(np.float64) @ weights.T
    centred = h - h.mean()
    expected = (centred / (np.sqrt((centred ** 2).mean()) + 0.5)).reshape(1, 6, 1, 1)
    _assert_caffe(_forward(engine, files, "y"), expected)


@pytest.mark.skipif(not HAVE_ONNXRUNTIME, reason="onnxruntime not installed")
def test_layers_along_the_batch_axis_run_on_onnxruntime(tmp_path):
    files = _network(tmp_path, 'layer { name: "c" type: "Concat" bottom: "data" bottom: "data" '
                               'top: "twice" concat_param { axis: 0 } }\n'
                               'layer { name: "t" type: "Tile" bottom: "twice" top: "tiled" '
                               'tile_param { axis: 0 tiles: 2 } }\n'
                               'layer { name: "r" type: "Reduction" bottom: "tiled" top: "all" '
                               'reduction_param { operation: ASUM coeff: 0.5 } }')
    twice = _forward("onnxruntime", files, "twice")
    _assert_caffe(twice, np.concatenate([X, X]))
    total = _forward("onnxruntime", files, "all")
    assert total.shape == ()  # Caffe's Reduction over every axis: a 0-axis blob
    assert float(total) == pytest.approx(0.5 * 4 * np.abs(X.astype(np.float64)).sum(), rel=1e-6)
    # Two images at once: each runs as the definition's batch of one.
    pair = np.concatenate([X, 2 * X])
    _assert_caffe(_forward("onnxruntime", files, "twice", pair),
                  np.concatenate([X, X, 2 * X, 2 * X]))


def test_flatten_to_one_axis_is_refused_by_opencv_in_one_line(tmp_path):
    files = _network(tmp_path, 'layer { name: "f" type: "Flatten" bottom: "data" top: "y" '
                               'flatten_param { axis: 0 } }')
    with pytest.raises(UnsupportedLayerError) as refused:
        _forward("opencv", files, "y")
    message = str(refused.value)
    assert "\n" not in message and "layer 'f' (Flatten)" in message
    assert "axis 0" in message and "--engine onnxruntime" in message


def test_a_top_opencv_shapes_otherwise_is_refused_at_load(tmp_path, monkeypatch):
    # Without its correction OpenCV ignores the dilation of a Deconvolution (a smaller top).
    monkeypatch.delitem(opencv_fixes.RULES, "Deconvolution")
    weights = RNG.normal(size=(4, 2, 3, 3)).astype(np.float32)
    files = _network(tmp_path, 'layer { name: "d" type: "Deconvolution" bottom: "data" top: "y" '
                               'convolution_param { num_output: 2 kernel_size: 3 dilation: 2 '
                               'bias_term: false } }', {"d": [weights]})
    with pytest.raises(UnsupportedLayerError) as refused:
        _forward("opencv", files, "y")
    message = str(refused.value)
    assert "\n" not in message and "layer 'd' (Deconvolution)" in message
    assert "[1, 2, 7, 9], Caffe [1, 2, 9, 11]" in message and "--engine onnxruntime" in message


def test_opencv_convolutions_sum_as_caffe_does(tmp_path):
    # Pixels in the thesis' range through a 3 x 3 convolution and a Sigmoid: OpenCV's Winograd
    # convolution was 1.7e-4 of the range off there (the sigmoid's slope at 0 on a 1e-3 error).
    weights = RNG.normal(0, 0.25, size=(4, 3, 3, 3)).astype(np.float32)
    files = _network(tmp_path, 'layer { name: "c" type: "Convolution" bottom: "data" top: "c" '
                               'convolution_param { num_output: 4 kernel_size: 3 pad: 1 '
                               'bias_term: false } }\n'
                               'layer { name: "s" type: "Sigmoid" bottom: "c" top: "y" }',
                     {"c": [weights]}, shape=(1, 3, 24, 32))
    x = (RNG.uniform(0, 1, size=(1, 3, 24, 32)) * 255 - 127).astype(np.float32)
    padded = np.pad(x.astype(np.float64), [(0, 0), (0, 0), (1, 1), (1, 1)])
    conv = sum(np.einsum("chw,oc->ohw", padded[0, :, i:i + 24, j:j + 32], weights[:, :, i, j])
               for i in range(3) for j in range(3))[None]
    result = _forward("opencv", files, "y", x)
    error = float(np.max(np.abs(result - 1 / (1 + np.exp(-conv)))))
    assert error < 2e-5


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("axis", [1, 2, -1])
def test_transposed_inner_product_on_any_axis(tmp_path, engine, axis):
    k = {1: 140, 2: 35, -1: 7}[axis]
    weights = RNG.normal(size=(k, 3)).astype(np.float32)  # transpose: true stores K x N
    bias = np.array([1.0, -2.0, 0.5], np.float32)
    files = _network(tmp_path, f'layer {{ name: "ip" type: "InnerProduct" bottom: "data" '
                               f'top: "y" inner_product_param {{ num_output: 3 axis: {axis} '
                               f'transpose: true }} }}', {"ip": [weights, bias]})
    lead = X.shape[:axis % 4]
    expected = (X.reshape(*lead, k).astype(np.float64) @ weights + bias).reshape(*lead, 3)
    _assert_caffe(_forward(engine, files, "y"), expected)


def _pool_past_the_input(tmp_path, method: str):
    # Width 6, kernel 2, stride 3: Caffe's ceil rounding gives ceil(4 / 3) + 1 = 3 windows, the
    # last starting at column 6, past the input (rows: 2 windows, both inside).
    return _network(tmp_path, f'layer {{ name: "p" type: "Pooling" bottom: "data" top: "y" '
                              f'pooling_param {{ pool: {method} kernel_size: 2 stride: 3 }} }}',
                    shape=(1, 4, 5, 6))


@pytest.mark.skipif(not HAVE_ONNXRUNTIME, reason="onnxruntime not installed")
def test_a_max_window_past_the_input_gives_caffes_lowest_float(tmp_path):
    x = X[..., :6].copy()
    y = _forward("onnxruntime", _pool_past_the_input(tmp_path, "MAX"), "y", x)
    expected = np.full((1, 4, 2, 3), np.finfo(np.float32).min, np.float32)
    for i in range(2):
        for j in range(2):
            expected[..., i, j] = x[..., 3 * i:3 * i + 2, 3 * j:3 * j + 2].max(axis=(2, 3))
    np.testing.assert_array_equal(y, expected)


@pytest.mark.skipif(not HAVE_ONNXRUNTIME, reason="onnxruntime not installed")
def test_an_ave_window_past_the_input_divides_by_zero_as_caffe_does(tmp_path):
    files = _network(tmp_path, 'layer { name: "p" type: "Pooling" bottom: "data" top: "y" '
                               'pooling_param { pool: AVE kernel_h: 1 kernel_w: 2 stride: 3 } }',
                     shape=(1, 4, 4, 9))
    x = RNG.normal(size=(1, 4, 4, 9)).astype(np.float32)
    y = _forward("onnxruntime", files, "y", x)
    # Columns: ceil(7 / 3) + 1 = 4 windows, the last at column 9, the width: Caffe's empty sum
    # over a window clipped to nothing, 0 / 0.
    assert y.shape == (1, 4, 2, 4)
    assert np.isnan(y[..., 3]).all()
    np.testing.assert_allclose(y[..., :3], np.stack(
        [x[..., 0:4:3, 3 * j:3 * j + 2].mean(axis=3) for j in range(3)], axis=-1), rtol=1e-6)


def test_opencv_refuses_a_max_window_past_the_input(tmp_path):
    with pytest.raises(UnsupportedLayerError) as refused:
        _forward("opencv", _pool_past_the_input(tmp_path, "MAX"), "y", X[..., :6].copy())
    message = str(refused.value)
    assert "\n" not in message and "layer 'p' (Pooling)" in message
    assert "-FLT_MAX" in message and "--engine onnxruntime" in message


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("dims, axis, shape", [
    ("", 1, (1, 4, 5, 7)), ("dim: 1", 1, (1, 1, 4, 5, 7)), ("dim: 1", -1, (1, 4, 5, 7, 1))])
def test_reshape_that_replaces_no_axis(tmp_path, engine, dims, axis, shape):
    # num_axes 0: Caffe inserts the given axes at ``axis`` (none: the blob unchanged).
    files = _network(tmp_path, f'layer {{ name: "r" type: "Reshape" bottom: "data" top: "y" '
                               f'reshape_param {{ shape {{ {dims} }} axis: {axis} '
                               f'num_axes: 0 }} }}')
    _assert_caffe(_forward(engine, files, "y"), X.reshape(shape))


@pytest.mark.parametrize("engine", ENGINES)
def test_lrn_across_channels_in_place_is_caffes_factor_squared(tmp_path, engine):
    # Caffe writes (k + alpha / n * window)^-beta over its bottom, then multiplies that by
    # the (overwritten) bottom: in place the top is the factor squared.
    files = _network(tmp_path, 'layer { name: "p" type: "Power" bottom: "data" top: "x" }\n'
                               'layer { name: "n" type: "LRN" bottom: "x" top: "x" '
                               'lrn_param { local_size: 3 alpha: 2 beta: 0.75 k: 1 } }')
    x = X.astype(np.float64)
    squares = np.pad(x * x, [(0, 0), (1, 1), (0, 0), (0, 0)])
    factor = (1.0 + 2.0 / 3 * sum(squares[:, i:i + 4] for i in range(3))) ** -0.75
    _assert_caffe(_forward(engine, files, "x"), factor * factor)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("operation, expected", [
    ("SUM coeff: 3 coeff: -2", lambda a, b: -2 * b),  # the top (= a) is zeroed first
    ("MAX", lambda a, b: b),  # the top (= a) is filled with -FLT_MAX first
    ("PROD", lambda a, b: a * b)])  # element by element: in place changes nothing
def test_eltwise_in_place_erases_its_first_bottom_as_caffe_does(tmp_path, engine, operation,
                                                                 expected):
    weights = RNG.normal(size=(4, 4, 1, 1)).astype(np.float32)
    files = _network(tmp_path, 'layer { name: "c" type: "Convolution" bottom: "data" top: "b" '
                               'convolution_param { num_output: 4 kernel_size: 1 '
                               'bias_term: false } }\n'
                               'layer { name: "r" type: "ReLU" bottom: "data" top: "a" }\n'
                               f'layer {{ name: "e" type: "Eltwise" bottom: "a" bottom: "b" '
                               f'top: "a" eltwise_param {{ operation: {operation} }} }}',
                     {"c": [weights]})
    a = np.maximum(X, 0).astype(np.float64)
    b = np.einsum("nchw,oc->nohw", X.astype(np.float64), weights[:, :, 0, 0])
    _assert_caffe(_forward(engine, files, "a"), expected(a, b))


def test_opencv_gives_an_intermediate_top_that_it_would_fuse(tmp_path):
    # OpenCV fuses the first Power into the Convolution; asking for that Power's own top then
    # failed one of its assertions at every forward pass.
    weights = RNG.normal(size=(4, 4, 3, 3)).astype(np.float32)
    files = _network(tmp_path, 'layer { name: "c" type: "Convolution" bottom: "data" top: "c" '
                               'convolution_param { num_output: 4 kernel_size: 3 pad: 2 '
                               'dilation: 2 bias_term: false } }\n'
                               'layer { name: "p" type: "Power" bottom: "c" top: "p" '
                               'power_param { scale: 0.5 shift: 0.1 } }\n'
                               'layer { name: "q" type: "Power" bottom: "p" top: "q" '
                               'power_param { scale: 0.5 shift: 0.1 } }',
                     {"c": [weights]})
    padded = np.pad(X.astype(np.float64), [(0, 0), (0, 0), (2, 2), (2, 2)])
    conv = sum(np.einsum("nchw,oc->nohw", padded[:, :, 2 * i:2 * i + 5, 2 * j:2 * j + 7],
                         weights[:, :, i, j]) for i in range(3) for j in range(3))
    _assert_caffe(_forward("opencv", files, "p"), 0.5 * conv + 0.1)
