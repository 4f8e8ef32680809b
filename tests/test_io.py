"""Loading and preprocessing as caffe.io.load_image + thesis-era skimage resize did."""

import cv2
import numpy as np
import pytest

from depth_eval.inputs import images as io
from depth_eval.inputs.ground_truth import load_ground_truth


def test_integer_pixels_scale_by_their_dtype_range():
    assert io.to_unit_float(np.array([0, 255], np.uint8)).tolist() == [0.0, 1.0]
    assert io.to_unit_float(np.array([65535], np.uint16))[0] == 1.0
    assert io.to_unit_float(np.array([0.25], np.float32))[0] == 0.25


def test_grey_is_replicated_and_alpha_dropped():
    grey = np.arange(6, dtype=np.uint8).reshape(2, 3)
    assert io.as_rgb(grey).shape == (2, 3, 3)
    assert (io.as_rgb(grey)[..., 2] == grey).all()
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 3] = 255
    assert io.as_rgb(rgba).shape == (2, 2, 3) and io.as_rgb(rgba).max() == 0
    grey_alpha = np.stack([grey, np.full_like(grey, 255)], axis=2)
    assert (io.as_rgb(grey_alpha) == io.as_rgb(grey)).all()


def test_bilinear_resize_has_no_antialiasing_blur():
    # 4 -> 2 samples at input positions 0.5 and 2.5: plain interpolation between neighbours.
    row = np.array([[0.0, 1.0, 2.0, 3.0]] * 4)
    out = io.resize_bilinear(row, (2, 2))
    np.testing.assert_allclose(out, [[0.5, 2.5], [0.5, 2.5]], atol=1e-6)
    spike = np.zeros((8, 8))
    spike[0, 0] = 1.0  # anti-aliasing would spread this into the first output pixel
    assert io.resize_bilinear(spike, (2, 2))[0, 0] == 0.0


def test_read_image_gives_rgb_order(tmp_path):
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 200  # red
    path = tmp_path / "red_colors.png"
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    loaded = io.read_image(path)
    assert loaded.shape == (4, 5, 3) and loaded[0, 0].tolist() == [200, 0, 0]


def test_color_input_becomes_the_scalar_mean_blob(tmp_path):
    rgb = np.full((6, 8, 3), 127, np.uint8)
    rgb[..., 2] = 255
    path = tmp_path / "a_colors.png"
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    blob = io.to_network_blob(io.load_color_input(path, (3, 4)))
    assert blob.shape == (1, 3, 3, 4) and blob.dtype == np.float32
    np.testing.assert_allclose(blob[0, 0], 0.0, atol=1e-4)
    np.testing.assert_allclose(blob[0, 2], 128.0, atol=1e-4)


def test_thesis_depth_encoding_round_trip(tmp_path):
    depth_m = np.array([[0.0, 1.0, 5.0], [9.96, 10.0, 12.0]])
    # The thesis encoding, pixel = depth / 10 * 255, rounded and saturated.
    encoded = np.round(np.clip(depth_m, 0, 10) / 10 * 255).astype(np.uint8)
    assert encoded.tolist() == [[0, 26, 128], [254, 255, 255]]
    path = tmp_path / "x_depth.png"
    cv2.imwrite(str(path), encoded)
    loaded = load_ground_truth(path).depth_m
    np.testing.assert_allclose(loaded, np.minimum(depth_m, 10), atol=10 / 255 / 2 + 1e-6)


def test_sixteen_bit_ground_truth_keeps_its_precision(tmp_path):
    values = np.array([[1000, 1001], [40000, 65535]], np.uint16)
    path = tmp_path / "y_depth.png"
    cv2.imwrite(str(path), values)
    np.testing.assert_allclose(io.to_unit_float(io.read_image(path)), values / 65535.0, rtol=1e-6)


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n\x00\x00"])
def test_unreadable_files_raise_a_clear_error(tmp_path, content):
    path = tmp_path / "broken_colors.png"
    path.write_bytes(content)
    with pytest.raises(io.ImageReadError, match="broken_colors.png"):
        io.read_image(path)
    with pytest.raises(io.ImageReadError, match="cannot read"):
        io.read_image(tmp_path / "missing.png")
