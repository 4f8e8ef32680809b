"""Pooling (MAX, AVE, global) and SPP with Caffe's output sizes and its AVE divisor.

Caffe's pooled sizes (ceil rounding, last window dropped when it starts in the padding; see
:mod:`depth_eval.caffe.geometry`) are expressed with explicit, possibly asymmetric ONNX pads,
or a crop of rows no window reads, never with ``ceil_mode``.  Caffe's AVE divides by the window
clipped to the padded input (``in + pad``), which is neither ONNX's ``count_include_pad=0``
nor ``1``: the translation averages the valid elements, then multiplies by a constant
per-output-position correction ``valid / caffe_divisor``.
"""

from __future__ import annotations

import numpy as np

from depth_eval.caffe import geometry, shapes
from depth_eval.caffe.onnx.graph import Graph, one_bottom, register, unsupported

# PoolingParameter.pool values the translation implements (STOCHASTIC = 2 is not).
MAX, AVE = 0, 1


def _ave_correction(size: int, out: int, k: int, s: int, p: int) -> np.ndarray:
    """Per output position along one axis: valid elements / Caffe's AVE divisor."""
    factors = np.empty(out, dtype=np.float64)
    for i in range(out):
        start = i * s - p
        caffe_end = min(start + k, size + p)
        if start >= size:  # a window past the input: Caffe divides an empty sum by this
            factors[i] = np.nan if caffe_end == start else 0.0
            continue
        valid = min(start + k, size) - max(start, 0)
        factors[i] = valid / (caffe_end - start)
    return factors


def pool_nodes(g: Graph, layer, x: str, shape, method: int, window: geometry.Window,
               out: tuple[int, int], base: str) -> str:
    """Caffe MAX / AVE pooling of an N x C x H x W value, as ONNX nodes.

    Parameters
    ----------
    window, out
        The pooling window and its Caffe output size (:func:`geometry.pool_output`).
    base
        Name of the output value.
    """
    n, c, h, w = shape
    (kh, kw), (sh, sw), (ph, pw) = window.kernel, window.stride, window.pad
    oh, ow = out
    # ONNX end pads that make floor rounding give Caffe's size exactly; a negative one means
    # input rows/columns no window touches, which are cropped instead.
    eh = (oh - 1) * sh + kh - h - ph
    ew = (ow - 1) * sw + kw - w - pw
    size = (h, w)  # the input's, before any padding added below
    if geometry.window_outside(window, out, h, w):
        # Caffe's MAX over no values is its starting value, -FLT_MAX, and its AVE an empty
        # sum divided by the window clipped to the input (NaN or -0, see _ave_correction):
        # the end of that axis padded so the window exists (onnxruntime takes no pad as wide
        # as the kernel).
        fill = np.finfo(np.float32).min if method == MAX else 0.0
        add_h = eh if (oh - 1) * sh - ph >= h else 0
        add_w = ew if (ow - 1) * sw - pw >= w else 0
        x = g.node("Pad", [x, g.ints(f"{layer.name}.outside", [0, 0, 0, 0, 0, 0, add_h, add_w]),
                           g.scalar(f"{layer.name}.outside_value", fill)],
                   f"{base}.outside", (n, c, h + add_h, w + add_w), layer.name)
        h, w, eh, ew = h + add_h, w + add_w, eh - add_h, ew - add_w
    if eh < 0 or ew < 0:
        ends = [h + min(eh, 0), w + min(ew, 0)]
        x = g.node("Slice", [x, g.ints(f"{layer.name}.starts", [0, 0]),
                             g.ints(f"{layer.name}.ends", ends),
                             g.ints(f"{layer.name}.axes", [2, 3])],
                   f"{base}.crop", (n, c, ends[0], ends[1]), layer.name)
        eh, ew = max(eh, 0), max(ew, 0)
    attrs = dict(kernel_shape=[kh, kw], strides=[sh, sw], pads=[ph, pw, eh, ew])
    out_shape = (n, c, oh, ow)
    if method == MAX:
        return g.node("MaxPool", [x], base, out_shape, layer.name, **attrs)
    factor = np.outer(_ave_correction(size[0], oh, kh, sh, ph),
                      _ave_correction(size[1], ow, kw, sw, pw))
    if np.all(factor == 1.0):
        return g.node("AveragePool", [x], base, out_shape, layer.name, count_include_pad=0,
                      **attrs)
    avg = g.node("AveragePool", [x], f"{base}.valid_mean", out_shape, layer.name,
                 count_include_pad=0, **attrs)
    return g.node("Mul", [avg, g.const(f"{layer.name}.divisor_correction",
                                       factor.astype(np.float32)[None, None])],
                  base, out_shape, layer.name)


@register("Pooling")
def pooling(t, layer, bottoms):
    x, shape = one_bottom(t.g, layer, bottoms, spatial=True)
    p = layer.pooling_param
    if p.pool not in (MAX, AVE):
        raise unsupported(layer, "STOCHASTIC pooling")
    window, out = geometry.pooling(layer, shape[2], shape[3])
    if p.global_pooling:
        op = "GlobalMaxPool" if p.pool == MAX else "GlobalAveragePool"
        return [t.g.node(op, [x], layer.top[0], shape[:2] + (1, 1), layer.name)]
    return [pool_nodes(t.g, layer, x, shape, int(p.pool), window, out, base=layer.top[0])]


@register("SPP")
def spp(t, layer, bottoms):
    """Caffe's spatial pyramid pooling: one Pooling per level (:func:`geometry.spp_levels`),
    each flattened, concatenated along axis 1; a pyramid of one level is that pooling alone."""
    g, top, name = t.g, layer.top[0], layer.name
    x, shape = one_bottom(g, layer, bottoms, spatial=True)
    p = layer.spp_param
    if p.pool not in (MAX, AVE):
        raise unsupported(layer, "STOCHASTIC pooling")
    n, c, h, w = shape
    levels = geometry.spp_levels(layer, h, w)
    if len(levels) == 1:
        window, out = levels[0]
        return [pool_nodes(g, layer, x, shape, int(p.pool), window, out, base=top)]
    flat = []
    for i, (window, (oh, ow)) in enumerate(levels):
        pooled = pool_nodes(g, layer, x, shape, int(p.pool), window, (oh, ow),
                            base=f"{top}.level{i}")
        flat.append(g.node("Flatten", [pooled], f"{top}.level{i}.flat", (n, c * oh * ow), name,
                           axis=1))
    (out,) = shapes.top_shapes(layer, [shape])
    return [g.node("Concat", flat, top, out, name, axis=1)]
