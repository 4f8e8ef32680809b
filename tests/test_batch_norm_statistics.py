"""BatchNorm with ``use_global_stats: false``: Caffe normalises each channel by the blob's own
mean and biased variance, ``(x - mean) / sqrt(var + eps)`` (batch_norm_layer.cpp), here per
image as the original's one image per forward pass; both engines, restated in numpy."""

import importlib.util

import numpy as np
import pytest

from depth_eval.engines.base import ANY_OUTPUT
from depth_eval.engines.opencv import OpenCVEngine
from helpers import GOLDEN, relative_range_error

NET = GOLDEN / "catalogue" / "batchnorm"
ENGINES = ["opencv", pytest.param("onnxruntime", marks=pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime not installed"))]


def _engine(engine, prototxt, blob):
    if engine == "onnxruntime":
        from depth_eval.engines.onnx_runtime import OnnxRuntimeEngine as Engine
    else:
        Engine = OpenCVEngine
    return Engine(prototxt, NET / "batchnorm.caffemodel", output_blob=blob, rule=ANY_OUTPUT)


@pytest.mark.parametrize("engine", ENGINES)
def test_batch_norm_with_its_own_statistics(tmp_path, engine):
    prototxt = tmp_path / "own_statistics.prototxt"
    text = (NET / "batchnorm.prototxt").read_text()
    assert "use_global_stats: true eps: 0.01" in text
    prototxt.write_text(text.replace("use_global_stats: true", "use_global_stats: false"))
    one = np.load(NET / "input.npy")
    batch = np.concatenate([one, one[:, :, ::-1] * np.float32(0.5)])  # two different images
    pre = _engine(engine, prototxt, "pre").forward(batch).astype(np.float64)
    centred = pre - pre.mean(axis=(2, 3), keepdims=True)
    expected = centred / np.sqrt((centred ** 2).mean(axis=(2, 3), keepdims=True) + 0.01)
    normalised = _engine(engine, prototxt, "x").forward(batch)
    assert relative_range_error(normalised, expected) < 1e-5
    # The stored moving averages are not what the layer uses.
    stored = _engine(engine, NET / "batchnorm.prototxt", "x").forward(batch)
    assert relative_range_error(stored, expected) > 0.1
