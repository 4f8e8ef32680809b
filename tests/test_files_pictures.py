"""Pictures, atomic writes and the output folders' manifest."""

import cv2
import numpy as np
import pytest

from depth_eval import writing as files
from depth_eval.pictures import pngs as pictures


def test_depth_visual_is_the_thesis_log_scale_truncated():
    depth = np.array([[1.0, 0.001, 0.5, 2.0], [0.0, np.exp(-1 / (2 * 0.179581)), 0.1, 1e-6]])
    visual = pictures.depth_visual(depth)
    expected = np.trunc(np.clip(2 * 0.179581 * np.log(np.clip(depth, 0.001, 1000)) + 1, 0, 1) * 255)
    assert visual.dtype == np.uint8
    np.testing.assert_array_equal(visual, expected)
    assert visual[0, 0] == 255 and visual[0, 1] == 0 and visual[1, 1] == 0


def test_input_visual_undoes_the_mean_and_swaps_to_bgr():
    blob = np.zeros((1, 3, 2, 2), np.float32)
    blob[0, 0] = 128.0  # red channel at 255
    picture = pictures.input_visual(blob - 0.0)
    assert picture.shape == (2, 2, 3)
    assert picture[0, 0].tolist() == [127, 127, 255]  # B, G, R


def test_png_strategies_store_the_same_pixels():
    image = (np.arange(320 * 420) % 251).astype(np.uint8).reshape(320, 420)
    for strategy in pictures.PNG_STRATEGIES:
        decoded = cv2.imdecode(np.frombuffer(pictures.encode_png(image, strategy), np.uint8),
                               cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(decoded, image)


def test_write_atomic_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "a.png"
    target.write_bytes(b"old")
    files.write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_output_folder_only_replaces_its_own_files(tmp_path):
    (tmp_path / "mine.png").write_bytes(b"user")
    folder = files.OutputFolder(tmp_path)
    assert folder.claim(["mine.png", "new.png"]) == ["mine.png"]
    folder.write("new.png", b"tool")
    with pytest.raises(PermissionError):
        folder.write("mine.png", b"tool")
    again = files.OutputFolder(tmp_path)  # a rerun reads the manifest
    assert again.claim(["new.png"]) == []
    assert (tmp_path / "mine.png").read_bytes() == b"user"
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        files.OutputFolder(tmp_path / "file")
