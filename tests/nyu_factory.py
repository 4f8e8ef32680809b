"""Synthetic NYU Depth v2 files in the real layout, for the tests and the benchmark.

``nyu_depth_v2_labeled.mat`` is MATLAB v7.3: an HDF5 file behind a 512-byte MATLAB header, its
arrays stored column-major, so h5py sees them with the dimensions reversed (``images``
N x 3 x 640 x 480 uint8, ``depths`` / ``rawDepths`` N x 640 x 480 float32).  ``splits.mat`` is
MATLAB v5 with 1-based column vectors ``trainNdxs`` and ``testNdxs`` (doubles).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# MATLAB v7.3 files start with a 128-byte text header in a 512-byte HDF5 user block.
MATLAB_HEADER = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."


def write_labeled_mat(path: Path, rgb: np.ndarray | None, depth_m: np.ndarray | None,
                      raw_depth_m: np.ndarray | None = None, *, compress: bool = False,
                      extra: dict | None = None) -> Path:
    """Write a labeled .mat from frames in natural order.

    ``rgb`` is N x 480 x 640 x 3 uint8, ``depth_m`` / ``raw_depth_m`` N x 480 x 640 metres; each
    is stored transposed as MATLAB does (None leaves the dataset out).  ``compress`` stores
    one-image gzip chunks; ``extra`` adds datasets as given (h5py order).
    """
    import h5py

    kwargs = {"chunks": True, "compression": "gzip", "compression_opts": 1} if compress else {}
    with h5py.File(path, "w", userblock_size=512) as f:
        if rgb is not None:
            images = np.ascontiguousarray(np.asarray(rgb).transpose(0, 3, 2, 1))
            chunk = {"chunks": (1,) + images.shape[1:]} if compress else {}
            ds = f.create_dataset("images", data=images, **{**kwargs, **chunk})
            ds.attrs["MATLAB_class"] = np.bytes_("uint8")
        for key, frames in (("depths", depth_m), ("rawDepths", raw_depth_m)):
            if frames is not None:
                stored = np.ascontiguousarray(np.asarray(frames).transpose(0, 2, 1))
                chunk = {"chunks": (1,) + stored.shape[1:]} if compress else {}
                ds = f.create_dataset(key, data=stored, **{**kwargs, **chunk})
                ds.attrs["MATLAB_class"] = np.bytes_("single")
        for key, value in (extra or {}).items():
            f.create_dataset(key, data=value)
    with open(path, "r+b") as stream:
        stream.write(MATLAB_HEADER.ljust(116) + b"\0" * 8 + b"\x00\x02IM")
    return path


def write_splits_mat(path: Path, train: list[int] | None, test: list[int] | None) -> Path:
    """``splits.mat`` with 1-based column vectors (None leaves the variable out)."""
    import scipy.io

    content = {key: np.asarray(values, dtype=np.float64).reshape(-1, 1)
               for key, values in (("trainNdxs", train), ("testNdxs", test)) if values is not None}
    scipy.io.savemat(str(path), content)
    return path


def smooth_scene(seed: int, count: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``count`` plausible frames: textured RGB and a smooth 0.713 .. 9.995 m depth with noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:480, 0:640].astype(np.float32)
    rgbs, depths = [], []
    for _ in range(count):
        a, b, c = rng.uniform(0.5, 3.0, 3)
        base = np.stack([x * a / 4 + y, y * b / 3 + x / 5, (x + y) * c / 6], axis=-1)
        rgb = (base + rng.normal(0, 4, base.shape)) % 256
        depth = 0.713 + 9.282 * (0.5 + 0.5 * np.sin(x / (90 * a) + y / (70 * b)) * np.cos(y / (120 * c)))
        depth = depth + rng.normal(0, 0.003, depth.shape)
        rgbs.append(rgb.astype(np.uint8))
        depths.append(np.clip(depth, 0.713, 9.995).astype(np.float32))
    return np.stack(rgbs), np.stack(depths)
