"""Reading a ground truth the way the thesis did (8-bit, value / 255 * 10 m) or in another
encoding (:mod:`depth_eval.inputs.gt_encodings`), and bringing it to the thesis' 320 x 420 grid.

A ground truth is kept in metres at its own size (the standard metrics are computed there, as
BTS / monodepth2 do) and resized to 320 x 420 for the thesis metrics and pictures.  Metres are
never rounded through ``depth / 10`` in float32: 6400 mm must stay 6.4 m, not 6.3999996, or it
would fall inside ``--max-depth 6.4``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from depth_eval.inputs import gt_encodings, images
from depth_eval.errors import ImageError
from depth_eval.choices import DEFAULT_GT_ENCODING
from depth_eval.thesis import DEPTH_RANGE_M, GT_SHAPE

# caffe.io.load_image + skimage's resize to H x W x 1 sample channel coordinate 1.0 of an RGB
# ground truth: its G channel (SPEC.md section 3, SPEC-grad.md section 3).
THESIS_GT_CHANNEL = 1


@dataclass(frozen=True)
class GroundTruthSettings:
    """How ground-truth files store depth (``--gt-encoding``, ``--depth-scale``)."""

    encoding: str = DEFAULT_GT_ENCODING
    depth_scale: float | None = None


@dataclass(frozen=True)
class GroundTruth:
    """One ground truth as read.

    Attributes
    ----------
    depth_m : ndarray
        H x W depth in metres at the file's own size.  Thesis encoding: float32
        ``(value / 255) * 10``, the original's arithmetic; ``--depth-scale`` on an 8-bit file:
        float64 ``value * scale``; other encodings: :func:`gt_encodings.read_depth_m`'s metres
        as they are (float64 for integer samples, the stored type for float ones).  Missing
        depth stays as stored (0, NaN, ...).
    encoding : str
        "thesis", "mm", "npy" or "float".
    unit : ndarray or None
        The thesis' float32 ``value / 255`` map (depth / 10) when read by the thesis' own path
        without ``--depth-scale``; the thesis grid is resized from it, as the original did.
    """

    depth_m: np.ndarray
    encoding: str
    unit: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.depth_m.shape

    def on_thesis_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """The ground truth at 320 x 420: ``(depth / 10, metres)``.

        The thesis encoding is resized bilinearly as the original did (metres = the resized
        float32 unit map * 10, exactly the original's numbers); other encodings with nearest
        neighbour, so pixels without depth do not blend into their neighbours.  The depth / 10
        map is what the pictures and the MVN-fitted picture are drawn from (NaN drawn as 0).
        """
        if self.unit is not None:
            unit = images.resize_bilinear(self.unit, GT_SHAPE)
            return unit, unit * DEPTH_RANGE_M
        if self.encoding == "thesis":  # --depth-scale on the thesis' 8-bit pictures
            depth_m = images.resize_bilinear(self.depth_m, GT_SHAPE)
        elif self.depth_m.shape == GT_SHAPE:
            depth_m = self.depth_m
        else:
            depth_m = cv2.resize(self.depth_m, GT_SHAPE[::-1], interpolation=cv2.INTER_NEAREST)
        unit = (depth_m / DEPTH_RANGE_M).astype(np.float32)
        return np.where(np.isnan(unit), np.float32(0.0), unit), depth_m  # NaN: drawn as no depth


def load_ground_truth(path: Path, settings: GroundTruthSettings = GroundTruthSettings()
                      ) -> GroundTruth:
    """Read a ground truth (see :class:`GroundTruth`).

    8-bit images take the thesis' own path (caffe.io.load_image: value / 255 of the G channel),
    so the default results stay exactly the original's; a colour-mapped picture (channels that
    differ) is refused.  Other encodings go through :mod:`depth_eval.inputs.gt_encodings`.

    Raises
    ------
    ImageError
        One line naming the file: unreadable, wrong sample type, colour-mapped picture...
    """
    thesis = settings.encoding == "thesis" or (
        settings.encoding == "auto" and path.suffix.lower() != ".npy")
    if thesis:
        raw = images.read_image(path)
        if raw.dtype == np.uint8 or settings.encoding == "thesis":
            if raw.dtype != np.uint8:
                raise ImageError(f"{path}: {raw.dtype} ground truth but --gt-encoding thesis "
                                 "expects 8-bit")
            grey = thesis_channel(raw, path)
            if settings.depth_scale is None:
                unit = images.to_unit_float(grey)
                return GroundTruth(unit * DEPTH_RANGE_M, "thesis", unit)
            return GroundTruth(grey.astype(np.float64) * settings.depth_scale, "thesis")
    try:
        depth_m, used = gt_encodings.read_depth_m(path, settings.encoding, settings.depth_scale)
    except ValueError as error:
        raise ImageError(str(error)) from None
    return GroundTruth(depth_m, used)


def thesis_channel(raw: np.ndarray, path: Path) -> np.ndarray:
    """The one channel the original scores: grey as it is, else channel 1 (G) of an image whose
    first three channels are equal (a grey picture stored as RGB).

    Raises
    ------
    ImageError
        If the colour channels differ: a colour-mapped picture, not a depth map.
    """
    if raw.ndim == 2:
        return raw
    if raw.shape[2] < 3:  # grey + alpha
        return raw[:, :, 0]
    colour = raw[:, :, :3]
    if not (colour == colour[:, :, :1]).all():
        raise ImageError(f"{path}: colour-mapped picture, not a depth map (its colour channels "
                         "differ; a depth ground truth is one grey channel)")
    return raw[:, :, THESIS_GT_CHANNEL]


def thesis_pixels(gt_m: np.ndarray, encoding: str) -> np.ndarray | None:
    """The pixels of a 320 x 420 ground truth the thesis metrics score; None for all of them.

    The thesis' 8-bit encoding scores every pixel, as the original (a 0 is floored at 1/255);
    a frame without any depth (all 0) has nothing to score (an all-False mask).  Other
    encodings score the pixels with depth: finite and positive (0, NaN, inf and negative
    values mark missing depth).
    """
    if encoding == "thesis":
        return None if np.any(gt_m > 0) else np.zeros(np.shape(gt_m), dtype=bool)
    with np.errstate(invalid="ignore"):
        keep = np.isfinite(gt_m) & (gt_m > 0)
    return None if keep.all() else keep
