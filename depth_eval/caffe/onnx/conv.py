"""Layers with learned weights: Convolution, Deconvolution (ONNX ConvTranspose), InnerProduct;
and Im2col, the convolution's windows unrolled."""

from __future__ import annotations

import math

import numpy as np

from depth_eval.caffe import geometry, shapes
from depth_eval.caffe.shapes import layer_weight_shapes
from depth_eval.caffe.onnx.graph import count, one_bottom, register, reshape_target, unsupported


@register("Convolution", "Deconvolution")
def convolution(t, layer, bottoms):
    """Caffe's (de)convolution: the same window, group and output-size rules as ONNX's, with
    symmetric padding."""
    x, (n, c, h, w) = one_bottom(t.g, layer, bottoms, spatial=True)
    p = layer.convolution_param
    if geometry.canonical_axis(layer, p.axis, 4) != 1:
        raise unsupported(layer, f"axis {p.axis}")
    window, (oh, ow) = geometry.convolution(layer, c, h, w)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (window.kernel, window.stride, window.pad,
                                              window.dilation)
    arrays = t.blob_arrays(layer, layer_weight_shapes(layer, (n, c, h, w)))
    inputs = [x, t.g.const(f"{layer.name}.weight", arrays[0])]
    if p.bias_term:
        inputs.append(t.g.const(f"{layer.name}.bias", arrays[1]))
    attrs = dict(kernel_shape=[kh, kw], strides=[sh, sw], pads=[ph, pw, ph, pw],
                 dilations=[dh, dw], group=int(p.group))
    op = "ConvTranspose" if layer.type == "Deconvolution" else "Conv"
    return [t.g.node(op, inputs, layer.top[0], (n, int(p.num_output), oh, ow), layer.name,
                     **attrs)]


@register("InnerProduct")
def inner_product(t, layer, bottoms):
    """Caffe's InnerProduct: the axes from ``axis`` on flattened to K, times the weights
    (stored N x K, or K x N if ``transpose``), plus the bias; the axes before ``axis`` kept."""
    g = t.g
    x, shape = one_bottom(g, layer, bottoms)
    p = layer.inner_product_param
    axis = geometry.canonical_axis(layer, p.axis, len(shape))
    lead, tail = shape[:axis], shape[axis:]
    if any(d is None for d in tail):
        raise unsupported(layer, f"axis {p.axis} with a symbolic batch")
    k, n_out = math.prod(tail), int(p.num_output)
    arrays = t.blob_arrays(layer, layer_weight_shapes(layer, shape))
    out_shape = tuple(lead) + (n_out,)
    trans_b = 0 if p.transpose else 1
    if axis == 1 and count(lead) in ((1, 1), (0, lead[0])):
        flat = x
        if len(shape) != 2:
            flat = g.node("Flatten", [x], f"{layer.top[0]}.flat", (lead[0], k), layer.name,
                          axis=1)
        inputs = [flat, g.const(f"{layer.name}.weight", arrays[0])]
        if p.bias_term:
            inputs.append(g.const(f"{layer.name}.bias", arrays[1]))
        return [g.node("Gemm", inputs, layer.top[0], out_shape, layer.name, transB=trans_b)]
    # Several leading axes (one of them possibly the batch): MatMul over the last axis of
    # the bottom with its tail merged, the weights stored K x N for it.
    rows = x
    if len(tail) != 1:
        rows = g.node("Reshape", [x, g.ints(f"{layer.name}.rows",
                                            reshape_target(tuple(lead) + (k,)))],
                      f"{layer.top[0]}.rows", tuple(lead) + (k,), layer.name)
    weight = arrays[0] if p.transpose else np.ascontiguousarray(arrays[0].T)
    y = g.node("MatMul", [rows, g.const(f"{layer.name}.weight", weight)],
               layer.top[0] if not p.bias_term else f"{layer.top[0]}.matmul", out_shape,
               layer.name)
    if p.bias_term:
        y = g.node("Add", [y, g.const(f"{layer.name}.bias", arrays[1])], layer.top[0],
                   out_shape, layer.name)
    return [y]


@register("Im2col")
def im2col(t, layer, bottoms):
    """Caffe's Im2col: channel ``(c * kh + i) * kw + j`` of the top is input channel c at
    kernel offset (i, j) of each window (zero padded); a grouped convolution with one-hot
    kernels computes exactly that (each output one input value times 1)."""
    x, (n, c, h, w) = one_bottom(t.g, layer, bottoms, spatial=True)
    (out,) = shapes.top_shapes(layer, [(n, c, h, w)])
    window = geometry.conv_window(layer)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (window.kernel, window.stride, window.pad,
                                              window.dilation)
    one_hot = np.zeros((c * kh * kw, 1, kh, kw), np.float32)
    for ch in range(c):
        for i in range(kh):
            for j in range(kw):
                one_hot[(ch * kh + i) * kw + j, 0, i, j] = 1.0
    return [t.g.node("Conv", [x, t.g.const(f"{layer.name}.one_hot", one_hot)], layer.top[0],
                     out, layer.name, kernel_shape=[kh, kw], strides=[sh, sw],
                     pads=[ph, pw, ph, pw], dilations=[dh, dw], group=c)]
