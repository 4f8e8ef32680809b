"""Layers that declare, route or reshape blobs: Input, Split, Dropout, Silence, Reshape,
Flatten, Concat.

A deploy network's batch may stay symbolic: Reshape and Flatten keep track of which
dimension holds it, and refuse what would mix it with the fixed ones.
"""

from __future__ import annotations

import math

from depth_eval.caffe import geometry
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
            raise ValueError(f"layer '{layer.name}' (Reshape): cannot infer the -1 of "
                             f"{dims} from a bottom of shape {fmt(bottom)}")
        top[at] = None if b_pow - r_pow == 1 else b_fix // r_fix
    t_pow, t_fix = count(top)
    if (t_pow, t_fix) != (b_pow, b_fix):
        # A deploy net written for batch 1 often spells the batch as an explicit 1: keep it
        # per image so a batch of N still works.
        if b_pow == 1 and t_pow == 0 and t_fix == b_fix and top and top[0] == 1:
            top[0] = None
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
