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

import numpy as np

from depth_eval.errors import ShapeError
from depth_eval.caffe import geometry
from depth_eval.caffe.geometry import canonical_axis
from depth_eval.caffe.weights import CaffeWeights
from depth_eval.caffe.proto import NetParameter, blob_shape, included_layers, read_prototxt

Shape = tuple[int, ...]


def network_inputs(net) -> dict[str, Shape]:
    """Input blob name -> N x C x H x W shape, from ``Input`` layers or net-level inputs."""
    inputs = {}
    for layer in included_layers(net):
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


def _slice(layer, bottom: Shape, tops: int) -> list[Shape]:
    """Caffe's Slice: the parts between ``slice_point``s, or ``tops`` equal parts."""
    axis, points = slice_axis(layer, len(bottom)), slice_points(layer, bottom, tops)
    bounds = [0] + points + [bottom[axis]]
    return [bottom[:axis] + (b - a,) + bottom[axis + 1:] for a, b in zip(bounds, bounds[1:])]


def slice_axis(layer, ndim: int) -> int:
    """The axis a Slice layer cuts (the deprecated ``slice_dim``, else ``axis``)."""
    param = layer.slice_param
    if param.HasField("slice_dim") and param.HasField("axis"):
        raise ShapeError(f"{layer.name}: Slice takes axis or slice_dim, not both")
    if param.HasField("slice_dim"):
        if param.slice_dim >= ndim:
            raise ShapeError(f"{layer.name}: slice_dim {param.slice_dim} out of range")
        return int(param.slice_dim)
    return canonical_axis(layer, param.axis, ndim)


def slice_points(layer, bottom: Shape, tops: int) -> list[int]:
    """Where a Slice layer cuts its axis: its ``slice_point``s, or ``tops`` equal parts."""
    size = bottom[slice_axis(layer, len(bottom))]
    points = [int(p) for p in layer.slice_param.slice_point]
    if points:
        if len(points) != tops - 1:
            raise ShapeError(f"{layer.name}: {len(points)} slice points for {tops} tops")
        if tops > size or any(b <= a for a, b in zip([0] + points, points + [size])):
            raise ShapeError(f"{layer.name}: slice points {points} do not cut an axis of "
                             f"size {size} into {tops} parts")
        return points
    if size % tops:
        raise ShapeError(f"{layer.name}: {tops} tops do not divide the slice axis ({size})")
    return [size // tops * i for i in range(1, tops)]


def crop_offsets(layer, bottom: Shape, reference: Shape) -> list[int]:
    """Caffe's Crop: the offset of every axis of ``bottom`` (0 before ``axis``; one offset for
    all cropped axes, or one each), checked to fit ``reference``."""
    param = layer.crop_param
    start = canonical_axis(layer, param.axis, len(bottom))
    given = [int(o) for o in param.offset]
    if len(given) > 1 and start + len(given) != len(bottom):
        raise ShapeError(f"{layer.name}: {len(given)} crop offsets for {len(bottom) - start} "
                         f"cropped axes")
    if len(reference) != len(bottom):
        raise ShapeError(f"{layer.name}: cannot crop {bottom} to {reference}")
    offsets = []
    for i in range(len(bottom)):
        offset = 0 if i < start or not given else given[0] if len(given) == 1 else given[i - start]
        if i >= start and bottom[i] - offset < reference[i]:
            raise ShapeError(f"{layer.name}: crop of axis {i} out of bounds (size "
                             f"{reference[i]}, offset {offset}, bottom {bottom[i]})")
        offsets.append(offset)
    return offsets


def _crop(layer, bottom: Shape, reference: Shape) -> Shape:
    start = canonical_axis(layer, layer.crop_param.axis, len(bottom))
    crop_offsets(layer, bottom, reference)
    return bottom[:start] + tuple(reference[start:])


def _tile(layer, bottom: Shape) -> Shape:
    param = layer.tile_param
    axis = canonical_axis(layer, param.axis, len(bottom))
    if not param.HasField("tiles") or param.tiles < 1:
        raise ShapeError(f"{layer.name}: Tile needs a positive number of tiles")
    return bottom[:axis] + (bottom[axis] * int(param.tiles),) + bottom[axis + 1:]


def _argmax(layer, bottom: Shape) -> Shape:
    param = layer.argmax_param
    k = int(param.top_k)
    if k < 1:
        raise ShapeError(f"{layer.name}: top_k must be at least 1")
    if param.HasField("axis"):
        axis = canonical_axis(layer, param.axis, len(bottom))
        if k > bottom[axis]:
            raise ShapeError(f"{layer.name}: top_k {k} exceeds axis {axis} ({bottom[axis]})")
        return bottom[:axis] + (k,) + bottom[axis + 1:]
    if k > math.prod(bottom[1:]):
        raise ShapeError(f"{layer.name}: top_k {k} exceeds the values per item")
    # Caffe: at least 3 axes, (num, 1 or 2 with out_max_val, top_k, 1...).
    return (bottom[0], 2 if param.out_max_val else 1, k) + (1,) * (len(bottom) - 3)


def _spp(layer, bottom: Shape) -> Shape:
    if len(bottom) != 4:
        raise ShapeError(f"{layer.name}: SPP needs an N x C x H x W bottom")
    n, c, h, w = bottom
    levels = geometry.spp_levels(layer, h, w)
    if len(levels) == 1:  # Caffe: one pooling, not flattened
        (oh, ow) = levels[0][1]
        return (n, c, oh, ow)
    return (n, c * sum(oh * ow for _, (oh, ow) in levels))


def _im2col(layer, bottom: Shape) -> Shape:
    if canonical_axis(layer, layer.convolution_param.axis, len(bottom)) != 1 or len(bottom) != 4:
        raise ShapeError(f"{layer.name}: only N x C x H x W Im2col along axis 1 is supported")
    n, c, h, w = bottom
    window = geometry.conv_window(layer)
    out = tuple(geometry.conv_extent(size, extent, stride, pad, False) for size, extent, stride,
                pad in zip((h, w), window.extent, window.stride, window.pad))
    if min(out) < 1:
        raise ShapeError(f"{layer.name}: Im2col output would be {out[0]} x {out[1]}")
    return (n, c * window.kernel[0] * window.kernel[1]) + out


def _reduction(layer, bottom: Shape) -> Shape:
    return bottom[:canonical_axis(layer, layer.reduction_param.axis, len(bottom))]


def operand_axis(layer, param, bottom: Shape, operand_ndim: int) -> int:
    """Where Scale's or Bias's operand (its learned blob or second bottom) starts in
    ``bottom``: ``axis``, or 0 for a scalar operand, as Caffe's Reshape has it."""
    axis = 0 if operand_ndim == 0 else canonical_axis(layer, param.axis, len(bottom))
    if axis + operand_ndim > len(bottom):
        raise ShapeError(f"{layer.name}: a {operand_ndim}-axis operand from axis {axis} "
                         f"extends past the bottom {bottom}")
    return axis


def _learned_operand(layer, param, bottom: Shape) -> Shape:
    """Shape of the blob Scale or Bias learns with one bottom: ``num_axes`` axes (-1: all the
    rest) of the bottom from ``axis`` on."""
    axis = canonical_axis(layer, param.axis, len(bottom))
    if param.num_axes < -1 or (param.num_axes >= 0 and axis + param.num_axes > len(bottom)):
        raise ShapeError(f"{layer.name}: num_axes {param.num_axes} from axis {axis} does not "
                         f"fit a bottom {bottom}")
    return tuple(bottom[axis:] if param.num_axes == -1 else bottom[axis:axis + param.num_axes])


def _scale_or_bias(layer, bottoms: Sequence[Shape]) -> Shape:
    param = layer.scale_param if layer.type == "Scale" else layer.bias_param
    if len(bottoms) > 1:
        operand = bottoms[1]
        axis = operand_axis(layer, param, bottoms[0], len(operand))
        if tuple(bottoms[0][axis:axis + len(operand)]) != tuple(operand):
            raise ShapeError(f"{layer.name}: operand {operand} does not match the bottom "
                             f"{bottoms[0]} from axis {axis}")
    return bottoms[0]


_SAME_SHAPE = {"ReLU", "LRN", "Power", "Dropout", "Sigmoid", "TanH", "AbsVal", "Softmax",
               "Split", "Eltwise", "BatchNorm", "PReLU", "ELU", "Exp", "Log", "BNLL",
               "Threshold"}


# Caffe's legacy blob accessors (num, channels, height, width) cover at most 4 axes.
_LEGACY_AXES = 4


def mvn_top(layer, bottom: Shape) -> Shape:
    """MVN's top: Caffe reshapes it through the legacy num/channels/height/width accessors,
    so a bottom of fewer than 4 axes gives a 4-axis top (trailing axes of 1)."""
    if len(bottom) > _LEGACY_AXES:
        raise ShapeError(f"{layer.name}: MVN takes at most {_LEGACY_AXES} axes, the bottom is "
                         f"{bottom}")
    return tuple(bottom) + (1,) * (_LEGACY_AXES - len(bottom))


def top_shapes(layer, bottoms: Sequence[Shape]) -> list[Shape] | None:
    """Caffe's shapes of a layer's tops for its bottoms' shapes (one per top); None for a layer
    type these rules do not model.

    The translation calls this with a symbolic batch (``None`` as the first dimension) after
    refusing what would compute with it.

    Raises
    ------
    ShapeError
        For parameters Caffe refuses for these bottoms.
    """
    kind, tops = layer.type, max(len(layer.top), 1)
    if kind == "Slice":
        return _slice(layer, bottoms[0], tops)
    if kind == "Parameter":
        return [tuple(int(d) for d in layer.parameter_param.shape.dim)]
    if kind == "Crop":
        if len(bottoms) != 2:
            raise ShapeError(f"{layer.name}: Crop takes two bottoms")
        out = _crop(layer, bottoms[0], bottoms[1])
    elif kind in ("Scale", "Bias"):
        out = _scale_or_bias(layer, bottoms)
    elif kind == "MVN":
        out = mvn_top(layer, bottoms[0])
    elif kind in _SAME_SHAPE:
        out = bottoms[0]
    else:
        rule = _RULES.get(kind)
        if rule is None:
            return None
        out = rule(layer, bottoms[0]) if kind != "Concat" else rule(layer, bottoms)
    return [out] * tops


def _flatten(layer, bottom: Shape) -> Shape:
    axis = canonical_axis(layer, layer.flatten_param.axis, len(bottom))
    end = canonical_axis(layer, layer.flatten_param.end_axis, len(bottom))
    return bottom[:axis] + (math.prod(bottom[axis:end + 1]),) + bottom[end + 1:]


_RULES = {"Convolution": _convolution, "Deconvolution": _convolution, "Pooling": _pooling,
          "InnerProduct": _inner_product, "Reshape": _reshape, "Concat": _concat,
          "Flatten": _flatten, "Tile": _tile, "ArgMax": _argmax, "SPP": _spp,
          "Im2col": _im2col, "Reduction": _reduction}


def infer_shapes(net, strict: bool = True) -> dict[str, Shape]:
    """Shape of every blob of a deploy network, in Caffe's N x C x H x W convention.

    Parameters
    ----------
    net : NetParameter or str or Path
        A parsed network, or the path of a ``.prototxt``.  Layers the TEST phase leaves out
        (``include``/``exclude`` rules) are left out here too.
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
    for layer in included_layers(net):
        if layer.type in ("Input", "Silence"):
            continue
        missing = [b for b in layer.bottom if b not in shapes]
        if missing and not strict:
            continue
        if missing:
            raise ShapeError(f"{layer.name}: unknown bottom blob(s) {missing}")
        if not layer.bottom and layer.type != "Parameter":
            if not strict:
                continue
            raise ShapeError(f"{layer.name}: layer type {layer.type!r} is not modelled")
        outs = top_shapes(layer, [shapes[b] for b in layer.bottom])
        if outs is None:
            if not strict:
                continue
            raise ShapeError(f"{layer.name}: layer type {layer.type!r} is not modelled")
        for top, out in zip(layer.top, outs):
            shapes[top] = out
    return shapes


def layer_weight_shapes(layer, bottom: Shape, second: Shape | None = None) -> list[Shape]:
    """Shapes of one layer's learned blobs, in Caffe's storage order, for its bottoms' shapes.

    Convolution: weights (num_output, C_in / group, kh, kw) then bias (num_output,);
    Deconvolution: weights (C_in, num_output / group, kh, kw) then bias (num_output,);
    InnerProduct: weights (num_output, K) (or (K, num_output) if transposed) then bias, K the
    product of the bottom's dimensions from ``axis`` on.  Biases only where ``bias_term`` is
    true.  BatchNorm: mean (C,), variance (C,), the moving-average factor (1,).  Scale: the
    scale (none with a ``second`` bottom) then the bias; Bias: the bias (none with a second
    bottom), ``num_axes`` axes of the bottom from ``axis`` (a second bottom: its axes).  PReLU:
    the slopes (C,), or one 0-axis value if ``channel_shared``.  Parameter: its ``shape``.  An
    empty list for a layer type without weights.
    """
    kind = layer.type
    if kind == "BatchNorm":
        channels = 1 if len(bottom) == 1 else bottom[1]
        return [(channels,), (channels,), (1,)]
    if kind == "PReLU":
        return [()] if layer.prelu_param.channel_shared else [(bottom[1],)]
    if kind == "Parameter":
        return [tuple(int(d) for d in layer.parameter_param.shape.dim)]
    if kind in ("Scale", "Bias"):
        param = layer.scale_param if kind == "Scale" else layer.bias_param
        if second is None:
            operand = _learned_operand(layer, param, bottom)
            blobs = [operand]
        else:
            axis = operand_axis(layer, param, bottom, len(second))
            operand, blobs = tuple(bottom[axis:axis + len(second)]), []
        if kind == "Scale" and param.bias_term:
            blobs.append(operand)
        return blobs
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
    for layer in included_layers(net):
        if any(b not in shapes for b in layer.bottom):
            continue  # after a layer type the rules do not model (strict=False)
        bottoms = [shapes[b] for b in layer.bottom]
        if bottoms:
            blobs = layer_weight_shapes(layer, *bottoms[:2])
        else:
            blobs = layer_weight_shapes(layer, ()) if layer.type == "Parameter" else []
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
