"""Element-wise layers: ReLU, AbsVal, TanH, Sigmoid, Power, Eltwise, and Softmax."""

from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from depth_eval.caffe import geometry
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


@register("Eltwise")
def eltwise(t, layer, bottoms):
    """PROD, MAX, or SUM with optional per-bottom coefficients."""
    expect_bottoms(layer, bottoms, n=None, at_least=2)
    p = layer.eltwise_param
    g = t.g
    shapes = [g.shape(b) for b in bottoms]
    if any(s != shapes[0] for s in shapes):
        raise ValueError(f"layer '{layer.name}' (Eltwise): bottoms have different shapes "
                         f"{', '.join(map(fmt, shapes))}")
    top, name, shape = layer.top[0], layer.name, shapes[0]
    coeffs = [float(c) for c in p.coeff]
    if coeffs and (p.operation != _SUM or len(coeffs) != len(bottoms)):
        raise ValueError(f"layer '{layer.name}' (Eltwise): coeff needs operation SUM and one "
                         f"value per bottom ({len(bottoms)})")
    if p.operation == _MAX:
        return [g.node("Max", bottoms, top, shape, name)]
    if p.operation == _PROD:
        return [_chain(g, "Mul", bottoms, top, shape, name)]
    terms = []
    for i, b in enumerate(bottoms):
        c = coeffs[i] if coeffs else 1.0
        terms.append(b if c == 1.0 else g.node(
            "Mul", [b, g.scalar(f"{name}.coeff{i}", c)], f"{top}.term{i}", shape, name))
    return [_chain(g, "Add", terms, top, shape, name)]
