"""Where OpenCV's dnn module computes a Caffe layer differently from Caffe 1.0, and the fix.

OpenCV's Caffe importer runs most layer types as Caffe does; for the others (a type it lacks,
or a parameter it ignores) :func:`corrected_definition` swaps the layer's type, at load, for a
private type registered here (``cv2.dnn_registerLayer``) that computes Caffe's forward pass in
numpy, or refuses the network with one line naming the layer.  One rule per Caffe layer type
(:data:`RULES`): adding a correction is one function and one registry entry.

The private types carry a prefix no real Caffe type has, so registering them process-wide
changes no other network OpenCV reads.  Each layer reads its parameters from the flat
dictionary OpenCV's importer builds from the layer's ``*_param`` message, with Caffe's
defaults (caffe.proto) where a field is absent, and its weights from the caffemodel by name.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, field

import cv2
import numpy as np

from depth_eval.caffe.proto import V1_TYPE_NAMES

# Prefix of the types registered here (no Caffe or OpenCV layer type starts with it).
PRIVATE_PREFIX = "DepthEvalCaffe"
# BatchNormParameter.eps's default (caffe.proto).
BATCH_NORM_EPS = 1e-5


class Refused(Exception):
    """A layer OpenCV cannot compute as Caffe does (the message says why)."""


# --- the prototxt, token by token (enough of protobuf's text format to find and swap types)

_TOKEN = re.compile(r"""\s+|\#[^\n]*|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|[{}<>:;,\[\]]"""
                    r"""|[^\s{}<>:;,\[\]"'\#]+""")


@dataclass
class _Entry:
    key: str
    value: object  # the raw scalar token (str) or a nested message (list of _Entry)
    start: int = 0  # the scalar token's span in the text
    end: int = 0


@dataclass
class LayerText:
    """One top-level ``layer { }`` block: its fields, and where its ``type`` value is."""

    entries: list
    type_span: tuple[int, int] | None
    name: str = ""
    type: str = ""
    bottoms: list = field(default_factory=list)
    tops: list = field(default_factory=list)
    end: int = 0  # just after the block's closing brace
    name_span: tuple[int, int] | None = None
    top_spans: list = field(default_factory=list)

    def param(self, message: str, key: str, default=None):
        """``message.key`` as Python (number, bool, enum name or string), else ``default``."""
        for entry in self.entries:
            if entry.key == message and isinstance(entry.value, list):
                values = [e.value for e in entry.value if e.key == key]
                if values and isinstance(values[-1], str):
                    return _scalar(values[-1])
        return default


def _repeated(layer: LayerText, message: str, key: str) -> list:
    """Every value of a repeated ``message.key`` (Python scalars), in order."""
    return [_scalar(e.value) for entry in layer.entries
            if entry.key == message and isinstance(entry.value, list)
            for e in entry.value if e.key == key and isinstance(e.value, str)]


def _scalar(raw: str):
    if raw[:1] in "\"'":
        return raw[1:-1]
    if raw in ("true", "True"):
        return True
    if raw in ("false", "False"):
        return False
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        return float(raw)
    except ValueError:
        return raw  # an enum value name


def _tokens(text: str) -> list[tuple[str, int, int]]:
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise Refused(f"unreadable text at character {pos}")
        if not match[0][0].isspace() and match[0][0] != "#":
            tokens.append((match[0], match.start(), match.end()))
        pos = match.end()
    return tokens


def _message(tokens, i: int, closing: str | None) -> tuple[list, int]:
    entries = []
    while i < len(tokens):
        text = tokens[i][0]
        if text == closing:
            return entries, i + 1
        if text in ";,":
            i += 1
            continue
        key, i = text, i + 1
        if i < len(tokens) and tokens[i][0] == ":":
            i += 1
        if i >= len(tokens):
            break
        value = tokens[i][0]
        if value in "{<":
            opening = i
            nested, i = _message(tokens, i + 1, "}" if value == "{" else ">")
            entries.append(_Entry(key, nested, tokens[opening][1], tokens[i - 1][2]))
        elif value == "[":
            i += 1
            while i < len(tokens) and tokens[i][0] != "]":
                if tokens[i][0] != ",":
                    entries.append(_Entry(key, tokens[i][0], tokens[i][1], tokens[i][2]))
                i += 1
            i += 1
        else:
            entries.append(_Entry(key, value, tokens[i][1], tokens[i][2]))
            i += 1
    if closing is not None:
        raise Refused("unbalanced braces")
    return entries, i


def layer_blocks(text: str) -> tuple[list, list[LayerText]]:
    """The prototxt's top-level entries and its layers, ``layer`` or legacy V1 ``layers``
    blocks (the V1 type enum read as Caffe's type name, its span left None)."""
    entries, _ = _message(_tokens(text), 0, None)
    layers = []
    for entry in entries:
        if entry.key not in ("layer", "layers") or not isinstance(entry.value, list):
            continue
        layer = LayerText(entry.value, None, end=entry.end)
        for item in entry.value:
            if not isinstance(item.value, str):
                continue
            if item.key == "name":
                layer.name, layer.name_span = _scalar(item.value), (item.start, item.end)
            elif item.key == "type" and entry.key == "layer":
                layer.type, layer.type_span = _scalar(item.value), (item.start, item.end)
            elif item.key == "type":
                layer.type = V1_TYPE_NAMES.get(item.value, item.value)
            elif item.key == "bottom":
                layer.bottoms.append(_scalar(item.value))
            elif item.key == "top":
                layer.tops.append(_scalar(item.value))
                layer.top_spans.append((item.start, item.end))
        layers.append(layer)
    return entries, layers


# V1LayerParameter fields with no counterpart of the same name in the current form: training
# settings (learning rate and decay multipliers, shared parameter names) a deploy pass ignores.
_V1_TRAINING_FIELDS = {"blobs_lr", "weight_decay", "param", "blob_share_mode"}


def _upgraded(entries: list, private: dict[int, str]) -> str:
    """The whole definition as text in the current ``layer`` form, the legacy V1 ``layers``
    upgraded as Caffe's UpgradeV1LayerParameter does for a deploy pass (type enum to name,
    training fields dropped), and the layers in ``private`` (by id of their entry list) given
    their private type."""
    lines = []
    for entry in entries:
        if entry.key == "layers" and isinstance(entry.value, list):
            body = []
            for item in entry.value:
                if item.key in _V1_TRAINING_FIELDS:
                    continue
                if item.key == "type":
                    name = private.get(id(entry.value), V1_TYPE_NAMES.get(item.value, item.value))
                    body.append(_Entry("type", f'"{name}"'))
                else:
                    body.append(item)
            lines.append(_emit([_Entry("layer", body)]))
        elif entry.key == "layer" and id(entry.value) in private:
            body = [_Entry("type", f'"{private[id(entry.value)]}"') if item.key == "type"
                    else item for item in entry.value]
            lines.append(_emit([_Entry("layer", body)]))
        else:
            lines.append(_emit([entry]))
    return "".join(lines)


def _emit(entries: list, indent: str = "") -> str:
    out = []
    for entry in entries:
        if isinstance(entry.value, list):
            out.append(f"{indent}{entry.key} {{\n{_emit(entry.value, indent + '  ')}"
                       f"{indent}}}\n")
        else:
            out.append(f"{indent}{entry.key}: {entry.value}\n")
    return "".join(out)


# --- the rules: Caffe type -> None (OpenCV computes it as Caffe does), or the private type

def _always(layer: LayerText) -> str:
    return PRIVATE_PREFIX + layer.type


def _lrn(layer: LayerText) -> str | None:
    # OpenCV reads the across-channel constant from a parameter Caffe names differently, so
    # Caffe's k is dropped (1 used); within a channel Caffe itself ignores k (shift 1).  An
    # absent alpha is OpenCV's default (1e-4), not Caffe's (1), in both regions.
    across = layer.param("lrn_param", "norm_region", "ACROSS_CHANNELS") in ("ACROSS_CHANNELS", 0)
    if across and layer.tops[:1] == layer.bottoms[:1]:
        # In place, Caffe writes the factor over its bottom, then multiplies it by that.
        return _variant_type(_LRN, "InPlace", in_place=True)
    if layer.param("lrn_param", "alpha") is None:
        return _always(layer)
    return _always(layer) if across and layer.param("lrn_param", "k", 1.0) != 1.0 else None


def _eltwise(layer: LayerText) -> str | None:
    # In place, Caffe starts SUM by zeroing its top and MAX by filling it with -FLT_MAX:
    # the bottoms that are the top blob are erased before they are read.
    operation = layer.param("eltwise_param", "operation", "SUM")
    erased = tuple(i for i, blob in enumerate(layer.bottoms) if blob in layer.tops[:1])
    if not erased or operation in ("PROD", 0):
        return None
    return _variant_type(_Eltwise, "Erased" + "_".join(map(str, erased)), erased=erased)


def _mvn(layer: LayerText) -> str:
    # Caffe divides by sqrt(var) + eps, OpenCV by sqrt(var + eps); and Caffe's top always has
    # 4 axes (OpenCV keeps a 2-axis bottom's 2), which a rule reading the text cannot tell.
    return _always(layer)


def _deconvolution(layer: LayerText) -> str | None:
    # OpenCV's deconvolution ignores the dilation (a smaller top, other values).
    dilated = any(v != 1 for v in _repeated(layer, "convolution_param", "dilation"))
    return _always(layer) if dilated else None


def _slice(layer: LayerText) -> str | None:
    # Without slice points Caffe splits the axis evenly over the tops; OpenCV splits it over
    # the tops other layers read (one unread top: the whole blob as the first, or a failure).
    if layer.param("slice_param", "slice_point") is not None or len(layer.tops) < 2:
        return None
    return _variant_type(_EvenSlice, str(len(layer.tops)), tops=len(layer.tops))


def _log(layer: LayerText) -> str | None:
    # OpenCV's Log is the natural log of x: Caffe's base, scale and shift are ignored.
    defaults = {"base": -1.0, "scale": 1.0, "shift": 0.0}
    changed = any(layer.param("log_param", key, value) != value for key, value in defaults.items())
    return _always(layer) if changed else None


def _scale(layer: LayerText) -> str | None:
    # OpenCV folds a learned Scale into the Convolution before it as one factor per output
    # channel (and asserts otherwise): any other extent of the learned blob is computed here.
    # With a second bottom OpenCV computes Caffe's product, but not from a negative axis.
    if len(layer.bottoms) > 1:
        return _always(layer) if layer.param("scale_param", "axis", 1) < 0 else None
    axis = layer.param("scale_param", "axis", 1)
    num_axes = layer.param("scale_param", "num_axes", 1)
    return None if num_axes == 0 or (axis == 1 and num_axes == 1) else _always(layer)


def _batch_norm(layer: LayerText) -> str | None:
    # With use_global_stats false Caffe normalises by the statistics of the blob itself;
    # OpenCV's estimate of them differs (2.5e-3 of the range on the catalogue's network).
    return None if layer.param("batch_norm_param", "use_global_stats", True) else _always(layer)


def _reduction(layer: LayerText) -> str:
    if layer.param("reduction_param", "axis", 0) == 0:
        # The result has no axes at all: OpenCV's blobs cannot hold a 0-axis array.
        raise Refused("Reduction over every axis (axis 0) gives a 0-axis blob, which OpenCV's "
                      "dnn module cannot hold")
    return _always(layer)


def _reshape(layer: LayerText) -> str | None:
    # num_axes 0 inserts the new axes at ``axis`` and replaces none; OpenCV fails on it.
    return _always(layer) if layer.param("reshape_param", "num_axes", -1) == 0 else None


def _flatten(layer: LayerText) -> None:
    if layer.param("flatten_param", "axis", 1) == 0 and \
            layer.param("flatten_param", "end_axis", -1) == -1:
        # Caffe's top has one axis; OpenCV's matrices have at least two (a 140 x 1 top).
        raise Refused("Flatten from axis 0 to the last gives a 1-axis blob, which OpenCV's dnn "
                      "module holds with two axes")
    return None


def _spp(layer: LayerText) -> str:
    if layer.param("spp_param", "pool", "MAX") in ("STOCHASTIC", 2):
        raise Refused("SPP with STOCHASTIC pooling")
    return _always(layer)


RULES = {
    "BatchNorm": _batch_norm,
    "Deconvolution": _deconvolution,
    "Slice": _slice,
    "Flatten": _flatten,
    "Eltwise": _eltwise,
    "Reshape": _reshape,
    "LRN": _lrn,
    "MVN": _mvn,
    "Log": _log,
    "Scale": _scale,
    "Reduction": _reduction,
    "SPP": _spp,
    "Bias": _always,
    "Threshold": _always,
    "ArgMax": _always,
    "Im2col": _always,
    "Parameter": _always,
    "Tile": _always,
}


def transposed_inner_products(text: str) -> list[str]:
    """The InnerProduct layers with ``transpose: true``, by name: OpenCV reads their K x N
    weights as N x K whatever the flag says, so the engine gives it the weights transposed
    (its own InnerProduct then computes Caffe's product, on any axis)."""
    return [layer.name for layer in layer_blocks(text)[1] if layer.type == "InnerProduct"
            and layer.param("inner_product_param", "transpose", False)]


# Suffix of the private layer (and its top) whose 3-axis blob OpenCV is handed with a
# trailing axis of 1 and a Flatten, under the layer's own name, drops again.
_WITH_TRAILING_AXIS = "__depth_eval_4d"


def corrected_definition(text: str, shapes: dict | None = None
                         ) -> tuple[str | None, list[tuple[str, str, str]]]:
    """The prototxt text OpenCV must read instead of ``text`` (None: the original is right).

    Returns the text and the swapped layers, ``(name, Caffe type, private type)``, in the
    definition's order.  Only the swapped layers' type values change; a legacy V1 definition
    with a layer to swap is given to OpenCV in the current form (V1 has no type by name).
    With Caffe's blob ``shapes`` (name -> shape), a Reduction whose top has 3 axes (which
    OpenCV's Python layer interface cannot return) returns it with a trailing axis of 1,
    renamed, and a Flatten under the layer's name gives Caffe's blob.

    Raises
    ------
    Refused
        ``"layer 'NAME' (TYPE): why"`` for a layer no rule can correct.
    """
    entries, layers = layer_blocks(text)
    swaps = []
    for layer in layers:
        rule = RULES.get(layer.type)
        if rule is None:
            continue
        try:
            private = rule(layer)
        except Refused as why:
            raise Refused(f"layer '{layer.name}' ({layer.type}): {why}") from None
        if private is not None:
            swaps.append((layer, private))
    if not swaps:
        return None, []
    register()
    swapped = [(layer.name, layer.type, private) for layer, private in swaps]
    if any(layer.type_span is None for layer, _ in swaps):
        return _upgraded(entries, {id(layer.entries): private for layer, private in swaps}), \
            swapped
    edits = []  # (start, end, replacement) in the text
    for index, (layer, private) in enumerate(swaps):
        if (layer.type == "Reduction" and shapes and len(layer.tops) == 1
                and layer.tops[0] not in layer.bottoms and layer.name_span
                and len(shapes.get(layer.tops[0], ())) == 3):
            private = _variant_type(_Reduction, "WithTrailingAxis", trailing=True)
            swapped[index] = (layer.name, layer.type, private)
            top, renamed = layer.tops[0], layer.tops[0] + _WITH_TRAILING_AXIS
            edits += [(*layer.name_span, f'"{layer.name}{_WITH_TRAILING_AXIS}"'),
                      (*layer.top_spans[0], f'"{renamed}"'),
                      (layer.end, layer.end,
                       f'\nlayer {{ name: "{layer.name}" type: "Flatten" bottom: "{renamed}" '
                       f'top: "{top}" flatten_param {{ axis: 2 }} }}')]
        edits.append((*layer.type_span, f'"{private}"'))
    pieces, pos = [], 0
    for start, end, replacement in sorted(edits):
        pieces += [text[pos:start], replacement]
        pos = end
    pieces.append(text[pos:])
    return "".join(pieces), swapped


# --- the private layers: Caffe 1.0's CPU forward pass (src/caffe/layers/*.cpp), in numpy

def _axis(axis: int, ndim: int) -> int:
    return axis + ndim if axis < 0 else axis


def _ints(params, key: str, default: list[int]) -> list[int]:
    value = params.get(key)
    if value is None:
        return default
    return [int(v) for v in np.ravel(value)]


def _pair(params, key: str, default: int) -> tuple[int, int]:
    """Caffe's 2-D convolution geometry: key_h / key_w, else key (one or two values)."""
    if f"{key}_h" in params or f"{key}_w" in params:
        return int(params.get(f"{key}_h", default)), int(params.get(f"{key}_w", default))
    values = _ints(params, key, [default])
    return (values[0], values[-1]) if values else (default, default)


def _ints_or_floats(value, count: int) -> list[float]:
    """A repeated float parameter as ``count`` floats (absent: all 1)."""
    return [1.0] * count if value is None else [float(v) for v in np.ravel(value)]


def _enum(value, names: tuple[str, ...]) -> str:
    return names[int(value)] if not isinstance(value, str) else value


# OpenCV turns a returned 3-axis array whose last axis has at most this many values into a
# 2-D multi-channel matrix (CV_CN_MAX, opencv2/core/cvdef.h), and a 1-axis one into 2-D.
_CV_CN_MAX = 512
_created = threading.local()


def track_layers() -> list:
    """Start recording, on this thread, the private layers OpenCV creates (in creation order,
    which is the definition's): :func:`unreturnable` reads the list once the net is set up."""
    _created.layers = []
    return _created.layers


def stop_tracking() -> None:
    """Stop recording (the list would keep the last net's layers alive)."""
    _created.__dict__.pop("layers", None)


def first_problem(created: list) -> tuple[int, bool, str] | None:
    """(index among the created private layers, whether the weights are at fault, why) for the
    first that cannot compute Caffe's blob: weights that do not fit its bottom, or an output
    OpenCV's Python layer interface would hand back with other axes than Caffe's blob has."""
    for index, layer in enumerate(created):
        if layer.problem:
            return index, True, layer.problem
        for shape in layer.output_shapes:
            if len(shape) == 1 or (len(shape) == 3 and shape[-1] <= _CV_CN_MAX):
                return index, False, (f"its {len(shape)}-axis output {list(shape)} cannot be "
                                      "returned through OpenCV's layer interface with Caffe's "
                                      "axes")
    return None


class _CaffeLayer:
    """Base of the private layers: shapes from a dry run of the forward pass."""

    def __init__(self, params, blobs):
        self.params, self.blobs = dict(params), [np.asarray(b, np.float32) for b in blobs]
        self.output_shapes: list[tuple[int, ...]] = []
        self.problem = ""
        getattr(_created, "layers", []).append(self)

    def getMemoryShapes(self, inputs):  # OpenCV's name
        arrays = [np.zeros(tuple(int(d) for d in shape), np.float32) for shape in inputs]
        try:
            with np.errstate(all="ignore"):
                self.output_shapes = [out.shape for out in self.compute(arrays)]
        except (ValueError, IndexError, KeyError) as error:
            # Reported by the engine once the net is set up (OpenCV would log and lose it).
            self.problem = f"its weights do not fit its input {list(arrays[0].shape)}: {error}" \
                if arrays else f"its weights do not fit: {error}"
            return [list(shape) for shape in inputs] or [[1]]
        return [list(shape) for shape in self.output_shapes]

    def forward(self, inputs):
        with np.errstate(all="ignore"):  # NaN where Caffe gives NaN; reported per image
            return [np.ascontiguousarray(out, np.float32) for out in self.compute(
                [np.asarray(i, np.float32) for i in inputs])]

    def compute(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError


def _broadcast(operand: np.ndarray, shape: tuple, axis: int) -> np.ndarray:
    """A Scale / Bias operand covering ``shape[axis:axis + n]``, shaped to broadcast."""
    count = operand.size
    n, extent = 0, 1
    while extent < count and axis + n < len(shape):
        extent *= shape[axis + n]
        n += 1
    if extent != count:
        raise ValueError(f"operand of {count} values does not cover axes from {axis} "
                         f"of {list(shape)}")
    return operand.reshape((1,) * axis + tuple(shape[axis:axis + n])
                           + (1,) * (len(shape) - axis - n))


class _Scale(_CaffeLayer):
    def compute(self, inputs):
        x = inputs[0]
        axis = _axis(int(self.params.get("axis", 1)), x.ndim)
        if len(inputs) > 1:
            factor, bias = inputs[1], self.blobs[0] if self.blobs else None
        else:
            factor = self.blobs[0]
            bias = self.blobs[1] if len(self.blobs) > 1 else None
        y = x * _broadcast(factor, x.shape, axis)
        return [y + _broadcast(bias, x.shape, axis) if bias is not None else y]


class _Bias(_CaffeLayer):
    def compute(self, inputs):
        x = inputs[0]
        axis = _axis(int(self.params.get("axis", 1)), x.ndim)
        bias = inputs[1] if len(inputs) > 1 else self.blobs[0]
        return [x + _broadcast(bias, x.shape, axis)]


class _Threshold(_CaffeLayer):
    def compute(self, inputs):
        return [(inputs[0] > np.float32(self.params.get("threshold", 0.0))).astype(np.float32)]


class _Log(_CaffeLayer):
    def compute(self, inputs):
        base = float(self.params.get("base", -1.0))  # -1: the natural log (caffe.proto)
        scale, shift = float(self.params.get("scale", 1.0)), float(self.params.get("shift", 0.0))
        y = np.log(np.float32(shift) + np.float32(scale) * inputs[0])
        return [y * np.float32(1.0 / math.log(base)) if base != -1.0 else y]


class _LRN(_CaffeLayer):
    in_place = False  # across channels in place: Caffe's top is the factor squared

    def compute(self, inputs):
        x = inputs[0].astype(np.float64)
        size = int(self.params.get("local_size", 5))
        alpha, beta = float(self.params.get("alpha", 1.0)), float(self.params.get("beta", 0.75))
        if _enum(self.params.get("norm_region", "ACROSS_CHANNELS"),
                 ("ACROSS_CHANNELS", "WITHIN_CHANNEL")) == "WITHIN_CHANNEL":
            # Caffe: the zero-padded size x size box average of the squares (every window
            # counts size^2 values), then (1 + alpha * average) ^ -beta; k is not used.
            pad = (size - 1) // 2
            squares = np.pad(x * x, [(0, 0), (0, 0), (pad, pad), (pad, pad)])
            height, width = x.shape[2:]
            box = sum(squares[:, :, i:i + height, j:j + width]
                      for i in range(size) for j in range(size))
            return [x * (1.0 + alpha * box / (size * size)) ** -beta]
        k = float(self.params.get("k", 1.0))
        before = (size - 1) // 2
        squares = np.pad(x * x, [(0, 0), (before, size - before - 1)] + [(0, 0)] * (x.ndim - 2))
        window = sum(squares[:, i:i + x.shape[1]] for i in range(size))
        factor = (k + alpha / size * window) ** -beta
        return [factor * factor if self.in_place else x * factor]


class _Eltwise(_CaffeLayer):
    """Caffe's in-place SUM / MAX: the bottoms at ``erased`` (the top's own blob) read as the
    top's starting value, 0 for SUM and -FLT_MAX for MAX."""

    erased: tuple[int, ...] = ()  # set per subclass (:func:`_variant_type`)

    def compute(self, inputs):
        operation = _enum(self.params.get("operation", "SUM"), ("PROD", "SUM", "MAX"))
        kept = [x for i, x in enumerate(inputs) if i not in self.erased]
        if operation == "MAX":
            start = np.full(inputs[0].shape, np.finfo(np.float32).min, np.float32)
            return [np.maximum.reduce(kept) if kept else start]
        coeffs = _ints_or_floats(self.params.get("coeff"), len(inputs))
        total = np.zeros(inputs[0].shape, np.float64)
        for i, x in enumerate(inputs):
            if i not in self.erased:
                total += coeffs[i] * x.astype(np.float64)
        return [total]


# Caffe's legacy blob accessors (num, channels, height, width) give MVN a 4-axis top.
_LEGACY_AXES = 4


class _MVN(_CaffeLayer):
    def compute(self, inputs):
        x = inputs[0].astype(np.float64)
        if x.ndim > _LEGACY_AXES:
            raise ValueError(f"MVN takes at most {_LEGACY_AXES} axes")
        x = x.reshape(x.shape + (1,) * (_LEGACY_AXES - x.ndim))
        across = bool(self.params.get("across_channels", False))
        eps = float(self.params.get("eps", 1e-9))
        axes = tuple(range(1 if across else 2, x.ndim))
        d = x - x.mean(axis=axes, keepdims=True)
        if self.params.get("normalize_variance", True):
            d = d / (np.sqrt((d * d).mean(axis=axes, keepdims=True)) + eps)
        return [d]


class _BatchNormOwnStatistics(_CaffeLayer):
    """Caffe's BatchNorm with ``use_global_stats: false``: each channel of each image (the
    original ran one image per forward pass) centred and divided by ``sqrt(var + eps)``, its
    own biased variance."""

    def compute(self, inputs):
        x = inputs[0].astype(np.float64)
        eps = float(self.params.get("eps", BATCH_NORM_EPS))
        axes = tuple(range(2, x.ndim))
        if not axes:
            raise ValueError("use_global_stats: false needs spatial axes (one value per channel "
                             "has no statistics of its own)")
        d = x - x.mean(axis=axes, keepdims=True)
        return [d / np.sqrt((d * d).mean(axis=axes, keepdims=True) + eps)]


class _Reduction(_CaffeLayer):
    trailing = False  # a trailing axis of 1 on the top (see corrected_definition)

    def compute(self, inputs):
        x = inputs[0].astype(np.float64)
        operation = _enum(self.params.get("operation", "SUM"), ("", "SUM", "ASUM", "SUMSQ",
                                                                "MEAN"))
        axis = _axis(int(self.params.get("axis", 0)), x.ndim)
        flat = x.reshape(x.shape[:axis] + (-1,))
        values = {"SUM": flat, "MEAN": flat, "ASUM": np.abs(flat), "SUMSQ": flat * flat}[operation]
        y = values.mean(axis=-1) if operation == "MEAN" else values.sum(axis=-1)
        y = y * float(self.params.get("coeff", 1.0))
        return [y[..., None] if self.trailing else y]


class _ArgMax(_CaffeLayer):
    def compute(self, inputs):
        x = inputs[0]
        top_k = int(self.params.get("top_k", 1))
        out_max_val = bool(self.params.get("out_max_val", False))
        if "axis" in self.params:
            axis = _axis(int(self.params["axis"]), x.ndim)
            values = x
        else:
            axis, values = 1, x.reshape(x.shape[0], -1)
        # Caffe sorts (value, index) pairs descending: of equal values the higher index first.
        flipped = np.flip(values, axis)
        order = np.argsort(-flipped, axis=axis, kind="stable")
        order = values.shape[axis] - 1 - np.take(order, range(top_k), axis=axis)
        best = np.take_along_axis(values, order, axis=axis)
        if "axis" in self.params:
            return [best if out_max_val else order.astype(np.float32)]
        # Caffe's top: N x (2 with the values, else 1) x top_k, padded with 1s to the bottom's axes.
        rows = [order.astype(np.float32)] + ([best] if out_max_val else [])
        top = np.stack(rows, axis=1)
        return [top.reshape(top.shape + (1,) * (x.ndim - 3))]


def _caffe_pool(x: np.ndarray, kernel, stride, pad, method: str) -> np.ndarray:
    """Caffe's PoolingLayer (ceil rounding; the last window starts inside the input)."""
    height, width = x.shape[2:]
    out = []
    for size, k, s, p in zip((height, width), kernel, stride, pad):
        n = math.ceil((size + 2 * p - k) / s) + 1
        if p and (n - 1) * s >= size + p:
            n -= 1
        out.append(n)
    y = np.empty(x.shape[:2] + tuple(out), np.float64)
    for i in range(out[0]):
        h0, h1 = i * stride[0] - pad[0], min(i * stride[0] - pad[0] + kernel[0], height + pad[0])
        for j in range(out[1]):
            w0 = j * stride[1] - pad[1]
            w1 = min(w0 + kernel[1], width + pad[1])
            window = x[:, :, max(h0, 0):min(h1, height), max(w0, 0):min(w1, width)]
            if method == "MAX":
                y[:, :, i, j] = window.max(axis=(2, 3))
            else:  # AVE divides by the window clipped to the padded input, as Caffe does
                y[:, :, i, j] = window.sum(axis=(2, 3)) / ((h1 - h0) * (w1 - w0))
    return y


class _SPP(_CaffeLayer):
    def compute(self, inputs):
        x = inputs[0].astype(np.float64)
        levels = int(self.params.get("pyramid_height", 1))
        method = _enum(self.params.get("pool", "MAX"), ("MAX", "AVE", "STOCHASTIC"))
        pooled = []
        for level in range(levels):
            bins = 2 ** level
            geometry = []
            for size in x.shape[2:]:
                kernel = math.ceil(size / bins)
                geometry.append((kernel, (kernel * bins - size + 1) // 2))
            (kh, ph), (kw, pw) = geometry
            pooled.append(_caffe_pool(x, (kh, kw), (kh, kw), (ph, pw), method))
        if levels == 1:  # Caffe's SPP is then the pooling alone, with no flattening
            return pooled
        return [np.concatenate([p.reshape(x.shape[0], -1) for p in pooled], axis=1)]


def _window(params) -> tuple[tuple[int, int], ...]:
    """Kernel, stride, pad and dilation (height, width) of a ConvolutionParameter's fields."""
    if "kernel_h" in params or "kernel_w" in params:
        kernel = int(params["kernel_h"]), int(params["kernel_w"])
    else:
        kernel = _pair(params, "kernel_size", 0)
    return kernel, _pair(params, "stride", 1), _pair(params, "pad", 0), _pair(params, "dilation", 1)


class _Im2col(_CaffeLayer):
    def compute(self, inputs):
        x = inputs[0]
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = _window(self.params)
        padded = np.pad(x, [(0, 0), (0, 0), (ph, ph), (pw, pw)])
        out_h = (x.shape[2] + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
        out_w = (x.shape[3] + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
        columns = np.empty(x.shape[:2] + (kh, kw, out_h, out_w), np.float32)
        for i in range(kh):
            for j in range(kw):
                columns[:, :, i, j] = padded[:, :, i * dh:i * dh + sh * (out_h - 1) + 1:sh,
                                             j * dw:j * dw + sw * (out_w - 1) + 1:sw]
        return [columns.reshape(x.shape[0], -1, out_h, out_w)]


class _Deconvolution(_CaffeLayer):
    """Caffe's Deconvolution (the transpose of its Convolution), dilation included: each
    kernel tap adds its weighted input at stride steps, then the padding is cut off."""

    def compute(self, inputs):
        x = inputs[0].astype(np.float64)
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = _window(self.params)
        groups, outputs = int(self.params.get("group", 1)), int(self.params["num_output"])
        batch, channels, height, width = x.shape
        weights = self.blobs[0].astype(np.float64).reshape(channels, outputs // groups, kh, kw)
        full = np.zeros((batch, outputs, sh * (height - 1) + dh * (kh - 1) + 1,
                         sw * (width - 1) + dw * (kw - 1) + 1))
        cin, cout = channels // groups, outputs // groups
        for group in range(groups):
            part = x[:, group * cin:(group + 1) * cin]
            taps = weights[group * cin:(group + 1) * cin]
            for i in range(kh):
                for j in range(kw):
                    full[:, group * cout:(group + 1) * cout,
                         i * dh:i * dh + sh * (height - 1) + 1:sh,
                         j * dw:j * dw + sw * (width - 1) + 1:sw] += np.einsum(
                             "nchw,co->nohw", part, taps[:, :, i, j])
        y = full[:, :, ph:full.shape[2] - ph, pw:full.shape[3] - pw]
        if self.params.get("bias_term", True) and len(self.blobs) > 1:
            y = y + self.blobs[1].reshape(1, outputs, 1, 1)
        return [y]


class _EvenSlice(_CaffeLayer):
    """Caffe's Slice without slice points: the axis split evenly over the tops."""

    tops = 2  # set per subclass (:func:`_variant_type`)

    def compute(self, inputs):
        x = inputs[0]
        axis = _axis(int(self.params.get("axis", self.params.get("slice_dim", 1))), x.ndim)
        if x.shape[axis] % self.tops:
            raise ValueError(f"{x.shape[axis]} values on axis {axis} do not split evenly "
                             f"over {self.tops} tops")
        return list(np.split(x, self.tops, axis=axis))


class _Reshape(_CaffeLayer):
    """Caffe's Reshape: ``dim`` replaces the axes [axis, axis + num_axes) (0 copies the bottom's
    axis there, one -1 takes what is left); a negative axis counts from after the last."""

    def compute(self, inputs):
        x = inputs[0]
        dims = _ints(self.params, "dim", [])
        axis, num_axes = int(self.params.get("axis", 0)), int(self.params.get("num_axes", -1))
        start = axis if axis >= 0 else x.ndim + axis + 1
        end = x.ndim if num_axes == -1 else start + num_axes
        new = [x.shape[start + i] if d == 0 else d for i, d in enumerate(dims)]
        if -1 in new:
            new[new.index(-1)] = math.prod(x.shape[start:end]) // math.prod(
                d for d in new if d != -1)
        return [x.reshape(x.shape[:start] + tuple(new) + x.shape[end:])]


class _Parameter(_CaffeLayer):
    def compute(self, inputs):
        shape = _ints(self.params, "dim", list(self.blobs[0].shape))
        return [self.blobs[0].reshape(shape)]


class _Tile(_CaffeLayer):
    def compute(self, inputs):
        x = inputs[0]
        axis = _axis(int(self.params.get("axis", 1)), x.ndim)
        reps = [1] * x.ndim
        reps[axis] = int(self.params["tiles"])
        return [np.tile(x, reps)]


_LAYERS = {"BatchNorm": _BatchNormOwnStatistics, "Scale": _Scale, "Bias": _Bias,
           "Threshold": _Threshold, "Log": _Log, "LRN": _LRN, "MVN": _MVN,
           "Reduction": _Reduction, "ArgMax": _ArgMax,
           "SPP": _SPP, "Im2col": _Im2col, "Parameter": _Parameter, "Tile": _Tile,
           "Deconvolution": _Deconvolution, "Slice": _EvenSlice, "Reshape": _Reshape,
           "Eltwise": _Eltwise}
_registered = False
_lock = threading.Lock()
# Private types that depend on the layer's tops and bottoms (OpenCV tells a Python layer
# nothing of them): one subclass per case, registered when first needed.
_variants: dict[str, type] = {}


def _variant_type(base: type, suffix: str, **attributes) -> str:
    """The private type of ``base`` with these class attributes (registered once)."""
    caffe_type = next(kind for kind, cls in _LAYERS.items() if cls is base)
    name = f"{PRIVATE_PREFIX}{caffe_type}{suffix}"
    with _lock:
        if name not in _variants:
            _variants[name] = type(f"{base.__name__}{suffix}", (base,), attributes)
            cv2.dnn_registerLayer(name, _variants[name])
    return name


def caffe_type_of(layer: _CaffeLayer) -> str:
    """The Caffe type a private layer computes."""
    return next(kind for kind, cls in _LAYERS.items() if isinstance(layer, cls))


def register() -> None:
    """Register the private layer types with OpenCV, once per process."""
    global _registered
    with _lock:
        if _registered:
            return
        for caffe_type, layer in _LAYERS.items():
            cv2.dnn_registerLayer(PRIVATE_PREFIX + caffe_type, layer)
        _registered = True
