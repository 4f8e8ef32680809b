"""Layers with learned weights: Convolution, Deconvolution (ONNX ConvTranspose), InnerProduct."""

from __future__ import annotations

import math

from depth_eval.caffe import geometry
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
    """Flatten from ``axis`` on, then Gemm (transposed weights unless ``transpose``)."""
    g = t.g
    x, shape = one_bottom(g, layer, bottoms)
    p = layer.inner_product_param
    axis = geometry.canonical_axis(layer, p.axis, len(shape))
    lead, tail = shape[:axis], shape[axis:]
    if any(d is None for d in tail):
        raise unsupported(layer, f"axis {p.axis} with a symbolic batch")
    k, n_out = math.prod(tail), int(p.num_output)
    lead_pow, lead_fix = count(lead)
    if lead_pow > 1 or (lead_pow == 1 and lead_fix != 1):
        raise unsupported(layer, f"axis {p.axis} with a symbolic batch")
    rows = None if lead_pow else lead_fix
    arrays = t.blob_arrays(layer, layer_weight_shapes(layer, shape))
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
    return [g.node("Reshape", [mm, g.ints(f"{layer.name}.shape", reshape_target(out_shape))],
                   layer.top[0], out_shape, layer.name)]
