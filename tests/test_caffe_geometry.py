"""Caffe's window geometry (depth_eval.caffe.geometry) against sizes worked out by hand.

Each expected size is computed in the comment beside it with Caffe 1.0's formulas:
convolution ``(in + 2 pad - (dilation (k - 1) + 1)) // stride + 1``, deconvolution
``stride (in - 1) + dilation (k - 1) + 1 - 2 pad``, pooling ``ceil((in + 2 pad - k) / stride)
+ 1``, less one when the layer has padding and the last window would start at or beyond
``in + pad``.
"""

from __future__ import annotations

import pytest
from google.protobuf import text_format

from depth_eval.caffe import geometry
from depth_eval.caffe.proto import LayerParameter, read_prototxt
from depth_eval.caffe.shapes import infer_shapes, layer_weight_shapes
from depth_eval.errors import ShapeError


def layer(kind: str, params: str):
    """A parsed layer named 'l' of type ``kind``; ``params`` is its parameter message."""
    field = {"Convolution": "convolution_param", "Deconvolution": "convolution_param",
             "Pooling": "pooling_param"}[kind]
    return text_format.Parse(f'name: "l" type: "{kind}" {field} {{ {params} }}',
                             LayerParameter())


def conv(params: str, c: int, h: int, w: int, kind: str = "Convolution"):
    return geometry.convolution(layer(kind, f"num_output: 4 {params}"), c, h, w)


def pool(params: str, h: int, w: int):
    return geometry.pooling(layer("Pooling", params), h, w)


# ---------------------------------------------------------------------------------------------
# Sizes

def test_thesis_conv1_and_pool1():
    # conv1 11x11 stride 4 on 218 x 298: (218 - 11) // 4 + 1 = 52, (298 - 11) // 4 + 1 = 72.
    window, out = conv("kernel_size: 11 stride: 4", 3, 218, 298)
    assert out == (52, 72)
    assert window == geometry.Window(kernel=(11, 11), stride=(4, 4), pad=(0, 0))
    # pool1 3x3 stride 2 on 52 x 72: ceil(49 / 2) + 1 = 26 and ceil(69 / 2) + 1 = 36 (floor
    # rounding would give 25 x 35).
    assert pool("pool: MAX kernel_size: 3 stride: 2", 52, 72)[1] == (26, 36)
    assert pool("pool: MAX kernel_size: 3 stride: 2 round_mode: FLOOR", 52, 72)[1] == (25, 35)


def test_pooling_drops_a_last_window_starting_in_the_padding():
    # k 2, stride 2, pad 1 on 5: ceil((5 + 2 - 2) / 2) + 1 = 4 windows, starting at rows
    # -1, 1, 3 and 5 of the image; row 5 is bottom padding ((4 - 1) * 2 >= 5 + 1), so Caffe
    # keeps 3.  Without the rule (no padding on either axis) all 4 would stay.
    assert pool("pool: AVE kernel_size: 2 stride: 2 pad: 1", 5, 5)[1] == (3, 3)
    assert geometry.pool_extent(5, 2, 2, 1, ceil_mode=True, padded=True) == 3
    assert geometry.pool_extent(5, 2, 2, 1, ceil_mode=True, padded=False) == 4
    # k 3, stride 2, pad 1 on 6: ceil(5 / 2) + 1 = 4; (4 - 1) * 2 = 6 < 6 + 1: all kept.
    assert pool("pool: AVE kernel_size: 3 stride: 2 pad: 1", 6, 6)[1] == (4, 4)


def test_pooling_clip_applies_to_an_unpadded_axis_of_a_padded_layer():
    # Caffe tests "pad_h || pad_w", then each axis.  W: k 1, stride 3, no pad, in 5:
    # ceil(4 / 3) + 1 = 3, and (3 - 1) * 3 = 6 >= 5 + 0, so 2.  H: k 3, stride 2, pad 1, in 7:
    # ceil(6 / 2) + 1 = 4; (4 - 1) * 2 = 6 < 8, so 4.
    params = "pool: MAX kernel_h: 3 kernel_w: 1 stride_h: 2 stride_w: 3 pad_h: 1 pad_w: 0"
    assert pool(params, 7, 5)[1] == (4, 2)
    # Without any padding nothing is clipped: W stays 3.
    assert pool("pool: MAX kernel_h: 3 kernel_w: 1 stride_h: 2 stride_w: 3", 7, 5)[1] == (3, 3)


def test_asymmetric_pooling_window():
    # H: k 3, s 2, p 1 on 7: ceil(6 / 2) + 1 = 4, 6 < 8 kept.  W: k 2, s 3, p 1 on 10:
    # ceil(10 / 3) + 1 = 5, (5 - 1) * 3 = 12 >= 11 clipped to 4.
    window, out = pool("pool: AVE kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 3 pad_h: 1 "
                       "pad_w: 1", 7, 10)
    assert window == geometry.Window(kernel=(3, 2), stride=(2, 3), pad=(1, 1))
    assert out == (4, 4)


def test_global_pooling_is_a_window_the_size_of_the_input():
    window, out = pool("pool: AVE global_pooling: true", 5, 7)
    assert window == geometry.Window(kernel=(5, 7), stride=(1, 1), pad=(0, 0))
    assert out == (1, 1)


def test_asymmetric_dilated_convolution():
    # kernel 3 x 2 dilated by 2 spans 5 x 3.  H: (9 + 2 - 5) // 2 + 1 = 4;
    # W: (10 + 4 - 3) // 1 + 1 = 12.
    window, out = conv("kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 2 "
                       "dilation: 2 group: 2", 4, 9, 10)
    assert window.kernel == (3, 2) and window.dilation == (2, 2) and window.extent == (5, 3)
    assert out == (4, 12)
    # Per-axis values: kernel_size 3 then 5, dilation 1 then 2 span 3 x 9 on 10 x 12:
    # (10 - 3) // 1 + 1 = 8, (12 - 9) // 1 + 1 = 4.
    window, out = conv("kernel_size: 3 kernel_size: 5 dilation: 1 dilation: 2", 1, 10, 12)
    assert window.extent == (3, 9) and out == (8, 4)


def test_deconvolution_sizes():
    # The refining network's upsampling: k 2, stride 2 on 27 x 37: 2 * 26 + 2 = 54,
    # 2 * 36 + 2 = 74.
    assert conv("kernel_size: 2 stride: 2", 3, 27, 37, kind="Deconvolution")[1] == (54, 74)
    # k 4, stride 2, pad 1: 2 * (27 - 1) + 4 - 2 = 54.
    assert conv("kernel_size: 4 stride: 2 pad: 1", 3, 27, 27, kind="Deconvolution")[1] == \
        (54, 54)
    # Dilation 2 widens k 2 to 3: 2 * (3 - 1) + 3 - 2 = 5 and 2 * (4 - 1) + 3 - 2 = 7.
    assert conv("kernel_size: 2 stride: 2 dilation: 2 pad: 1", 2, 3, 4,
                kind="Deconvolution")[1] == (5, 7)
    assert geometry.conv_extent(3, 3, 2, 1, transposed=True) == 5
    assert geometry.conv_extent(3, 3, 2, 1, transposed=False) == 2  # (3 + 2 - 3) // 2 + 1


def test_weight_shapes_follow_the_window():
    convolution = layer("Convolution", "num_output: 6 kernel_h: 3 kernel_w: 2 group: 2")
    assert layer_weight_shapes(convolution, (1, 4, 9, 10)) == [(6, 2, 3, 2), (6,)]
    deconvolution = layer("Deconvolution", "num_output: 4 kernel_size: 4 group: 2 "
                                           "bias_term: false")
    assert layer_weight_shapes(deconvolution, (1, 6, 5, 5)) == [(6, 2, 4, 4)]


def test_shape_inference_uses_the_same_rules(tmp_path):
    prototxt = tmp_path / "net.prototxt"
    prototxt.write_text(
        'layer { name: "data" type: "Input" top: "X" '
        'input_param { shape { dim: 1 dim: 2 dim: 7 dim: 5 } } }\n'
        'layer { name: "pool" type: "Pooling" bottom: "X" top: "P" pooling_param { pool: MAX '
        'kernel_h: 3 kernel_w: 1 stride_h: 2 stride_w: 3 pad_h: 1 pad_w: 0 } }\n'
        'layer { name: "up" type: "Deconvolution" bottom: "P" top: "U" '
        'convolution_param { num_output: 1 kernel_size: 2 stride: 2 dilation: 2 pad: 1 } }\n')
    shapes = infer_shapes(read_prototxt(prototxt))
    # P: 4 x 2 (see above); U: 2 * 3 + 3 - 2 = 7, 2 * 1 + 3 - 2 = 3.
    assert shapes["P"] == (1, 2, 4, 2) and shapes["U"] == (1, 1, 7, 3)


# ---------------------------------------------------------------------------------------------
# Invalid parameters

@pytest.mark.parametrize("kind,params,message", [
    ("Convolution", "", "no kernel_size given"),
    ("Convolution", "kernel_size: 3 kernel_h: 3 kernel_w: 3",
     "kernel_size and kernel_h/kernel_w are exclusive"),
    ("Convolution", "kernel_size: 3 stride: 2 stride_h: 2 stride_w: 2",
     "stride and stride_h/stride_w are exclusive"),
    ("Convolution", "kernel_size: 3 pad: 1 pad_h: 1", "pad and pad_h/pad_w are exclusive"),
    ("Convolution", "kernel_size: 3 stride: 0", "kernel, stride and dilation must be positive"),
    ("Convolution", "kernel_size: 3 dilation: 0", "kernel, stride and dilation must be positive"),
    ("Convolution", "kernel_h: 3", "kernel, stride and dilation must be positive"),
    ("Convolution", "kernel_size: 3 kernel_size: 3 kernel_size: 3",
     r"3-dimensional kernel_size \(only 2-D windows are supported\)"),
    ("Convolution", "kernel_size: 1 group: 2",
     "3 input channels and num_output 4 must be divisible by group 2"),
    ("Convolution", "kernel_size: 1 group: 0",
     "3 input channels and num_output 4 must be divisible by group 0"),
    ("Convolution", "kernel_size: 7", "output would be -1 x 0 for a 5 x 6 input"),
    ("Deconvolution", "kernel_size: 1 pad: 3", "output would be -1 x 0 for a 5 x 6 input"),
    ("Pooling", "pool: MAX", "no kernel_size given"),
    ("Pooling", "kernel_size: 2 kernel_w: 2", "kernel_size and kernel_h/kernel_w are exclusive"),
    ("Pooling", "kernel_size: 2 stride: 0", "kernel and stride must be positive"),
    ("Pooling", "kernel_size: 2 pad: 2", "pad must be smaller than the kernel"),
    ("Pooling", "kernel_h: 3 kernel_w: 2 pad_h: 1 pad_w: 2",
     "pad must be smaller than the kernel"),
    ("Pooling", "kernel_size: 7", "output would be -1 x 0 for a 5 x 6 input"),
    ("Pooling", "global_pooling: true kernel_size: 2", "global pooling takes no kernel size"),
    ("Pooling", "global_pooling: true stride: 2", "global pooling needs pad 0 and stride 1"),
    ("Pooling", "global_pooling: true pad: 1", "global pooling needs pad 0 and stride 1"),
])
def test_invalid_parameters_name_the_layer(kind, params, message):
    if kind == "Pooling":
        call = lambda: geometry.pooling(layer(kind, params), 5, 6)  # noqa: E731
    else:
        call = lambda: geometry.convolution(  # noqa: E731
            layer(kind, f"num_output: 4 {params}"), 3, 5, 6)
    with pytest.raises(ShapeError, match=f"^layer 'l' \\({kind}\\): {message}$"):
        call()


def test_axis():
    convolution = layer("Convolution", "kernel_size: 1")
    assert geometry.canonical_axis(convolution, -1, 4) == 3
    assert geometry.canonical_axis(convolution, 1, 4) == 1
    with pytest.raises(ShapeError, match=r"^layer 'l' \(Convolution\): axis 4 out of range for "
                                         r"a 4-dimensional blob$"):
        geometry.canonical_axis(convolution, 4, 4)
    with pytest.raises(ShapeError, match="axis -5 out of range"):
        geometry.canonical_axis(convolution, -5, 4)


def test_shape_errors_are_snapshot_errors_and_value_errors():
    # The run skips the snapshot (SnapshotError) and older callers catch ValueError.
    from depth_eval.errors import SnapshotError

    with pytest.raises(SnapshotError):
        pool("kernel_size: 2 pad: 2", 5, 5)
    with pytest.raises(ValueError):
        pool("kernel_size: 2 pad: 2", 5, 5)
