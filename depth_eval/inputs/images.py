"""Reading colour inputs and ground-truth depth the way the thesis evaluation did.

The original used Caffe's ``caffe.io.load_image`` (scale to [0, 1] by the dtype's range, grey to
three channels, alpha dropped, RGB order) and ``skimage.transform.resize`` with the thesis-era
defaults (bilinear, constant mode, no anti-aliasing).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from depth_eval.inputs import limits
from depth_eval.inputs.conventions import THESIS_INPUT, InputConvention
from depth_eval.errors import ImageError, ImageReadError



def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as stored: H x W or H x W x C, channels in RGB(A) order.

    Parameters
    ----------
    path : str or Path
        Any format OpenCV decodes (PNG, JPEG, PPM/PGM, TIFF, BMP, WebP...).

    Returns
    -------
    ndarray
        uint8 or uint16 (or float32 for floating-point TIFF) pixels; no scaling applied.

    Raises
    ------
    ImageReadError
        If the file is missing, not a regular file, empty, truncated, not an image, or has
        more pixels than ``--max-image-pixels`` (:mod:`depth_eval.inputs.limits`).
    """
    path = Path(path)
    # cv2.imread cannot take non-ASCII paths on every platform; decode from memory instead.
    data = limits.read_image_bytes(path)
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise ImageReadError(f"{path}: not a readable image (corrupt, truncated or unknown format)")
    if image.ndim == 3:
        code = cv2.COLOR_BGRA2RGBA if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
        image = cv2.cvtColor(image, code)
    return image


# EXIF tag of the orientation (EXIF 2.3, tag 0x0112): 1 is upright; 5-8 swap width and height.
EXIF_ORIENTATION_TAG = 0x0112


def exif_orientation(path: str | Path) -> int | None:
    """The EXIF orientation a file carries (2-8), None when it has none or it is upright.

    The pixels are read as stored, unrotated, as caffe.io did; this only explains a picture
    that a viewer shows turned.
    """
    from PIL import Image  # Pillow only for the files that need it: 0.05 s at start-up

    try:
        with limits.open_regular(Path(path)) as stream, Image.open(stream) as image:
            orientation = image.getexif().get(EXIF_ORIENTATION_TAG)
    except Exception:  # no EXIF, or a format Pillow cannot open: nothing to say
        return None
    return orientation if isinstance(orientation, int) and 2 <= orientation <= 8 else None


def exif_hint(*paths: str | Path) -> str:
    """``"; X carries EXIF orientation 6 ..."`` for the first of ``paths`` that has one, else ""."""
    for path in paths:
        orientation = exif_orientation(path)
        if orientation is not None:
            return (f"; {Path(path).name} carries EXIF orientation {orientation}, which is not "
                    "applied (pixels are read as stored, as the original did): rotate the file "
                    "itself")
    return ""


def to_unit_float(image: np.ndarray) -> np.ndarray:
    """Scale integer pixels to float32 in [0, 1] by the dtype's range (skimage.img_as_float)."""
    if np.issubdtype(image.dtype, np.integer):
        return image.astype(np.float32) / np.float32(np.iinfo(image.dtype).max)
    return image.astype(np.float32)


def color_to_unit(image: np.ndarray, path: str | Path) -> np.ndarray:
    """A colour input as float32 in [0, 1] (:func:`to_unit_float`), refusing a floating-point
    image whose samples are not all in [0, 1].

    caffe.io.load_image keeps float samples as they are, so a float TIFF holding 0-255 would
    reach the network 255 times too bright (RMSE 41 m instead of 1 m, measured).  Such a file
    is refused rather than rescaled: 0-255, 0-65535 or HDR radiance cannot be told apart.

    Raises
    ------
    ImageError
        One line naming the file and the range found.
    """
    unit = to_unit_float(image)
    if image.dtype.kind == "f":
        finite = np.isfinite(unit)
        if not finite.all():
            raise ImageError(f"{path}: floating-point colour input with NaN or inf samples; "
                             "expected values in [0, 1]")
        low, high = float(unit.min()), float(unit.max())
        if low < 0.0 or high > 1.0:
            raise ImageError(f"{path}: floating-point colour input with values in [{low:g}, "
                             f"{high:g}]; expected [0, 1] (an 8-bit picture stored as float? "
                             "save it as 8-bit, or divide it by 255)")
    return unit


def as_rgb(image: np.ndarray) -> np.ndarray:
    """Grey to three channels, alpha dropped (caffe.io.load_image with color=True)."""
    if image.ndim == 2:
        return np.repeat(image[:, :, np.newaxis], 3, axis=2)
    if image.shape[2] in (1, 2):  # grey, or grey + alpha
        return np.repeat(image[:, :, :1], 3, axis=2)
    return image[:, :, :3]


def resize_bilinear(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize to ``shape`` (H, W) exactly as the thesis-era skimage did.

    ``order=1, mode='constant', anti_aliasing=False``: today's skimage default would blur before
    downsampling, which moves the thesis metrics by up to 4e-2.
    """
    if image.shape[:2] == tuple(shape):
        return image
    if shape[0] <= image.shape[0] and shape[1] <= image.shape[1]:
        # Shrinking, every sample lies inside the image, where OpenCV's bilinear resize uses the
        # same pixel-centre mapping and weights (equal within float32 rounding, 25x faster).
        # Enlarging differs at the border (skimage blends with the constant 0 outside).
        return cv2.resize(image.astype(np.float32, copy=False), (shape[1], shape[0]),
                          interpolation=cv2.INTER_LINEAR)
    from skimage.transform import resize  # only here: importing it costs 0.2 s at start-up

    out_shape = tuple(shape) + image.shape[2:]
    return resize(image, out_shape, order=1, mode="constant", anti_aliasing=False,
                  preserve_range=True).astype(np.float32)


def load_color_input(path: str | Path, input_hw: tuple[int, int]) -> np.ndarray:
    """Load a colour input, resized to the network's H x W, as float32 RGB in [0, 1]."""
    return resize_bilinear(as_rgb(color_to_unit(read_image(path), path)), input_hw)


def to_network_blob(rgb_unit: np.ndarray,
                    convention: InputConvention = THESIS_INPUT) -> np.ndarray:
    """H x W x 3 RGB in [0, 1] -> 1 x 3 x H x W float32 blob by the network's input
    convention (:class:`~depth_eval.inputs.conventions.InputConvention`); by default the
    thesis' ``x * 255 - 127``."""
    return convention.blob(rgb_unit)
