"""The onnxruntime engine: Caffe -> ONNX translation checked against Caffe's blobs and OpenCV.

Tolerance everywhere: max |difference| / (max - min of the reference) <= 1e-4.  The thesis
networks in ``prototxt/`` (random weights) run for the gradient networks and the refining
``norm_abs`` network by default; set ``DEPTH_EVAL_FULL_NETS=1`` for all of them.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from depth_eval.caffe import onnx as onnx_translate  # noqa: F401
from depth_eval.caffe.onnx import caffe_to_onnx  # noqa: F401
from depth_eval.caffe.proto import NetParameter, read_caffemodel, read_prototxt, write_caffemodel  # noqa: F401
from depth_eval.engines.base import ANY_OUTPUT  # noqa: F401
from depth_eval.engines.onnx_cache import ORPHAN_AGE_S, Entry, optimised_key  # noqa: F401
from depth_eval.engines.onnx_runtime import OnnxRuntimeEngine  # noqa: F401
from depth_eval.errors import DepthEvalError, EngineUnavailableError, UnsupportedLayerError  # noqa: F401


def any_output_engine(*args, **options):
    """The onnxruntime engine reading any blob of any network (these tests' nets)."""
    options.setdefault("rule", ANY_OUTPUT)
    return OnnxRuntimeEngine(*args, **options)

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "golden"
GOLDEN_NETS = GOLDEN / "nets"
SNAPSHOTS = [GOLDEN / "e2e" / "snapshots" / "tiny_global_context_network_abs",
             GOLDEN / "e2e" / "snapshots" / "tiny_refining_network_norm_abs",
             GOLDEN / "e2e" / "snapshots_log" / "tiny_refining_network_log_abs"]
PROTOTXT_DIR = ROOT / "prototxt"
TOLERANCE = 1e-4
THREADS = 2


def rel_err(actual, expected) -> float:
    expected = np.asarray(expected, np.float64)
    scale = float(expected.max() - expected.min()) or float(np.abs(expected).max()) or 1.0
    return float(np.abs(np.asarray(actual, np.float64) - expected).max()) / scale


def session(model, threads: int = THREADS):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def run_onnx(prototxt, caffemodel, outputs, feed, batch=None):
    model = caffe_to_onnx(read_prototxt(prototxt), read_caffemodel(caffemodel), outputs, batch)
    return dict(zip(outputs, session(model).run(outputs, feed)))


def opencv_layer_names(net, cv_net) -> dict[str, str]:
    """Blob -> OpenCV name of the last layer writing it.

    OpenCV lists the layers in prototxt order (Input layers left out) but may rename some
    (a Convolution takes its top's name), so names are matched by position.
    """
    layers = [layer for layer in net.layer if layer.type != "Input"]
    cv_names = list(cv_net.getLayerNames())
    assert len(cv_names) == len(layers)
    return {top: cv_name for layer, cv_name in zip(layers, cv_names) for top in layer.top}


def run_opencv(prototxt, caffemodel, blobs, x, input_name="X"):
    cv_net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    names = opencv_layer_names(read_prototxt(prototxt), cv_net)
    cv_net.setInput(x, input_name)
    return dict(zip(blobs, cv_net.forward([names[b] for b in blobs])))


def random_input(shape, seed=0, scale=50.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Tiny hand-written networks

def write_net(directory: Path, name: str, layers: str, input_shape, weights=None):
    """A prototxt (Input layer 'data' -> blob 'X', then ``layers``) and its caffemodel."""
    dims = "".join(f" dim: {d}" for d in input_shape)
    text = (f'name: "{name}"\nlayer {{ name: "data" type: "Input" top: "X" '
            f'input_param {{ shape {{{dims} }} }} }}\n{layers}\n')
    prototxt = directory / f"{name}.prototxt"
    prototxt.write_text(text)
    types = {layer.name: layer.type for layer in read_prototxt(prototxt).layer}
    model = NetParameter(name=name)
    for layer_name, arrays in (weights or {}).items():
        layer = model.layer.add(name=layer_name, type=types[layer_name])
        for array in arrays:
            blob = layer.blobs.add()
            blob.shape.dim.extend(np.shape(array))
            blob.data.extend(np.asarray(array, np.float32).ravel().tolist())
    caffemodel = directory / f"{name}.caffemodel"
    write_caffemodel(model, caffemodel)
    return prototxt, caffemodel


def layer(name, type_, bottom, top, params=""):
    bottoms = "".join(f' bottom: "{b}"' for b in ([bottom] if isinstance(bottom, str) else bottom))
    tops = "".join(f' top: "{t}"' for t in ([top] if isinstance(top, str) else top))
    return f'layer {{ name: "{name}" type: "{type_}"{bottoms}{tops} {params} }}'


def caffe_pool_reference(x, method, kernel, stride, pad, ceil_mode=True):
    """Caffe 1.0's PoolingLayer::Forward_cpu, loop for loop (MAX / AVE, N x C x H x W)."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    rnd = np.ceil if ceil_mode else np.floor
    oh = int(rnd((h + 2 * ph - kh) / sh)) + 1
    ow = int(rnd((w + 2 * pw - kw) / sw)) + 1
    if ph or pw:
        if (oh - 1) * sh >= h + ph:
            oh -= 1
        if (ow - 1) * sw >= w + pw:
            ow -= 1
    out = np.empty((n, c, oh, ow), np.float64)
    for i in range(oh):
        for j in range(ow):
            hs, ws = i * sh - ph, j * sw - pw
            he, we = min(hs + kh, h + ph), min(ws + kw, w + pw)
            size = (he - hs) * (we - ws)
            hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
            window = x[:, :, hs:he, ws:we]
            if method == "MAX":
                out[:, :, i, j] = window.max(axis=(2, 3))
            else:
                out[:, :, i, j] = window.sum(axis=(2, 3), dtype=np.float64) / size
    return out


POOL_CASES = [  # (pooling_param, (H, W)); comments: what the case exercises
    ("pool: MAX kernel_size: 3 stride: 2", (8, 11)),                     # ceil rounding
    ("pool: MAX kernel_size: 2 stride: 2 pad: 1", (5, 7)),               # last-window rule
    ("pool: AVE kernel_size: 3 stride: 2 pad: 1", (6, 9)),               # divisor up to in+pad
    ("pool: AVE kernel_size: 2 stride: 2 pad: 1", (5, 7)),               # rule + AVE
    ("pool: AVE kernel_size: 3 stride: 2", (8, 11)),                     # ceil, no pad
    ("pool: AVE kernel_size: 3 stride: 1 pad: 2", (4, 5)),               # pad 2 both sides
    ("pool: AVE kernel_size: 4 stride: 3 pad: 2", (9, 13)),              # rule in W only
    ("pool: MAX kernel_size: 2 stride: 3 pad: 1", (8, 8)),               # rows never read
    ("pool: AVE kernel_size: 2 stride: 3 pad: 1", (8, 8)),
    ("pool: MAX kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0", (7, 6)),
    ("pool: AVE kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 3 pad_h: 1 pad_w: 1", (7, 10)),
    ("pool: AVE global_pooling: true", (5, 7)),
    ("pool: MAX global_pooling: true", (5, 7)),
]


def _pool_geometry(params: str, h: int, w: int):
    values = dict(zip(params.split()[::2], params.split()[1::2]))
    if "global_pooling:" in values:
        return (h, w), (1, 1), (0, 0)
    k = int(values.get("kernel_size:", 0))
    s = int(values.get("stride:", 1))
    p = int(values.get("pad:", 0))
    kernel = (int(values.get("kernel_h:", k)), int(values.get("kernel_w:", k)))
    stride = (int(values.get("stride_h:", s)), int(values.get("stride_w:", s)))
    pad = (int(values.get("pad_h:", p)), int(values.get("pad_w:", p)))
    return kernel, stride, pad


@pytest.mark.parametrize("params,size", POOL_CASES, ids=[f"{p} {s}" for p, s in POOL_CASES])
def test_pooling_matches_caffe_and_opencv(tmp_path, params, size):
    h, w = size
    prototxt, caffemodel = write_net(
        tmp_path, "pool", layer("pool", "Pooling", "X", "Y", f"pooling_param {{ {params} }}"),
        (1, 3, h, w))
    x = random_input((1, 3, h, w), seed=h * w)
    ours = run_onnx(prototxt, caffemodel, ["Y"], {"X": x})["Y"]
    reference = caffe_pool_reference(x, params.split()[1], *_pool_geometry(params, h, w))
    assert ours.shape == reference.shape
    assert rel_err(ours, reference) < 1e-6
    theirs = run_opencv(prototxt, caffemodel, ["Y"], x)["Y"]
    assert ours.shape == theirs.shape
    assert rel_err(ours, theirs) < TOLERANCE


def test_pooling_floor_round_mode(tmp_path):
    """round_mode (newer Caffe) against the reference loops; OpenCV does not read the field."""
    params = "pool: AVE kernel_size: 3 stride: 2 pad: 1 round_mode: FLOOR"
    prototxt, caffemodel = write_net(
        tmp_path, "floor", layer("pool", "Pooling", "X", "Y", f"pooling_param {{ {params} }}"),
        (1, 2, 6, 9))
    x = random_input((1, 2, 6, 9))
    ours = run_onnx(prototxt, caffemodel, ["Y"], {"X": x})["Y"]
    reference = caffe_pool_reference(x, "AVE", (3, 3), (2, 2), (1, 1), ceil_mode=False)
    assert ours.shape == reference.shape == (1, 2, 3, 5)
    assert rel_err(ours, reference) < 1e-6


MVN_CASES = ["", "across_channels: true normalize_variance: false",
             "across_channels: true", "normalize_variance: false", "eps: 0.01",
             "across_channels: true eps: 0.001"]


@pytest.mark.parametrize("params", MVN_CASES)
def test_mvn(tmp_path, params):
    prototxt, caffemodel = write_net(
        tmp_path, "mvn", layer("mvn", "MVN", "X", "Y", f"mvn_param {{ {params} }}"),
        (2, 3, 5, 6))
    # A small spread (std ~ 1e-2) so that where eps goes matters; first around an offset,
    # where Caffe's centred variance stays exact (checked against numpy only: OpenCV's MVN
    # loses ~1 % there to float32 cancellation), then around 0 against OpenCV too.
    noise = random_input((2, 3, 5, 6), scale=0.01)
    across = "across_channels: true" in params
    axes = (1, 2, 3) if across else (2, 3)
    for offset in (3.0, 0.0):
        x = (offset + noise).astype(np.float32)
        ours = run_onnx(prototxt, caffemodel, ["Y"], {"X": x})["Y"]
        x64 = x.astype(np.float64)
        expected = x64 - x64.mean(axis=axes, keepdims=True)
        if "normalize_variance: false" not in params:
            eps = float(params.split("eps:")[1].split()[0]) if "eps:" in params else 1e-9
            expected /= np.sqrt((expected ** 2).mean(axis=axes, keepdims=True)) + eps
        assert rel_err(ours, expected) < TOLERANCE, offset
    if "eps:" in params:
        return  # OpenCV 4.14 computes (x - mean) / sqrt(var + eps): only Caffe's formula here
    theirs = np.concatenate([run_opencv(prototxt, caffemodel, ["Y"], x[i:i + 1])["Y"]
                             for i in range(2)])
    assert rel_err(ours, theirs) < TOLERANCE


POWER_CASES = ["power: 2 shift: 1.5", "power: 2 scale: -0.5 shift: 3", "power: 1 scale: 0.02",
               "power: 3 scale: 0.1 shift: 0.5", "shift: 2", ""]


@pytest.mark.parametrize("params", POWER_CASES)
def test_power(tmp_path, params):
    prototxt, caffemodel = write_net(
        tmp_path, "power", layer("power", "Power", "X", "Y", f"power_param {{ {params} }}"),
        (1, 2, 4, 5))
    x = random_input((1, 2, 4, 5), scale=2.0)
    values = dict(zip(params.split()[::2], map(float, params.split()[1::2])))
    expected = (values.get("shift:", 0.0) + values.get("scale:", 1.0) * x.astype(np.float64)) \
        ** values.get("power:", 1.0)
    ours = run_onnx(prototxt, caffemodel, ["Y"], {"X": x})["Y"]
    assert rel_err(ours, expected) < 1e-6
    theirs = run_opencv(prototxt, caffemodel, ["Y"], x)["Y"]
    assert rel_err(ours, theirs) < TOLERANCE


@pytest.mark.parametrize("params,channels", [
    ("local_size: 5 alpha: 0.01 beta: 0.75", 7),
    ("local_size: 5 alpha: 0.01 beta: 0.75", 400),  # wide: the ONNX LRN operator
    ("local_size: 3 alpha: 2 beta: 0.5 k: 2", 7),
    ("local_size: 3 alpha: 0.5 beta: 0.75 norm_region: WITHIN_CHANNEL", 7)])
def test_lrn(tmp_path, params, channels):
    shape = (1, channels, 6, 5)
    prototxt, caffemodel = write_net(
        tmp_path, "lrn", layer("lrn", "LRN", "X", "Y", f"lrn_param {{ {params} }}"), shape)
    x = random_input(shape, scale=3.0)
    ours = run_onnx(prototxt, caffemodel, ["Y"], {"X": x})["Y"]
    values = dict(zip(params.split()[::2], params.split()[1::2]))
    size, alpha, beta = int(values["local_size:"]), float(values["alpha:"]), \
        float(values["beta:"])
    k = float(values.get("k:", 1.0))
    sq = np.pad(x.astype(np.float64) ** 2, [(0, 0)] + [((size - 1) // 2,) * 2] * 3)
    if "WITHIN_CHANNEL" in params:  # Caffe: (1 + alpha / size^2 * box sum) ^ -beta, no k
        sq = sq[:, (size - 1) // 2:sq.shape[1] - (size - 1) // 2]
        box = sum(sq[:, :, i:i + 6, j:j + 5] for i in range(size) for j in range(size))
        expected = x * (1 + alpha / size ** 2 * box) ** -beta
    else:
        sq = sq[:, :, (size - 1) // 2:-((size - 1) // 2), (size - 1) // 2:-((size - 1) // 2)]
        window = sum(sq[:, i:i + channels] for i in range(size))
        expected = x * (k + alpha / size * window) ** -beta
    assert rel_err(ours, expected) < 1e-5
    if k != 1.0:
        return  # OpenCV 4.14 ignores Caffe's k (uses 1): only Caffe's formula here
    theirs = run_opencv(prototxt, caffemodel, ["Y"], x)["Y"]
    assert rel_err(ours, theirs) < TOLERANCE


def _zoo(directory):
    """Many layer types and parameter spellings in one small network."""
    rng = np.random.default_rng(7)

    def r(*shape):
        return rng.standard_normal(shape).astype(np.float32) * 0.3

    layers = "\n".join([
        layer("conv_a", "Convolution", "X", "a",
              "convolution_param { num_output: 6 kernel_h: 3 kernel_w: 2 stride_h: 2 "
              "stride_w: 1 pad_h: 1 pad_w: 2 dilation: 2 group: 2 bias_term: false }"),
        layer("relu_a", "ReLU", "a", "a", "relu_param { negative_slope: 0.1 }"),
        layer("deconv_b", "Deconvolution", "a", "b",
              "convolution_param { num_output: 4 kernel_size: 4 stride: 2 pad: 1 group: 2 }"),
        layer("split", "Split", "b", ["b1", "b2"]),
        layer("sig", "Sigmoid", "b1", "s1"),
        layer("tanh", "TanH", "b2", "t2"),
        layer("abs", "AbsVal", "b", "ab"),
        layer("sum", "Eltwise", ["s1", "t2", "ab"], "e1",
              "eltwise_param { operation: SUM coeff: 0.5 coeff: -2 coeff: 1 }"),
        layer("prod", "Eltwise", ["s1", "t2"], "e2", "eltwise_param { operation: PROD }"),
        # MAX spelled by number: depth_eval.caffe.proto names the value MAX_OP, OpenCV only knows MAX.
        layer("max", "Eltwise", ["e1", "e2"], "e3", "eltwise_param { operation: 2 }"),
        layer("concat", "Concat", ["e3", "b"], "c", "concat_param { concat_dim: 1 }"),
        layer("drop", "Dropout", "c", "c", "dropout_param { dropout_ratio: 0.3 }"),
        layer("pool", "Pooling", "c", "p", "pooling_param { pool: AVE kernel_size: 3 stride: 2 "
              "pad: 1 }"),
        layer("conv_d", "Convolution", "p", "d",
              "convolution_param { num_output: 3 kernel_size: 3 pad: 1 }"),
        layer("flat", "Flatten", "d", "f"),
        layer("ip", "InnerProduct", "f", "fc", "inner_product_param { num_output: 12 }"),
        layer("relu_fc", "ReLU", "fc", "fc"),
        layer("ip2", "InnerProduct", "fc", "fc2",
              "inner_product_param { num_output: 6 bias_term: false }"),
        layer("softmax", "Softmax", "fc2", "sm"),
        layer("reshape", "Reshape", "sm", "rs", "reshape_param { shape { dim: 0 dim: -1 "
              "dim: 2 } }"),
    ])
    weights = {"conv_a": [r(6, 2, 3, 2)], "deconv_b": [r(6, 2, 4, 4), r(4)],
               "conv_d": [r(3, 8, 3, 3), r(3)], "ip": [r(12, 3 * 5 * 13), r(12)],
               "ip2": [r(6, 12)]}
    return write_net(directory, "zoo", layers, (1, 4, 9, 10), weights)


def test_layer_zoo_matches_opencv(tmp_path):
    prototxt, caffemodel = _zoo(tmp_path)
    blobs = ["a", "b", "e1", "e2", "e3", "c", "p", "d", "fc", "rs"]
    x = random_input((1, 4, 9, 10), scale=1.0)
    ours = run_onnx(prototxt, caffemodel, blobs, {"X": x})
    theirs = run_opencv(prototxt, caffemodel, blobs, x)
    assert ours["rs"].shape == (1, 3, 2)
    for blob in blobs:
        assert ours[blob].shape == theirs[blob].shape, blob
        assert rel_err(ours[blob], theirs[blob]) < TOLERANCE, blob
    # In place: 'a' is the leaky ReLU's output (OpenCV's value for the last layer writing it),
    # so it keeps scaled-down negatives.
    assert ours["a"].min() < 0 < ours["a"].max() and ours["a"].min() > -0.5 * ours["a"].max()


def test_inner_product_transpose_and_deconv_dilation(tmp_path):
    """Checked against numpy: OpenCV 4.14 ignores InnerProduct's transpose and gets the
    Deconvolution output size wrong with dilation (4 x 6 here, Caffe 5 x 7)."""
    rng = np.random.default_rng(3)
    weight_t = rng.standard_normal((2 * 3 * 4, 5)).astype(np.float32)
    kernel = rng.standard_normal((2, 1, 2, 2)).astype(np.float32)
    layers = "\n".join([
        layer("ip", "InnerProduct", "X", "fc",
              "inner_product_param { num_output: 5 transpose: true bias_term: false }"),
        layer("up", "Deconvolution", "X", "up",
              "convolution_param { num_output: 1 kernel_size: 2 stride: 2 dilation: 2 "
              "pad: 1 bias_term: false }"),
    ])
    prototxt, caffemodel = write_net(tmp_path, "ipt", layers, (1, 2, 3, 4),
                                     {"ip": [weight_t], "up": [kernel]})
    x = random_input((1, 2, 3, 4), scale=1.0)
    ours = run_onnx(prototxt, caffemodel, ["fc", "up"], {"X": x})
    np.testing.assert_allclose(ours["fc"], x.reshape(1, -1) @ weight_t, rtol=1e-5, atol=1e-5)
    # Caffe: out = stride * (in - 1) + dilation * (k - 1) + 1 - 2 * pad, scatter-add.
    full = np.zeros((2 * 2 + 3, 2 * 3 + 3))
    for c in range(2):
        for i in range(3):
            for j in range(4):
                for ki in range(2):
                    for kj in range(2):
                        full[2 * i + 2 * ki, 2 * j + 2 * kj] += x[0, c, i, j] * kernel[c, 0, ki, kj]
    assert ours["up"].shape == (1, 1, 5, 7)
    np.testing.assert_allclose(ours["up"][0, 0], full[1:-1, 1:-1], rtol=1e-5, atol=1e-5)


def test_legacy_definition_and_phase_rules(tmp_path):
    """Net-level input + input_dim, V1 'layers', and a TRAIN-only layer that is left out."""
    text = """name: "legacy"
input: "data"
input_dim: 1 input_dim: 2 input_dim: 7 input_dim: 9
layers { name: "train_data" type: DATA top: "data" top: "label" include { phase: TRAIN } }
layers { name: "conv" type: CONVOLUTION bottom: "data" top: "conv"
         convolution_param { num_output: 3 kernel_size: 3 pad: 1 } }
layers { name: "relu" type: RELU bottom: "conv" top: "conv" }
layers { name: "pool" type: POOLING bottom: "conv" top: "pool"
         pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
"""
    prototxt = tmp_path / "legacy.prototxt"
    prototxt.write_text(text)
    rng = np.random.default_rng(4)
    model = NetParameter(name="legacy")
    conv = model.layer.add(name="conv", type="Convolution")
    for array in (rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)):
        blob = conv.blobs.add()  # legacy 4-D num/channels/height/width shape
        blob.num, blob.channels, blob.height, blob.width = (1,) * (4 - array.ndim) + array.shape
        blob.data.extend(array.ravel().tolist())
    caffemodel = tmp_path / "legacy.caffemodel"
    write_caffemodel(model, caffemodel)
    x = random_input((1, 2, 7, 9), scale=1.0)
    engine = any_output_engine(prototxt, caffemodel, "pool", threads=THREADS)
    assert engine.input_name == "data" and engine.input_shape == (1, 2, 7, 9)
    ours = engine.forward(x)
    # OpenCV ignores phase rules: it gets the definition without the TRAIN-only layer.
    plain = tmp_path / "legacy_test_phase.prototxt"
    plain.write_text("\n".join(line for line in text.splitlines() if "TRAIN" not in line))
    cv_net = cv2.dnn.readNetFromCaffe(str(plain), str(caffemodel))
    cv_net.setInput(x, "data")
    theirs = cv_net.forward("pool")
    assert ours.shape == theirs.shape == (1, 3, 4, 5)
    assert rel_err(ours, theirs) < TOLERANCE


# ---------------------------------------------------------------------------------------------
# Golden data

@pytest.mark.parametrize("name", ["tiny_gradient_network_abs", "tiny_gradient_network_filter",
                                  "tiny_joint_architecture_A"])
def test_golden_nets_match_caffe(name):
    blobs = np.load(GOLDEN_NETS / f"{name}.blobs.npz")
    (x,) = [blobs[k] for k in blobs.files if k.startswith("input:")]
    for blob in [k for k in blobs.files if not k.startswith("input:")]:
        engine = any_output_engine(GOLDEN_NETS / f"{name}.prototxt",
                                    GOLDEN_NETS / f"{name}.caffemodel", blob, threads=THREADS)
        out = engine.forward(x)
        assert out.shape == blobs[blob].shape, blob
        assert rel_err(out, blobs[blob]) < TOLERANCE, blob


@pytest.mark.parametrize("snapshot", SNAPSHOTS, ids=[p.name for p in SNAPSHOTS])
def test_golden_snapshots_match_opencv(snapshot):
    prototxt, caffemodel = snapshot.with_suffix(".prototxt"), snapshot.with_suffix(".caffemodel")
    blob = "depth" if "global_context" in snapshot.name else "depth-refine"
    engine = any_output_engine(prototxt, caffemodel, blob, threads=THREADS)
    assert engine.input_name == "X" and engine.input_shape == (1, 3, 218, 298)
    x = random_input(engine.input_shape, seed=1)
    out = engine.forward(x)
    reference = run_opencv(prototxt, caffemodel, [blob], x)[blob]
    assert out.shape == reference.shape
    assert rel_err(out, reference) < TOLERANCE


def test_batch_of_three_equals_single_runs():
    snapshot = SNAPSHOTS[1]
    engine = any_output_engine(snapshot.with_suffix(".prototxt"),
                                snapshot.with_suffix(".caffemodel"), "depth-refine",
                                threads=THREADS)
    batch = random_input((3, 3, 218, 298), seed=5)
    together = engine.forward(batch)
    assert together.shape == (3, 1, 54, 74) and together.dtype == np.float32
    for i in range(3):
        single = engine.forward(batch[i:i + 1])
        assert rel_err(together[i:i + 1], single) < 1e-6


def test_fixed_batch_translation():
    snapshot = SNAPSHOTS[0]
    model = caffe_to_onnx(read_prototxt(snapshot.with_suffix(".prototxt")),
                          read_caffemodel(snapshot.with_suffix(".caffemodel")), ["depth"],
                          batch=2)
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [2, 3, 218, 298]
    (out,) = session(model).run(["depth"], {"X": random_input((2, 3, 218, 298))})
    assert out.shape == (2, 1, 27, 37)


# ---------------------------------------------------------------------------------------------
# Errors, cache, optional dependency

def test_unsupported_layer_message(tmp_path):
    # Embed (a lookup table indexed by the input's values) is a Caffe type with no translation.
    prototxt, caffemodel = write_net(tmp_path, "embed", layer("embed1", "Embed", "X", "Y"),
                                     (1, 1, 2, 2))
    with pytest.raises(UnsupportedLayerError) as info:
        any_output_engine(prototxt, caffemodel, "Y")
    assert str(info.value) == ("layer 'embed1' of type 'Embed' is not supported by the "
                               "onnxruntime engine; use --engine opencv")


def test_weight_errors_name_layer_and_shapes(tmp_path):
    conv = layer("conv", "Convolution", "X", "Y",
                 "convolution_param { num_output: 4 kernel_size: 3 }")

    def translate(prototxt, caffemodel):
        return caffe_to_onnx(read_prototxt(prototxt), read_caffemodel(caffemodel), ["Y"])

    prototxt, caffemodel = write_net(tmp_path, "bad", conv, (1, 2, 5, 5),
                                     {"conv": [np.zeros((4, 3, 3, 3)), np.zeros(4)]})
    # The engine checks the snapshot first, as the OpenCV engine does (depth_eval.engines.base)...
    with pytest.raises(ValueError, match=r"layer 'conv' weights are 4x3x3x3 \+ 4, the prototxt "
                                         r"needs 4x2x3x3 \+ 4"):
        any_output_engine(prototxt, caffemodel, "Y")
    # ... and the translator refuses on its own too.
    with pytest.raises(ValueError, match=r"'conv'.*\(4, 3, 3, 3\), expected \(4, 2, 3, 3\)"):
        translate(prototxt, caffemodel)
    prototxt, caffemodel = write_net(tmp_path, "short", conv, (1, 2, 5, 5),
                                     {"conv": [np.zeros((4, 2, 3, 3))]})
    with pytest.raises(ValueError, match=r"layer 'conv' weights are 4x2x3x3, the prototxt needs"):
        any_output_engine(prototxt, caffemodel, "Y")
    with pytest.raises(ValueError, match=r"'conv'.*expected 2 weight blob.*found 1"):
        translate(prototxt, caffemodel)
    prototxt, caffemodel = write_net(tmp_path, "missing", conv, (1, 2, 5, 5))
    with pytest.raises(ValueError, match=r"layer 'conv' has no weights in the caffemodel"):
        any_output_engine(prototxt, caffemodel, "Y")
    with pytest.raises(ValueError, match=r"'conv'.*no weights.*\(4, 2, 3, 3\)"):
        translate(prototxt, caffemodel)
    prototxt, caffemodel = write_net(tmp_path, "good", conv, (1, 2, 5, 5),
                                     {"conv": [np.zeros((4, 2, 3, 3)), np.zeros(4)]})
    with pytest.raises(ValueError, match="'nope' is not produced"):
        caffe_to_onnx(read_prototxt(prototxt), read_caffemodel(caffemodel), ["nope"])


def cache_files(folder: Path) -> list[str]:
    """The cache's file names, with each weights file's random part as '*'."""
    return sorted(p.name[:-8] + "*" if ".d" in p.name else p.name for p in folder.iterdir())


def test_cache_reuses_translation_and_optimised_graph(tmp_path, monkeypatch):
    snapshot = SNAPSHOTS[0]
    args = (snapshot.with_suffix(".prototxt"), snapshot.with_suffix(".caffemodel"), "depth")
    cache = tmp_path / "cache"
    first = any_output_engine(*args, threads=THREADS, cache_dir=cache)
    assert not first.loaded_from_cache and not first.optimised_from_cache
    assert first.model_path.parent == first.optimised_path.parent == cache
    key, optimised = first.model_path.stem, first.optimised_path.stem
    assert len(key) == len(optimised) == 64 and key != optimised
    assert optimised == optimised_key(key, ort.__version__) != optimised_key(key, "0.0")
    # Each entry: the graph, its weights (external data) and their checksums; no temporary
    # file is left.
    assert cache_files(cache) == sorted([f"{key}.onnx", f"{key}.d*", f"{key}.sha256",
                                         f"{optimised}.onnx", f"{optimised}.d*",
                                         f"{optimised}.sha256"])
    assert first.model_path.stat().st_size < 100_000  # the weights are not in the graph
    inode = first.optimised_path.stat().st_ino  # (its mtime marks use: the LRU bound)

    def no_translation(*_, **__):
        raise AssertionError("translated again despite the cache")

    monkeypatch.setattr(onnx_translate, "caffe_to_onnx", no_translation)
    second = any_output_engine(*args, threads=THREADS, cache_dir=cache)
    assert second.loaded_from_cache and second.optimised_from_cache
    assert second.optimised_path == first.optimised_path
    assert first.optimised_path.stat().st_ino == inode  # read, not written again
    assert cache_files(cache) == sorted([f"{key}.onnx", f"{key}.d*", f"{key}.sha256",
                                         f"{optimised}.onnx", f"{optimised}.d*",
                                         f"{optimised}.sha256"])
    x = random_input((2, 3, 218, 298))
    np.testing.assert_array_equal(first.forward(x), second.forward(x))
    # Another output blob is another cache entry.
    with pytest.raises(AssertionError, match="translated again"):
        any_output_engine(*args[:2], "fc-depth", cache_dir=cache)


def test_cache_damaged_entries_are_rebuilt(tmp_path, monkeypatch):
    snapshot = SNAPSHOTS[1]
    args = (snapshot.with_suffix(".prototxt"), snapshot.with_suffix(".caffemodel"), "depth")
    cache = tmp_path / "cache"
    reference = any_output_engine(*args, threads=THREADS, cache_dir=cache)
    x = random_input((1, 3, 218, 298))
    expected = reference.forward(x)
    translation, optimised = reference.model_path, reference.optimised_path

    def weights_of(graph: Path) -> Path:
        """The weights file the graph names (a rebuilt entry leaves the old one an orphan)."""
        (path,) = [p for p in cache.glob(f"{graph.stem}.d*")
                   if p.name.encode() in graph.read_bytes()]
        return path

    # The optimised graph damaged: made again from the cached translation.
    optimised.write_bytes(b"not an onnx model")
    monkeypatch.setattr(onnx_translate, "caffe_to_onnx", None)  # translating would fail
    engine = any_output_engine(*args, threads=THREADS, cache_dir=cache)
    assert engine.loaded_from_cache and not engine.optimised_from_cache
    np.testing.assert_array_equal(engine.forward(x), expected)
    assert any_output_engine(*args, cache_dir=cache).optimised_from_cache
    # Its weights cut short: the same.
    data = weights_of(optimised)
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    engine = any_output_engine(*args, threads=THREADS, cache_dir=cache)
    assert engine.loaded_from_cache and not engine.optimised_from_cache
    np.testing.assert_array_equal(engine.forward(x), expected)
    monkeypatch.undo()
    # The translation's weights gone and the optimised graph too: translated again.
    weights_of(translation).unlink()
    optimised.unlink()
    engine = any_output_engine(*args, threads=THREADS, cache_dir=cache)
    assert not engine.loaded_from_cache and engine.optimised_path == optimised
    np.testing.assert_array_equal(engine.forward(x), expected)
    assert sorted(p.name for p in cache.glob("*.onnx")) == sorted([translation.name,
                                                                   optimised.name])


def test_cache_entry_removes_old_orphaned_weights(tmp_path):
    key = "ab" * 32
    entry = Entry(tmp_path, key)
    old, young = tmp_path / f"{key}.d00000000", tmp_path / f"{key}.d11111111"
    other = tmp_path / f"{'cd' * 32}.d22222222"
    for path in (old, young, other):
        path.write_bytes(b"w")
    hours_ago = time.time() - 2 * ORPHAN_AGE_S
    os.utime(old, (hours_ago, hours_ago))
    os.utime(other, (hours_ago, hours_ago))
    with entry.writing() as (temp, weights):
        temp.write_bytes(b"graph")
        weights.write_bytes(b"weights")
    assert entry.graph.read_bytes() == b"graph"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [entry.graph.name, entry.sums.name, weights.name, young.name, other.name])
    assert entry.problem() is None
    # A failed write leaves nothing behind and the entry as it was.
    with pytest.raises(RuntimeError), entry.writing() as (temp, weights):
        temp.write_bytes(b"half")
        weights.write_bytes(b"half")
        raise RuntimeError("killed")
    assert entry.graph.read_bytes() == b"graph" and not temp.exists() and not weights.exists()


def test_unwritable_cache_translates_in_memory(tmp_path):
    snapshot = SNAPSHOTS[0]
    (tmp_path / "file").write_text("not a folder")
    engine = any_output_engine(snapshot.with_suffix(".prototxt"),
                               snapshot.with_suffix(".caffemodel"), "depth", threads=THREADS,
                               cache_dir=tmp_path / "file" / "cache")
    assert engine.model_path is None and not engine.loaded_from_cache
    reference = any_output_engine(snapshot.with_suffix(".prototxt"),
                                  snapshot.with_suffix(".caffemodel"), "depth", threads=THREADS,
                                  cache_dir=tmp_path / "cache")
    x = random_input((1, 3, 218, 298))
    assert rel_err(engine.forward(x), reference.forward(x)) <= TOLERANCE


def test_missing_onnxruntime(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    snapshot = SNAPSHOTS[0]
    with pytest.raises(EngineUnavailableError, match=r"pip install 'depth_eval\[fast\]'"):
        any_output_engine(snapshot.with_suffix(".prototxt"),
                           snapshot.with_suffix(".caffemodel"), "depth")
    assert issubclass(EngineUnavailableError, DepthEvalError)


def test_opencv_path_never_imports_onnx():
    """Only depth_eval.caffe.onnx imports onnx: loading and checking a snapshot for OpenCV
    (proto, geometry, shapes) must not."""
    snapshot = SNAPSHOTS[1]
    code = (
        "import sys\n"
        "from depth_eval.engines.opencv import OpenCVEngine\n"
        "import depth_eval.execution.run\n"
        f"net = OpenCVEngine({str(snapshot.with_suffix('.prototxt'))!r}, "
        f"{str(snapshot.with_suffix('.caffemodel'))!r})\n"
        "net.read_weights()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'onnx'))\n"
        "from depth_eval.caffe.onnx import caffe_to_onnx\n"
        "print('onnx' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    assert done.stdout.split("\n")[:2] == ["[]", "True"]


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(),
                    reason="this onnxruntime has CUDA")
def test_cuda_unavailable():
    snapshot = SNAPSHOTS[0]
    with pytest.raises(EngineUnavailableError, match="CUDAExecutionProvider"):
        any_output_engine(snapshot.with_suffix(".prototxt"),
                           snapshot.with_suffix(".caffemodel"), "depth", device="cuda")


def test_forward_rejects_wrong_input_shape():
    snapshot = SNAPSHOTS[0]
    engine = any_output_engine(snapshot.with_suffix(".prototxt"),
                                snapshot.with_suffix(".caffemodel"), "depth", threads=THREADS)
    with pytest.raises(ValueError, match="expects"):
        engine.forward(np.zeros((1, 3, 100, 100), np.float32))


# ---------------------------------------------------------------------------------------------
# The thesis networks (prototxt/), random weights, against OpenCV

PROTOTXTS = sorted(PROTOTXT_DIR.rglob("*.prototxt")) if PROTOTXT_DIR.is_dir() else []
# Run by default: one of each small structure and the refining network (every layer type).
DEFAULT_NETS = {"gradient_network/abs", "gradient_network/filter",
                "refining_network/norm_abs"}
FULL = os.environ.get("DEPTH_EVAL_FULL_NETS", "") not in ("", "0")


def _net_id(path: Path) -> str:
    return path.relative_to(PROTOTXT_DIR).with_suffix("").as_posix()


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    factory = pytest.importorskip("caffemodel_factory")
    directory = tmp_path_factory.mktemp("onnx_caffemodels")
    cache: dict[tuple, Path] = {}
    kwargs = ({"period": 1 << 18}
              if "period" in inspect.signature(factory.write_random_caffemodel).parameters
              else {})

    def get(prototxt: Path) -> Path:
        # Variants differing only in the training loss share one file (weights bind by name).
        key = tuple((n, tuple(s)) for n, s in factory.weight_shapes(prototxt).items())
        if key not in cache:
            path = directory / f"{len(cache)}.caffemodel"
            factory.write_random_caffemodel(prototxt, path, seed=len(cache), **kwargs)
            cache[key] = path
        return cache[key]

    return get


@pytest.mark.parametrize("prototxt", PROTOTXTS, ids=[_net_id(p) for p in PROTOTXTS])
def test_thesis_network_matches_opencv(prototxt, random_weights):
    if not FULL and _net_id(prototxt) not in DEFAULT_NETS:
        pytest.skip("full-size network: set DEPTH_EVAL_FULL_NETS=1")
    caffemodel = random_weights(prototxt)
    net = read_prototxt(prototxt)
    model = caffe_to_onnx(net, read_caffemodel(caffemodel), [])
    outputs = [o.name for o in model.graph.output]
    (graph_input,) = model.graph.input
    dims = [d.dim_value for d in graph_input.type.tensor_type.shape.dim[1:]]
    x = random_input([1] + dims, seed=2)
    ours = dict(zip(outputs, session(model).run(outputs, {graph_input.name: x})))
    del model
    theirs = run_opencv(prototxt, caffemodel, outputs, x, graph_input.name)
    for blob in outputs:
        assert ours[blob].shape == theirs[blob].shape, blob
        assert np.isfinite(ours[blob]).all(), blob
        assert rel_err(ours[blob], theirs[blob]) < TOLERANCE, blob
