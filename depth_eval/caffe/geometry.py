"""Caffe's window geometry: kernel, stride, pad and dilation of convolution and pooling layers.

The parameters are read and checked as Caffe 1.0's layer set-up does, and the output sizes
follow its formulas, including pooling's ceil rounding and the rule that drops a last window
starting in the padding.  Shape inference (:mod:`depth_eval.caffe.shapes`, which checks
snapshots before OpenCV sees them) and the ONNX translation both use these rules, so the two
engines accept and size the same networks.  Every error is a
:class:`~depth_eval.errors.ShapeError` naming the layer.
"""

from __future__ import annotations

from dataclasses import dataclass

from depth_eval.errors import ShapeError

__all__ = ["Window", "canonical_axis", "conv_extent", "conv_window", "convolution", "pool_extent",
           "pool_output", "pooling", "spp_levels"]

Pair = tuple[int, int]

# PoolingParameter.round_mode CEIL, Caffe's default (FLOOR came with later Caffe versions).
_ROUND_CEIL = 0


@dataclass(frozen=True)
class Window:
    """A 2-D window's kernel, stride, pad (each side) and dilation, each as (h, w)."""

    kernel: Pair
    stride: Pair
    pad: Pair
    dilation: Pair = (1, 1)

    @property
    def extent(self) -> Pair:
        """Rows and columns one (dilated) window spans."""
        return (self.dilation[0] * (self.kernel[0] - 1) + 1,
                self.dilation[1] * (self.kernel[1] - 1) + 1)


def where(layer) -> str:
    """How error messages name a layer: ``layer 'conv1' (Convolution)``."""
    return f"layer '{layer.name}' ({layer.type})"


def canonical_axis(layer, axis: int, ndim: int) -> int:
    """Caffe's axis index for an ``ndim``-dimensional blob: a negative one counts from the end."""
    if not -ndim <= axis < ndim:
        raise ShapeError(f"{where(layer)}: axis {axis} out of range for a {ndim}-dimensional "
                         f"blob")
    return axis % ndim


def _given(param, name: str) -> list[int]:
    """The values a layer gives for ``name``: a repeated field's list, or a set singular one."""
    value = getattr(param, name)
    if not isinstance(value, int):  # a repeated field (convolution's)
        return [int(v) for v in value]
    return [value] if param.HasField(name) else []


def _pair(layer, param, name: str, halves: str | None, default: int | None) -> Pair:
    """(h, w) of one window parameter, as Caffe reads it.

    Given either as ``name`` (one value for both axes, or one per axis) or as ``halves_h`` /
    ``halves_w`` (an unset half is 0), never both; ``default`` when neither is set (None:
    required).
    """
    values = _given(param, name)
    if halves and (param.HasField(f"{halves}_h") or param.HasField(f"{halves}_w")):
        if values:
            raise ShapeError(f"{where(layer)}: {name} and {halves}_h/{halves}_w are exclusive")
        return int(getattr(param, f"{halves}_h")), int(getattr(param, f"{halves}_w"))
    if not values:
        if default is None:
            raise ShapeError(f"{where(layer)}: no {name} given")
        return default, default
    if len(values) == 1:
        return values[0], values[0]
    if len(values) == 2:
        return values[0], values[1]
    raise ShapeError(f"{where(layer)}: {len(values)}-dimensional {name} (only 2-D windows "
                     f"are supported)")


def conv_extent(size: int, extent: int, stride: int, pad: int, transposed: bool) -> int:
    """Caffe's (de)convolution output size along one axis, for a dilated kernel ``extent``."""
    if transposed:
        return stride * (size - 1) + extent - 2 * pad
    return (size + 2 * pad - extent) // stride + 1


def conv_window(layer) -> Window:
    """Kernel, stride, pad and dilation of a Convolution or Deconvolution layer.

    Raises
    ------
    ShapeError
        For a missing kernel size, a non-positive kernel/stride/dilation, a parameter given
        both as ``name`` and as ``name_h``/``name_w``, or more than two values of one.
    """
    p = layer.convolution_param
    window = Window(kernel=_pair(layer, p, "kernel_size", "kernel", None),
                    stride=_pair(layer, p, "stride", "stride", 1),
                    pad=_pair(layer, p, "pad", "pad", 0),
                    dilation=_pair(layer, p, "dilation", None, 1))
    if min(window.kernel + window.stride + window.dilation) < 1:
        raise ShapeError(f"{where(layer)}: kernel, stride and dilation must be positive")
    return window


def convolution(layer, channels: int, h: int, w: int) -> tuple[Window, Pair]:
    """Window and output (h, w) of a Convolution or Deconvolution over ``channels`` x h x w.

    Raises
    ------
    ShapeError
        For what :func:`conv_window` refuses, channels or num_output not divisible by the
        group, or an empty output.
    """
    p = layer.convolution_param
    window = conv_window(layer)
    group, n_out = int(p.group), int(p.num_output)
    if n_out < 1 or group < 1 or channels % group or n_out % group:
        raise ShapeError(f"{where(layer)}: {channels} input channels and num_output {n_out} "
                         f"must be divisible by group {group}")
    transposed = layer.type == "Deconvolution"
    out = (conv_extent(h, window.extent[0], window.stride[0], window.pad[0], transposed),
           conv_extent(w, window.extent[1], window.stride[1], window.pad[1], transposed))
    if min(out) < 1:
        raise ShapeError(f"{where(layer)}: output would be {out[0]} x {out[1]} for a "
                         f"{h} x {w} input")
    return window, out


def pool_extent(size: int, kernel: int, stride: int, pad: int, ceil_mode: bool,
                padded: bool) -> int:
    """Caffe's pooled output size along one axis.

    ``padded``: the layer has padding on either axis; only then does Caffe drop a last window
    that would start at or beyond the image plus the top/left padding.
    """
    span = size + 2 * pad - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if padded and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def pool_output(layer, window: Window, h: int, w: int, ceil_mode: bool = True) -> Pair:
    """Output (h, w) of a MAX/AVE pooling ``window`` over an h x w input.

    Raises
    ------
    ShapeError
        For padding not smaller than the kernel, or an empty output.
    """
    (kh, kw), (sh, sw), (ph, pw) = window.kernel, window.stride, window.pad
    padded = bool(ph or pw)
    if padded and (ph >= kh or pw >= kw):
        raise ShapeError(f"{where(layer)}: pad must be smaller than the kernel")
    out = (pool_extent(h, kh, sh, ph, ceil_mode, padded),
           pool_extent(w, kw, sw, pw, ceil_mode, padded))
    if min(out) < 1:
        raise ShapeError(f"{where(layer)}: output would be {out[0]} x {out[1]} for a "
                         f"{h} x {w} input")
    return out


def window_outside(window: Window, out: Pair, h: int, w: int) -> bool:
    """Whether Caffe's last pooling window starts past an h x w input (possible only without
    padding, with a stride larger than the kernel): Caffe's MAX gives -FLT_MAX there (its
    starting value) and its AVE 0 / 0."""
    (sh, sw), (ph, pw) = window.stride, window.pad
    return (out[0] - 1) * sh - ph >= h or (out[1] - 1) * sw - pw >= w


def pooling(layer, h: int, w: int) -> tuple[Window, Pair]:
    """Window and output (h, w) of a Pooling layer over an h x w input.

    Global pooling is a window the size of the input (output 1 x 1).

    Raises
    ------
    ShapeError
        For a missing, non-positive or doubly given kernel/stride/pad, a kernel size or
        padding or stride with global pooling, or what :func:`pool_output` refuses.
    """
    p = layer.pooling_param
    stride = _pair(layer, p, "stride", "stride", 1)
    pad = _pair(layer, p, "pad", "pad", 0)
    if p.global_pooling:
        if any(p.HasField(f) for f in ("kernel_size", "kernel_h", "kernel_w")):
            raise ShapeError(f"{where(layer)}: global pooling takes no kernel size")
        if pad != (0, 0) or stride != (1, 1):
            raise ShapeError(f"{where(layer)}: global pooling needs pad 0 and stride 1")
        return Window((h, w), stride, pad), (1, 1)
    window = Window(_pair(layer, p, "kernel_size", "kernel", None), stride, pad)
    if min(window.kernel + window.stride) < 1:
        raise ShapeError(f"{where(layer)}: kernel and stride must be positive")
    return window, pool_output(layer, window, h, w, ceil_mode=p.round_mode == _ROUND_CEIL)


def spp_levels(layer, h: int, w: int) -> list[tuple[Window, Pair]]:
    """Window and output (h, w) of each pooling of an SPP layer over an h x w input.

    Caffe's ``SPPLayer::GetPoolingParam``: level i has 2^i bins per axis, a kernel and stride
    of ``ceil(size / bins)``, and a pad of ``(kernel * bins - size + 1) / 2``; each level is
    an ordinary (ceil-rounded) Pooling.
    """
    height = int(layer.spp_param.pyramid_height)
    if height < 1:
        raise ShapeError(f"{where(layer)}: pyramid_height must be at least 1")
    levels = []
    for level in range(height):
        bins = 2 ** level
        kernel = (-(-h // bins), -(-w // bins))
        pad = ((kernel[0] * bins - h + 1) // 2, (kernel[1] * bins - w + 1) // 2)
        window = Window(kernel, kernel, pad)
        levels.append((window, pool_output(layer, window, h, w, ceil_mode=True)))
    return levels
