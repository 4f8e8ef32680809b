"""Element-wise layers: ReLU, PReLU, ELU, AbsVal, TanH, Sigmoid, BNLL, Threshold, Power, Exp,
Log, Eltwise, and Softmax."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, numpy_helper

from depth_eval.caffe import geometry
from depth_eval.caffe.shapes import layer_weight_shapes
from depth_eval.caffe.onnx.graph import expect_bottoms, fmt, one_bottom, register, unsupported

# EltwiseParameter.operation values.
_PROD, _SUM, _MAX = 0, 1, 2


@register("ReLU")
def relu(t, layer, bottoms):
    _, shape = one_bottom(t.g, layer, bottoms)
    slope = float(layer.relu_param.negative_slope)
    if slope == 0.0:
        return [t.g.node("Relu", bottoms, layer.top[0], shape, layer.name)]
    return [t.g.node("LeakyRelu", bottoms, layer.top[0], shape, layer.name, alpha=slope)]


def _unary(op: str):
    def translate(t, layer, bottoms):
        _, shape = one_bottom(t.g, layer, bottoms)
        return [t.g.node(op, bottoms, layer.top[0], shape, layer.name)]
    return translate


register("AbsVal")(_unary("Abs"))
register("TanH")(_unary("Tanh"))
register("Sigmoid")(_unary("Sigmoid"))


@register("PReLU")
def prelu(t, layer, bottoms):
    """Caffe's ``max(x, 0) + slope_c * min(x, 0)``: ONNX PRelu with the slopes along axis 1."""
    g = t.g
    x, shape = one_bottom(g, layer, bottoms)
    if len(shape) < 2 or shape[1] is None:
        raise unsupported(layer, f"a bottom of shape {fmt(shape)}")
    (slope,) = t.blob_arrays(layer, layer_weight_shapes(layer, shape))
    # Per channel: (C, 1, ...) broadcasts against axes 1.. of the bottom; shared: one value.
    slope = slope.reshape((1,) if slope.ndim == 0 else (shape[1],) + (1,) * (len(shape) - 2))
    return [g.node("PRelu", [x, g.const(f"{layer.name}.slope", slope)], layer.top[0], shape,
                   layer.name)]


@register("ELU")
def elu(t, layer, bottoms):
    """Caffe's ``max(x, 0) + alpha * (exp(min(x, 0)) - 1)``, ONNX Elu's formula."""
    _, shape = one_bottom(t.g, layer, bottoms)
    return [t.g.node("Elu", bottoms, layer.top[0], shape, layer.name,
                     alpha=float(layer.elu_param.alpha))]


@register("BNLL")
def bnll(t, layer, bottoms):
    """Caffe's stable ``log(1 + exp(x))``: ``x + log(1 + exp(-x))`` for x > 0, else
    ``log(1 + exp(x))``, i.e. ``max(x, 0) + log(1 + exp(-|x|))``."""
    g, top, name = t.g, layer.top[0], layer.name
    x, shape = one_bottom(g, layer, bottoms)
    neg_abs = g.node("Neg", [g.node("Abs", [x], f"{top}.abs", shape, name)], f"{top}.negabs",
                     shape, name)
    exp = g.node("Exp", [neg_abs], f"{top}.exp", shape, name)
    log = g.node("Log", [g.node("Add", [exp, g.scalar(f"{name}.one", 1.0)], f"{top}.onep",
                                shape, name)], f"{top}.log", shape, name)
    pos = g.node("Relu", [x], f"{top}.pos", shape, name)
    return [g.node("Add", [pos, log], top, shape, name)]


@register("Threshold")
def threshold(t, layer, bottoms):
    """1 where ``x > threshold`` (strictly), else 0."""
    g, top, name = t.g, layer.top[0], layer.name
    x, shape = one_bottom(g, layer, bottoms)
    above = g.node("Greater", [x, g.scalar(f"{name}.threshold",
                                           layer.threshold_param.threshold)],
                   f"{top}.above", shape, name)
    return [g.node("Cast", [above], top, shape, name, to=TensorProto.FLOAT)]


# ExpParameter / LogParameter ``base`` meaning e (caffe.proto's default).
_BASE_E = -1.0


def _log_base(layer, base: float) -> np.float32:
    """Caffe's ``log(base)`` in float (1 for the default base e); a base <= 0 is refused as
    Caffe's set-up refuses it."""
    if base == _BASE_E:
        return np.float32(1.0)
    if not base > 0:
        raise ValueError(f"layer '{layer.name}' ({layer.type}): base must be strictly "
                         f"positive, got {base}")
    return np.log(np.float32(base))


@register("Exp")
def exp(t, layer, bottoms):
    """Caffe's ``base ^ (shift + scale * x)`` as ``outer * exp(inner * x)``, with Caffe's
    ``inner = log(base) * scale`` and ``outer = base ^ shift``."""
    g, top, name = t.g, layer.top[0], layer.name
    x, shape = one_bottom(g, layer, bottoms)
    p = layer.exp_param
    base, scale, shift = np.float32(p.base), np.float32(p.scale), np.float32(p.shift)
    inner = _log_base(layer, float(base)) * scale
    if shift == 0:
        outer = np.float32(1.0)
    else:
        outer = np.exp(shift) if base == _BASE_E else np.power(base, shift)
    y = x
    if inner != 1:
        y = g.node("Mul", [y, g.scalar(f"{name}.inner", inner)], f"{top}.scaled", shape, name)
    y = g.node("Exp", [y], top if outer == 1 else f"{top}.exp", shape, name)
    if outer != 1:
        y = g.node("Mul", [y, g.scalar(f"{name}.outer", outer)], top, shape, name)
    return [y]


@register("Log")
def log(t, layer, bottoms):
    """Caffe's ``log(shift + scale * x) / log(base)``, in its order of operations."""
    g, top, name = t.g, layer.top[0], layer.name
    x, shape = one_bottom(g, layer, bottoms)
    p = layer.log_param
    base_scale = np.float32(1.0) / _log_base(layer, float(p.base))
    y = x
    if p.scale != 1:
        y = g.node("Mul", [y, g.scalar(f"{name}.scale", p.scale)], f"{top}.scaled", shape,
                   name)
    if p.shift != 0:
        y = g.node("Add", [y, g.scalar(f"{name}.shift", p.shift)], f"{top}.shifted", shape,
                   name)
    y = g.node("Log", [y], top if base_scale == 1 else f"{top}.ln", shape, name)
    if base_scale != 1:
        y = g.node("Mul", [y, g.scalar(f"{name}.base_scale", base_scale)], top, shape, name)
    return [y]


@register("Power")
def power(t, layer, bottoms):
    """Caffe's ``(shift + scale * x) ^ power``, leaving out the steps that change nothing."""
    g, top, name = t.g, layer.top[0], layer.name
    x, shape = one_bottom(g, layer, bottoms)
    p = layer.power_param
    exponent, scale, shift = float(p.power), float(p.scale), float(p.shift)
    if exponent == 0.0:  # Caffe fills the top with ones
        shp = g.node("Shape", [x], f"{top}.shape", (len(shape),), name)
        return [g.node("ConstantOfShape", [shp], top, shape, name,
                       value=numpy_helper.from_array(np.ones(1, np.float32)))]
    steps = []
    if scale != 1.0:
        steps.append(("Mul", g.scalar(f"{name}.scale", scale)))
    if shift != 0.0:
        steps.append(("Add", g.scalar(f"{name}.shift", shift)))
    if exponent != 1.0:
        steps.append(("Pow", g.scalar(f"{name}.power", exponent)))
    if not steps:
        return [g.node("Identity", [x], top, shape, name)]
    y = x
    for i, (op, const) in enumerate(steps):
        y = g.node(op, [y, const], top if i == len(steps) - 1 else f"{top}.{op.lower()}",
                   shape, name)
    return [y]


@register("Softmax")
def softmax(t, layer, bottoms):
    _, shape = one_bottom(t.g, layer, bottoms)
    axis = geometry.canonical_axis(layer, layer.softmax_param.axis, len(shape))
    if shape[axis] is None:
        raise unsupported(layer, "softmax over the batch axis")
    return [t.g.node("Softmax", bottoms, layer.top[0], shape, layer.name, axis=axis)]


def _chain(g, op: str, values, top: str, shape, name: str) -> str:
    """A left fold of a binary ``op`` over ``values``; the last node writes ``top``."""
    acc = values[0]
    for i, v in enumerate(values[1:], start=1):
        acc = g.node(op, [acc, v], top if i == len(values) - 1 else f"{top}.acc{i}", shape,
                     name)
    return acc


def _common_shape(layer, shapes):
    """The bottoms' one shape.  A bottom with a fixed first dimension of 1 where the others
    have the symbolic batch (a Parameter blob, written for Caffe's batch of one) joins each
    image of the batch: ONNX broadcasting does that."""
    def same(a, b):
        return len(a) == len(b) and all(x == y or {x, y} == {None, 1} and i == 0
                                        for i, (x, y) in enumerate(zip(a, b)))
    if not all(same(s, shapes[0]) for s in shapes):
        raise ValueError(f"layer '{layer.name}' (Eltwise): bottoms have different shapes "
                         f"{', '.join(map(fmt, shapes))}")
    return next((s for s in shapes if s[:1] == (None,)), shapes[0])


@register("Eltwise")
def eltwise(t, layer, bottoms):
    """PROD, MAX, or SUM with optional per-bottom coefficients."""
    expect_bottoms(layer, bottoms, n=None, at_least=2)
    p = layer.eltwise_param
    g = t.g
    shapes = [g.shape(b) for b in bottoms]
    shape = _common_shape(layer, shapes)
    top, name = layer.top[0], layer.name
    coeffs = [float(c) for c in p.coeff]
    if coeffs and (p.operation != _SUM or len(coeffs) != len(bottoms)):
        raise ValueError(f"layer '{layer.name}' (Eltwise): coeff needs operation SUM and one "
                         f"value per bottom ({len(bottoms)})")
    if p.operation == _PROD:
        return [_chain(g, "Mul", bottoms, top, shape, name)]
    # In place (the top is a bottom's blob), Caffe starts SUM by zeroing its top and MAX by
    # filling it with -FLT_MAX, erasing that bottom before reading it.
    kept = [i for i, blob in enumerate(layer.bottom) if blob != top]
    if not kept:
        start = 0.0 if p.operation != _MAX else float(np.finfo(np.float32).min)
        erased = g.node("Mul", [bottoms[0], g.scalar(f"{name}.erased", 0.0)],
                        f"{top}.erased", shape, name)
        return [g.node("Add", [erased, g.scalar(f"{name}.start", start)], top, shape, name)]
    if p.operation == _MAX:
        return [_chain(g, "Max", [bottoms[i] for i in kept], top, shape, name)]
    terms = []
    for i, b in enumerate(bottoms):
        if i not in kept:
            continue
        c = coeffs[i] if coeffs else 1.0
        terms.append(b if c == 1.0 else g.node(
            "Mul", [b, g.scalar(f"{name}.coeff{i}", c)], f"{top}.term{i}", shape, name))
    return [_chain(g, "Add", terms, top, shape, name)]
