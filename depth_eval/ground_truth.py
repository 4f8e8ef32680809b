"""Reading a ground truth the way the thesis did (8-bit, value / 255 * 10 m) or in another
encoding (:mod:`depth_eval.gt_encoding`), and resizing it to the thesis' 320 x 420 grid."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import gt_encoding, io, metrics
from .errors import ImageError


@dataclass(frozen=True)
class GroundTruthSettings:
    """How ground-truth files store depth (``--gt-encoding``, ``--depth-scale``)."""

    encoding: str = "auto"
    depth_scale: float | None = None


def load_ground_truth(path: Path, settings: GroundTruthSettings = GroundTruthSettings()
                      ) -> tuple[np.ndarray, str]:
    """A ground truth at its stored size in depth / 10 units, and the encoding it was read as.

    8-bit images take the thesis' own path (caffe.io.load_image: grey, value / 255), so the
    default results stay exactly the original's; other encodings go through gt_encoding.
    """
    thesis = settings.encoding == "thesis" or (
        settings.encoding == "auto" and path.suffix.lower() != ".npy")
    if thesis:
        raw = io.read_image(path)
        if raw.dtype == np.uint8 or settings.encoding == "thesis":
            if raw.dtype != np.uint8:
                raise ImageError(f"{path}: {raw.dtype} ground truth but --gt-encoding thesis "
                                 "expects 8-bit")
            if settings.depth_scale is None:
                return io.as_gray(io.to_unit_float(raw)), "thesis"
            depth_m = io.as_gray(raw.astype(np.float64)) * settings.depth_scale
            return (depth_m / metrics.DEPTH_RANGE_M).astype(np.float32), "thesis"
    try:
        depth_m, used = gt_encoding.read_depth_m(path, settings.encoding, settings.depth_scale)
    except ValueError as error:
        raise ImageError(str(error)) from None
    return (depth_m / metrics.DEPTH_RANGE_M).astype(np.float32), used


def resize_ground_truth(ground_truth: np.ndarray, encoding: str) -> np.ndarray:
    """To 320 x 420: bilinear for the thesis encoding (as the original); nearest otherwise, so
    pixels without depth (0) do not blend into their neighbours."""
    if encoding == "thesis" or ground_truth.shape == io.GT_SHAPE:
        return io.resize_bilinear(ground_truth, io.GT_SHAPE)
    return cv2.resize(ground_truth, io.GT_SHAPE[::-1], interpolation=cv2.INTER_NEAREST)
