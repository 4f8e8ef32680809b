"""The mapped caffemodel reader (depth_eval.caffe.weights) against protobuf's full parse."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest

from depth_eval.caffe.proto import NetParameter, blob_shape, read_caffemodel
from depth_eval.caffe.weights import CaffeWeights
from depth_eval.errors import CaffeFormatError

GOLDEN = Path(__file__).resolve().parent / "data" / "golden"
MODELS = sorted(GOLDEN.rglob("*.caffemodel"))


def full_parse_values(path) -> dict[str, list]:
    """Layer name -> its blobs' (shape, float32 values) by protobuf, as the translator read them."""
    return {layer.name: [(blob_shape(b), np.asarray(b.double_data if len(b.double_data)
                                                      else b.data, np.float32))
                         for b in layer.blobs]
            for layer in read_caffemodel(path).layer}


def mapped_values(path) -> dict[str, list]:
    weights = CaffeWeights(path)
    return {layer.name: [(blob_shape(b), v if v is not None else np.zeros(0, np.float32))
                         for b, v in zip(layer.blobs, weights.values(layer.name))]
            for layer in weights.net.layer}


def assert_same(path) -> None:
    expected, found = full_parse_values(path), mapped_values(path)
    assert list(found) == list(expected)
    for name in expected:
        assert [s for s, _ in found[name]] == [s for s, _ in expected[name]]
        for (_, a), (_, b) in zip(found[name], expected[name]):
            assert a.dtype == np.float32
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_golden_snapshots_read_as_protobuf_reads_them(path):
    assert_same(path)
    weights = CaffeWeights(path)
    assert weights.sha256() == hashlib.sha256(path.read_bytes()).hexdigest()
    # The values are views of the mapped file, not copies.
    big = max((v for layer in weights.net.layer for v in weights.values(layer.name)),
              key=lambda v: v.size)
    assert not big.flags.owndata and not big.flags.writeable


def test_messages_keep_every_field_but_the_values(tmp_path):
    net = NetParameter(name="n")
    layer = net.layer.add(name="conv", type="Convolution", bottom=["X"], top=["Y"])
    layer.convolution_param.num_output = 2
    blob = layer.blobs.add()
    blob.shape.dim.extend([2, 1, 1, 1])
    blob.data.extend([1.5, -2.0])
    blob.diff.extend([9.0, 9.0])  # gradients: dropped
    (tmp_path / "m.caffemodel").write_bytes(net.SerializeToString())
    weights = CaffeWeights(tmp_path / "m.caffemodel")
    (read,) = weights.net.layer
    assert (read.name, read.type, list(read.top), read.convolution_param.num_output) == \
        ("conv", "Convolution", ["Y"], 2)
    assert blob_shape(read.blobs[0]) == (2, 1, 1, 1)
    assert len(read.blobs[0].data) == 0 and len(read.blobs[0].diff) == 0
    np.testing.assert_array_equal(weights.values("conv")[0], [1.5, -2.0])


def test_double_data_legacy_layers_and_unpacked_values(tmp_path):
    # Legacy V1 'layers' with double_data and legacy num/channels/height/width.
    net = NetParameter()
    old = net.layers.add(name="ip", type=14, bottom=["X"], top=["Y"])  # INNER_PRODUCT
    blob = old.blobs.add(num=1, channels=1, height=2, width=3)
    blob.double_data.extend([0.1, 0.2, 0.3, 0.4, 0.5, 3.3])
    old.blobs.add(num=1, channels=1, height=1, width=2).data.extend([7.0, 8.0])
    (tmp_path / "v1.caffemodel").write_bytes(net.SerializeToString())
    assert_same(tmp_path / "v1.caffemodel")
    assert CaffeWeights(tmp_path / "v1.caffemodel").net.layer[0].type == "InnerProduct"

    # Unpacked floats (one tag per value, as a writer ignoring [packed = true] stores them),
    # split over two runs, then a packed run: protobuf concatenates them all.
    def key(number, wire):
        return bytes([number << 3 | wire])

    values = [1.0, 2.5, -3.0]
    blob_bytes = b"".join(key(5, 5) + struct.pack("<f", v) for v in values[:2])
    packed = struct.pack("<f", values[2])
    blob_bytes += key(5, 2) + bytes([len(packed)]) + packed
    layer_bytes = key(1, 2) + b"\x01a" + key(7, 2) + bytes([len(blob_bytes)]) + blob_bytes
    data = b"\xa2\x06" + bytes([len(layer_bytes)]) + layer_bytes  # field 100 (layer), bytes
    (tmp_path / "unpacked.caffemodel").write_bytes(data)
    assert_same(tmp_path / "unpacked.caffemodel")
    np.testing.assert_array_equal(CaffeWeights(tmp_path / "unpacked.caffemodel").values("a")[0],
                                  values)


def test_empty_file_has_no_layers(tmp_path):
    (tmp_path / "empty.caffemodel").write_bytes(b"")
    weights = CaffeWeights(tmp_path / "empty.caffemodel")
    assert len(weights.net.layer) == 0 and weights.values("any") == []


@pytest.mark.parametrize("cut", [1, 2, 3, 10, 0.5, 0.99])
def test_truncated_or_corrupt_files_are_refused(tmp_path, cut):
    good = (GOLDEN / "e2e" / "snapshots" / "tiny_refining_network_norm_abs.caffemodel").read_bytes()
    size = int(len(good) * cut) if isinstance(cut, float) else len(good) - cut
    path = tmp_path / "cut.caffemodel"
    path.write_bytes(good[:size])
    with pytest.raises(CaffeFormatError, match=r"cut\.caffemodel: caffemodel is corrupt or "
                                               r"truncated"):
        CaffeWeights(path)
    with pytest.raises(Exception):  # protobuf refuses it too
        read_caffemodel(path)


@pytest.mark.parametrize("data", [b"\x07", b"\x00\x01", b"\xa2\x06\x05\x3a\x03\x2d\x00\x00",
                                  b"\xa2\x06\x07\x3a\x05\x2a\x03\x00\x00\x00",
                                  b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"],
                         ids=["wire-7", "field-0", "short-float", "partial-packed", "long-varint"])
def test_malformed_messages_are_refused(tmp_path, data):
    path = tmp_path / "bad.caffemodel"
    path.write_bytes(data)
    with pytest.raises(CaffeFormatError):
        CaffeWeights(path)
