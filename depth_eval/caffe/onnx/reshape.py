"""Layers that declare, route or reshape blobs: Input, Parameter, Split, Dropout, Silence,
Reshape, Flatten, Concat, Slice, Crop, Tile.

A deploy network's batch may stay symbolic: Reshape and Flatten keep track of which
dimension holds it, and refuse what would mix it with the fixed ones.
"""

from __future__ import annotations

import math

from depth_eval.caffe import geometry, shapes
from depth_eval.caffe.onnx.graph import (count, expect_bottoms, fmt, one_bottom, register, reshape_target, unsupported)


@register("Input")
def input_layer(t, layer, bottoms):
    """Declares graph inputs (one shape for every top, or one shape per top)."""
    shapes = list(layer.input_param.shape)
    if not layer.top:
        return []
    if len(shapes) not in (1, len(layer.top)):
        raise ValueError(f"layer '{layer.name}' (Input): {len(shapes)} shapes for "
                         f"{len(layer.top)} tops")
    for i, top in enumerate(layer.top):
        shape = shapes[i] if len(shapes) > 1 else shapes[0]
        t.add_input(top, shape.dim, f"layer '{layer.name}' (Input)")
    return None


@register("Split", "Dropout")  # Dropout in Caffe's test phase: identity (weights pre-scaled)
def identity_tops(t, layer, bottoms):
    expect_bottoms(layer, bottoms)
    return [bottoms[0]] * len(layer.top)


@register("Silence")
def silence(t, layer, bottoms):
    return []


@register("Reshape")
def reshape(t, layer, bottoms):
    """Caffe's Reshape (0 copies a bottom dimension, one -1 is inferred) on tracked shapes."""
    x, bottom = one_bottom(t.g, layer, bottoms)
    p = layer.reshape_param
    ndim = len(bottom)
    start = p.axis if p.axis >= 0 else ndim + p.axis + 1
    end = ndim if p.num_axes == -1 else start + p.num_axes
    if not 0 <= start <= ndim or not start <= end <= ndim:
        raise ValueError(f"layer '{layer.name}' (Reshape): axis {p.axis} / num_axes "
                         f"{p.num_axes} out of range for {fmt(bottom)}")
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
    b_pow, b_fix = count(bottom)
    if -1 in top:
        at = top.index(-1)
        rest = top[:at] + top[at + 1:]
        r_pow, r_fix = count(rest)
        if r_fix == 0 or b_fix % r_fix or b_pow - r_pow not in (0, 1) \
                or (b_pow - r_pow == 1 and b_fix != r_fix):
            if b_pow:
                raise unsupported(layer, f"shape {dims} (it moves the symbolic batch axis)")
            raise ValueError(f"layer '{layer.name}' (Reshape): cannot infer the -1 of "
                             f"{dims} from a bottom of shape {fmt(bottom)}")
        top[at] = None if b_pow - r_pow == 1 else b_fix // r_fix
    t_pow, t_fix = count(top)
    if (t_pow, t_fix) != (b_pow, b_fix):
        # A deploy net written for batch 1 often spells the batch as an explicit 1: keep it
        # per image so a batch of N still works.
        if b_pow == 1 and t_pow == 0 and t_fix == b_fix and top and top[0] == 1:
            top[0] = None
        elif b_pow:
            raise unsupported(layer, f"shape {dims} (it moves the symbolic batch axis)")
        else:
            raise ValueError(f"layer '{layer.name}' (Reshape): {dims} changes the count of "
                             f"a bottom of shape {fmt(bottom)}")
    return [t.g.node("Reshape", [x, t.g.ints(f"{layer.name}.shape", reshape_target(top))],
                     layer.top[0], tuple(top), layer.name)]


@register("Flatten")
def flatten(t, layer, bottoms):
    x, bottom = one_bottom(t.g, layer, bottoms)
    p = layer.flatten_param
    axis = geometry.canonical_axis(layer, p.axis, len(bottom))
    end = geometry.canonical_axis(layer, p.end_axis, len(bottom))
    merged = bottom[axis:end + 1]
    if any(d is None for d in merged) and len(merged) > 1:
        raise unsupported(layer, "flattening the symbolic batch axis")
    dim = None if None in merged else math.prod(merged)
    top = tuple(bottom[:axis]) + (dim,) + tuple(bottom[end + 1:])
    return [t.g.node("Reshape", [x, t.g.ints(f"{layer.name}.shape", reshape_target(top))],
                     layer.top[0], top, layer.name)]


@register("Concat")
def concat(t, layer, bottoms):
    expect_bottoms(layer, bottoms, n=None)
    p = layer.concat_param
    shapes = [t.g.shape(b) for b in bottoms]
    axis = p.concat_dim if p.HasField("concat_dim") else p.axis
    axis = geometry.canonical_axis(layer, axis, len(shapes[0]))
    for s in shapes[1:]:
        if len(s) != len(shapes[0]) or any(a != b for i, (a, b) in
                                           enumerate(zip(s, shapes[0])) if i != axis):
            raise ValueError(f"layer '{layer.name}' (Concat): cannot concatenate "
                             f"{', '.join(map(fmt, shapes))} along axis {axis}")
    if any(s[axis] is None for s in shapes):
        raise unsupported(layer, "concatenating along the batch axis")
    if len(bottoms) == 1:
        return [bottoms[0]]
    out = list(shapes[0])
    out[axis] = sum(s[axis] for s in shapes)
    return [t.g.node("Concat", bottoms, layer.top[0], tuple(out), layer.name, axis=axis)]


@register("Crop")
def crop(t, layer, bottoms):
    """Caffe's Crop: the first bottom cut to the second's shape from ``axis`` on, at the
    offsets :func:`depth_eval.caffe.shapes.crop_offsets` gives (the second bottom's values
    are not read)."""
    expect_bottoms(layer, bottoms, n=2)
    g = t.g
    shape, reference = g.shape(bottoms[0]), g.shape(bottoms[1])
    start = geometry.canonical_axis(layer, layer.crop_param.axis, len(shape))
    if any(d is None for d in tuple(shape[start:]) + tuple(reference[start:])):
        raise unsupported(layer, f"axis {layer.crop_param.axis} (cropping the batch axis)")
    offsets = shapes.crop_offsets(layer, shape, reference)
    (out,) = shapes.top_shapes(layer, [shape, reference])
    axes = [i for i in range(start, len(shape)) if out[i] != shape[i]]
    if not axes:
        return [g.node("Identity", [bottoms[0]], layer.top[0], out, layer.name)]
    return [_slice_node(g, layer, bottoms[0], axes, [offsets[i] for i in axes],
                        [offsets[i] + out[i] for i in axes], layer.top[0], out)]


def _slice_node(g, layer, x: str, axes, starts, ends, base: str, out) -> str:
    return g.node("Slice", [x, g.ints(f"{layer.name}.starts", starts),
                            g.ints(f"{layer.name}.ends", ends),
                            g.ints(f"{layer.name}.axes", axes)], base, out, layer.name)


@register("Slice")
def slice_layer(t, layer, bottoms):
    """Caffe's Slice: one top per part of the axis between the slice points."""
    g = t.g
    x, shape = one_bottom(g, layer, bottoms)
    axis = shapes.slice_axis(layer, len(shape))
    if shape[axis] is None:
        raise unsupported(layer, "slicing the batch axis")
    outs = shapes.top_shapes(layer, [shape])
    if len(outs) == 1:  # Caffe shares the bottom's data
        return [x]
    tops, begin = [], 0
    for top, out in zip(layer.top, outs):
        end = begin + out[axis]
        tops.append(_slice_node(g, layer, x, [axis], [begin], [end], top, out))
        begin = end
    return tops


@register("Tile")
def tile(t, layer, bottoms):
    """Caffe's Tile: ``tiles`` copies along ``axis`` (each block from ``axis`` on repeated),
    ONNX Tile's layout."""
    g = t.g
    x, shape = one_bottom(g, layer, bottoms)
    axis = geometry.canonical_axis(layer, layer.tile_param.axis, len(shape))
    if shape[axis] is None:
        raise unsupported(layer, "tiling the batch axis")
    (out,) = shapes.top_shapes(layer, [shape])
    repeats = [int(layer.tile_param.tiles) if i == axis else 1 for i in range(len(shape))]
    return [g.node("Tile", [x, g.ints(f"{layer.name}.repeats", repeats)], layer.top[0], out,
                   layer.name)]


@register("Parameter")
def parameter(t, layer, bottoms):
    """Caffe's Parameter: its top is its learned blob, of the layer's ``shape``."""
    expect_bottoms(layer, bottoms, n=0, at_least=0)
    (out,) = shapes.top_shapes(layer, [])
    if not out:
        raise ValueError(f"layer '{layer.name}' (Parameter): no parameter_param shape")
    (value,) = t.blob_arrays(layer, shapes.layer_weight_shapes(layer, ()))
    return [t.g.node("Identity", [t.g.const(f"{layer.name}.blob", value)], layer.top[0], out,
                     layer.name)]
