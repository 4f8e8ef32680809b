"""Ground-truth depth files in metres: the thesis' 8-bit PNGs, NYU millimetre PNGs, float maps.

Encodings (``read_depth_m(encoding=...)``):

``thesis``
    8-bit grey image, ``depth_m = pixel / 255 * 10`` (the thesis' ``pixel = depth / 10 * 255``).
``mm``
    16-bit grey image in millimetres, ``depth_m = pixel / 1000`` (the NYU Depth v2 toolbox's
    PNGs; 0 = no depth).
``npy``
    NumPy ``.npy`` file of float depth in metres, ``H x W`` or ``H x W x 1``.
``float``
    Floating-point image (32-bit TIFF) in metres.
``auto``
    ``.npy`` -> npy; otherwise by the stored sample type: 8-bit (or fewer bits) -> thesis,
    16-bit -> mm, floating point -> float.

PNG files are decoded with pypng (every bit of a 16-bit sample kept, sBIT ignored); other
image formats with OpenCV (``IMREAD_UNCHANGED``).
"""

from __future__ import annotations

import io as _io
import math
import zlib
from pathlib import Path

import cv2
import numpy as np
import png

from depth_eval.inputs import limits
from depth_eval.choices import GT_ENCODINGS
from depth_eval.thesis import DEPTH_RANGE_M

# NYU Depth v2 toolbox PNGs store depth in millimetres.
MM_PER_M = 1000.0
# Largest value of a 16-bit PNG sample (PNG specification, bit depth 16).
UINT16_MAX = 65535
# First bytes of every PNG file (PNG specification, section 5.2).
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# First bytes of every .npy file (NumPy format specification, NEP 1).
NPY_MAGIC = b"\x93NUMPY"

# Values of read_depth_m(encoding=...).
ENCODINGS = GT_ENCODINGS


# What each encoding means, for the one line the CLI prints about what it assumed.
ENCODING_DESCRIPTIONS = {
    "thesis": "the thesis' 8-bit encoding (pixel / 255 * 10 m)",
    "mm": "16-bit millimetres (NYU toolbox, pixel / 1000 m)",
    "npy": "float metres (.npy)",
    "float": "float metres",
}


def describe(encoding: str) -> str:
    """One phrase saying how ``encoding`` turns stored values into metres."""
    return ENCODING_DESCRIPTIONS.get(encoding, encoding)


def read_depth_m(path: str | Path, encoding: str = "auto",
                 depth_scale: float | None = None) -> tuple[np.ndarray, str]:
    """Read a ground-truth depth map in metres.

    Parameters
    ----------
    path : str or Path
        PNG, TIFF (or any image OpenCV reads) or ``.npy`` file.
    encoding : {"auto", "thesis", "mm", "npy", "float"}
        How the file stores depth (see the module docstring).  An explicit encoding that does
        not match the file's sample type is an error, not a conversion.
    depth_scale : float, optional
        Metres per stored unit, replacing the encoding's own (10/255 for thesis, 1/1000 for mm,
        1 for float maps): ``depth_m = value * depth_scale``.  With it, a ``.npy`` file may also
        hold integers.

    Returns
    -------
    depth_m : ndarray
        ``H x W``: float64 for integer encodings, the stored float type (float32 or float64;
        float16 becomes float32) for float ones.  Missing depth stays as stored (0, NaN...).
    encoding_used : str
        "thesis", "mm", "npy" or "float".

    Raises
    ------
    ValueError
        One line naming the file and the problem: unreadable or missing file, not 2-D, colour
        image, sample type not matching ``encoding``, bad ``depth_scale``.
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown ground-truth encoding {encoding!r}: expected one of "
                         f"{', '.join(ENCODINGS)}")
    if depth_scale is not None and not (math.isfinite(depth_scale) and depth_scale > 0):
        raise ValueError(f"depth scale must be a positive number of metres per unit, got {depth_scale}")
    path = Path(path)
    data = limits.read_image_bytes(path)

    is_npy = data.startswith(NPY_MAGIC)
    if path.suffix.lower() == ".npy" and not is_npy:
        raise ValueError(f"{path}: not a NumPy .npy file")
    if encoding == "npy" and not is_npy:
        raise ValueError(f"{path}: --gt-encoding npy expects a .npy file")
    if is_npy:
        values = _load_npy(path, data)
        kind = _sample_kind(values.dtype)
        if encoding in ("auto", "npy"):
            if kind != "float" and depth_scale is None:
                raise ValueError(f"{path}: expected float depth in metres, got {values.dtype} "
                                 "(give a depth scale for integer maps)")
            return _scaled(values, 1.0, depth_scale), "npy"
    elif data.startswith(PNG_SIGNATURE):
        values, bitdepth = _decode_png(path, data)
        kind = "8-bit" if bitdepth <= 8 else "16-bit"
    else:
        values = _decode_image(path, data)
        kind = _sample_kind(values.dtype)
        bitdepth = 8

    if encoding == "auto":
        encoding = {"8-bit": "thesis", "16-bit": "mm", "float": "float"}.get(kind)
        if encoding is None:
            raise ValueError(f"{path}: {kind} ground truth; expected 8-bit (thesis), 16-bit (mm) "
                             "or floating-point (metres) samples")
    expected = {"thesis": "8-bit", "mm": "16-bit", "float": "float"}[encoding]
    if kind != expected:
        expected_text = "floating-point samples" if expected == "float" else expected
        raise ValueError(f"{path}: {kind} ground truth but --gt-encoding {encoding} expects "
                         f"{expected_text}")
    if encoding == "thesis":
        # Fewer than 8 bits (PNG only) scale by their own range, as decoders expand them to 8.
        return _scaled(values, DEPTH_RANGE_M / (2**bitdepth - 1), depth_scale), encoding
    if encoding == "mm":
        return _scaled(values, 1.0 / MM_PER_M, depth_scale), encoding
    return _scaled(values, 1.0, depth_scale), encoding


def _scaled(values: np.ndarray, default_scale: float, depth_scale: float | None) -> np.ndarray:
    if values.dtype.kind == "f":
        values = values.astype(np.float32 if values.dtype.itemsize <= 4 else np.float64, copy=False)
        return values if depth_scale is None else values * values.dtype.type(depth_scale)
    values = values.astype(np.float64)
    if depth_scale is not None:
        return values * depth_scale
    if default_scale == 1.0 / MM_PER_M:
        return values / MM_PER_M  # a correctly rounded division: 1001 -> 1.001 exactly
    return values * default_scale


def _sample_kind(dtype: np.dtype) -> str:
    if dtype == np.uint8:
        return "8-bit"
    if dtype == np.uint16:
        return "16-bit"
    if dtype.kind == "f":
        return "float"
    return str(dtype)


def _load_npy(path: Path, data: bytes) -> np.ndarray:
    try:
        values = np.load(_io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"{path}: not a readable .npy file ({_one_line(error)})") from None
    if values.dtype.kind not in "uif":
        raise ValueError(f"{path}: expected a numeric depth map, got dtype {values.dtype}")
    if values.ndim == 3 and values.shape[2] == 1:
        values = values[:, :, 0]
    if values.ndim != 2 or values.size == 0:
        raise ValueError(f"{path}: expected a 2-D depth map, got shape {values.shape}")
    return values.astype(values.dtype.newbyteorder("="), copy=False)


def _decode_png(path: Path, data: bytes) -> tuple[np.ndarray, int]:
    """PNG samples as uint8 / uint16 ``H x W`` and the bit depth, read with pypng."""
    try:
        width, height, rows, info = png.Reader(bytes=data).read()
        if "palette" in info:
            raise ValueError(f"{path}: palette PNG; expected a grey depth map")
        dtype = np.uint16 if info["bitdepth"] > 8 else np.uint8
        planes = info["planes"]
        values = np.array([np.asarray(row, dtype=dtype) for row in rows], dtype=dtype)
    except (png.Error, zlib.error, EOFError) as error:
        raise ValueError(f"{path}: not a readable PNG ({_one_line(error)})") from None
    if values.size == 0:
        raise ValueError(f"{path}: empty image")
    values = values.reshape(height, width, planes)
    return _one_channel(path, values, color_planes=3 if planes >= 3 else 1), info["bitdepth"]


def _decode_image(path: Path, data: bytes) -> np.ndarray:
    """Any other image OpenCV decodes, samples as stored (``IMREAD_UNCHANGED``)."""
    # imdecode rather than imread: the same decoder, and paths need not be ASCII.
    values = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if values is None or values.size == 0:
        raise ValueError(f"{path}: not a readable image (corrupt, truncated or unknown format)")
    if values.ndim == 2:
        return values
    return _one_channel(path, values, color_planes=3 if values.shape[2] >= 3 else 1)


def _one_channel(path: Path, values: np.ndarray, color_planes: int) -> np.ndarray:
    """The grey channel; alpha dropped; colour accepted only when its channels are equal."""
    color = values[:, :, :color_planes]
    if color_planes > 1 and not (color == color[:, :, :1]).all():
        raise ValueError(f"{path}: colour image; expected a one-channel depth map")
    return values[:, :, 0]


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def encode_depth_mm_png(depth_m: np.ndarray) -> bytes:
    """16-bit grey PNG bytes of a depth map in millimetres (the NYU toolbox encoding).

    ``pixel = round(depth_m * 1000)`` (halves up), clipped to 0..65535 (65.535 m); NaN and
    negative depths become 0 (no depth), +inf 65535.

    Parameters
    ----------
    depth_m : ndarray
        ``H x W`` (or ``H x W x 1``) depth in metres.

    Returns
    -------
    bytes
        The PNG file, written with pypng.
    """
    depth = np.asarray(depth_m, dtype=np.float64)
    if depth.ndim == 3 and depth.shape[2] == 1:
        depth = depth[:, :, 0]
    if depth.ndim != 2 or depth.size == 0:
        raise ValueError(f"expected a 2-D depth map, got shape {depth.shape}")
    millimetres = np.nan_to_num(depth * MM_PER_M, nan=0.0, posinf=UINT16_MAX, neginf=0.0)
    pixels = np.floor(np.clip(millimetres, 0.0, UINT16_MAX) + 0.5).astype(">u2")
    height, width = pixels.shape
    buffer = _io.BytesIO()
    writer = png.Writer(width, height, greyscale=True, bitdepth=16)
    # Packed rows of a 16-bit PNG are big-endian samples; no per-pixel Python work.
    writer.write_packed(buffer, (row.tobytes() for row in pixels))
    return buffer.getvalue()


# Where a PNG's bit depth stands: the signature (8), IHDR's length and type (8), width and
# height (8); the PNG specification's IHDR layout.
_PNG_BIT_DEPTH_OFFSET = 24


def encoding_of(path: str | Path, encoding: str = "auto") -> str:
    """The encoding :func:`read_depth_m` reads ``path`` with, from the file's first bytes where
    they tell (PNG bit depth, the .npy magic), else by reading it.

    For a file whose numbers were made from it before (a stored unit of the same content):
    what it was read as, without decoding it again.
    """
    if encoding != "auto":
        return encoding
    with limits.open_regular(Path(path)) as stream:
        head = stream.read(_PNG_BIT_DEPTH_OFFSET + 1)
    if head.startswith(NPY_MAGIC):
        return "npy"
    if head.startswith(PNG_SIGNATURE) and len(head) > _PNG_BIT_DEPTH_OFFSET:
        return "thesis" if head[_PNG_BIT_DEPTH_OFFSET] <= 8 else "mm"
    return read_depth_m(path, encoding)[1]
