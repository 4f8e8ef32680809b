"""Blob shapes of a Caffe network and the weight shapes its layers expect.

Caffe's own shape rules for the layer types deploy networks of the thesis era use (convolution
and pooling windows: :mod:`depth_eval.caffe.geometry`).  OpenCV's
Caffe importer does not check every weight shape against the definition (a grouped convolution
given ungrouped weights runs and returns garbage), so the evaluator checks a snapshot with
:func:`check_weights` before handing it to OpenCV; the tests use the same rules to write
caffemodels with random weights.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from depth_eval.errors import ShapeError
from depth_eval.caffe import geometry
from depth_eval.caffe.geometry import canonical_axis
from depth_eval.caffe.proto import NetParameter, blob_shape, read_prototxt

Shape = tuple[int, ...]


def network_inputs(net) -> dict[str, Shape]:
    """Input blob name -> N x C x H x W shape, from ``Input`` layers or net-level inputs."""
    inputs = {}
    for layer in net.layer:
        if layer.type == "Input":
            shapes = list(layer.input_param.shape)
            for index, top in enumerate(layer.top):
                if shapes:
                    inputs[top] = tuple(int(d) for d in shapes[min(index, len(shapes) - 1)].dim)
    for index, name in enumerate(net.input):
        if index < len(net.input_shape):
            inputs[name] = tuple(int(d) for d in net.input_shape[index].dim)
        elif len(net.input_dim) >= 4 * (index + 1):
            inputs[name] = tuple(int(d) for d in net.input_dim[4 * index:4 * index + 4])
    return inputs


def _net(net_or_path) -> NetParameter:
    if isinstance(net_or_path, (str, Path)):
        return read_prototxt(net_or_path)
    return net_or_path


def _convolution(layer, bottom: Shape) -> Shape:
    if canonical_axis(layer, layer.convolution_param.axis, len(bottom)) != 1 or len(bottom) != 4:
        raise ShapeError(f"{layer.name}: only NCHW convolution along axis 1 is supported")
    n, c, h, w = bottom
    _, (oh, ow) = geometry.convolution(layer, c, h, w)
    return (n, int(layer.convolution_param.num_output), oh, ow)


def _pooling(layer, bottom: Shape) -> Shape:
    if len(bottom) != 4:
        raise ShapeError(f"{layer.name}: only N x C x H x W pooling is supported")
    n, c, h, w = bottom
    _, (oh, ow) = geometry.pooling(layer, h, w)
    return (n, c, oh, ow)


def _inner_product(layer, bottom: Shape) -> Shape:
    axis = canonical_axis(layer, layer.inner_product_param.axis, len(bottom))
    return bottom[:axis] + (int(layer.inner_product_param.num_output),)


def _reshape(layer, bottom: Shape) -> Shape:
    param = layer.reshape_param
    dims = [int(d) for d in param.shape.dim]
    # Caffe: a negative axis counts from after the last axis (-1 appends).
    start = param.axis if param.axis >= 0 else len(bottom) + 1 + param.axis
    if not 0 <= start <= len(bottom):
        raise ShapeError(f"{layer.name}: reshape axis {param.axis} out of range")
    end = len(bottom) if param.num_axes == -1 else start + param.num_axes
    replaced = bottom[start:end]
    new = []
    for i, d in enumerate(dims):
        if d == 0:
            if i >= len(replaced):
                raise ShapeError(f"{layer.name}: dim 0 at position {i} has nothing to copy")
            new.append(replaced[i])
        else:
            new.append(d)
    if new.count(-1) > 1:
        raise ShapeError(f"{layer.name}: more than one -1 in reshape")
    total = math.prod(replaced)
    if -1 in new:
        known = math.prod(d for d in new if d != -1)
        if known == 0 or total % known:
            raise ShapeError(f"{layer.name}: cannot infer -1 reshaping {bottom} to {dims}")
        new[new.index(-1)] = total // known
    if math.prod(new) != total:
        raise ShapeError(f"{layer.name}: reshape {bottom} to {dims} changes the count")
    return bottom[:start] + tuple(new) + bottom[end:]


def _concat(layer, bottoms: Sequence[Shape]) -> Shape:
    param = layer.concat_param
    axis = param.concat_dim if param.HasField("concat_dim") else param.axis
    axis = canonical_axis(layer, axis, len(bottoms[0]))
    for shape in bottoms[1:]:
        if len(shape) != len(bottoms[0]) or any(
                a != b for i, (a, b) in enumerate(zip(shape, bottoms[0])) if i != axis):
            raise ShapeError(f"{layer.name}: cannot concatenate {list(bottoms)} on axis {axis}")
    out = list(bottoms[0])
    out[axis] = sum(shape[axis] for shape in bottoms)
    return tuple(out)


_SAME_SHAPE = {"ReLU", "LRN", "Power", "MVN", "Dropout", "Sigmoid", "TanH", "AbsVal", "Softmax",
               "Split"}


def infer_shapes(net, strict: bool = True) -> dict[str, Shape]:
    """Shape of every blob of a deploy network, in Caffe's N x C x H x W convention.

    Parameters
    ----------
    net : NetParameter or str or Path
        A parsed network, or the path of a ``.prototxt``.
    strict : bool
        Raise for a layer type these rules do not model; False leaves its tops (and everything
        computed from them) out instead.

    Returns
    -------
    dict
        Blob name -> shape tuple.  An in-place layer (top == bottom) keeps the blob's entry;
        the value is the blob's final shape.

    Raises
    ------
    ShapeError
        For a layer type this helper does not model, an unknown bottom blob or inconsistent
        parameters (window parameters: :mod:`depth_eval.caffe.geometry`).
    """
    net = _net(net)
    shapes = dict(network_inputs(net))
    for layer in net.layer:
        kind = layer.type
        if kind == "Input":
            continue
        missing = [b for b in layer.bottom if b not in shapes]
        if missing and not strict:
            continue
        if missing:
            raise ShapeError(f"{layer.name}: unknown bottom blob(s) {missing}")
        bottoms = [shapes[b] for b in layer.bottom]
        if kind in ("Convolution", "Deconvolution"):
            out = _convolution(layer, bottoms[0])
        elif kind == "Pooling":
            out = _pooling(layer, bottoms[0])
        elif kind == "InnerProduct":
            out = _inner_product(layer, bottoms[0])
        elif kind == "Reshape":
            out = _reshape(layer, bottoms[0])
        elif kind == "Concat":
            out = _concat(layer, bottoms)
        elif kind == "Flatten":
            axis = canonical_axis(layer, layer.flatten_param.axis, len(bottoms[0]))
            end = canonical_axis(layer, layer.flatten_param.end_axis, len(bottoms[0]))
            out = bottoms[0][:axis] + (math.prod(bottoms[0][axis:end + 1]),) + bottoms[0][end + 1:]
        elif kind == "Eltwise":
            out = bottoms[0]
        elif kind in _SAME_SHAPE:
            out = bottoms[0]
        elif not strict:
            continue
        else:
            raise ShapeError(f"{layer.name}: layer type {kind!r} is not modelled")
        for top in layer.top:
            shapes[top] = out
    return shapes


def layer_weight_shapes(layer, bottom: Shape) -> list[Shape]:
    """Shapes of one layer's learned blobs, in Caffe's storage order, for its bottom's shape.

    Convolution: weights (num_output, C_in / group, kh, kw) then bias (num_output,);
    Deconvolution: weights (C_in, num_output / group, kh, kw) then bias (num_output,);
    InnerProduct: weights (num_output, K) (or (K, num_output) if transposed) then bias, K the
    product of the bottom's dimensions from ``axis`` on.  Biases only where ``bias_term`` is
    true; an empty list for a layer type without weights.
    """
    if layer.type in ("Convolution", "Deconvolution"):
        param = layer.convolution_param
        kh, kw = geometry.conv_window(layer).kernel
        c_in, n_out, group = bottom[1], int(param.num_output), int(param.group)
        if layer.type == "Convolution":
            blobs = [(n_out, c_in // group, kh, kw)]
        else:
            blobs = [(c_in, n_out // group, kh, kw)]
    elif layer.type == "InnerProduct":
        param = layer.inner_product_param
        k = math.prod(bottom[canonical_axis(layer, param.axis, len(bottom)):])
        n_out = int(param.num_output)
        blobs = [(k, n_out) if param.transpose else (n_out, k)]
    else:
        return []
    return blobs + ([(n_out,)] if param.bias_term else [])


def weight_shapes(net, strict: bool = True) -> dict[str, list[Shape]]:
    """Shapes of the learned blobs of each parametrised layer (:func:`layer_weight_shapes`).

    Layers without weights are left out, and with ``strict=False`` those after a layer type
    the rules do not model.
    """
    net = _net(net)
    shapes = infer_shapes(net, strict)
    out: dict[str, list[Shape]] = {}
    for layer in net.layer:
        if layer.bottom and layer.bottom[0] not in shapes:
            continue  # after a layer type the rules do not model (strict=False)
        blobs = layer_weight_shapes(layer, shapes[layer.bottom[0]]) if layer.bottom else []
        if blobs:
            out[layer.name] = blobs
    return out


def _same_shape(stored: Shape, expected: Shape) -> bool:
    """Compare, allowing Caffe's legacy 4-D blobs (num/channels/height/width) padded with ones."""
    stored = tuple(stored)
    while len(stored) > len(expected) and stored[0] == 1:
        stored = stored[1:]
    return stored == tuple(expected)


def check_weights(net, weights) -> None:
    """Raise ShapeError naming the first layer whose stored weights do not fit the definition.

    Parameters
    ----------
    net : NetParameter
        The deploy definition.
    weights : NetParameter
        The parsed caffemodel; its layers bind to the definition's by name.
    """
    stored = {layer.name: [blob_shape(b) for b in layer.blobs] for layer in weights.layer}
    for name, expected in weight_shapes(net, strict=False).items():
        found = stored.get(name)
        if not found:
            raise ShapeError(f"layer '{name}' has no weights in the caffemodel")
        if len(found) != len(expected) or not all(map(_same_shape, found, expected)):
            want = " + ".join("x".join(map(str, s)) for s in expected)
            got = " + ".join("x".join(map(str, s)) for s in found)
            raise ShapeError(f"layer '{name}' weights are {got}, the prototxt needs {want}")


# Values checked for NaN at a time (a bounded temporary, not one as large as the weights).
_CHECK_CHUNK = 1 << 20


def check_weight_values(net, weights) -> None:
    """Raise ShapeError naming the first layer the definition uses whose stored blobs hold
    fewer or more values than their shape, or a NaN or infinite value.

    ``weights``: a parsed NetParameter, or a :class:`~depth_eval.caffe.weights.CaffeWeights`
    (its values are read from the mapped file, a million at a time: no copy of them is made).
    OpenCV asserts on a short blob with a message that names no layer, and runs NaN or
    infinite weights silently (every prediction then is NaN).
    """
    import numpy as np  # numpy only where weights are checked

    from depth_eval.caffe.weights import CaffeWeights

    mapped = weights if isinstance(weights, CaffeWeights) else None
    used = {layer.name for layer in net.layer}
    for layer in (mapped.net.layer if mapped is not None else weights.layer):
        if layer.name not in used:
            continue
        stored = mapped.values(layer.name) if mapped is not None else None
        for index, blob in enumerate(layer.blobs):
            if stored is not None:  # float32, as Caffe's float blobs hold them
                array = stored[index] if stored[index] is not None else np.zeros(0, np.float32)
            else:
                double = len(blob.double_data) > 0
                array = np.asarray(blob.double_data if double else blob.data,
                                   dtype=np.float64 if double else np.float32)
            shape = blob_shape(blob)
            if array.size != math.prod(shape):
                raise ShapeError(f"layer '{layer.name}' blob {index} holds {array.size} values, "
                                 f"its shape {'x'.join(map(str, shape))} needs {math.prod(shape)}")
            if all(np.isfinite(array[i:i + _CHECK_CHUNK]).all()
                   for i in range(0, array.size, _CHECK_CHUNK)):
                continue
            bad = array[~np.isfinite(array)]
            kinds = " and ".join(sorted({"NaN" if np.isnan(v) else "infinite" for v in bad[:1000]}))
            raise ShapeError(f"layer '{layer.name}' blob {index} holds {bad.size} {kinds} "
                             "value(s)")
