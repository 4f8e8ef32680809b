"""The thesis deploy prototxts: structure, shapes, and a forward pass in OpenCV with random weights.

Full-size networks have up to 72 M weights, so each distinct set of weight shapes is written to
a ``.caffemodel`` once per session (variants that differ only in training loss share one) with
``period`` set: the random values repeat with that period inside each blob, which keeps the
writing to one or two seconds per full-size network.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from google.protobuf import text_format

from caffemodel_factory import (infer_shapes, weight_shapes, write_caffemodel_weights,
                                write_random_caffemodel)
from depth_eval.caffe.proto import NetParameter, blob_shape, read_caffemodel, read_prototxt

PROTOTXT_DIR = Path(__file__).resolve().parents[1] / "prototxt"
PERIOD = 1 << 18

# Layer lists, "name:Type", in prototxt order (from the tables of ARCHITECTURES.md).
_CONV1 = "conv1{s}:Convolution relu1{s}:ReLU norm1{s}:LRN pool1{s}:Pooling"
_TRUNK = (_CONV1.format(s="") + " conv2:Convolution relu2:ReLU norm2:LRN conv3:Convolution"
          " relu3:ReLU")
_HEAD = ("conv5:Convolution relu5:ReLU pool5:Pooling fc-main:InnerProduct relu6:ReLU"
         " fc-depth:InnerProduct reshape:Reshape")
_GLOBAL = f"data:Input {_TRUNK} conv4:Convolution relu4:ReLU {_HEAD}"
_GRADIENT = (f"data:Input {_CONV1.format(s='')} conv2-grad:Convolution relu2:ReLU"
             " conv3-grad:Convolution relu3:ReLU conv4-grad:Convolution relu4:ReLU"
             " conv5-grad:Convolution power:Power")
_JOINT_A = (f"data:Input {_TRUNK} {_CONV1.format(s='_g')} conv2-grad:Convolution relu2_g:ReLU"
            " conv3-grad:Convolution relu3_g:ReLU concat:Concat conv4_joint:Convolution"
            f" relu4:ReLU {_HEAD} conv4-grad:Convolution relu4_g:ReLU conv5-grad:Convolution")
_JOINT_B = (f"data:Input {_TRUNK} conv4:Convolution relu4:ReLU {_HEAD} conv4-grad:Convolution"
            " relu4_g:ReLU conv5-grad:Convolution")
_REFINE = ("conv1-refine:Convolution relu1-refine:ReLU norm1-refine:LRN pool1-refine:Pooling"
           " concat:Concat conv2-refine:Convolution relu2-refine:ReLU conv3-refine:Convolution"
           " relu3-refine:ReLU conv4-refine:Convolution relu4-refine:ReLU"
           " conv5-refine:Convolution power-refine:Power")
_REFINING = (f"{_GLOBAL} mvnDepth-global:MVN {_CONV1.format(s='-grad')} conv2-grad:Convolution"
             " relu2-grad:ReLU conv3-grad:Convolution relu3-grad:ReLU conv4-grad:Convolution"
             " relu4-grad:ReLU conv5-grad:Convolution mvnGrad:MVN upsample:Deconvolution"
             f" concat-global:Concat upsample-global:Deconvolution {_REFINE}")
_GLOBAL_ONLY = f"{_GLOBAL} mvnDepth-global:MVN upsample-global:Deconvolution {_REFINE}"

# Per file: layers, output blobs with shapes, and some intermediate blobs with the table's shapes.
_GLOBAL_SPEC = (_GLOBAL, {"depth": (1, 1, 27, 37)}, {
    "conv1": (1, 96, 52, 72), "pool1": (1, 96, 26, 36), "conv4": (1, 384, 26, 36),
    "pool5": (1, 256, 13, 18), "fc-main": (1, 1024), "fc-depth": (1, 999)})
_GRADIENT_SPEC = (_GRADIENT, {"gradient": (1, 2, 25, 35)}, {
    "pool1": (1, 96, 25, 35), "conv2": (1, 256, 25, 35), "conv4": (1, 384, 25, 35),
    "grad": (1, 2, 25, 35)})
_REFINING_SPEC = (_REFINING, {"depth-refine": (1, 1, 54, 74)}, {
    "depth": (1, 1, 27, 37), "pool1-grad": (1, 96, 25, 35), "gradMVN": (1, 2, 25, 35),
    "grad-upsample": (1, 2, 27, 37), "global-output": (1, 3, 27, 37), "est": (1, 3, 54, 74),
    "conv1-refine": (1, 96, 106, 146), "pool1-refine": (1, 96, 54, 74),
    "input-refine": (1, 99, 54, 74), "depth-refine_": (1, 1, 54, 74)})
EXPECTED = {
    "global_context_network/abs": _GLOBAL_SPEC,
    "global_context_network/log_abs": _GLOBAL_SPEC,
    "global_context_network/norm": _GLOBAL_SPEC,
    "global_context_network/sc-inv": _GLOBAL_SPEC,
    "gradient_network/abs": _GRADIENT_SPEC,
    "gradient_network/norm": _GRADIENT_SPEC,
    "gradient_network/filter": ("gradientFilter:Convolution", {"out": (1, 2, 318, 418)},
                                {"X": (1, 1, 320, 420)}),
    "joint/architecture_A": (_JOINT_A, {"depth": (1, 1, 27, 37), "gradient": (1, 2, 25, 35)}, {
        "pool1_g": (1, 96, 25, 35), "conv3": (1, 384, 25, 35), "conv3_g": (1, 384, 25, 35),
        "joint": (1, 768, 25, 35), "conv4": (1, 384, 25, 35), "pool5": (1, 256, 12, 17),
        "conv4_g": (1, 384, 25, 35)}),
    "joint/architecture_B": (_JOINT_B, {"depth": (1, 1, 27, 37), "gradient": (1, 2, 25, 35)}, {
        "pool1": (1, 96, 25, 35), "conv5": (1, 256, 25, 35), "pool5": (1, 256, 12, 17),
        "conv4_g": (1, 384, 25, 35)}),
    "refining_network/abs": _REFINING_SPEC,
    "refining_network/log_abs": _REFINING_SPEC,
    "refining_network/norm_abs": _REFINING_SPEC,
    "refining_network/sc-inv_abs": _REFINING_SPEC,
    "refining_network/norm_abs_global_only": (_GLOBAL_ONLY, {"depth-refine": (1, 1, 54, 74)}, {
        "pool5": (1, 256, 13, 18), "depthMVN": (1, 1, 27, 37), "est": (1, 1, 54, 74),
        "pool1-refine": (1, 96, 54, 74), "input-refine": (1, 97, 54, 74)}),
}
NETWORKS = sorted(EXPECTED)


def _path(network: str) -> Path:
    return PROTOTXT_DIR / f"{network}.prototxt"


def _input_shape(net) -> tuple[int, ...]:
    if net.input_shape:
        return tuple(int(d) for d in net.input_shape[0].dim)
    data = next(layer for layer in net.layer if layer.type == "Input")
    return tuple(int(d) for d in data.input_param.shape[0].dim)


def _opencv_names(net, cv_net) -> dict[str, str]:
    """Prototxt layer name -> the name OpenCV gives the layer (same order, Input left out)."""
    proto = [layer for layer in net.layer if layer.type != "Input"]
    names = list(cv_net.getLayerNames())
    assert len(names) == len(proto)
    return {layer.name: cv_name for layer, cv_name in zip(proto, names)}


def _producers(net, cv_names) -> dict[str, str]:
    """Blob -> OpenCV name of the last layer writing it (an in-place ReLU writes its bottom)."""
    return {top: cv_names[layer.name] for layer in net.layer if layer.type != "Input"
            for top in layer.top}


# Blobs up to this size are compared value by value with what OpenCV bound (getParam copies;
# fc-main alone is 245 MB); bigger ones are checked by shape through the forward pass.
_COMPARED_SIZE = 4_000_000


@pytest.fixture(scope="session")
def random_caffemodel(tmp_path_factory):
    """prototxt path -> (caffemodel with random weights, its blobs of up to _COMPARED_SIZE
    values as {(layer, index): array}); one file per distinct set of weight shapes.  The files
    (about 1.6 GB together) are deleted at the end of the session rather than left to pytest's
    retention of old temporary directories."""
    directory = tmp_path_factory.mktemp("caffemodels")
    cache: dict[tuple, tuple[Path, dict]] = {}

    def get(prototxt: Path):
        key = tuple((name, tuple(shapes)) for name, shapes in weight_shapes(prototxt).items())
        if key not in cache:
            path = directory / f"{prototxt.parent.name}_{prototxt.stem}.caffemodel"
            write_random_caffemodel(prototxt, path, seed=len(cache), period=PERIOD)
            small = {(layer.name, index): np.asarray(blob.data, np.float32)
                     for layer in read_caffemodel(path).layer
                     for index, blob in enumerate(layer.blobs)
                     if len(blob.data) <= _COMPARED_SIZE}
            cache[key] = (path, small)
        return cache[key]

    yield get
    for path, _ in cache.values():
        path.unlink(missing_ok=True)


def test_every_network_has_a_prototxt():
    found = sorted(str(p.relative_to(PROTOTXT_DIR).with_suffix("")).replace("\\", "/")
                   for p in PROTOTXT_DIR.rglob("*.prototxt"))
    assert found == NETWORKS


@pytest.mark.parametrize("network", NETWORKS)
def test_layers_names_and_types(network):
    path = _path(network)
    net = read_prototxt(path)
    layers, _, _ = EXPECTED[network]
    assert [f"{layer.name}:{layer.type}" for layer in net.layer] == layers.split()
    assert net.name
    assert path.read_text(encoding="utf-8").startswith("# ")
    for layer in net.layer:
        if layer.type == "Deconvolution":
            assert not layer.convolution_param.bias_term, layer.name
    if network == "gradient_network/filter":
        assert list(net.input) == ["X"] and _input_shape(net) == (1, 1, 320, 420)
    else:
        assert not net.input and _input_shape(net) == (1, 3, 218, 298)
        assert list(net.layer[0].top) == ["X"]


@pytest.mark.parametrize("network", NETWORKS)
def test_infer_shapes_match_tables(network):
    _, outputs, intermediate = EXPECTED[network]
    shapes = infer_shapes(_path(network))
    for blob, shape in {**intermediate, **outputs}.items():
        assert shapes[blob] == shape, blob


@pytest.mark.parametrize("network", NETWORKS)
def test_opencv_layer_names(network):
    """OpenCV keeps the prototxt names, except that it names a Convolution layer after its top
    blob when the two differ (seen with OpenCV 4.14: conv5-grad -> grad_out)."""
    net = read_prototxt(_path(network))
    cv_names = _opencv_names(net, cv2.dnn.readNetFromCaffe(str(_path(network))))
    for layer in net.layer:
        if layer.type == "Input":
            continue
        cv_name = cv_names[layer.name]
        allowed = {layer.name} | ({layer.top[0]} if layer.type == "Convolution" else set())
        assert cv_name in allowed, (layer.name, cv_name)


@pytest.mark.parametrize("network", NETWORKS)
def test_opencv_forward_with_random_weights(network, random_caffemodel):
    path = _path(network)
    caffemodel, small_blobs = random_caffemodel(path)
    net = read_prototxt(path)
    cv_net = cv2.dnn.readNetFromCaffe(str(path), str(caffemodel))
    cv_names = _opencv_names(net, cv_net)

    # Weights bound by layer name: every parametrised layer got its blobs from the file (the
    # forward pass below fails on a layer without them, or with blobs of the wrong size).
    for name, shapes in weight_shapes(net).items():
        for index, shape in enumerate(shapes):
            if int(np.prod(shape)) <= _COMPARED_SIZE:
                param = np.asarray(cv_net.getParam(cv_names[name], index)).ravel()
                np.testing.assert_array_equal(param, small_blobs[name, index], name)

    # One forward pass returning every blob; shapes agree with infer_shapes and the tables.
    producers = _producers(net, cv_names)
    blobs = sorted(producers)
    rng = np.random.default_rng(1)
    cv_net.setInput(rng.standard_normal(_input_shape(net), dtype=np.float32))
    values = dict(zip(blobs, cv_net.forward([producers[blob] for blob in blobs])))
    inferred = infer_shapes(net)
    for blob, value in values.items():
        assert value.shape == inferred[blob], blob
        assert np.isfinite(value).all(), blob
    _, outputs, intermediate = EXPECTED[network]
    for blob, shape in {**outputs, **intermediate}.items():
        if blob in values:
            assert values[blob].shape == shape, blob
    for blob in outputs:
        assert np.abs(values[blob]).max() > 0, blob


def _filter_weights():
    kernels = np.zeros((2, 1, 3, 3), np.float32)
    kernels[0, 0] = [[-1, -1, -1], [0, 0, 0], [1, 1, 1]]  # rows: d/dy
    kernels[1, 0] = [[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]]  # columns: d/dx
    return {"gradientFilter": [kernels, np.zeros(2, np.float32)]}


def test_filter_network_computes_gradients(tmp_path):
    path = _path("gradient_network/filter")
    caffemodel = tmp_path / "filter.caffemodel"
    write_caffemodel_weights(path, caffemodel, _filter_weights())
    cv_net = cv2.dnn.readNetFromCaffe(str(path), str(caffemodel))

    # A ramp a*y + b*x: every output is 6a (channel 0) and 6b (channel 1), up to float
    # rounding (OpenCV may sum in another order, e.g. with Winograd for 3x3 kernels).
    y, x = np.mgrid[0:320, 0:420].astype(np.float32)
    cv_net.setInput((0.5 * y + 0.25 * x)[None, None])
    out = cv_net.forward("out")
    assert out.shape == (1, 2, 318, 418)
    np.testing.assert_allclose(out[0, 0], np.full((318, 418), 3.0), rtol=0, atol=1e-4)
    np.testing.assert_allclose(out[0, 1], np.full((318, 418), 1.5), rtol=0, atol=1e-4)

    # Any image: Caffe's convolution is a cross-correlation, valid part only.
    image = np.random.default_rng(2).uniform(0, 10, (320, 420)).astype(np.float32)
    cv_net.setInput(image[None, None])
    out = cv_net.forward("out")
    dy = (image[2:, :-2] + image[2:, 1:-1] + image[2:, 2:]
          - image[:-2, :-2] - image[:-2, 1:-1] - image[:-2, 2:])
    dx = (image[:-2, 2:] + image[1:-1, 2:] + image[2:, 2:]
          - image[:-2, :-2] - image[1:-1, :-2] - image[2:, :-2])
    np.testing.assert_allclose(out[0, 0], dy, rtol=0, atol=1e-3)
    np.testing.assert_allclose(out[0, 1], dx, rtol=0, atol=1e-3)


GOLDEN_NETS = Path(__file__).resolve().parent / "data" / "golden" / "nets"


@pytest.mark.parametrize("stem", sorted(p.stem for p in GOLDEN_NETS.glob("*.prototxt")))
def test_factory_shapes_agree_with_real_caffe(stem):
    """weight_shapes and infer_shapes against files that Caffe itself wrote (tiny nets)."""
    net = read_prototxt(GOLDEN_NETS / f"{stem}.prototxt")
    stored = {layer.name: [blob_shape(blob) for blob in layer.blobs]
              for layer in read_caffemodel(GOLDEN_NETS / f"{stem}.caffemodel").layer
              if layer.blobs}
    assert weight_shapes(net) == stored
    shapes = infer_shapes(net)
    with np.load(GOLDEN_NETS / f"{stem}.blobs.npz") as blobs:
        for key in blobs.files:
            assert shapes[key.split(":")[-1]] == blobs[key].shape, key


def test_infer_shapes_pooling_rounding_and_reshape():
    net = NetParameter()
    text_format.Parse("""
        input: "x" input_shape { dim: 2 dim: 3 dim: 8 dim: 7 }
        layer { name: "ceil" type: "Pooling" bottom: "x" top: "ceil"
                pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
        layer { name: "clip" type: "Pooling" bottom: "x" top: "clip"
                pooling_param { pool: MAX kernel_size: 2 stride: 2 pad: 1 } }
        layer { name: "floor" type: "Pooling" bottom: "x" top: "floor"
                pooling_param { pool: AVE kernel_size: 2 stride: 2 round_mode: FLOOR } }
        layer { name: "flat" type: "Reshape" bottom: "x" top: "flat"
                reshape_param { shape { dim: 0 dim: -1 } } }
        layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
                inner_product_param { num_output: 5 } }
        layer { name: "cat" type: "Concat" bottom: "ceil" bottom: "ceil" top: "cat" }
        layer { name: "up" type: "Deconvolution" bottom: "x" top: "up"
                convolution_param { num_output: 3 group: 3 kernel_size: 4 stride: 2 pad: 1
                                    bias_term: false } }
    """, net)
    shapes = infer_shapes(net)
    assert shapes["ceil"] == (2, 3, 4, 3)   # ceil((8 - 3) / 2) + 1 = 4: Caffe rounds up
    assert shapes["clip"] == (2, 3, 5, 4)   # width ceil(7 / 2) + 1 = 5, less the window in pad
    assert shapes["floor"] == (2, 3, 4, 3)
    assert shapes["flat"] == (2, 168)
    assert shapes["ip"] == (2, 5)
    assert shapes["cat"] == (2, 6, 4, 3)
    assert shapes["up"] == (2, 3, 16, 14)
    assert weight_shapes(net) == {"ip": [(5, 168), (5,)], "up": [(3, 1, 4, 4)]}
