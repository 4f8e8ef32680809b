"""Translate a Caffe deploy network and its trained weights into an ONNX graph.

The graph reproduces Caffe 1.0's forward pass for the layer types the thesis networks use
(plus a few simple ones), with Caffe's own size and rounding rules where they differ from the
ONNX defaults:

* Pooling output sizes use Caffe's ceil rounding and its rule that the last window must start
  inside the image (plus top padding); this is expressed with explicit, possibly asymmetric
  ONNX pads (or a crop), never with ``ceil_mode``.
* AVE pooling divides by the window clipped to the padded input (``in + pad``), which is neither
  ONNX's ``count_include_pad=0`` nor ``1``; the translation averages the valid elements and then
  multiplies by a constant per-output-position correction ``valid / caffe_divisor``.
* MVN is ``(x - mean) / (sqrt(var) + eps)`` with the epsilon added to the standard deviation.
* LRN within a channel is ``x * (1 + alpha / size^2 * box_sum(x^2)) ^ -beta`` (Caffe ignores
  ``k`` there).

The batch dimension may stay symbolic (``batch=None``) so one session can run several images
per call; every other dimension is fixed from the definition.

Public API: :func:`caffe_to_onnx`, :class:`UnsupportedLayerError`, :data:`TRANSLATOR_VERSION`.
"""

from __future__ import annotations

from .errors import UnsupportedLayerError  # noqa: F401 (raised here, caught by callers)

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .caffe_proto import blob_shape

__all__ = ["caffe_to_onnx", "UnsupportedLayerError", "TRANSLATOR_VERSION", "OPSET", "BATCH_DIM"]

#: Bumped whenever the generated graph for the same inputs may change (cache key component).
TRANSLATOR_VERSION = "2"
#: ONNX opset of the generated graphs (ReduceMean still takes ``axes`` as an attribute).
OPSET = 17
#: IR version written into the model; 8 is what opset 17 was released with, so older
#: onnxruntime builds (>= 1.16) load the file too.
IR_VERSION = 8
#: Name of the symbolic batch dimension when ``batch=None``.
BATCH_DIM = "N"
#: Across-channel LRN over at most this many channels is built from Mul/Conv/Pow (faster in
#: onnxruntime than its LRN kernel); wider blobs use the LRN operator (the banded weight grows
#: as channels^2).
_LRN_AS_CONV_MAX_CHANNELS = 384

# A tracked blob shape: ints, with ``None`` standing for the symbolic batch size N (at most
# one ``None`` per shape, i.e. every blob holds N times a fixed number of values).
Shape = tuple


def _unsupported(layer, what: str | None = None) -> UnsupportedLayerError:
    if what is None:
        return UnsupportedLayerError(
            f"layer '{layer.name}' of type '{layer.type}' is not supported by the onnxruntime "
            f"engine; use --engine opencv")
    return UnsupportedLayerError(
        f"layer '{layer.name}' of type '{layer.type}': {what} is not supported by the "
        f"onnxruntime engine; use --engine opencv")


# ----------------------------------------------------------------------------------------------
# Caffe's layer filtering by phase (a training prototxt's data layers are TRAIN-only).

def _rule_matches(rule, phase: int, level: int, stages: set[str]) -> bool:
    if rule.HasField("phase") and rule.phase != phase:
        return False
    if rule.HasField("min_level") and level < rule.min_level:
        return False
    if rule.HasField("max_level") and level > rule.max_level:
        return False
    if any(stage not in stages for stage in rule.stage):
        return False
    if any(stage in stages for stage in rule.not_stage):
        return False
    return True


def _included_layers(net) -> list:
    state = net.state
    phase = state.phase if state.HasField("phase") else 1  # TEST
    level, stages = state.level, set(state.stage)
    kept = []
    for layer in net.layer:
        if layer.include:
            keep = any(_rule_matches(r, phase, level, stages) for r in layer.include)
        else:
            keep = not any(_rule_matches(r, phase, level, stages) for r in layer.exclude)
        if keep:
            kept.append(layer)
    return kept


# ----------------------------------------------------------------------------------------------
# Shape arithmetic with a symbolic batch.

def _count(shape: Shape) -> tuple[int, int]:
    """(power of N, fixed product) of a shape's element count."""
    return sum(d is None for d in shape), math.prod(d for d in shape if d is not None)


def _fmt(shape: Shape) -> str:
    return "(" + ", ".join(BATCH_DIM if d is None else str(d) for d in shape) + ")"


def _reshape_target(shape: Shape) -> list[int]:
    """ONNX Reshape target for a tracked shape: the symbolic dimension becomes -1."""
    return [-1 if d is None else int(d) for d in shape]


def _canonical_axis(layer, axis: int, ndim: int) -> int:
    if not -ndim <= axis < ndim:
        raise ValueError(f"layer '{layer.name}': axis {axis} out of range for a "
                         f"{ndim}-dimensional blob")
    return axis % ndim


def _pair(layer, repeated: Sequence[int], what: str, default: int | None) -> tuple[int, int]:
    values = [int(v) for v in repeated]
    if not values:
        if default is None:
            raise ValueError(f"layer '{layer.name}': no {what} given")
        return default, default
    if len(values) == 1:
        return values[0], values[0]
    if len(values) == 2:
        return values[0], values[1]
    raise _unsupported(layer, f"{len(values)}-dimensional {what}")


def _conv_geometry(layer):
    """Caffe's kernel, stride, pad and dilation (h, w) of a (de)convolution layer."""
    p = layer.convolution_param
    if p.HasField("kernel_h") or p.HasField("kernel_w"):
        if p.kernel_size:
            raise ValueError(f"layer '{layer.name}': kernel_size and kernel_h/kernel_w are "
                             f"exclusive")
        kernel = (int(p.kernel_h), int(p.kernel_w))
    else:
        kernel = _pair(layer, p.kernel_size, "kernel_size", None)
    if p.HasField("stride_h") or p.HasField("stride_w"):
        stride = (int(p.stride_h), int(p.stride_w))
    else:
        stride = _pair(layer, p.stride, "stride", 1)
    if p.HasField("pad_h") or p.HasField("pad_w"):
        pad = (int(p.pad_h), int(p.pad_w))
    else:
        pad = _pair(layer, p.pad, "pad", 0)
    dilation = _pair(layer, p.dilation, "dilation", 1)
    if min(kernel) < 1 or min(stride) < 1 or min(dilation) < 1:
        raise ValueError(f"layer '{layer.name}': kernel, stride and dilation must be positive")
    return kernel, stride, pad, dilation


def _pool_extent(size: int, k: int, s: int, p: int, ceil_mode: bool, padded: bool) -> int:
    """Caffe's pooled output size along one axis."""
    num = size + 2 * p - k
    out = (-((-num) // s) if ceil_mode else num // s) + 1
    # Caffe (only when the layer has any padding): the last window must start strictly inside
    # the image plus the top/left padding, else it is dropped.
    if padded and (out - 1) * s >= size + p:
        out -= 1
    return out


def _ave_correction(size: int, out: int, k: int, s: int, p: int) -> np.ndarray:
    """Per output position along one axis: valid elements / Caffe's AVE divisor."""
    factors = np.empty(out, dtype=np.float64)
    for i in range(out):
        start = i * s - p
        caffe_end = min(start + k, size + p)
        valid = min(start + k, size) - max(start, 0)
        factors[i] = valid / (caffe_end - start)
    return factors


# ----------------------------------------------------------------------------------------------

@dataclass
class _Graph:
    batch: int | None
    nodes: list = field(default_factory=list)
    initializers: dict = field(default_factory=dict)  # name -> numpy array
    names: set = field(default_factory=set)           # value names in use
    node_names: set = field(default_factory=set)
    shapes: dict = field(default_factory=dict)        # ONNX value name -> tracked shape

    def unique(self, base: str, taken: set | None = None) -> str:
        taken = self.names if taken is None else taken
        name, i = base, 1
        while name in taken:
            name = f"{base}__{i}"
            i += 1
        taken.add(name)
        return name

    def const(self, base: str, array) -> str:
        name = self.unique(base)
        self.initializers[name] = np.asarray(array)
        return name

    def scalar(self, base: str, value: float) -> str:
        return self.const(base, np.array(value, dtype=np.float32))

    def ints(self, base: str, values: Iterable[int]) -> str:
        return self.const(base, np.array(list(values), dtype=np.int64))

    def node(self, op: str, inputs: Sequence[str], base: str, shape: Shape, name: str,
             **attrs) -> str:
        out = self.unique(base)
        node_name = self.unique(name, self.node_names)
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=node_name,
                                           **attrs))
        self.shapes[out] = tuple(shape)
        return out


class _Translator:
    def __init__(self, net, weights, batch: int | None):
        self.net = net
        self.g = _Graph(batch=batch)
        self.weights = {layer.name: layer for layer in weights.layer} if weights is not None \
            else {}
        self.blobs: dict[str, str] = {}       # Caffe blob name -> current ONNX value
        self.inputs: list = []                # graph inputs (ValueInfoProto)
        self.input_names: list[str] = []
        self.producer: dict[str, str] = {}    # Caffe blob name -> last layer writing it

    # -- helpers --------------------------------------------------------------------------------
    def shape(self, value: str) -> Shape:
        return self.g.shapes[value]

    def add_input(self, name: str, dims: Sequence[int], where: str):
        dims = [int(d) for d in dims]
        if not dims or any(d <= 0 for d in dims):
            raise ValueError(f"{where}: input '{name}' has an invalid shape {dims}")
        if name in self.blobs:
            raise ValueError(f"{where}: input blob '{name}' is declared twice")
        shape = (self.g.batch,) + tuple(dims[1:])
        self.g.shapes[name] = shape
        self.blobs[name] = name
        self.producer[name] = where
        self.input_names.append(name)
        self.inputs.append(helper.make_tensor_value_info(
            name, TensorProto.FLOAT, [BATCH_DIM if d is None else d for d in shape]))

    def blob_arrays(self, layer, expected: list[tuple[int, ...]]) -> list[np.ndarray]:
        source = self.weights.get(layer.name)
        shapes = " and ".join(_fmt(s) for s in expected)
        if source is None or not source.blobs:
            raise ValueError(f"layer '{layer.name}' ({layer.type}): no weights in the "
                             f"caffemodel (expected {len(expected)} blob(s) of shape {shapes})")
        if len(source.blobs) != len(expected):
            found = " and ".join(_fmt(blob_shape(b)) for b in source.blobs)
            raise ValueError(f"layer '{layer.name}' ({layer.type}): expected {len(expected)} "
                             f"weight blob(s) of shape {shapes}, found {len(source.blobs)}: "
                             f"{found}")
        arrays = []
        for i, (blob, want) in enumerate(zip(source.blobs, expected)):
            have = blob_shape(blob)
            if blob.HasField("shape"):
                ok = tuple(have) == tuple(want)
            else:  # legacy num/channels/height/width: Caffe pads the expected shape to 4-D
                ok = len(want) <= 4 and tuple(have) == (1,) * (4 - len(want)) + tuple(want)
            if not ok:
                raise ValueError(f"layer '{layer.name}' ({layer.type}): weight blob {i} has "
                                 f"shape {_fmt(have)}, expected {_fmt(want)}")
            data = np.asarray(blob.double_data if len(blob.double_data) else blob.data,
                              dtype=np.float32)
            if data.size != math.prod(want):
                raise ValueError(f"layer '{layer.name}' ({layer.type}): weight blob {i} holds "
                                 f"{data.size} values, its shape {_fmt(want)} needs "
                                 f"{math.prod(want)}")
            arrays.append(data.reshape(want))
        return arrays

    def spatial(self, layer, value: str) -> tuple:
        shape = self.shape(value)
        if len(shape) != 4 or any(d is None for d in shape[1:]):
            raise _unsupported(layer, f"a bottom of shape {_fmt(shape)} (not N x C x H x W)")
        return shape

    # -- driver ---------------------------------------------------------------------------------
    def run(self, outputs: Sequence[str]) -> onnx.ModelProto:
        net = self.net
        layers = _included_layers(net)
        # Graph input and output names are the Caffe blob names: reserve them so that no
        # internal (SSA) value takes one of them.
        consumed = {b for layer in layers for b in layer.bottom}
        if not outputs:
            outputs = []
            for layer in layers:
                outputs += [t for t in layer.top if t not in consumed and t not in outputs
                            and layer.type != "Input"]
        outputs = list(outputs)
        self.g.names.update(outputs)
        self.g.names.update(net.input)
        self.g.names.update(t for layer in layers if layer.type == "Input" for t in layer.top)
        if net.input:
            if net.input_shape:
                if len(net.input_shape) != len(net.input):
                    raise ValueError("network: 'input' and 'input_shape' counts differ")
                for name, shape in zip(net.input, net.input_shape):
                    self.add_input(name, shape.dim, "network")
            elif net.input_dim:
                if len(net.input_dim) != 4 * len(net.input):
                    raise ValueError("network: expected 4 'input_dim' values per input")
                for i, name in enumerate(net.input):
                    self.add_input(name, net.input_dim[4 * i:4 * i + 4], "network")
            else:
                raise ValueError("network: 'input' without 'input_shape' or 'input_dim'")
        for layer in layers:
            missing = [b for b in layer.bottom if b not in self.blobs]
            if missing:
                raise ValueError(f"layer '{layer.name}' ({layer.type}): unknown bottom blob(s) "
                                 f"{missing}")
            bottoms = [self.blobs[b] for b in layer.bottom]
            tops = self.translate(layer, bottoms)
            if tops is None:
                continue
            if len(tops) != len(layer.top):
                raise ValueError(f"layer '{layer.name}' ({layer.type}): expected "
                                 f"{len(tops)} top blob(s), found {len(layer.top)}")
            for top, value in zip(layer.top, tops):
                self.blobs[top] = value
                self.producer[top] = layer.name
        if not self.input_names:
            raise ValueError("network has no input (no 'input' and no Input layer)")
        return self.finish(outputs)

    def finish(self, outputs: Sequence[str]) -> onnx.ModelProto:
        g = self.g
        out_infos, out_nodes = [], []
        for blob in outputs:
            if blob not in self.blobs:
                raise ValueError(f"output blob '{blob}' is not produced by the network "
                                 f"(blobs: {', '.join(self.blobs)})")
            if blob in self.input_names:
                raise ValueError(f"output blob '{blob}' is a network input")
            if outputs.count(blob) > 1:
                raise ValueError(f"output blob '{blob}' requested twice")
            value = self.blobs[blob]
            shape = self.shape(value)
            out_nodes.append(helper.make_node("Identity", [value], [blob],
                                              name=f"output:{blob}"))
            out_infos.append(helper.make_tensor_value_info(
                blob, TensorProto.FLOAT, [BATCH_DIM if d is None else d for d in shape]))
        nodes = g.nodes + out_nodes
        # Keep only what the requested outputs depend on (in topological order).
        needed = set(outputs)
        kept = []
        for node in reversed(nodes):
            if any(o in needed for o in node.output):
                kept.append(node)
                needed.update(i for i in node.input if i)
        kept.reverse()
        inputs = [info for info in self.inputs if info.name in needed] or self.inputs[:1]
        graph = helper.make_graph(kept, self.net.name or "caffe_net", inputs, out_infos)
        for name, array in g.initializers.items():
            if name in needed:  # filled in place: make_graph would copy every tensor again
                tensor = graph.initializer.add()
                tensor.name = name
                tensor.data_type = helper.np_dtype_to_tensor_dtype(array.dtype)
                tensor.dims.extend(array.shape)
                tensor.raw_data = np.ascontiguousarray(array, array.dtype.newbyteorder("<")) \
                    .tobytes()
        model = helper.make_model(graph, producer_name="depth_eval",
                                  producer_version=TRANSLATOR_VERSION,
                                  opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = IR_VERSION
        model.doc_string = f"Translated from Caffe network '{self.net.name}' by depth_eval"
        return model

    # -- layers ---------------------------------------------------------------------------------
    def translate(self, layer, bottoms: list[str]):
        kind = layer.type
        method = getattr(self, "layer_" + kind, None)
        if method is None:
            raise _unsupported(layer)
        return method(layer, bottoms)

    def _nbottoms(self, layer, bottoms, n: int | None = 1, at_least: int = 1):
        if (n is not None and len(bottoms) != n) or len(bottoms) < at_least:
            want = n if n is not None else f"at least {at_least}"
            raise ValueError(f"layer '{layer.name}' ({layer.type}): expected {want} bottom "
                             f"blob(s), found {len(bottoms)}")

    def layer_Input(self, layer, bottoms):
        shapes = list(layer.input_param.shape)
        if not layer.top:
            return []
        if len(shapes) not in (1, len(layer.top)):
            raise ValueError(f"layer '{layer.name}' (Input): {len(shapes)} shapes for "
                             f"{len(layer.top)} tops")
        for i, top in enumerate(layer.top):
            shape = shapes[i] if len(shapes) > 1 else shapes[0]
            self.add_input(top, shape.dim, f"layer '{layer.name}' (Input)")
        return None

    def _identity_tops(self, layer, bottoms):
        self._nbottoms(layer, bottoms)
        return [bottoms[0]] * len(layer.top)

    layer_Split = _identity_tops
    layer_Dropout = _identity_tops  # Caffe's test phase: identity (weights were pre-scaled)

    def layer_Silence(self, layer, bottoms):
        return []

    def _conv(self, layer, bottoms, transposed: bool):
        self._nbottoms(layer, bottoms)
        x = bottoms[0]
        p = layer.convolution_param
        n, c, h, w = self.spatial(layer, x)
        if _canonical_axis(layer, p.axis, 4) != 1:
            raise _unsupported(layer, f"axis {p.axis}")
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = _conv_geometry(layer)
        group, n_out = int(p.group), int(p.num_output)
        if n_out < 1 or group < 1 or c % group or n_out % group:
            raise ValueError(f"layer '{layer.name}' ({layer.type}): {c} input channels and "
                             f"num_output {n_out} must be divisible by group {group}")
        ekh, ekw = dh * (kh - 1) + 1, dw * (kw - 1) + 1
        if transposed:
            wshape = (c, n_out // group, kh, kw)
            oh, ow = sh * (h - 1) + ekh - 2 * ph, sw * (w - 1) + ekw - 2 * pw
        else:
            wshape = (n_out, c // group, kh, kw)
            oh, ow = (h + 2 * ph - ekh) // sh + 1, (w + 2 * pw - ekw) // sw + 1
        if oh < 1 or ow < 1:
            raise ValueError(f"layer '{layer.name}' ({layer.type}): output would be {oh} x {ow} "
                             f"for a {h} x {w} input")
        expected = [wshape] + ([(n_out,)] if p.bias_term else [])
        arrays = self.blob_arrays(layer, expected)
        inputs = [x, self.g.const(f"{layer.name}.weight", arrays[0])]
        if p.bias_term:
            inputs.append(self.g.const(f"{layer.name}.bias", arrays[1]))
        attrs = dict(kernel_shape=[kh, kw], strides=[sh, sw], pads=[ph, pw, ph, pw],
                     dilations=[dh, dw], group=group)
        op = "ConvTranspose" if transposed else "Conv"
        return [self.g.node(op, inputs, layer.top[0], (n, n_out, oh, ow), layer.name, **attrs)]

    def layer_Convolution(self, layer, bottoms):
        return self._conv(layer, bottoms, transposed=False)

    def layer_Deconvolution(self, layer, bottoms):
        return self._conv(layer, bottoms, transposed=True)

    def layer_InnerProduct(self, layer, bottoms):
        self._nbottoms(layer, bottoms)
        x = bottoms[0]
        p = layer.inner_product_param
        shape = self.shape(x)
        axis = _canonical_axis(layer, p.axis, len(shape))
        lead, tail = shape[:axis], shape[axis:]
        if any(d is None for d in tail):
            raise _unsupported(layer, f"axis {p.axis} with a symbolic batch")
        k, n_out = math.prod(tail), int(p.num_output)
        lead_pow, lead_fix = _count(lead)
        if lead_pow > 1 or (lead_pow == 1 and lead_fix != 1):
            raise _unsupported(layer, f"axis {p.axis} with a symbolic batch")
        rows = None if lead_pow else lead_fix
        wshape = (k, n_out) if p.transpose else (n_out, k)
        arrays = self.blob_arrays(layer, [wshape] + ([(n_out,)] if p.bias_term else []))
        g = self.g
        flat = x
        if len(shape) != 2 or axis != 1:
            flat = g.node("Flatten", [x], f"{layer.top[0]}.flat", (rows, k), layer.name,
                          axis=axis)
        inputs = [flat, g.const(f"{layer.name}.weight", arrays[0])]
        if p.bias_term:
            inputs.append(g.const(f"{layer.name}.bias", arrays[1]))
        out_shape = tuple(lead) + (n_out,)
        trans_b = 0 if p.transpose else 1
        if axis == 1:
            return [g.node("Gemm", inputs, layer.top[0], out_shape, layer.name, transB=trans_b)]
        mm = g.node("Gemm", inputs, f"{layer.top[0]}.gemm", (rows, n_out), layer.name,
                    transB=trans_b)
        return [g.node("Reshape", [mm, g.ints(f"{layer.name}.shape",
                                              _reshape_target(out_shape))],
                       layer.top[0], out_shape, layer.name)]

    def layer_ReLU(self, layer, bottoms):
        self._nbottoms(layer, bottoms)
        slope = float(layer.relu_param.negative_slope)
        shape = self.shape(bottoms[0])
        if slope == 0.0:
            return [self.g.node("Relu", bottoms, layer.top[0], shape, layer.name)]
        return [self.g.node("LeakyRelu", bottoms, layer.top[0], shape, layer.name, alpha=slope)]

    def _unary(op):
        def translate(self, layer, bottoms):
            self._nbottoms(layer, bottoms)
            return [self.g.node(op, bottoms, layer.top[0], self.shape(bottoms[0]), layer.name)]
        return translate

    layer_AbsVal = _unary("Abs")
    layer_TanH = _unary("Tanh")
    layer_Sigmoid = _unary("Sigmoid")
    del _unary

    def layer_LRN(self, layer, bottoms):
        self._nbottoms(layer, bottoms)
        x = bottoms[0]
        p = layer.lrn_param
        shape = self.spatial(layer, x)
        size = int(p.local_size)
        if size % 2 == 0 or size < 1:
            raise ValueError(f"layer '{layer.name}' (LRN): local_size must be odd, got {size}")
        # ACROSS_CHANNELS: y = x * (k + alpha / size * window_sum(x^2)) ^ -beta
        if p.norm_region == 0:
            channels = shape[1]
            if channels > _LRN_AS_CONV_MAX_CHANNELS:  # ONNX LRN: the same formula
                return [self.g.node("LRN", [x], layer.top[0], shape, layer.name, size=size,
                                    alpha=float(p.alpha), beta=float(p.beta), bias=float(p.k))]
            # The window sum as a 1x1 convolution with a banded (C x C) weight alpha/size and
            # bias k: the same arithmetic as Caffe (which also pre-scales the squares), and
            # two to three times faster in onnxruntime than its single-threaded LRN kernel.
            g, top, name = self.g, layer.top[0], layer.name
            half = (size - 1) // 2
            band = np.zeros((channels, channels, 1, 1), np.float32)
            for c in range(channels):
                band[c, max(0, c - half):c + half + 1] = np.float32(p.alpha) / np.float32(size)
            sq = g.node("Mul", [x, x], f"{top}.sq", shape, name)
            scale = g.node("Conv", [sq, g.const(f"{name}.window", band),
                                    g.const(f"{name}.k", np.full(channels, p.k, np.float32))],
                           f"{top}.scale", shape, name, kernel_shape=[1, 1])
            powered = g.node("Pow", [scale, g.scalar(f"{name}.negbeta", -float(p.beta))],
                             f"{top}.factor", shape, name)
            return [g.node("Mul", [x, powered], top, shape, name)]
        # WITHIN_CHANNEL: Caffe composes x * (1 + alpha * avepool(x^2)) ^ -beta, where the
        # average pooling (pad (size-1)/2, stride 1) always divides by size^2; k is not used.
        g = self.g
        sq = g.node("Mul", [x, x], f"{layer.top[0]}.sq", shape, layer.name)
        pad = (size - 1) // 2
        avg = self._pool_nodes(layer, sq, shape, method=1, kernel=(size, size), stride=(1, 1),
                               pad=(pad, pad), ceil_mode=True, base=f"{layer.top[0]}.avg")
        scaled = g.node("Mul", [avg, g.scalar(f"{layer.name}.alpha", p.alpha)],
                        f"{layer.top[0]}.scaled", shape, layer.name)
        shifted = g.node("Add", [scaled, g.scalar(f"{layer.name}.one", 1.0)],
                         f"{layer.top[0]}.shifted", shape, layer.name)
        powered = g.node("Pow", [shifted, g.scalar(f"{layer.name}.negbeta", -float(p.beta))],
                         f"{layer.top[0]}.scale", shape, layer.name)
        return [g.node("Mul", [x, powered], layer.top[0], shape, layer.name)]

    def _pool_nodes(self, layer, x, shape, method: int, kernel, stride, pad, ceil_mode: bool,
                    base: str) -> str:
        """Caffe MAX (0) / AVE (1) pooling of an N x C x H x W value, as ONNX nodes."""
        g = self.g
        n, c, h, w = shape
        (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
        padded = bool(ph or pw)
        if padded and (ph >= kh or pw >= kw):
            raise ValueError(f"layer '{layer.name}' ({layer.type}): pad must be smaller than "
                             f"the kernel")
        oh = _pool_extent(h, kh, sh, ph, ceil_mode, padded)
        ow = _pool_extent(w, kw, sw, pw, ceil_mode, padded)
        if oh < 1 or ow < 1:
            raise ValueError(f"layer '{layer.name}' ({layer.type}): output would be {oh} x {ow} "
                             f"for a {h} x {w} input")
        # ONNX end pads that make floor rounding give Caffe's size exactly; a negative one means
        # input rows/columns no window touches, which are cropped instead.
        eh = (oh - 1) * sh + kh - h - ph
        ew = (ow - 1) * sw + kw - w - pw
        if (oh - 1) * sh - ph >= h or (ow - 1) * sw - pw >= w:
            # Only possible without padding and a stride larger than the kernel.
            raise _unsupported(layer, "a pooling window lying entirely outside the input")
        if eh < 0 or ew < 0:
            ends = [h + min(eh, 0), w + min(ew, 0)]
            x = g.node("Slice", [x, g.ints(f"{layer.name}.starts", [0, 0]),
                                 g.ints(f"{layer.name}.ends", ends),
                                 g.ints(f"{layer.name}.axes", [2, 3])],
                       f"{base}.crop", (n, c, ends[0], ends[1]), layer.name)
            eh, ew = max(eh, 0), max(ew, 0)
        attrs = dict(kernel_shape=[kh, kw], strides=[sh, sw], pads=[ph, pw, eh, ew])
        out_shape = (n, c, oh, ow)
        if method == 0:
            return g.node("MaxPool", [x], base, out_shape, layer.name, **attrs)
        factor = np.outer(_ave_correction(h, oh, kh, sh, ph), _ave_correction(w, ow, kw, sw, pw))
        if np.all(factor == 1.0):
            return g.node("AveragePool", [x], base, out_shape, layer.name, count_include_pad=0,
                          **attrs)
        avg = g.node("AveragePool", [x], f"{base}.valid_mean", out_shape, layer.name,
                     count_include_pad=0, **attrs)
        return g.node("Mul", [avg, g.const(f"{layer.name}.divisor_correction",
                                           factor.astype(np.float32)[None, None])],
                      base, out_shape, layer.name)

    def layer_Pooling(self, layer, bottoms):
        self._nbottoms(layer, bottoms)
        x = bottoms[0]
        p = layer.pooling_param
        shape = self.spatial(layer, x)
        if p.pool not in (0, 1):
            raise _unsupported(layer, "STOCHASTIC pooling")
        if p.global_pooling:
            if p.HasField("kernel_size") or p.HasField("kernel_h") or p.HasField("kernel_w"):
                raise ValueError(f"layer '{layer.name}' (Pooling): global pooling takes no "
                                 f"kernel size")
            if p.pad or p.pad_h or p.pad_w or (p.HasField("stride") and p.stride != 1) \
                    or p.HasField("stride_h") and (p.stride_h != 1 or p.stride_w != 1):
                raise ValueError(f"layer '{layer.name}' (Pooling): global pooling needs pad 0 "
                                 f"and stride 1")
            op = "GlobalMaxPool" if p.pool == 0 else "GlobalAveragePool"
            return [self.g.node(op, [x], layer.top[0], shape[:2] + (1, 1), layer.name)]
        if p.HasField("kernel_size"):
            if p.HasField("kernel_h") or p.HasField("kernel_w"):
                raise ValueError(f"layer '{layer.name}' (Pooling): kernel_size and "
                                 f"kernel_h/kernel_w are exclusive")
            kernel = (int(p.kernel_size),) * 2
        elif p.HasField("kernel_h") and p.HasField("kernel_w"):
            kernel = (int(p.kernel_h), int(p.kernel_w))
        else:
            raise ValueError(f"layer '{layer.name}' (Pooling): no kernel size")
        pad = (int(p.pad_h), int(p.pad_w)) if p.HasField("pad_h") else (int(p.pad),) * 2
        stride = ((int(p.stride_h), int(p.stride_w)) if p.HasField("stride_h")
                  else (int(p.stride),) * 2)
        if min(kernel) < 1 or min(stride) < 1:
            raise ValueError(f"layer '{layer.name}' (Pooling): kernel and stride must be "
                             f"positive")
        return [self._pool_nodes(layer, x, shape, int(p.pool), kernel, stride, pad,
                                 ceil_mode=p.round_mode == 0, base=layer.top[0])]

    def layer_Reshape(self, layer, bottoms):
        self._nbottoms(layer, bottoms)
        x = bottoms[0]
        p = layer.reshape_param
        bottom = self.shape(x)
        ndim = len(bottom)
        start = p.axis if p.axis >= 0 else ndim + p.axis + 1
        end = ndim if p.num_axes == -1 else start + p.num_axes
        if not 0 <= start <= ndim or not start <= end <= ndim:
            raise ValueError(f"layer '{layer.name}' (Reshape): axis {p.axis} / num_axes "
                             f"{p.num_axes} out of range for {_fmt(bottom)}")
        dims = [int(d) for d in p.shape.dim]
        if dims.count(-1) > 1 or any(d < -1 for d in dims):
            raise ValueError(f"layer '{layer.name}' (Reshape): invalid shape {dims}")
        new = []
        for i, d in enumerate(dims):
            if d == 0:
                if start + i >= ndim:
                    raise ValueError(f"layer '{layer.name}' (Reshape): dim 0 at position {i} "
                                     f"has no bottom axis to copy")
                new.append(bottom[start + i])
            else:
                new.append(d)
        top = list(bottom[:start]) + new + list(bottom[end:])
        b_pow, b_fix = _count(bottom)
        if -1 in top:
            at = top.index(-1)
            rest = top[:at] + top[at + 1:]
            r_pow, r_fix = _count(rest)
            if r_fix == 0 or b_fix % r_fix or b_pow - r_pow not in (0, 1) \
                    or (b_pow - r_pow == 1 and b_fix != r_fix):
                raise ValueError(f"layer '{layer.name}' (Reshape): cannot infer the -1 of "
                                 f"{dims} from a bottom of shape {_fmt(bottom)}")
            top[at] = None if b_pow - r_pow == 1 else b_fix // r_fix
        t_pow, t_fix = _count(top)
        if (t_pow, t_fix) != (b_pow, b_fix):
            # A deploy net written for batch 1 often spells the batch as an explicit 1: keep it
            # per image so a batch of N still works.
            if b_pow == 1 and t_pow == 0 and t_fix == b_fix and top and top[0] == 1:
                top[0] = None
            else:
                raise ValueError(f"layer '{layer.name}' (Reshape): {dims} changes the count of "
                                 f"a bottom of shape {_fmt(bottom)}")
        return [self.g.node("Reshape", [x, self.g.ints(f"{layer.name}.shape",
                                                       _reshape_target(top))],
                            layer.top[0], tuple(top), layer.name)]

    def layer_Flatten(self, layer, bottoms):
        self._nbottoms(layer, bottoms)
        x = bottoms[0]
        p = layer.flatten_param
        bottom = self.shape(x)
        axis = _canonical_axis(layer, p.axis, len(bottom))
        end = _canonical_axis(layer, p.end_axis, len(bottom))
        merged = bottom[axis:end + 1]
        if any(d is None for d in merged) and len(merged) > 1:
            raise _unsupported(layer, "flattening the symbolic batch axis")
        dim = None if None in merged else math.prod(merged)
        top = tuple(bottom[:axis]) + (dim,) + tuple(bottom[end + 1:])
        return [self.g.node("Reshape", [x, self.g.ints(f"{layer.name}.shape",
                                                       _reshape_target(top))],
                            layer.top[0], top, layer.name)]

    def layer_Concat(self, layer, bottoms):
        self._nbottoms(layer, bottoms, n=None)
        p = layer.concat_param
        shapes = [self.shape(b) for b in bottoms]
        axis = p.concat_dim if p.HasField("concat_dim") else p.axis
        axis = _canonical_axis(layer, axis, len(shapes[0]))
        for s in shapes[1:]:
            if len(s) != len(shapes[0]) or any(a != b for i, (a, b) in
                                               enumerate(zip(s, shapes[0])) if i != axis):
                raise ValueError(f"layer '{layer.name}' (Concat): cannot concatenate "
                                 f"{', '.join(map(_fmt, shapes))} along axis {axis}")
        if any(s[axis] is None for s in shapes):
            raise _unsupported(layer, "concatenating along the batch axis")
        if len(bottoms) == 1:
            return [bottoms[0]]
        out = list(shapes[0])
        out[axis] = sum(s[axis] for s in shapes)
        return [self.g.node("Concat", bottoms, layer.top[0], tuple(out), layer.name, axis=axis)]

    def layer_MVN(self, layer, bottoms):
        self._nbottoms(layer, bottoms)
        x = bottoms[0]
        p = layer.mvn_param
        shape = self.shape(x)
        first = 1 if p.across_channels else 2
        if len(shape) <= first:
            raise _unsupported(layer, f"a bottom of shape {_fmt(shape)}")
        axes = list(range(first, len(shape)))
        if any(shape[a] is None for a in axes):
            raise _unsupported(layer, "normalising over the batch axis")
        g, top, name = self.g, layer.top[0], layer.name
        reduced = tuple(1 if i in axes else d for i, d in enumerate(shape))
        mean = g.node("ReduceMean", [x], f"{top}.mean", reduced, name, axes=axes, keepdims=1)
        centred = g.node("Sub", [x, mean], top if not p.normalize_variance else f"{top}.centred",
                         shape, name)
        if not p.normalize_variance:
            return [centred]
        sq = g.node("Mul", [centred, centred], f"{top}.sq", shape, name)
        var = g.node("ReduceMean", [sq], f"{top}.var", reduced, name, axes=axes, keepdims=1)
        std = g.node("Sqrt", [var], f"{top}.std", reduced, name)
        denom = g.node("Add", [std, g.scalar(f"{name}.eps", p.eps)], f"{top}.std_eps",
                       reduced, name)
        return [g.node("Div", [centred, denom], top, shape, name)]

    def layer_Power(self, layer, bottoms):
        self._nbottoms(layer, bottoms)
        x = bottoms[0]
        p = layer.power_param
        shape, g, top, name = self.shape(x), self.g, layer.top[0], layer.name
        power, scale, shift = float(p.power), float(p.scale), float(p.shift)
        if power == 0.0:  # Caffe fills the top with ones
            shp = g.node("Shape", [x], f"{top}.shape", (len(shape),), name)
            return [g.node("ConstantOfShape", [shp], top, shape, name,
                           value=numpy_helper.from_array(np.ones(1, np.float32)))]
        y = x
        steps = []
        if scale != 1.0:
            steps.append(("Mul", g.scalar(f"{name}.scale", scale)))
        if shift != 0.0:
            steps.append(("Add", g.scalar(f"{name}.shift", shift)))
        if power != 1.0:
            steps.append(("Pow", g.scalar(f"{name}.power", power)))
        if not steps:
            return [g.node("Identity", [x], top, shape, name)]
        for i, (op, const) in enumerate(steps):
            y = g.node(op, [y, const], top if i == len(steps) - 1 else f"{top}.{op.lower()}",
                       shape, name)
        return [y]

    def layer_Softmax(self, layer, bottoms):
        self._nbottoms(layer, bottoms)
        shape = self.shape(bottoms[0])
        axis = _canonical_axis(layer, layer.softmax_param.axis, len(shape))
        if shape[axis] is None:
            raise _unsupported(layer, "softmax over the batch axis")
        return [self.g.node("Softmax", bottoms, layer.top[0], shape, layer.name, axis=axis)]

    def layer_Eltwise(self, layer, bottoms):
        self._nbottoms(layer, bottoms, n=None, at_least=2)
        p = layer.eltwise_param
        shapes = [self.shape(b) for b in bottoms]
        if any(s != shapes[0] for s in shapes):
            raise ValueError(f"layer '{layer.name}' (Eltwise): bottoms have different shapes "
                             f"{', '.join(map(_fmt, shapes))}")
        g, top, name, shape = self.g, layer.top[0], layer.name, shapes[0]
        coeffs = [float(c) for c in p.coeff]
        if coeffs and (p.operation != 1 or len(coeffs) != len(bottoms)):
            raise ValueError(f"layer '{layer.name}' (Eltwise): coeff needs operation SUM and one "
                             f"value per bottom ({len(bottoms)})")
        if p.operation == 2:  # MAX
            return [g.node("Max", bottoms, top, shape, name)]
        if p.operation == 0:  # PROD
            return [self._chain("Mul", bottoms, top, shape, name)]
        terms = []
        for i, b in enumerate(bottoms):
            c = coeffs[i] if coeffs else 1.0
            terms.append(b if c == 1.0 else g.node(
                "Mul", [b, g.scalar(f"{name}.coeff{i}", c)], f"{top}.term{i}", shape, name))
        return [self._chain("Add", terms, top, shape, name)]

    def _chain(self, op, values, top, shape, name):
        acc = values[0]
        for i, v in enumerate(values[1:], start=1):
            acc = self.g.node(op, [acc, v], top if i == len(values) - 1 else f"{top}.acc{i}",
                              shape, name)
        return acc


def caffe_to_onnx(net, weights, outputs: list[str], batch: int | None = None) -> onnx.ModelProto:
    """Translate a Caffe deploy network and its trained weights into an ONNX model.

    Parameters
    ----------
    net : NetParameter
        The deploy definition (``read_prototxt``).  Layers excluded from the TEST phase by
        ``include``/``exclude`` rules are dropped, as Caffe does.
    weights : NetParameter
        The trained weights (``read_caffemodel``), bound to ``net``'s layers by layer name.
    outputs : list of str
        Caffe blob names to expose as graph outputs (same names in the ONNX model); for a blob
        rewritten by in-place layers, the value after the last of them.  Empty: the blobs no
        layer consumes (Caffe's network outputs).
    batch : int or None
        Fixed batch size, or ``None`` for a symbolic batch dimension (named ``"N"``).

    Returns
    -------
    onnx.ModelProto
        Opset :data:`OPSET` model with float32 inputs named like the Caffe input blobs.  Nodes
        the requested outputs do not depend on are left out.

    Raises
    ------
    UnsupportedLayerError
        For a layer type or parameter the translation does not implement.
    ValueError
        For missing or mis-shaped weights (the message names the layer and both shapes),
        unknown blobs or an inconsistent definition.
    """
    if batch is not None and (int(batch) != batch or batch < 1):
        raise ValueError(f"batch must be a positive integer or None, got {batch!r}")
    return _Translator(net, weights, None if batch is None else int(batch)).run(outputs)
