"""Focused checks of the ONNX translation of Caffe layer types beyond the catalogue's cases:
tie order, zero factors, parameter variants.  References are Caffe 1.0's forward loops in
numpy, or (ArgMax ties, BatchNorm with a zero factor) blobs real Caffe 1.0 computed."""

from __future__ import annotations

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from depth_eval.caffe.onnx import caffe_to_onnx  # noqa: F401
from depth_eval.caffe.proto import NetParameter, read_prototxt  # noqa: F401
from depth_eval.caffe.shapes import infer_shapes  # noqa: F401
from depth_eval.errors import UnsupportedLayerError  # noqa: F401
from test_onnx_engine import caffe_pool_reference  # noqa: E402

TOLERANCE = 1e-5


def _net(tmp_path, input_shape, layers: str, weights=None):
    dims = "".join(f" dim: {d}" for d in input_shape)
    path = tmp_path / "net.prototxt"
    path.write_text(f'name: "t"\nlayer {{ name: "data" type: "Input" top: "X" '
                    f'input_param {{ shape {{{dims} }} }} }}\n{layers}\n')
    net = read_prototxt(path)
    model = NetParameter(name="t")
    for name, arrays in (weights or {}).items():
        layer = model.layer.add(name=name)
        for array in arrays:
            blob = layer.blobs.add()
            blob.shape.dim.extend(np.shape(array))
            blob.data.extend(np.asarray(array, np.float32).ravel().tolist())
    return net, model


def _run(net, model, x, outputs):
    onnx_model = caffe_to_onnx(net, model, outputs)
    session = ort.InferenceSession(onnx_model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(outputs, {"X": np.asarray(x, np.float32)})


# The blob of the real-Caffe check of ties and of BatchNorm's zero factor (2 x 3 x 2 x 2).
TIES = np.array([[[[1, 1], [2, 0]], [[1, 1], [0, 0]], [[1, 5], [2, 0]]],
                 [[[3, 3], [3, 3]], [[3, 3], [3, 3]], [[0, 0], [0, 0]]]], np.float32)


def test_argmax_ties_and_forms_match_caffe(tmp_path):
    net, model = _net(tmp_path, (1, 3, 2, 2), "\n".join([
        'layer { name: "a" type: "ArgMax" bottom: "X" top: "a" argmax_param { top_k: 2 } }',
        'layer { name: "b" type: "ArgMax" bottom: "X" top: "b" '
        'argmax_param { top_k: 2 out_max_val: true } }',
        'layer { name: "c" type: "ArgMax" bottom: "X" top: "c" argmax_param { top_k: 2 axis: 1 } }',
        'layer { name: "d" type: "ArgMax" bottom: "X" top: "d" '
        'argmax_param { axis: 1 out_max_val: true } }']))
    a, b, c, d = _run(net, model, TIES, ["a", "b", "c", "d"])
    # Real Caffe 1.0 (CPU) on TIES: of equal values the larger index comes first.
    np.testing.assert_array_equal(a.ravel(), [9, 10, 7, 6])
    assert a.shape == (2, 1, 2, 1)
    np.testing.assert_array_equal(b.ravel(), [9, 10, 5, 2, 7, 6, 3, 3])
    np.testing.assert_array_equal(c.ravel(), [2, 2, 2, 2, 1, 1, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(d, TIES.max(axis=1, keepdims=True))


@pytest.mark.parametrize("factor", [0.0, 2.5])
def test_batchnorm_moving_average_factor(tmp_path, factor):
    mean, var, eps = np.array([1, 2, 3], np.float32), np.array([4, 5, 6], np.float32), 0.5
    net, model = _net(tmp_path, (1, 3, 2, 2),
                      'layer { name: "bn" type: "BatchNorm" bottom: "X" top: "Y" '
                      'batch_norm_param { use_global_stats: true eps: 0.5 } }',
                      {"bn": [mean, var, [factor]]})
    (y,) = _run(net, model, TIES, ["Y"])
    # Caffe scales the statistics by 1 / factor, and by 0 (not 1) when the factor is 0:
    # real Caffe gives x / sqrt(eps) there (1 -> 1.4142135, 5 -> 7.0710678).
    scale = 0.0 if factor == 0 else 1.0 / factor
    want = (TIES - (mean * scale)[:, None, None]) / np.sqrt(var * scale + eps)[:, None, None]
    np.testing.assert_allclose(y, want, rtol=TOLERANCE, atol=TOLERANCE)
    if factor == 0:
        assert y[0, 2, 0, 1] == pytest.approx(7.071067810058594)


def test_batchnorm_with_own_statistics(tmp_path):
    net, model = _net(tmp_path, (1, 3, 2, 2),
                      'layer { name: "bn" type: "BatchNorm" bottom: "X" top: "Y" '
                      'batch_norm_param { use_global_stats: false eps: 0.5 } }',
                      {"bn": [np.zeros(3), np.ones(3), [1.0]]})
    (y,) = _run(net, model, TIES[:1], ["Y"])
    # Caffe's BatchNorm without global statistics: the channel's own mean and biased
    # variance over the image, divided as sqrt(var + eps).
    x = TIES[:1].astype(np.float64)
    centred = x - x.mean(axis=(2, 3), keepdims=True)
    want = centred / np.sqrt((centred ** 2).mean(axis=(2, 3), keepdims=True) + 0.5)
    np.testing.assert_allclose(y, want, rtol=TOLERANCE, atol=TOLERANCE)
    assert y[0, 2, 0, 1] == pytest.approx(1.5, rel=1e-6)  # (5 - 2) / sqrt(3.5 + 0.5)


def test_batchnorm_with_batch_statistics_needs_spatial_axes(tmp_path):
    # use_global_stats: false normalises each image's channels by their own statistics (see
    # test_batch_norm_statistics.py); a blob with one value per channel has none.
    net, model = _net(tmp_path, (1, 3, 2, 2),
                      'layer { name: "ip" type: "InnerProduct" bottom: "X" top: "F" '
                      'inner_product_param { num_output: 3 } } '
                      'layer { name: "bn" type: "BatchNorm" bottom: "F" top: "Y" '
                      'batch_norm_param { use_global_stats: false } }',
                      {"ip": [np.ones((3, 12)), np.zeros(3)],
                       "bn": [np.zeros(3), np.ones(3), [1.0]]})
    with pytest.raises(UnsupportedLayerError) as info:
        caffe_to_onnx(net, model, ["Y"])
    message = str(info.value)
    assert "\n" not in message and "'bn'" in message and "use_global_stats" in message


@pytest.mark.parametrize("operation, axis, coeff", [
    ("SUM", 1, 1.0), ("ASUM", -1, 2.0), ("SUMSQ", 2, 1.0), ("MEAN", 1, 3.0)])
def test_reduction(tmp_path, operation, axis, coeff):
    net, model = _net(tmp_path, (1, 3, 4, 5),
                      f'layer {{ name: "r" type: "Reduction" bottom: "X" top: "Y" '
                      f'reduction_param {{ operation: {operation} axis: {axis} '
                      f'coeff: {coeff} }} }}')
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 5)).astype(np.float32)
    (y,) = _run(net, model, x, ["Y"])
    first = axis % 4
    rows = x.reshape(x.shape[:first] + (-1,))
    want = {"SUM": rows.sum(-1), "ASUM": np.abs(rows).sum(-1), "SUMSQ": (rows ** 2).sum(-1),
            "MEAN": rows.mean(-1)}[operation] * coeff
    assert y.shape == x.shape[:first]
    np.testing.assert_allclose(y, want, rtol=TOLERANCE, atol=TOLERANCE)


def test_exp_log_default_base(tmp_path):
    net, model = _net(tmp_path, (1, 2, 3, 3), "\n".join([
        'layer { name: "e" type: "Exp" bottom: "X" top: "E" exp_param { shift: 0.5 } }',
        'layer { name: "l" type: "Log" bottom: "E" top: "L" log_param { scale: 2 } }',
        'layer { name: "t" type: "Threshold" bottom: "X" top: "T" '
        'threshold_param { threshold: 0.25 } }',
        'layer { name: "b" type: "BNLL" bottom: "X" top: "B" }']))
    x = np.array([-20, -1, 0, 0.25, 0.5, 1, 3, 20, 0.2] * 2, np.float32).reshape(1, 2, 3, 3)
    e, l_, t, b = _run(net, model, x, ["E", "L", "T", "B"])
    np.testing.assert_allclose(e, np.exp(0.5) * np.exp(x), rtol=TOLERANCE)
    np.testing.assert_allclose(l_, np.log(2 * e.astype(np.float64)), rtol=TOLERANCE,
                               atol=TOLERANCE)
    np.testing.assert_array_equal(t, (x > 0.25).astype(np.float32))  # strictly greater
    want = np.where(x > 0, x + np.log1p(np.exp(-x.astype(np.float64))),
                    np.log1p(np.exp(np.minimum(x, 0).astype(np.float64))))
    np.testing.assert_allclose(b, want, rtol=TOLERANCE, atol=1e-7)


def test_slice_dim_crop_one_offset_tile(tmp_path):
    net, model = _net(tmp_path, (1, 4, 6, 5), "\n".join([
        'layer { name: "s" type: "Slice" bottom: "X" top: "s0" top: "s1" top: "s2" '
        'slice_param { slice_dim: 2 } }',
        'layer { name: "ref" type: "Pooling" bottom: "X" top: "ref" '
        'pooling_param { pool: MAX kernel_size: 2 stride: 2 } }',
        'layer { name: "c" type: "Crop" bottom: "X" bottom: "ref" top: "C" '
        'crop_param { offset: 1 } }',
        'layer { name: "t" type: "Tile" bottom: "X" top: "T" tile_param { axis: 2 tiles: 3 } }']))
    x = np.arange(2 * 4 * 6 * 5, dtype=np.float32).reshape(2, 4, 6, 5)
    s0, s1, s2, c, t = _run(net, model, x, ["s0", "s1", "s2", "C", "T"])
    for i, part in enumerate((s0, s1, s2)):
        np.testing.assert_array_equal(part, x[:, :, 2 * i:2 * i + 2])
    np.testing.assert_array_equal(c, x[:, :, 1:4, 1:4])  # ref is N x 4 x 3 x 3
    np.testing.assert_array_equal(t, np.tile(x, (1, 1, 3, 1)))


def _spp_reference(x, height, method):
    n, c, h, w = x.shape
    parts = []
    for level in range(height):
        bins = 2 ** level
        kh, kw = -(-h // bins), -(-w // bins)
        pad = ((kh * bins - h + 1) // 2, (kw * bins - w + 1) // 2)
        parts.append(caffe_pool_reference(x, method, (kh, kw), (kh, kw), pad))
    if height == 1:
        return parts[0]
    return np.concatenate([p.reshape(n, -1) for p in parts], axis=1)


@pytest.mark.parametrize("height, pool", [(1, "MAX"), (3, "MAX"), (3, "AVE")])
def test_spp_pyramid(tmp_path, height, pool):
    net, model = _net(tmp_path, (1, 2, 7, 9),
                      f'layer {{ name: "p" type: "SPP" bottom: "X" top: "Y" '
                      f'spp_param {{ pyramid_height: {height} pool: {pool} }} }}')
    x = np.random.default_rng(1).normal(size=(2, 2, 7, 9)).astype(np.float32)
    (y,) = _run(net, model, x, ["Y"])
    want = _spp_reference(x, height, pool)
    assert y.shape == want.shape and infer_shapes(net)["Y"] == (1,) + want.shape[1:]
    np.testing.assert_allclose(y, want, rtol=TOLERANCE, atol=TOLERANCE)


def test_im2col_stride_pad_dilation(tmp_path):
    net, model = _net(tmp_path, (1, 2, 6, 7),
                      'layer { name: "i" type: "Im2col" bottom: "X" top: "Y" convolution_param '
                      '{ kernel_h: 2 kernel_w: 3 stride: 2 pad: 1 dilation: 2 } }')
    x = np.random.default_rng(2).normal(size=(1, 2, 6, 7)).astype(np.float32)
    (y,) = _run(net, model, x, ["Y"])
    # Caffe's im2col_cpu: row (c * kh + i) * kw + j, zero outside the image.
    kh, kw, s, p, d = 2, 3, 2, 1, 2
    oh, ow = (6 + 2 * p - (d * (kh - 1) + 1)) // s + 1, (7 + 2 * p - (d * (kw - 1) + 1)) // s + 1
    want = np.zeros((1, 2 * kh * kw, oh, ow), np.float32)
    for c in range(2):
        for i in range(kh):
            for j in range(kw):
                for r in range(oh):
                    for q in range(ow):
                        hh, ww = r * s - p + i * d, q * s - p + j * d
                        if 0 <= hh < 6 and 0 <= ww < 7:
                            want[0, (c * kh + i) * kw + j, r, q] = x[0, c, hh, ww]
    np.testing.assert_array_equal(y, want)


def test_scale_second_bottom_with_bias_and_scalar_bias(tmp_path):
    bias = np.array([0.5, -1.0, 2.0], np.float32)
    net, model = _net(tmp_path, (1, 3, 2, 2), "\n".join([
        'layer { name: "g" type: "Pooling" bottom: "X" top: "g" '
        'pooling_param { pool: AVE global_pooling: true } }',
        'layer { name: "f" type: "Flatten" bottom: "g" top: "f" }',
        'layer { name: "s" type: "Scale" bottom: "X" bottom: "f" top: "S" '
        'scale_param { axis: 0 bias_term: true } }',
        'layer { name: "b" type: "Bias" bottom: "S" top: "B" bias_param { num_axes: 0 } }']),
        {"s": [bias.reshape(1, 3)], "b": [[0.25]]})
    model.layer[-1].blobs[0].ClearField("shape")  # a 0-axis blob, as Caffe stores a scalar
    x = np.random.default_rng(3).normal(size=(2, 3, 2, 2)).astype(np.float32)
    s, b = _run(net, model, x, ["S", "B"])
    # The bias learned over the batch axis (deploy batch 1) applies to every image.
    gate = x.mean(axis=(2, 3), keepdims=True)
    np.testing.assert_allclose(s, x * gate + bias.reshape(1, 3, 1, 1), rtol=TOLERANCE,
                               atol=TOLERANCE)
    np.testing.assert_allclose(b, s + 0.25, rtol=TOLERANCE, atol=TOLERANCE)


def test_shapes_follow_the_test_phase(tmp_path):
    net, _ = _net(tmp_path, (1, 3, 4, 4), "\n".join([
        'layer { name: "train" type: "Tile" bottom: "X" top: "Y" tile_param { tiles: 2 } '
        'include { phase: TRAIN } }',
        'layer { name: "test" type: "Tile" bottom: "X" top: "Y" tile_param { tiles: 3 } '
        'include { phase: TEST } }']))
    assert infer_shapes(net)["Y"] == (1, 9, 4, 4)
