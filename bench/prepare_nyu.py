#!/usr/bin/env python3
"""Benchmark: ``prepare-nyu`` over a synthetic labeled .mat of the real layout and size per image.

Makes (and caches in --work) a MATLAB v7.3-style file of N images (default 654, the test split)
stored as the real one is: gzip-compressed HDF5 (the real 2.8 GB file is compressed: its raw
arrays would be about twice that), one image per chunk; then times the command (cropped, and
with --full-frame) with --jobs threads and prints images per second and the core count.

    python bench/prepare_nyu.py [--images 654] [--jobs 2] [--work /tmp/nyu_bench]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import h5py  # noqa: E402
import numpy as np  # noqa: E402

from depth_eval.commands import prepare_nyu  # noqa: F401
from depth_eval.console import Console  # noqa: F401
from nyu_factory import MATLAB_HEADER, smooth_scene, write_splits_mat  # noqa: E402

# Frames generated and written per step (bounds the generator's memory).
BATCH = 32


def make_workload(work: Path, images: int) -> tuple[Path, Path]:
    labeled, splits = work / f"labeled_{images}.mat", work / f"splits_{images}.mat"
    if not labeled.exists():
        work.mkdir(parents=True, exist_ok=True)
        print(f"writing {images} synthetic images to {labeled} ...", flush=True)
        partial = labeled.with_suffix(".partial")
        with h5py.File(partial, "w", userblock_size=512) as f:
            compressed = {"compression": "gzip", "compression_opts": 3}
            rgb_ds = f.create_dataset("images", (images, 3, 640, 480), np.uint8,
                                      chunks=(1, 3, 640, 480), **compressed)
            depth_ds = f.create_dataset("depths", (images, 640, 480), np.float32,
                                        chunks=(1, 640, 480), **compressed)
            for start in range(0, images, BATCH):
                count = min(BATCH, images - start)
                rgb, depth = smooth_scene(start, count)
                rgb_ds[start:start + count] = rgb.transpose(0, 3, 2, 1)
                depth_ds[start:start + count] = depth.transpose(0, 2, 1)
        with open(partial, "r+b") as stream:
            stream.write(MATLAB_HEADER.ljust(116) + b"\0" * 8 + b"\x00\x02IM")
        partial.rename(labeled)
    write_splits_mat(splits, [], list(range(1, images + 1)))
    return labeled, splits


def time_run(labeled: Path, splits: Path, out: Path, jobs: int, *extra: str) -> float:
    shutil.rmtree(out, ignore_errors=True)
    parser = argparse.ArgumentParser()
    prepare_nyu.add_arguments(parser)
    args = parser.parse_args([str(labeled), str(splits), str(out), "--jobs", str(jobs),
                              "--quiet", *extra])
    started = time.perf_counter()
    status = prepare_nyu.run(prepare_nyu.settings_from_args(args),
                             Console(quiet=True, out=io.StringIO(), err=io.StringIO()))
    elapsed = time.perf_counter() - started
    assert status == 0, status
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=654)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/nyu_bench"))
    args = parser.parse_args()
    labeled, splits = make_workload(args.work, args.images)
    print(f"{labeled.stat().st_size / 1e6:.0f} MB .mat, {args.images} images, --jobs {args.jobs}, "
          f"{os.cpu_count()} cores")
    for label, extra in (("cropped (thesis inputs)", ()), ("--full-frame", ("--full-frame",))):
        elapsed = time_run(labeled, splits, args.work / "out", args.jobs, *extra)
        print(f"{label:24s} {elapsed:6.1f} s  {args.images / elapsed:6.1f} img/s")


if __name__ == "__main__":
    main()
