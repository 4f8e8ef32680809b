"""Ground-truth encodings: round trips with exact values, auto decisions, bad files."""

import cv2
import numpy as np
import png
import pytest

from depth_eval.inputs.gt_encodings import encode_depth_mm_png, read_depth_m


def write_png(path, pixels, bitdepth, **kwargs):
    pixels = np.asarray(pixels)
    height, width = pixels.shape[:2]
    planes = 1 if pixels.ndim == 2 else pixels.shape[2]
    greyscale = planes in (1, 2) and "palette" not in kwargs
    writer = png.Writer(width, height, bitdepth=bitdepth, greyscale=greyscale,
                        alpha=planes in (2, 4), **kwargs)
    with open(path, "wb") as stream:
        writer.write(stream, pixels.reshape(height, width * planes).tolist())
    return path


def write_image(path, pixels):
    assert cv2.imwrite(str(path), pixels)
    return path


MM = np.array([[0, 1, 1001, 65535], [999, 2500, 10000, 4321]], dtype=np.uint16)


def test_mm_png_keeps_every_bit(tmp_path):
    depth, used = read_depth_m(write_png(tmp_path / "d.png", MM, 16))
    assert used == "mm" and depth.dtype == np.float64
    assert depth[0, 2] == 1.001 and depth[1, 0] == 0.999 and depth[0, 3] == 65.535
    assert np.array_equal(depth, MM / 1000.0)
    assert np.array_equal(np.round(depth * 1000).astype(np.uint16), MM)


def test_mm_png_round_trip_through_the_writer(tmp_path):
    depth = MM / 1000.0
    (tmp_path / "raw.png").write_bytes(encode_depth_mm_png(depth))
    back, used = read_depth_m(tmp_path / "raw.png", "mm")
    assert used == "mm" and np.array_equal(back, depth)
    # OpenCV reads the same 16-bit samples.
    assert np.array_equal(cv2.imread(str(tmp_path / "raw.png"), cv2.IMREAD_UNCHANGED), MM)


def test_writer_rounds_and_clips():
    depth = np.array([[0.0004, 0.0005, 1.0014999, 1.0015, -2.0, 70.0, np.nan, np.inf]])
    data = encode_depth_mm_png(depth)
    _, _, rows, info = png.Reader(bytes=data).read()
    assert info["bitdepth"] == 16 and info["greyscale"] and not info["alpha"]
    assert [list(r) for r in rows] == [[0, 1, 1001, 1002, 0, 65535, 0, 65535]]
    assert encode_depth_mm_png(depth[..., np.newaxis]) == data
    with pytest.raises(ValueError, match="2-D"):
        encode_depth_mm_png(np.zeros((2, 3, 2)))


def test_thesis_png(tmp_path):
    pixels = np.array([[0, 1, 51, 255], [128, 200, 17, 254]], dtype=np.uint8)
    depth, used = read_depth_m(write_png(tmp_path / "t.png", pixels, 8))
    assert used == "thesis"
    assert np.array_equal(depth, pixels / 255.0 * 10.0)
    assert depth[0, 2] == 2.0 and depth[0, 3] == 10.0
    assert read_depth_m(tmp_path / "t.png", "thesis")[1] == "thesis"


def test_thesis_low_bit_depth_png_scales_by_its_range(tmp_path):
    depth, used = read_depth_m(write_png(tmp_path / "t4.png", [[0, 15, 5]], 4))
    assert used == "thesis" and np.allclose(depth, [[0.0, 10.0, 10 / 3]])


def test_grey_alpha_and_equal_rgb_are_one_channel(tmp_path):
    la = np.stack([MM, np.full_like(MM, 65535)], axis=2)
    depth, _ = read_depth_m(write_png(tmp_path / "la.png", la, 16))
    assert np.array_equal(depth, MM / 1000.0)
    rgb = np.repeat(MM[:, :, np.newaxis], 3, axis=2)
    depth, _ = read_depth_m(write_png(tmp_path / "rgb.png", rgb, 16))
    assert np.array_equal(depth, MM / 1000.0)


def test_npy_metres(tmp_path):
    values = np.array([[0.0, 1.001, np.nan], [2.5, 9.75, np.inf]], dtype=np.float32)
    np.save(tmp_path / "d.npy", values)
    depth, used = read_depth_m(tmp_path / "d.npy")
    assert used == "npy" and depth.dtype == np.float32
    assert np.array_equal(depth, values, equal_nan=True)
    np.save(tmp_path / "hw1.npy", values.astype(">f8")[:, :, np.newaxis])
    depth, used = read_depth_m(tmp_path / "hw1.npy", "npy")
    assert depth.dtype == np.float64 and depth.dtype.isnative and depth.shape == (2, 3)
    assert np.array_equal(depth, values.astype(np.float64), equal_nan=True)


def test_tiff_encodings(tmp_path):
    depth, used = read_depth_m(write_image(tmp_path / "mm.tif", MM))
    assert used == "mm" and np.array_equal(depth, MM / 1000.0)
    metres = np.array([[0.5, 1.25], [7.0, 0.0]], dtype=np.float32)
    depth, used = read_depth_m(write_image(tmp_path / "m.tiff", metres))
    assert used == "float" and depth.dtype == np.float32 and np.array_equal(depth, metres)
    depth, used = read_depth_m(write_image(tmp_path / "t.tif", np.array([[51]], np.uint8)))
    assert used == "thesis" and depth[0, 0] == 2.0


def test_depth_scale_overrides_the_unit(tmp_path):
    path = write_png(tmp_path / "d.png", MM, 16)
    depth, used = read_depth_m(path, depth_scale=0.0002)  # e.g. 1/5000 m per unit (TUM)
    assert used == "mm" and np.array_equal(depth, MM * 0.0002)
    pixels = np.array([[10, 20]], dtype=np.uint8)
    depth, _ = read_depth_m(write_png(tmp_path / "t.png", pixels, 8), depth_scale=0.1)
    assert np.array_equal(depth, pixels * 0.1)
    np.save(tmp_path / "i.npy", MM)
    depth, used = read_depth_m(tmp_path / "i.npy", depth_scale=0.001)
    assert used == "npy" and np.array_equal(depth, MM * 0.001)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="depth scale"):
            read_depth_m(path, depth_scale=bad)


def test_explicit_encoding_must_match_the_file(tmp_path):
    eight = write_png(tmp_path / "x.png", [[1, 2]], 8)
    with pytest.raises(ValueError, match=r"x\.png: 8-bit ground truth but --gt-encoding mm "
                                         r"expects 16-bit$"):
        read_depth_m(eight, "mm")
    sixteen = write_png(tmp_path / "y.png", MM, 16)
    with pytest.raises(ValueError, match="y.png: 16-bit ground truth but --gt-encoding thesis"):
        read_depth_m(sixteen, "thesis")
    with pytest.raises(ValueError, match="expects floating-point"):
        read_depth_m(sixteen, "float")
    with pytest.raises(ValueError, match="y.png: --gt-encoding npy expects a .npy file"):
        read_depth_m(sixteen, "npy")
    with pytest.raises(ValueError, match="unknown ground-truth encoding"):
        read_depth_m(sixteen, "metres")


def test_bad_npy_files(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((3, 4, 5)))
    with pytest.raises(ValueError, match=r"x\.npy: expected a 2-D depth map, got shape \(3, 4, 5\)"):
        read_depth_m(tmp_path / "x.npy")
    np.save(tmp_path / "i.npy", MM)
    with pytest.raises(ValueError, match="expected float depth in metres, got uint16"):
        read_depth_m(tmp_path / "i.npy")
    np.save(tmp_path / "o.npy", np.array([[None]], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="o.npy: not a readable .npy file"):
        read_depth_m(tmp_path / "o.npy")
    np.save(tmp_path / "b.npy", np.zeros((2, 2), bool))
    with pytest.raises(ValueError, match="numeric"):
        read_depth_m(tmp_path / "b.npy")
    (tmp_path / "fake.npy").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match="fake.npy: not a NumPy .npy file"):
        read_depth_m(tmp_path / "fake.npy")


def test_bad_images(tmp_path):
    with pytest.raises(ValueError, match="missing.png: cannot read file"):
        read_depth_m(tmp_path / "missing.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.png: file is empty"):
        read_depth_m(tmp_path / "empty.png")
    good = write_png(tmp_path / "good.png", MM, 16).read_bytes()
    (tmp_path / "cut.png").write_bytes(good[:60])
    with pytest.raises(ValueError, match="cut.png: not a readable PNG"):
        read_depth_m(tmp_path / "cut.png")
    (tmp_path / "junk.tif").write_bytes(b"II*\x00junk")
    with pytest.raises(ValueError, match="junk.tif: not a readable image"):
        read_depth_m(tmp_path / "junk.tif")
    colour = np.zeros((2, 2, 3), np.uint8)
    colour[0, 0] = (1, 2, 3)
    with pytest.raises(ValueError, match="c.png: colour image"):
        read_depth_m(write_png(tmp_path / "c.png", colour, 8))
    palette = [(0, 0, 0), (255, 255, 255)]
    with pytest.raises(ValueError, match="p.png: palette PNG"):
        read_depth_m(write_png(tmp_path / "p.png", [[0, 1]], 8, palette=palette))
    with pytest.raises(ValueError, match=r"s.tif: int16 ground truth; expected 8-bit"):
        read_depth_m(write_image(tmp_path / "s.tif", np.array([[-1, 2]], np.int16)))


def test_errors_are_one_line(tmp_path):
    (tmp_path / "cut.png").write_bytes(write_png(tmp_path / "g.png", MM, 16).read_bytes()[:70])
    with pytest.raises(ValueError) as caught:
        read_depth_m(tmp_path / "cut.png")
    assert "\n" not in str(caught.value)
