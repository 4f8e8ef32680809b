"""Test helper: shape inference for deploy prototxts and real ``.caffemodel`` files of test weights.

``infer_shapes`` propagates blob shapes through a parsed network the way Caffe's ``Reshape``
methods do for the layer types the thesis networks use; ``weight_shapes`` derives each
parametrised layer's blob shapes from them; ``write_caffemodel_weights`` writes given arrays as
a binary ``NetParameter`` and ``write_random_caffemodel`` fills it with seeded random weights
(He-scaled, so activations stay finite through the deep nets).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from depth_eval.caffe.proto import BlobProto, NetParameter, read_prototxt, write_caffemodel
from depth_eval.caffe.shapes import Shape, infer_shapes, weight_shapes  # noqa: F401


# Floats are copied into the protobuf repeated field in slices: one big ``tolist()`` of a
# 61 M-weight layer would hold gigabytes of Python floats, and ``extend`` straight from a numpy
# array is several times slower than from a list (measured with the upb backend).
_CHUNK = 1 << 20


def _fan_in(layer, shape: Shape) -> int:
    """Inputs feeding one output value (what He initialisation divides by)."""
    if layer.type == "Deconvolution":  # weights (C_in, C_out/group, kh, kw)
        return max(1, shape[0] // int(layer.convolution_param.group) * math.prod(shape[2:]))
    return max(1, math.prod(shape[1:]))  # (C_out, C_in/group, kh, kw) or (N, K)


def _fill_exact(blob, array: np.ndarray) -> None:
    flat = array.ravel()
    for start in range(0, flat.size, _CHUNK):
        blob.data.extend(flat[start:start + _CHUNK].tolist())


def _fill_tiled(blob, block: np.ndarray, count: int) -> None:
    """``count`` values repeating ``block``: the block is converted to protobuf floats once,
    then copied field to field (``extend`` from another repeated field stays in C)."""
    reps, rest = divmod(count, block.size)
    piece = BlobProto()
    _fill_exact(piece, block)
    for _ in range(reps):
        blob.data.extend(piece.data)
    _fill_exact(blob, block[:rest])


def _write(net: NetParameter, caffemodel_path, fill) -> None:
    """Build and write the weight file; ``fill(layer, index, shape, blob)`` fills one blob."""
    model = NetParameter(name=net.name)
    layers = {layer.name: layer for layer in net.layer}
    for name, shapes in weight_shapes(net).items():
        entry = model.layer.add(name=name, type=layers[name].type)
        for index, shape in enumerate(shapes):
            blob = entry.blobs.add()
            blob.shape.dim.extend(shape)
            fill(layers[name], index, shape, blob)
            if len(blob.data) != math.prod(shape):
                raise AssertionError(f"{name}: blob {index} has {len(blob.data)} values")
    write_caffemodel(model, caffemodel_path)


def write_caffemodel_weights(prototxt_path: str | Path, caffemodel_path: str | Path,
                             weights: Mapping[str, Sequence[np.ndarray]]) -> None:
    """Write ``weights`` (layer name -> arrays in Caffe's blob order) as a binary caffemodel.

    Every parametrised layer of the prototxt must be given, with exactly the shapes
    :func:`weight_shapes` infers; values are stored as float32 with an N-d ``shape``.
    """
    net = read_prototxt(prototxt_path)
    expected = weight_shapes(net)
    if set(weights) != set(expected):
        raise ValueError(f"weights for {sorted(weights)}, the network has {sorted(expected)}")
    arrays = {name: [np.asarray(a, dtype=np.float32) for a in weights[name]] for name in expected}
    for name, shapes in expected.items():
        if [a.shape for a in arrays[name]] != shapes:
            raise ValueError(f"{name}: got shapes {[a.shape for a in arrays[name]]}, "
                             f"expected {shapes}")
    _write(net, caffemodel_path,
           lambda layer, index, shape, blob: _fill_exact(blob, arrays[layer.name][index]))


def write_random_caffemodel(prototxt_path: str | Path, caffemodel_path: str | Path,
                            seed: int = 0, scale: float = 1.0,
                            period: int | None = None) -> None:
    """Write a real ``.caffemodel`` with random float32 weights for every parametrised layer.

    Parameters
    ----------
    prototxt_path : str or Path
        The deploy network; weight shapes are inferred from it (see :func:`weight_shapes`).
    caffemodel_path : str or Path
        Output file: a binary ``NetParameter`` whose ``layer`` entries carry name, type and
        blobs with ``shape`` (the form Caffe writes and ``cv2.dnn.readNetFromCaffe`` reads).
    seed : int
        Seed of ``numpy.random.default_rng``; blobs draw in prototxt order, so a seed always
        gives the same file.
    scale : float
        Multiplier on the He standard deviation ``sqrt(2 / fan_in)`` of the weights; biases
        are ``0.01 * scale`` times a standard normal.
    period : int, optional
        If given, each blob holds only ``period`` independent values, repeated over its flat
        storage: a full-size network (the global-context ``fc-main`` alone has 61 M weights)
        is then written in one or two seconds instead of six to eight, which go into turning
        numpy floats into protobuf ones.  ``None`` draws every weight independently.
    """
    if period is not None and period < 1:
        raise ValueError(f"period must be positive, got {period}")
    net = read_prototxt(prototxt_path)
    rng = np.random.default_rng(seed)

    def fill(layer, index, shape, blob):
        std = scale * math.sqrt(2.0 / _fan_in(layer, shape)) if index == 0 else 0.01 * scale
        count = math.prod(shape)
        size = count if period is None else min(period, count)
        values = rng.standard_normal(size, dtype=np.float32)
        values *= np.float32(std)
        if size == count:
            _fill_exact(blob, values)
        else:
            _fill_tiled(blob, values, count)

    _write(net, caffemodel_path, fill)
