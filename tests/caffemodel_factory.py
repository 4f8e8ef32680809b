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

from depth_eval.caffe_proto import BlobProto, NetParameter, read_prototxt, write_caffemodel

Shape = tuple[int, ...]

# Floats are copied into the protobuf repeated field in slices: one big ``tolist()`` of a
# 61 M-weight layer would hold gigabytes of Python floats, and ``extend`` straight from a numpy
# array is several times slower than from a list (measured with the upb backend).
_CHUNK = 1 << 20


def _net(net_or_path) -> NetParameter:
    if isinstance(net_or_path, (str, Path)):
        return read_prototxt(net_or_path)
    return net_or_path


def _pair(repeated, single_h, single_w, default):
    """Caffe's (h, w) of a kernel/stride/pad spec: explicit _h/_w, else 1 or 2 repeated values."""
    if single_h is not None and single_w is not None:
        return int(single_h), int(single_w)
    values = list(repeated)
    if not values:
        return default, default
    if len(values) == 1:
        return int(values[0]), int(values[0])
    if len(values) == 2:
        return int(values[0]), int(values[1])
    raise ValueError(f"only 2-D spatial parameters are supported, got {values}")


def _conv_geometry(param):
    has = param.HasField
    kernel = _pair(param.kernel_size, param.kernel_h if has("kernel_h") else None,
                   param.kernel_w if has("kernel_w") else None, None)
    if kernel[0] is None:
        raise ValueError("convolution without kernel size")
    stride = _pair(param.stride, param.stride_h if has("stride_h") else None,
                   param.stride_w if has("stride_w") else None, 1)
    pad = _pair(param.pad, param.pad_h if has("pad_h") or has("pad_w") else None,
                param.pad_w if has("pad_h") or has("pad_w") else None, 0)
    dilation = _pair(param.dilation, None, None, 1)
    return kernel, stride, pad, dilation


def _axis(axis: int, ndim: int) -> int:
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} out of range for {ndim} dimensions")
    return axis % ndim


def _convolution(layer, bottom: Shape, deconv: bool) -> Shape:
    param = layer.convolution_param
    if _axis(param.axis, len(bottom)) != 1 or len(bottom) != 4:
        raise ValueError(f"{layer.name}: only NCHW convolution along axis 1 is supported")
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = _conv_geometry(param)
    n, c, h, w = bottom
    if c % param.group or param.num_output % param.group:
        raise ValueError(f"{layer.name}: channels {c} / num_output {param.num_output} "
                         f"not divisible by group {param.group}")
    ekh, ekw = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    if deconv:
        oh, ow = sh * (h - 1) + ekh - 2 * ph, sw * (w - 1) + ekw - 2 * pw
    else:
        oh, ow = (h + 2 * ph - ekh) // sh + 1, (w + 2 * pw - ekw) // sw + 1
    if oh <= 0 or ow <= 0:
        raise ValueError(f"{layer.name}: output {oh}x{ow} from input {h}x{w}")
    return (n, int(param.num_output), oh, ow)


def _pooling(layer, bottom: Shape) -> Shape:
    param = layer.pooling_param
    n, c, h, w = bottom
    if param.global_pooling:
        return (n, c, 1, 1)
    has = param.HasField
    kh, kw = ((param.kernel_h, param.kernel_w) if has("kernel_h") else
              (param.kernel_size, param.kernel_size))
    sh, sw = ((param.stride_h, param.stride_w) if has("stride_h") else
              (param.stride, param.stride))
    ph, pw = ((param.pad_h, param.pad_w) if has("pad_h") or has("pad_w") else
              (param.pad, param.pad))
    rounding = math.floor if param.round_mode == 1 else math.ceil  # 1 = FLOOR, default CEIL

    def pooled(size, k, s, p):
        out = int(rounding((size + 2 * p - k) / s)) + 1
        if p and (out - 1) * s >= size + p:  # Caffe: the last window must start inside the image
            out -= 1
        return out

    return (n, c, pooled(h, kh, sh, ph), pooled(w, kw, sw, pw))


def _inner_product(layer, bottom: Shape) -> Shape:
    axis = _axis(layer.inner_product_param.axis, len(bottom))
    return bottom[:axis] + (int(layer.inner_product_param.num_output),)


def _reshape(layer, bottom: Shape) -> Shape:
    param = layer.reshape_param
    dims = [int(d) for d in param.shape.dim]
    # Caffe: a negative axis counts from after the last axis (-1 appends).
    start = param.axis if param.axis >= 0 else len(bottom) + 1 + param.axis
    if not 0 <= start <= len(bottom):
        raise ValueError(f"{layer.name}: reshape axis {param.axis} out of range")
    end = len(bottom) if param.num_axes == -1 else start + param.num_axes
    replaced = bottom[start:end]
    new = []
    for i, d in enumerate(dims):
        if d == 0:
            if i >= len(replaced):
                raise ValueError(f"{layer.name}: dim 0 at position {i} has nothing to copy")
            new.append(replaced[i])
        else:
            new.append(d)
    if new.count(-1) > 1:
        raise ValueError(f"{layer.name}: more than one -1 in reshape")
    total = math.prod(replaced)
    if -1 in new:
        known = math.prod(d for d in new if d != -1)
        if known == 0 or total % known:
            raise ValueError(f"{layer.name}: cannot infer -1 reshaping {bottom} to {dims}")
        new[new.index(-1)] = total // known
    if math.prod(new) != total:
        raise ValueError(f"{layer.name}: reshape {bottom} to {dims} changes the count")
    return bottom[:start] + tuple(new) + bottom[end:]


def _concat(layer, bottoms: Sequence[Shape]) -> Shape:
    param = layer.concat_param
    axis = param.concat_dim if param.HasField("concat_dim") else param.axis
    axis = _axis(axis, len(bottoms[0]))
    for shape in bottoms[1:]:
        if len(shape) != len(bottoms[0]) or any(
                a != b for i, (a, b) in enumerate(zip(shape, bottoms[0])) if i != axis):
            raise ValueError(f"{layer.name}: cannot concatenate {list(bottoms)} on axis {axis}")
    out = list(bottoms[0])
    out[axis] = sum(shape[axis] for shape in bottoms)
    return tuple(out)


_SAME_SHAPE = {"ReLU", "LRN", "Power", "MVN", "Dropout", "Sigmoid", "TanH", "AbsVal", "Softmax",
               "Split"}


def infer_shapes(net) -> dict[str, Shape]:
    """Shape of every blob of a deploy network, in Caffe's N x C x H x W convention.

    Parameters
    ----------
    net : NetParameter or str or Path
        A parsed network, or the path of a ``.prototxt``.

    Returns
    -------
    dict
        Blob name -> shape tuple.  An in-place layer (top == bottom) keeps the blob's entry;
        the value is the blob's final shape.

    Raises
    ------
    ValueError
        For a layer type this helper does not model, an unknown bottom blob or inconsistent
        parameters.
    """
    net = _net(net)
    shapes: dict[str, Shape] = {}
    inputs = list(net.input)
    if net.input_shape:
        for name, shape in zip(inputs, net.input_shape):
            shapes[name] = tuple(int(d) for d in shape.dim)
    elif net.input_dim:
        dims = [int(d) for d in net.input_dim]
        for i, name in enumerate(inputs):
            shapes[name] = tuple(dims[4 * i:4 * i + 4])
    for layer in net.layer:
        kind = layer.type
        if kind == "Input":
            declared = list(layer.input_param.shape)
            for i, top in enumerate(layer.top):
                shape = declared[i] if len(declared) > 1 else declared[0]
                shapes[top] = tuple(int(d) for d in shape.dim)
            continue
        missing = [b for b in layer.bottom if b not in shapes]
        if missing:
            raise ValueError(f"{layer.name}: unknown bottom blob(s) {missing}")
        bottoms = [shapes[b] for b in layer.bottom]
        if kind == "Convolution":
            out = _convolution(layer, bottoms[0], deconv=False)
        elif kind == "Deconvolution":
            out = _convolution(layer, bottoms[0], deconv=True)
        elif kind == "Pooling":
            out = _pooling(layer, bottoms[0])
        elif kind == "InnerProduct":
            out = _inner_product(layer, bottoms[0])
        elif kind == "Reshape":
            out = _reshape(layer, bottoms[0])
        elif kind == "Concat":
            out = _concat(layer, bottoms)
        elif kind == "Flatten":
            axis = _axis(layer.flatten_param.axis, len(bottoms[0]))
            end = _axis(layer.flatten_param.end_axis, len(bottoms[0]))
            out = bottoms[0][:axis] + (math.prod(bottoms[0][axis:end + 1]),) + bottoms[0][end + 1:]
        elif kind == "Eltwise":
            out = bottoms[0]
        elif kind in _SAME_SHAPE:
            out = bottoms[0]
        else:
            raise ValueError(f"{layer.name}: layer type {kind!r} is not modelled")
        for top in layer.top:
            shapes[top] = out
    return shapes


def weight_shapes(net) -> dict[str, list[Shape]]:
    """Shapes of the learned blobs of each parametrised layer, in Caffe's storage order.

    Convolution: weights (num_output, C_in / group, kh, kw) then bias (num_output,);
    Deconvolution: weights (C_in, num_output / group, kh, kw) then bias (num_output,);
    InnerProduct: weights (num_output, K) (or (K, num_output) if transposed) then bias.
    Biases only where ``bias_term`` is true.  Layers without weights are left out.
    """
    net = _net(net)
    shapes = infer_shapes(net)
    out: dict[str, list[Shape]] = {}
    for layer in net.layer:
        if layer.type in ("Convolution", "Deconvolution"):
            param = layer.convolution_param
            (kh, kw), _, _, _ = _conv_geometry(param)
            c_in = shapes[layer.bottom[0]][1]
            n_out, group = int(param.num_output), int(param.group)
            if layer.type == "Convolution":
                blobs = [(n_out, c_in // group, kh, kw)]
            else:
                blobs = [(c_in, n_out // group, kh, kw)]
            if param.bias_term:
                blobs.append((n_out,))
        elif layer.type == "InnerProduct":
            param = layer.inner_product_param
            bottom = shapes[layer.bottom[0]]
            k = math.prod(bottom[_axis(param.axis, len(bottom)):])
            n_out = int(param.num_output)
            blobs = [(k, n_out) if param.transpose else (n_out, k)]
            if param.bias_term:
                blobs.append((n_out,))
        else:
            continue
        out[layer.name] = blobs
    return out


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
