"""Parity with real Caffe on the layer catalogue (tests/data/golden/catalogue, README there):
every Caffe 1.0 layer type with a CPU forward pass, on both engines, within 1e-4 of the range
of Caffe's blob, or (the opencv engine only, for the networks listed in OPENCV_REFUSED) refused
at load with one line naming the layer and pointing to ``--engine onnxruntime``."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from depth_eval.engines.base import ANY_OUTPUT
from depth_eval.errors import SnapshotError
from helpers import GOLDEN, relative_range_error

CATALOGUE = GOLDEN / "catalogue"
# The catalogue README's parity tolerance: max |engine - caffe| / (max caffe - min caffe).
BLOB_TOLERANCE = 1e-4
NETWORKS = sorted(p.name for p in CATALOGUE.iterdir() if (p / "meta.json").is_file())

# Networks the opencv engine refuses at load: OpenCV has no faithful way to compute them.
# Each entry: network -> the layer type the refusal must name.
OPENCV_REFUSED: dict[str, str] = {}

HAVE_ONNXRUNTIME = importlib.util.find_spec("onnxruntime") is not None
ENGINES = ["opencv", pytest.param("onnxruntime", marks=pytest.mark.skipif(
    not HAVE_ONNXRUNTIME, reason="onnxruntime not installed (pip install '.[fast]')"))]


def _engine(engine: str, name: str, output_blob: str):
    folder = CATALOGUE / name
    if engine == "onnxruntime":
        from depth_eval.engines.onnx_runtime import OnnxRuntimeEngine as Engine
    else:
        from depth_eval.engines.opencv import OpenCVEngine as Engine
    return Engine(folder / f"{name}.prototxt", folder / f"{name}.caffemodel",
                  output_blob=output_blob, rule=ANY_OUTPUT)


def test_catalogue_is_complete():
    assert len(NETWORKS) == 76


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", NETWORKS)
def test_catalogue_network_matches_caffe(name, engine):
    folder = CATALOGUE / name
    meta = json.loads((folder / "meta.json").read_text())
    batch = np.load(folder / "input.npy")
    if engine == "opencv" and name in OPENCV_REFUSED:
        with pytest.raises(SnapshotError) as refused:
            _engine(engine, name, "depth")
        message = str(refused.value)
        assert "\n" not in message
        assert OPENCV_REFUSED[name] in message and "--engine onnxruntime" in message
        return
    for probe in meta["probes"]:
        expected = np.load(folder / f"{probe}.npy")
        network = _engine(engine, name, probe)
        result = network.forward(batch)
        assert result.shape == expected.shape, probe
        assert relative_range_error(result, expected) < BLOB_TOLERANCE, probe
