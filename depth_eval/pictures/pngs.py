"""The pictures the thesis evaluation wrote (pure functions from arrays to 8-bit images and PNG bytes)."""

from __future__ import annotations

import io as _io

import cv2
import numpy as np

from depth_eval.thesis import INPUT_MEAN, LOG_ENCODING_SLOPE

# test_depth.py wrote its PNGs with OpenCV's compression level 8.
PNG_COMPRESSION = 8
# How the PNG bytes are made (the pixels are the same either way): "default" is the original's
# (zlib default strategy, libpng's adaptive filters: byte-identical files, ~100 ms for a smooth
# depth map); "rle" is zlib run-length with the Paeth filter on every row (files within 2% of
# the size, 30-60x faster: 1.7 ms for a 420 x 320 depth map, measured).
PNG_STRATEGIES = {
    "default": [cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_DEFAULT],
    "rle": [cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
            cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_PAETH],
}
# Depth range (in [0, 1] = depth / 10 units) clipped before the log visualisation.
VISUAL_DEPTH_MIN, VISUAL_DEPTH_MAX = 0.001, 1000.0


def depth_visual(depth_unit: np.ndarray) -> np.ndarray:
    """The thesis' log visualisation as 8-bit grey: ``trunc(clip(2 * 0.179581 ln d + 1, 0, 1) * 255)``.

    ``depth_unit`` is depth / 10 (the network's and the ground truth's units).
    """
    clipped = np.clip(depth_unit, VISUAL_DEPTH_MIN, VISUAL_DEPTH_MAX)
    visual = np.clip(2.0 * LOG_ENCODING_SLOPE * np.log(clipped) + 1.0, 0.0, 1.0)
    return (visual * 255.0).astype(np.uint8)


def input_visual(blob: np.ndarray) -> np.ndarray:
    """The network input (1 x 3 x H x W, ``x * 255 - 127``) back to an 8-bit BGR picture."""
    rgb = (blob[0].transpose(1, 2, 0) + INPUT_MEAN) / 255.0
    return cv2.cvtColor((rgb * 255.0).astype(np.uint8), cv2.COLOR_RGB2BGR)


def encode_png(image: np.ndarray, strategy: str = "rle") -> bytes:
    """PNG bytes of an 8-bit (or 16-bit) grey or BGR image at the thesis' compression level.

    ``strategy='default'`` reproduces the original's files byte for byte; ``'rle'`` stores the
    same pixels faster.
    """
    ok, data = cv2.imencode(".png", image,
                            [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION, *PNG_STRATEGIES[strategy]])
    if not ok:
        raise OSError("PNG encoding failed")
    return data.tobytes()


def encode_npy(array: np.ndarray) -> bytes:
    """``.npy`` bytes of an array (for atomic writing)."""
    buffer = _io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()
