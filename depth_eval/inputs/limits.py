"""Refusing hostile inputs before they cost anything: only regular files are read, images above
a pixel limit are not decoded, networks whose activations do not fit in memory are not run.

Readers go through :func:`read_regular` / :func:`open_regular`: a FIFO named ``x.caffemodel``
would block a plain ``open`` forever and ``/dev/zero`` would fill the memory, so the file is
opened without blocking and its type checked on the open descriptor (no race with a rename).
The refusal is an :class:`OSError` whose ``strerror`` says what the file is, so every reader's
existing "cannot read" message names the file and the reason.
"""

from __future__ import annotations

import errno
import io as _io
import json
import math
import os
import stat
import threading
import warnings
from pathlib import Path

from depth_eval import choices
from depth_eval.errors import ImageReadError, SnapshotError

# Default of --max-image-pixels: 50 megapixels.  Twice the largest frames of the depth
# benchmarks (ETH3D's DSLR images are 6048 x 4032 = 24.4 MP; NYU is 0.3 MP); a colour image
# costs about 18 bytes per pixel while it is read (8-bit decode, its RGB copy and the float32
# copy), so one image in flight stays under 1 GB.  Pillow's own default, 89.5 MP, would allow
# 1.6 GB per image, times the reader threads.
DEFAULT_MAX_IMAGE_PIXELS = choices.DEFAULT_MAX_IMAGE_PIXELS
# Bytes per activation value: OpenCV's and onnxruntime's CPU kernels compute in float32.
ACTIVATION_BYTES = 4
# Activations above this get a warning even when they fit: 1 GB, 30x the largest thesis
# network at its input size (refining network: 35 MB per image).
LARGE_ACTIVATION_BYTES = 1e9
# Bytes an engine holds per byte of caffemodel: OpenCV repacks the weights of its convolution
# and inner-product kernels beside its own copy (docs/speed.md: 669 MiB for a 274 MiB file).
WEIGHT_COPIES = 2.5

# Nesting depth of the JSON documents read (a baseline, a stored row): ours need under 10;
# Python's parser recurses per level and would end in RecursionError near 1,000.
MAX_JSON_DEPTH = 64

_max_image_pixels = DEFAULT_MAX_IMAGE_PIXELS
_pil_lock = threading.Lock()


class NotRegularFileError(OSError):
    """A path that is not a regular file (FIFO, device, folder, socket, broken link)."""


def describe(path: Path) -> str:
    """What ``path`` is when it is not a regular file: "a FIFO", "a folder", "a dangling symbolic
    link (to X)"...; "missing" when nothing is there; "a regular file" otherwise."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "a symbolic link loop"
        if os.path.islink(path):
            return f"a dangling symbolic link (to {os.readlink(path)})"
        return "missing" if error.errno == errno.ENOENT else (error.strerror or str(error))
    return _kind(mode)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a folder"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _refusal(path: Path, what: str) -> NotRegularFileError:
    return NotRegularFileError(errno.EINVAL, f"is {what}, not a regular file", str(path))


def open_regular(path: Path):
    """Open ``path`` for binary reading if it is a regular file.

    Raises
    ------
    NotRegularFileError
        A FIFO, device, folder or socket (``strerror``: "is a FIFO, not a regular file"), a
        dangling link or a link loop; other OSErrors as ``open`` raises them.
    """
    path = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO without a writer returns at once instead of waiting.
        handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except IsADirectoryError:
        raise _refusal(path, "a folder") from None
    except OSError as error:
        if error.errno == errno.ELOOP or (error.errno == errno.ENOENT and os.path.islink(path)):
            raise NotRegularFileError(error.errno, f"is {describe(path)}", str(path)) from None
        raise
    mode = os.fstat(handle).st_mode
    if not stat.S_ISREG(mode):
        os.close(handle)
        raise _refusal(path, _kind(mode))
    os.set_blocking(handle, True)
    return os.fdopen(handle, "rb")


def read_regular(path: Path) -> bytes:
    """The bytes of ``path``, a regular file (see :func:`open_regular`)."""
    with open_regular(path) as stream:
        return stream.read()


def load_json(text: str, max_depth: int = MAX_JSON_DEPTH):
    """``json.loads(text)`` after a check that arrays and objects nest at most ``max_depth``
    deep; ValueError (``json.JSONDecodeError`` for bad JSON) otherwise.

    The check is one pass over the text (brackets inside strings skipped), so a hostile
    document costs time linear in its size before the parser sees it.
    """
    depth, in_string, escaped = 0, False, False
    for position, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > max_depth:
                raise ValueError(f"nested deeper than {max_depth} levels (at character "
                                 f"{position})")
        elif char in "]}":
            depth -= 1
    return json.loads(text)


# --- images ------------------------------------------------------------------------------------

def max_image_pixels() -> int:
    """The pixel limit in force (``--max-image-pixels``)."""
    return _max_image_pixels


# A PNG file's first 8 bytes; its first chunk, IHDR, starts with width and height (PNG spec).
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def set_max_image_pixels(limit: int) -> None:
    """Set the pixel limit for images read from now on (the run sets it from its settings, as
    Pillow's ``Image.MAX_IMAGE_PIXELS``)."""
    global _max_image_pixels
    if limit < 1:
        raise ValueError(f"the pixel limit must be at least 1, got {limit}")
    _max_image_pixels = int(limit)


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from an image file's header, without decoding its pixels; None for a
    format Pillow does not identify (OpenCV then applies its own limit of 2^30 pixels)."""
    if data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR" and len(data) >= 24:
        # The PNGs a run reads: their size is in the first chunk (no Pillow import: 20 ms).
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    from PIL import Image, UnidentifiedImageError  # Pillow only once another format is read

    with _pil_lock, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Pillow refuses bombs itself above twice its limit, without saying the size.
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            with Image.open(_io.BytesIO(data)) as image:
                return image.size
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
            return None
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def read_image_bytes(path: Path) -> bytes:
    """An image file's bytes, refused (ImageReadError, one line naming the file) when it cannot
    be read, is empty, or its header says it has more pixels than the limit."""
    try:
        data = read_regular(path)
    except OSError as error:
        raise ImageReadError(f"{path}: cannot read file ({error.strerror})") from None
    if not data:
        raise ImageReadError(f"{path}: file is empty")
    check_image_size(path, data)  # from the header, before any pixel is decoded
    return data


def check_image_size(path: Path, data: bytes) -> None:
    """Raise ImageReadError naming the file and its size if it has more pixels than the limit."""
    size = image_size(data)
    if size is not None and size[0] * size[1] > _max_image_pixels:
        width, height = size
        raise ImageReadError(f"{path}: {width} x {height} = {width * height / 1e6:.1f} megapixels, "
                         f"more than --max-image-pixels {_max_image_pixels} (a decompression "
                         "bomb? raise the limit to read it)")


# --- memory ------------------------------------------------------------------------------------

def available_memory() -> int | None:
    """Bytes the machine can give without swapping (MemAvailable), None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as stream:
            for line in stream:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def activation_values(blob_shapes: dict) -> int:
    """Values of one image's blobs: every blob's size without its batch dimension."""
    return sum(math.prod(shape[1:]) for shape in blob_shapes.values() if len(shape) >= 1)


def check_network_memory(prototxt: Path, blob_shapes: dict, input_shape, batch: int,
                         weights_bytes: int, available: int | None = None) -> str | None:
    """Raise SnapshotError naming the file and the sizes if the forward pass cannot fit.

    The estimate is the sum of the inferred blob sizes (float32) times the batch, plus the
    engine's copies of the weights; the engines reuse some buffers and add others, so it is
    the order of magnitude, refused only when it exceeds the memory available.

    Returns
    -------
    str or None
        A warning (naming the file and the sizes) when the activations fit but exceed
        :data:`LARGE_ACTIVATION_BYTES`.
    """
    available = available_memory() if available is None else available
    activations = activation_values(blob_shapes) * ACTIVATION_BYTES * batch
    needed = activations + int(weights_bytes * WEIGHT_COPIES)
    shape = " x ".join(map(str, (batch, *tuple(input_shape)[1:])))
    sizes = (f"the forward pass needs about {_gb(needed)} ({_gb(activations)} of activations "
             f"for a {shape} input, {_gb(weights_bytes * WEIGHT_COPIES)} for the weights)")
    if available is not None and needed > available:
        hint = f"; a smaller --batch than {batch} needs less" if batch > 1 else ""
        raise SnapshotError(f"{prototxt}: {sizes}, more than the {_gb(available)} this machine "
                            f"has available{hint}")
    if activations > LARGE_ACTIVATION_BYTES:
        return (f"{prototxt}: {sizes}; "
                + (f"{_gb(available)} available" if available is not None else "memory unknown"))
    return None


def _gb(count: float) -> str:
    return f"{count / 1e9:.1f} GB"
