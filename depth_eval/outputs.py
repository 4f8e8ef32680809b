"""The pictures the thesis evaluation wrote, and safe (atomic) file writing."""

from __future__ import annotations

import io as _io
import os
import threading
from pathlib import Path

import cv2
import numpy as np

from .io import INPUT_MEAN
from .metrics import LOG_ENCODING_SLOPE

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


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    A reader never sees a half-written file, and an interrupted run leaves the old file intact.
    """
    path = Path(path)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    # O_EXCL: never write through a file or link someone else put there; 0o666 & umask as open().
    handle = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise


# Names of the files depth_eval wrote into a folder, so a rerun replaces those and no others.
MANIFEST_NAME = ".depth_eval-written"


class OutputFolder:
    """A folder the tool writes into without touching files it did not create.

    A rerun may replace a file listed in the folder's manifest (written by an earlier run);
    any other existing file of the same name is left alone and reported as a conflict.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise NotADirectoryError(f"{self.path}: exists and is not a folder")
        self.path.mkdir(parents=True, exist_ok=True)
        manifest = self.path / MANIFEST_NAME
        self._written = set(manifest.read_text(encoding="utf-8").split("\n")) if manifest.is_file() else set()
        self._written.discard("")
        self._lock = threading.Lock()  # worker threads claim names concurrently

    def conflicts(self, names) -> list[str]:
        """Those of ``names`` that exist and are not the tool's, claiming nothing (a dry run)."""
        with self._lock:
            return [n for n in names if n not in self._written and (self.path / n).exists()]

    def claim(self, names) -> list[str]:
        """Reserve ``names`` for writing; return those that exist and are not the tool's."""
        with self._lock:
            conflicts = [n for n in names if n not in self._written and (self.path / n).exists()]
            fresh = set(names) - set(conflicts) - self._written
            if fresh:
                self._written |= fresh
                write_atomic(self.path / MANIFEST_NAME,
                             "\n".join(sorted(self._written)).encode() + b"\n")
            return conflicts

    def write(self, name: str, data: bytes) -> Path:
        """Write one claimed file atomically."""
        if name not in self._written:
            raise PermissionError(f"{self.path / name}: not claimed by this run")
        target = self.path / name
        write_atomic(target, data)
        return target
