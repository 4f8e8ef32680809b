"""Normalisation and affine layers with Caffe's own formulas: MVN, LRN, BatchNorm, Scale, Bias.

* MVN is ``(x - mean) / (sqrt(var) + eps)``, the epsilon added to the standard deviation.
* LRN across channels is ``x * (k + alpha / size * window_sum(x^2)) ^ -beta``; within a
  channel it is ``x * (1 + alpha / size^2 * box_sum(x^2)) ^ -beta`` (Caffe ignores ``k``
  there).
"""

from __future__ import annotations

import numpy as np

from depth_eval.caffe import geometry, shapes
from depth_eval.caffe.shapes import layer_weight_shapes
from depth_eval.caffe.onnx.graph import (expect_bottoms, fmt, one_bottom, register, reshape_target, unsupported)
from depth_eval.caffe.onnx.pool import AVE, pool_nodes

#: Across-channel LRN over at most this many channels is built from Mul/Conv/Pow (faster in
#: onnxruntime than its LRN kernel); wider blobs use the LRN operator (the banded weight grows
#: as channels^2).
_LRN_AS_CONV_MAX_CHANNELS = 384
# LRNParameter.norm_region ACROSS_CHANNELS (the other is WITHIN_CHANNEL = 1).
_ACROSS_CHANNELS = 0


@register("MVN")
def mvn(t, layer, bottoms):
    g, top, name = t.g, layer.top[0], layer.name
    x, shape = one_bottom(g, layer, bottoms)
    p = layer.mvn_param
    first = 1 if p.across_channels else 2
    padded = shapes.mvn_top(layer, shape)
    if padded != shape:  # Caffe's top is N x C x H x W, missing trailing axes of 1
        x = g.node("Reshape", [x, g.ints(f"{name}.4d", reshape_target(padded))],
                   f"{top}.4d", padded, name)
        shape = padded
    axes = list(range(first, len(shape)))
    if any(shape[a] is None for a in axes):
        raise unsupported(layer, "normalising over the batch axis")
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


def _lrn_across_channels(g, layer, x: str, shape) -> str:
    p = layer.lrn_param
    size, channels = int(p.local_size), shape[1]
    # In place, Caffe writes the factor over its bottom and then multiplies it by that: the
    # top is factor^2 (the bottom's values are gone), which the ONNX LRN cannot give.
    in_place = layer.top[0] == layer.bottom[0]
    if channels > _LRN_AS_CONV_MAX_CHANNELS and not in_place:  # ONNX LRN: the same formula
        return g.node("LRN", [x], layer.top[0], shape, layer.name, size=size,
                      alpha=float(p.alpha), beta=float(p.beta), bias=float(p.k))
    # The window sum as a 1x1 convolution with a banded (C x C) weight alpha/size and bias k:
    # the same arithmetic as Caffe (which also pre-scales the squares), and two to three times
    # faster in onnxruntime than its single-threaded LRN kernel.
    top, name = layer.top[0], layer.name
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
    return g.node("Mul", [powered if in_place else x, powered], top, shape, name)


def _lrn_within_channel(g, layer, x: str, shape) -> str:
    # Caffe composes x * (1 + alpha * avepool(x^2)) ^ -beta, where the average pooling
    # (pad (size-1)/2, stride 1) always divides by size^2; k is not used.
    p = layer.lrn_param
    size, top, name = int(p.local_size), layer.top[0], layer.name
    sq = g.node("Mul", [x, x], f"{top}.sq", shape, name)
    pad = (size - 1) // 2
    window = geometry.Window(kernel=(size, size), stride=(1, 1), pad=(pad, pad))
    out = geometry.pool_output(layer, window, shape[2], shape[3], ceil_mode=True)
    avg = pool_nodes(g, layer, sq, shape, AVE, window, out, base=f"{top}.avg")
    scaled = g.node("Mul", [avg, g.scalar(f"{name}.alpha", p.alpha)], f"{top}.scaled",
                    shape, name)
    shifted = g.node("Add", [scaled, g.scalar(f"{name}.one", 1.0)], f"{top}.shifted",
                     shape, name)
    powered = g.node("Pow", [shifted, g.scalar(f"{name}.negbeta", -float(p.beta))],
                     f"{top}.scale", shape, name)
    return g.node("Mul", [x, powered], top, shape, name)


@register("LRN")
def lrn(t, layer, bottoms):
    x, shape = one_bottom(t.g, layer, bottoms, spatial=True)
    size = int(layer.lrn_param.local_size)
    if size % 2 == 0 or size < 1:
        raise ValueError(f"layer '{layer.name}' (LRN): local_size must be odd, got {size}")
    if layer.lrn_param.norm_region == _ACROSS_CHANNELS:
        return [_lrn_across_channels(t.g, layer, x, shape)]
    return [_lrn_within_channel(t.g, layer, x, shape)]


@register("BatchNorm")
def batch_norm(t, layer, bottoms):
    """Caffe's inference BatchNorm: ``(x - mean / f) / sqrt(variance / f + eps)`` per channel,
    ``f`` the stored moving-average factor (Caffe multiplies by 1 / f, and by 0 when f is 0)."""
    g, top, name = t.g, layer.top[0], layer.name
    x, shape = one_bottom(g, layer, bottoms)
    p = layer.batch_norm_param
    if len(shape) < 2 or shape[1] is None:
        raise unsupported(layer, f"a bottom of shape {fmt(shape)}")
    if p.HasField("use_global_stats") and not p.use_global_stats:
        return [_batch_norm_own_statistics(g, layer, x, shape, float(p.eps))]
    mean, variance, factor = t.blob_arrays(layer, layer_weight_shapes(layer, shape))
    # In float32, in Caffe's order of operations.
    f = factor.reshape(-1)[0]
    scale = np.float32(0.0) if f == 0 else np.float32(1.0) / f
    mean, variance = mean * scale, variance * scale
    std = np.sqrt(variance + np.float32(p.eps))
    per_channel = (shape[1],) + (1,) * (len(shape) - 2)
    centred = g.node("Sub", [x, g.const(f"{name}.mean", mean.reshape(per_channel))],
                     f"{top}.centred", shape, name)
    return [g.node("Div", [centred, g.const(f"{name}.std", std.reshape(per_channel))], top,
                   shape, name)]


def _batch_norm_own_statistics(g, layer, x, shape, eps: float):
    """``use_global_stats: false``: each channel of each image (the original ran one image per
    forward pass) normalised by its own mean and biased variance, ``sqrt(var + eps)``: ONNX's
    InstanceNormalization with unit scale and no shift."""
    if len(shape) < 3:
        raise unsupported(layer, "use_global_stats: false on a blob without spatial axes")
    channels, name = shape[1], layer.name
    return g.node("InstanceNormalization",
                  [x, g.const(f"{name}.unit", np.ones(channels, np.float32)),
                   g.const(f"{name}.zero", np.zeros(channels, np.float32))],
                  layer.top[0], shape, name, epsilon=eps)


def _operand(t, layer, param, bottoms, what: str):
    """Scale's or Bias's operand: the second bottom, or the learned blob, shaped to broadcast
    against the first bottom (its axes from Caffe's ``axis`` on, ones after); with the
    layer's remaining learned blobs."""
    g = t.g
    x, shape = bottoms[0], g.shape(bottoms[0])
    second = g.shape(bottoms[1]) if len(bottoms) > 1 else None
    (out,) = shapes.top_shapes(layer, [shape] + ([second] if second is not None else []))
    # A learned blob over the batch axis was stored for Caffe's deploy batch of one: it
    # applies to each image of a batch (ONNX broadcasting), as a Parameter blob does.
    expected = [tuple(1 if d is None else d for d in s)
                for s in layer_weight_shapes(layer, shape, second)]
    ndim = len(expected[0]) if second is None else len(second)
    axis = shapes.operand_axis(layer, param, shape, ndim)
    covered = tuple(1 if d is None and second is None else d for d in shape[axis:axis + ndim])
    blobs = t.blob_arrays(layer, expected) if expected else []
    trailing = (1,) * (len(shape) - axis - ndim)
    if second is None:
        value = blobs.pop(0)
        operand = g.const(f"{layer.name}.{what}", value.reshape(value.shape + trailing))
    elif trailing:
        target = reshape_target(tuple(covered) + trailing)
        operand = g.node("Reshape", [bottoms[1], g.ints(f"{layer.name}.{what}_shape", target)],
                         f"{layer.top[0]}.{what}", tuple(covered) + trailing, layer.name)
    else:
        operand = bottoms[1]
    return x, out, operand, blobs, trailing, covered


@register("Scale")
def scale(t, layer, bottoms):
    """``x * s`` (s: a learned blob or the second bottom, along ``num_axes`` axes from
    ``axis``), plus a learned bias of s's shape if ``bias_term``."""
    expect_bottoms(layer, bottoms, n=None)
    if len(bottoms) > 2:
        expect_bottoms(layer, bottoms, n=2)
    g, top, name = t.g, layer.top[0], layer.name
    x, out, s, blobs, trailing, covered = _operand(t, layer, layer.scale_param, bottoms,
                                                   "scale")
    if not layer.scale_param.bias_term:
        return [g.node("Mul", [x, s], top, out, name)]
    scaled = g.node("Mul", [x, s], f"{top}.scaled", out, name)
    (bias,) = blobs
    b = g.const(f"{name}.bias", bias.reshape(bias.shape + trailing))
    return [g.node("Add", [scaled, b], top, out, name)]


@register("Bias")
def bias(t, layer, bottoms):
    """``x + b`` (b: a learned blob or the second bottom, along ``num_axes`` axes from
    ``axis``)."""
    expect_bottoms(layer, bottoms, n=None)
    if len(bottoms) > 2:
        expect_bottoms(layer, bottoms, n=2)
    x, out, b, _, _, _ = _operand(t, layer, layer.bias_param, bottoms, "bias")
    return [t.g.node("Add", [x, b], layer.top[0], out, layer.name)]
