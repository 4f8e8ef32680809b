"""The NYU Depth v2 labeled set as the thesis prepared it (SPEC-nyu.md): arithmetic and reading.

The thesis made its test inputs from ``nyu_depth_v2_labeled.mat`` and ``splits.mat`` with two
scripts: ``convert.py`` (640 x 480 RGB and 16-bit millimetre PNGs) and ``crop.py`` (the centred
420 x 320 window, depth in its 8-bit encoding).  This module states their arithmetic as pure numpy
functions and reads the .mat one image at a time (the real file is 2.8 GB).  h5py is optional: it
is imported by :func:`import_h5py` only when a .mat is opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from depth_eval.errors import UsageError

# The frame of every NYU Depth v2 image (rows, columns).
FRAME_H, FRAME_W = 480, 640
# crop.py's PIL box (left, upper, right, lower): the centred 420 x 320 window, no resizing.
CROP_BOX = (110, 80, 530, 400)
# convert.py: metres x 1000 in float32 (float32 depths times a float32 constant).
MM_PER_M = np.float32(1000.0)
# 16-bit PNG range: convert.py's pypng write fails beyond it.
MM_LIMIT = 65536
# crop.py's six float32 steps (/65535, clip to [0.0039, 1], x 6.5535, x 255, truncate) are
# floor(mm * 51 / 2000) with a floor of 6 (SPEC-nyu.md, verified for every mm in 0 .. 10039).
THESIS8_NUM, THESIS8_DEN, THESIS8_FLOOR = 51, 2000, 6
# From this many millimetres on, crop.py's code passes 255 and its uint8 cast wraps (undefined
# in C); the port saturates at 255 instead.  Filled depths never get there (max 9995 mm).
THESIS8_OVERFLOW_MM = 10040

SPLITS = ("test", "train", "all")
IMAGES_KEY, DEPTHS_KEY, RAW_DEPTHS_KEY = "images", "depths", "rawDepths"
TRAIN_KEY, TEST_KEY = "trainNdxs", "testNdxs"
COLOR_SUFFIX, DEPTH_SUFFIX = "_colors.png", "_depth.png"
# HDF5 chunk cache when reading the .mat: room for the chunks of a few images.
CHUNK_CACHE_BYTES = 64 << 20
INSTALL_HINT = "pip install 'depth_eval[nyu]'"


def _thesis8_table() -> np.ndarray:
    mm = np.arange(MM_LIMIT, dtype=np.int64)
    code = np.maximum(mm * THESIS8_NUM // THESIS8_DEN, THESIS8_FLOOR)
    return np.minimum(code, 255).astype(np.uint8)


# The 8-bit code of every 16-bit millimetre value (a lookup is faster than the arithmetic).
_THESIS8 = _thesis8_table()


# --- arithmetic -----------------------------------------------------------------------------

def frame_rgb(image_cxy: np.ndarray) -> np.ndarray:
    """One ``images[i]`` as h5py reads it (3 x 640 x 480, MATLAB's order) as 480 x 640 x 3 RGB."""
    return image_cxy.transpose(2, 1, 0)


def frame_depth(depth_xy: np.ndarray) -> np.ndarray:
    """One ``depths[i]`` / ``rawDepths[i]`` (640 x 480) as a 480 x 640 map in metres."""
    return depth_xy.T


def crop(frame: np.ndarray) -> np.ndarray:
    """crop.py's window of a 480 x 640 (x C) frame: rows 80 .. 399, columns 110 .. 529."""
    left, upper, right, lower = CROP_BOX
    return frame[upper:lower, left:right]


def depth_mm(depth_m: np.ndarray) -> np.ndarray:
    """convert.py's millimetres: ``int(depth x 1000)``, the product in the depth's own precision.

    A float32 depth (the real file) is multiplied by float32 1000 and truncated toward zero, as
    the thesis' numpy and pypng did; the result is uint16.

    Raises
    ------
    ValueError
        For a value that is not in 0 .. 65.535 m (NaN included): it has no 16-bit millimetre.
    """
    depth_m = np.asarray(depth_m)
    if depth_m.dtype.kind != "f":
        raise ValueError(f"depth stored as {depth_m.dtype}, expected float32 metres")
    product = depth_m * depth_m.dtype.type(MM_PER_M)
    bad = ~((product >= 0) & (product < MM_LIMIT))
    if bad.any():
        y, x = np.argwhere(bad)[0]
        raise ValueError(f"{int(bad.sum())} depth values outside 0 .. 65.535 m (the first "
                         f"{float(depth_m[y, x])!r} m at x={x}, y={y}): no 16-bit millimetres")
    return product.astype(np.uint16)


def thesis8(mm: np.ndarray) -> np.ndarray:
    """crop.py's 8-bit depth code of 16-bit millimetres: ``max(mm * 51 // 2000, 6)``.

    255 is 10 m; everything nearer than 0.275 m is 6.  From 10040 mm on the original wraps
    modulo 256; this saturates at 255 (see :func:`thesis8_overflow`).
    """
    return _THESIS8[np.asarray(mm, dtype=np.uint16)]


def thesis8_overflow(mm: np.ndarray) -> int:
    """How many pixels :func:`thesis8` saturated where the thesis' script would have wrapped."""
    return int(np.count_nonzero(np.asarray(mm) >= THESIS8_OVERFLOW_MM))


def output_names(index: int) -> tuple[str, str]:
    """File names of image ``index`` (0-based over the whole .mat): colours, depth."""
    return f"{index:05d}{COLOR_SUFFIX}", f"{index:05d}{DEPTH_SUFFIX}"


@dataclass(frozen=True)
class PreparedFrame:
    """One image's outputs before PNG encoding.

    ``colors_bgr`` is 8-bit BGR (OpenCV's order: the PNG stores RGB); ``depth`` is 16-bit
    millimetres (full frame) or the 8-bit thesis code (cropped); ``overflow`` counts pixels
    saturated at 255.
    """

    colors_bgr: np.ndarray
    depth: np.ndarray
    overflow: int = 0


def prepare_frame(image_cxy: np.ndarray, depth_xy: np.ndarray, full_frame: bool) -> PreparedFrame:
    """The thesis' outputs of one image as h5py reads it (convert.py, then crop.py unless full frame)."""
    rgb = frame_rgb(image_cxy)
    mm = depth_mm(frame_depth(depth_xy))
    if full_frame:
        return PreparedFrame(np.ascontiguousarray(rgb[:, :, ::-1]), np.ascontiguousarray(mm))
    mm = crop(mm)
    return PreparedFrame(np.ascontiguousarray(crop(rgb)[:, :, ::-1]), thesis8(mm),
                         thesis8_overflow(mm))


# --- splits.mat -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Splits:
    """The official split: 1-based image numbers of the training and the test set."""

    train: frozenset
    test: frozenset


def read_splits(path: Path) -> Splits:
    """``trainNdxs`` and ``testNdxs`` of the official ``splits.mat`` (MATLAB v5, scipy.io).

    Raises
    ------
    UsageError
        A missing or unreadable file, a missing variable, or numbers that are not positive integers.
    """
    import scipy.io  # only prepare-nyu reads .mat files

    path = Path(path)
    try:
        content = scipy.io.loadmat(str(path), variable_names=[TRAIN_KEY, TEST_KEY])
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except NotImplementedError:  # scipy's answer to a v7.3 (HDF5) file
        raise UsageError(f"{path}: a MATLAB v7.3 (HDF5) file, expected the v5 splits.mat with "
                         f"{TEST_KEY} and {TRAIN_KEY} (LABELED_MAT and SPLITS_MAT swapped?)") from None
    except (OSError, ValueError, TypeError, scipy.io.matlab.MatReadError) as error:
        raise UsageError(f"{path}: not a MATLAB splits file ({_one_line(error)})") from None
    sets = {}
    for key in (TEST_KEY, TRAIN_KEY):
        if key not in content:
            raise UsageError(f"{path}: no {key} (expected the official NYU Depth v2 splits.mat "
                             f"with {TEST_KEY} and {TRAIN_KEY})")
        sets[key] = _image_numbers(path, key, content[key])
    return Splits(train=sets[TRAIN_KEY], test=sets[TEST_KEY])


def _image_numbers(path: Path, key: str, values) -> frozenset:
    values = np.asarray(values)
    if values.dtype.kind not in "iuf":
        raise UsageError(f"{path}: {key} is not a vector of image numbers ({values.dtype})")
    flat = values.astype(np.float64).ravel()
    wrong = ~(np.isfinite(flat) & (flat >= 1) & (flat == np.floor(flat)))
    if wrong.any():
        raise UsageError(f"{path}: {key} holds {float(flat[wrong][0]):g}, not a 1-based image number")
    return frozenset(int(v) for v in flat)


def select_indices(count: int, splits: Splits, split: str, splits_path: Path,
                   labeled_path: Path) -> list[int]:
    """0-based indices of the images of ``split``, in file order, as convert.py chose them.

    An image is a training image when its number is in ``trainNdxs`` (tested first), else a test
    image when in ``testNdxs``; an image in neither stops convert.py, and stops this too.

    Raises
    ------
    UsageError
        An image number beyond the .mat's ``count`` images, or an image in neither set.
    """
    for key, numbers in ((TEST_KEY, splits.test), (TRAIN_KEY, splits.train)):
        beyond = sorted(n for n in numbers if n > count)
        if beyond:
            raise UsageError(f"{splits_path}: {key} has image number {beyond[0]}, but "
                             f"{labeled_path} holds {count} images")
    neither = [i for i in range(count) if i + 1 not in splits.train and i + 1 not in splits.test]
    if neither:
        raise UsageError(f"{splits_path}: image {neither[0]} (number {neither[0] + 1}) of "
                         f"{labeled_path} is in neither {TRAIN_KEY} nor {TEST_KEY}"
                         + (f" ({len(neither) - 1} more)" if len(neither) > 1 else ""))
    if split == "all":
        return list(range(count))
    if split == "train":
        return [i for i in range(count) if i + 1 in splits.train]
    return [i for i in range(count) if i + 1 not in splits.train]


# --- the labeled .mat -----------------------------------------------------------------------

def import_h5py():
    """h5py, or a UsageError saying how to install it (it is an optional dependency)."""
    try:
        import h5py  # an optional dependency, the nyu extra
    except ImportError:
        raise UsageError(f"reading the NYU Depth v2 .mat needs h5py: {INSTALL_HINT}") from None
    return h5py


class LabeledMat:
    """``nyu_depth_v2_labeled.mat`` opened for reading one image at a time.

    Checks the layout on opening: ``images`` uint8 (N, 3, 640, 480) and ``depths`` (or
    ``rawDepths``) float (N, 640, 480), as h5py sees MATLAB's column-major arrays.

    Raises
    ------
    UsageError
        A missing or non-HDF5 file, a missing dataset, or shapes that disagree.
    """

    def __init__(self, path: Path, raw_depth: bool = False):
        h5py = import_h5py()
        self.path = Path(path)
        self.depth_key = RAW_DEPTHS_KEY if raw_depth else DEPTHS_KEY
        if not self.path.is_file():
            raise UsageError(f"{self.path}: no such file")
        try:
            self._file = h5py.File(self.path, "r", rdcc_nbytes=CHUNK_CACHE_BYTES)
        except OSError as error:
            raise UsageError(f"{self.path}: not a MATLAB v7.3 (HDF5) file such as "
                             f"nyu_depth_v2_labeled.mat ({_one_line(error)})") from None
        try:
            self.images = self._dataset(IMAGES_KEY, np.uint8, (3, FRAME_W, FRAME_H), "u")
            self.depths = self._dataset(self.depth_key, np.float32, (FRAME_W, FRAME_H), "f")
            if self.depths.shape[0] != self.images.shape[0]:
                raise UsageError(f"{self.path}: {self.images.shape[0]} {IMAGES_KEY} but "
                                 f"{self.depths.shape[0]} {self.depth_key}")
        except BaseException:
            self._file.close()
            raise

    def _dataset(self, key: str, dtype, frame_shape: tuple, kind: str):
        h5py = import_h5py()
        item = self._file.get(key)
        if not isinstance(item, h5py.Dataset):
            raise UsageError(f"{self.path}: no {key} dataset (expected nyu_depth_v2_labeled.mat: "
                             f"{IMAGES_KEY}, {DEPTHS_KEY}, {RAW_DEPTHS_KEY})")
        expected = "N x " + " x ".join(map(str, frame_shape))
        if item.ndim != len(frame_shape) + 1 or tuple(item.shape[1:]) != frame_shape:
            raise UsageError(f"{self.path}: {key} is {' x '.join(map(str, item.shape))}, "
                             f"expected {expected} {np.dtype(dtype).name}")
        if item.dtype.kind != kind or (kind == "u" and item.dtype != dtype):
            raise UsageError(f"{self.path}: {key} is {item.dtype}, expected {np.dtype(dtype).name}")
        return item

    @property
    def count(self) -> int:
        """Images in the file (1449 in the real one)."""
        return int(self.images.shape[0])

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Image ``index`` as stored: colours 3 x 640 x 480 uint8, depth 640 x 480 metres."""
        return self.images[index], self.depths[index]

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "LabeledMat":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
