"""Layers that reduce axes: Reduction (SUM, ASUM, SUMSQ, MEAN over the tail axes) and ArgMax."""

from __future__ import annotations

import math

import numpy as np
from onnx import TensorProto

from depth_eval.caffe import geometry, shapes
from depth_eval.caffe.onnx.graph import fmt, one_bottom, register, reshape_target, unsupported

# ReductionParameter.operation values (caffe.proto).
_SUM, _ASUM, _SUMSQ, _MEAN = 1, 2, 3, 4


@register("Reduction")
def reduction(t, layer, bottoms):
    """Caffe reduces every axis from ``axis`` on, then multiplies by ``coeff`` (MEAN: by
    ``coeff / count``, the sum scaled as Caffe scales it)."""
    g, top, name = t.g, layer.top[0], layer.name
    x, shape = one_bottom(g, layer, bottoms)
    p = layer.reduction_param
    axis = geometry.canonical_axis(layer, p.axis, len(shape))
    tail = shape[axis:]
    if any(d is None for d in tail):
        raise unsupported(layer, f"axis {p.axis} (reducing the batch axis)")
    (out,) = shapes.top_shapes(layer, [shape])
    axes = list(range(axis, len(shape)))
    coeff = np.float32(p.coeff)
    if p.operation == _MEAN:
        coeff = coeff / np.float32(math.prod(tail))
    if p.operation in (_SUM, _MEAN):
        y = g.node("ReduceSum", [x, g.ints(f"{name}.axes", axes)], f"{top}.sum", out, name,
                   keepdims=0)
    elif p.operation == _ASUM:
        y = g.node("ReduceL1", [x], f"{top}.sum", out, name, axes=axes, keepdims=0)
    elif p.operation == _SUMSQ:
        y = g.node("ReduceSumSquare", [x], f"{top}.sum", out, name, axes=axes, keepdims=0)
    else:
        raise unsupported(layer, f"operation {p.operation}")
    if coeff == 1:
        return [g.node("Identity", [y], top, out, name)]
    return [g.node("Mul", [y, g.scalar(f"{name}.coeff", coeff)], top, out, name)]


def _top_k(g, layer, x: str, shape, axis: int, k: int, base: str) -> tuple[str, str]:
    """The ``k`` largest values along ``axis`` and their indices (float), in Caffe's order:
    descending, and of equal values the one with the larger index first (Caffe sorts
    (value, index) pairs with std::greater; ONNX TopK puts the smaller index first, so it is
    run on the axis reversed)."""
    name, size = layer.name, shape[axis]
    reversed_x = g.node("Slice", [x, g.ints(f"{name}.rev_starts", [-1]),
                                  g.ints(f"{name}.rev_ends", [-(size + 1)]),
                                  g.ints(f"{name}.rev_axes", [axis]),
                                  g.ints(f"{name}.rev_steps", [-1])],
                        f"{base}.reversed", shape, name)
    out = tuple(k if i == axis else d for i, d in enumerate(shape))
    values, rev_index = g.nodes_outputs("TopK", [reversed_x, g.ints(f"{name}.k", [k])],
                                        [f"{base}.values", f"{base}.rev_index"], [out, out],
                                        name, axis=axis, largest=1, sorted=1)
    index = g.node("Cast", [rev_index], f"{base}.rev_index_f", out, name, to=TensorProto.FLOAT)
    # index in the original order: size - 1 - reversed index (exact in float up to 2^24)
    original = g.node("Sub", [g.scalar(f"{name}.last", size - 1), index], f"{base}.index",
                      out, name)
    return values, original


@register("ArgMax")
def argmax(t, layer, bottoms):
    """Caffe's ArgMax: along ``axis`` the indices (or with ``out_max_val`` the values) of the
    ``top_k`` largest; without an axis, over each item's values flattened, top
    (N, 1, top_k, 1...) of indices, or (N, 2, top_k, 1...) of indices then values."""
    g, top, name = t.g, layer.top[0], layer.name
    x, shape = one_bottom(g, layer, bottoms)
    p = layer.argmax_param
    k = int(p.top_k)
    (out,) = shapes.top_shapes(layer, [shape])
    if p.HasField("axis"):
        axis = geometry.canonical_axis(layer, p.axis, len(shape))
        if shape[axis] is None:
            raise unsupported(layer, f"axis {p.axis} (the batch axis)")
        values, index = _top_k(g, layer, x, shape, axis, k, top)
        return [g.node("Identity", [values if p.out_max_val else index], top, out, name)]
    if any(d is None for d in shape[1:]):
        raise unsupported(layer, f"a bottom of shape {fmt(shape)}")
    flat_shape = (shape[0], math.prod(shape[1:]))
    flat = g.node("Reshape", [x, g.ints(f"{name}.flat", reshape_target(flat_shape))],
                  f"{top}.flat", flat_shape, name)
    values, index = _top_k(g, layer, flat, flat_shape, 1, k, top)
    row = (shape[0], 1, k)
    parts = [g.node("Reshape", [v, g.ints(f"{name}.row", reshape_target(row))],
                    f"{top}.{what}", row, name)
             for v, what in ([(index, "indices")] + ([(values, "maxima")] if p.out_max_val
                                                      else []))]
    joined = parts[0] if len(parts) == 1 else g.node("Concat", parts, f"{top}.pairs",
                                                     (shape[0], 2, k), name, axis=1)
    return [g.node("Reshape", [joined, g.ints(f"{name}.shape", reshape_target(out))], top, out,
                   name)]
