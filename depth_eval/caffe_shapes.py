"""Blob shapes of a Caffe network and the weight shapes its layers expect.

OpenCV's Caffe importer does not check every weight shape against the definition (a grouped
convolution given ungrouped weights runs and returns garbage), so the evaluator checks the
snapshot itself before handing it to OpenCV.  The rules are Caffe's own shape rules.
"""

from __future__ import annotations

import math

from .caffe_proto import blob_shape

Shape = tuple[int, ...]


class ShapeError(ValueError):
    """A layer whose parameters do not fit its input or its stored weights."""


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


_PAIR_FIELDS = {"kernel": "kernel_size", "pad": "pad", "stride": "stride"}


def _pair(param, name: str, default: int) -> tuple[int, int]:
    """A spatial parameter as (h, w): the ``_h``/``_w`` fields win over the plain one."""
    if param.HasField(f"{name}_h") or param.HasField(f"{name}_w"):
        return int(getattr(param, f"{name}_h")), int(getattr(param, f"{name}_w"))
    field = _PAIR_FIELDS[name]
    value = getattr(param, field)
    if isinstance(value, int):  # PoolingParameter: scalar fields
        return (value, value) if param.HasField(field) else (default, default)
    values = [int(v) for v in value]  # ConvolutionParameter: repeated, one value or (h, w)
    return (values[0], values[-1]) if values else (default, default)


def _conv_geometry(param):
    dilation = int(param.dilation[0]) if param.dilation else 1
    return _pair(param, "kernel", 0), _pair(param, "pad", 0), _pair(param, "stride", 1), (dilation,) * 2


def _conv_out(size, kernel, pad, stride, dilation):
    return (size + 2 * pad - (dilation * (kernel - 1) + 1)) // stride + 1


def _pool_out(size, kernel, pad, stride):
    out = int(math.ceil((size + 2 * pad - kernel) / stride)) + 1
    if pad and (out - 1) * stride >= size + pad:  # Caffe: the last window must start inside
        out -= 1
    return out


def _layer_output(layer, bottoms: list[Shape]) -> list[Shape]:
    kind = layer.type
    first = bottoms[0] if bottoms else None
    if kind in ("ReLU", "LRN", "Power", "MVN", "Dropout", "Sigmoid", "TanH", "AbsVal",
                "BatchNorm", "Scale", "Bias", "ELU", "PReLU", "Softmax", "Exp", "Log", "BNLL"):
        return [first] * len(layer.top)
    if kind == "Split":
        return [first] * len(layer.top)
    if kind == "Eltwise":
        return [first]
    if kind in ("Convolution", "Deconvolution"):
        param = layer.convolution_param
        kernel, pad, stride, dilation = _conv_geometry(param)
        n, _, h, w = first
        if kind == "Convolution":
            size = [_conv_out(s, k, p, st, d) for s, k, p, st, d in
                    zip((h, w), kernel, pad, stride, dilation)]
        else:
            size = [st * (s - 1) + d * (k - 1) + 1 - 2 * p for s, k, p, st, d in
                    zip((h, w), kernel, pad, stride, dilation)]
        return [(n, int(param.num_output), *size)]
    if kind == "Pooling":
        param = layer.pooling_param
        n, c, h, w = first
        if param.global_pooling:
            return [(n, c, 1, 1)]
        kernel, pad, stride = (_pair(param, f, d) for f, d in (("kernel", 0), ("pad", 0), ("stride", 1)))
        return [(n, c, *[_pool_out(s, k, p, st) for s, k, p, st in zip((h, w), kernel, pad, stride)])]
    if kind == "InnerProduct":
        axis = layer.inner_product_param.axis % len(first)
        return [tuple(first[:axis]) + (int(layer.inner_product_param.num_output),)]
    if kind == "Flatten":
        axis = layer.flatten_param.axis % len(first)
        return [tuple(first[:axis]) + (math.prod(first[axis:]),)]
    if kind == "Concat":
        axis = layer.concat_param.axis if layer.concat_param.HasField("axis") else (
            layer.concat_param.concat_dim if layer.concat_param.HasField("concat_dim") else 1)
        axis %= len(first)
        for shape in bottoms[1:]:
            if len(shape) != len(first) or any(
                    a != b for i, (a, b) in enumerate(zip(shape, first)) if i != axis):
                raise ShapeError(f"layer '{layer.name}': Concat inputs {bottoms} differ "
                                 f"outside axis {axis}")
        return [tuple(first[:axis]) + (sum(s[axis] for s in bottoms),) + tuple(first[axis + 1:])]
    if kind == "Reshape":
        dims = [int(d) for d in layer.reshape_param.shape.dim]
        if layer.reshape_param.axis != 0 or layer.reshape_param.num_axes != -1:
            raise ShapeError(f"layer '{layer.name}': Reshape with axis/num_axes is not supported")
        out = [first[i] if d == 0 else d for i, d in enumerate(dims)]
        if out.count(-1) == 1:
            known = math.prod(d for d in out if d != -1)
            out[out.index(-1)] = math.prod(first) // known
        if math.prod(out) != math.prod(first):
            raise ShapeError(f"layer '{layer.name}': cannot reshape {first} to {tuple(dims)}")
        return [tuple(out)]
    raise ShapeError(f"layer '{layer.name}': shape rules for type '{kind}' are unknown")


def infer_shapes(net) -> dict[str, Shape]:
    """Every blob's shape after a forward pass of the definition's input shape.

    Blobs after a layer type these rules do not know are left out (their consumers too).
    """
    shapes = dict(network_inputs(net))
    for layer in net.layer:
        if layer.type == "Input":
            continue
        if any(b not in shapes for b in layer.bottom) or not layer.bottom:
            continue
        try:
            outputs = _layer_output(layer, [shapes[b] for b in layer.bottom])
        except ShapeError as error:
            if "unknown" in str(error):
                continue
            raise
        for top, shape in zip(layer.top, outputs):
            if min(shape) <= 0:
                raise ShapeError(f"layer '{layer.name}': output shape {shape} is empty "
                                 f"(input {[shapes[b] for b in layer.bottom]})")
            shapes[top] = shape
    return shapes


def expected_weight_shapes(net, shapes: dict[str, Shape] | None = None) -> dict[str, list[Shape]]:
    """Layer name -> the shapes of the weight blobs Caffe stores for it (weights, then bias)."""
    shapes = infer_shapes(net) if shapes is None else shapes
    expected = {}
    for layer in net.layer:
        bottom = shapes.get(layer.bottom[0]) if layer.bottom else None
        if layer.type in ("Convolution", "Deconvolution"):
            param = layer.convolution_param
            kernel, _, _, _ = _conv_geometry(param)
            group, num_output = int(param.group), int(param.num_output)
            channels = bottom[1] if bottom else None
            if channels is not None and (channels % group or num_output % group):
                raise ShapeError(f"layer '{layer.name}': group {group} does not divide "
                                 f"{channels} input and {num_output} output channels")
            if layer.type == "Convolution":
                weight = (num_output, channels // group if channels else -1, *kernel)
            else:
                weight = (channels if channels else -1, num_output // group, *kernel)
            expected[layer.name] = [weight] + ([(num_output,)] if param.bias_term else [])
        elif layer.type == "InnerProduct":
            param = layer.inner_product_param
            axis = param.axis % len(bottom) if bottom else 1
            fan_in = math.prod(bottom[axis:]) if bottom else -1
            weight = (fan_in, int(param.num_output)) if param.transpose else (int(param.num_output), fan_in)
            expected[layer.name] = [weight] + ([(int(param.num_output),)] if param.bias_term else [])
    return expected


def _same_shape(stored: Shape, expected: Shape) -> bool:
    """Compare ignoring unknown (-1) dims and Caffe's legacy 4-D padding with leading ones."""
    if -1 in expected:
        known = [(s, e) for s, e in zip(stored[-len(expected):], expected) if e != -1]
        return len(stored) >= len(expected) and all(s == e for s, e in known)
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
    for name, expected in expected_weight_shapes(net).items():
        found = stored.get(name)
        if not found:
            raise ShapeError(f"layer '{name}' has no weights in the caffemodel")
        if len(found) != len(expected) or not all(map(_same_shape, found, expected)):
            want = " + ".join("x".join(map(str, s)) for s in expected).replace("-1", "?")
            got = " + ".join("x".join(map(str, s)) for s in found)
            raise ShapeError(f"layer '{name}' weights are {got}, the prototxt needs {want}")
