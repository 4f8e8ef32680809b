#!/usr/bin/env python3
"""Which forward-pass settings are fastest on this CPU? (issue 4: threads, batch, engine)

Times the full refining network (the workload of bench/run.py, made by it) for OpenCV's dnn
with 1..cores threads and batches of 1, 2, 4 images, and for onnxruntime (when installed)
threads per session x concurrent passes x batch (1 or 2: the inner products batched), against
numpy's sgemm floor measured in the same run; wall and CPU ms per image, and the other
processes' load (a shared machine).  Only faithful settings: float32 on the CPU (OpenCV's
FP16/INT8 targets change the numbers).

    python bench/forward_settings.py [--work bench/work] [--repeats 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from depth_eval.inputs import images as io  # noqa: F401
from depth_eval.engines.opencv import OpenCVEngine  # noqa: F401

GFLOP_PER_IMAGE = 20.4


def time_forward(forward, blobs, batch, repeats) -> float:
    batches = [np.concatenate(blobs[i:i + batch]) for i in range(0, len(blobs) - batch + 1, batch)]
    forward(batches[0])
    started = time.perf_counter()
    for _ in range(repeats):
        for inputs in batches:
            forward(inputs)
    return (time.perf_counter() - started) / (repeats * len(batches) * batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "work")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model = args.work / "model" / "refining_norm_abs.caffemodel"
    prototxt = REPO / "prototxt" / "refining_network" / "norm_abs.prototxt"
    if not model.exists():
        raise SystemExit(f"{model}: run bench/run.py first (it writes the workload)")
    colors = sorted((args.work / "colors").glob("*_colors.png"))[:8]
    cores = os.cpu_count() or 1
    network = OpenCVEngine(prototxt, model)
    blobs = [io.to_network_blob(io.load_color_input(p, network.input_hw)) for p in colors]
    print(f"{cores} cores, OpenCV {cv2.__version__}, {len(blobs)} images, {args.repeats} repeats")
    for threads in sorted({1, cores}):
        cv2.setNumThreads(threads)
        for batch in (1, 2, 4):
            seconds = time_forward(network.forward, blobs, batch, args.repeats)
            print(f"opencv      threads {threads} batch {batch}: {seconds * 1000:7.1f} ms/image "
                  f"{GFLOP_PER_IMAGE / seconds:6.1f} GFLOP/s")
    cv2.setNumThreads(cores)
    del network
    if importlib.util.find_spec("onnxruntime") is None:
        return
    from depth_eval.engines.onnx_runtime import OnnxRuntimeEngine

    # onnxruntime: threads per session x passes at once x images per pass, interleaved and
    # repeated (a shared machine's load moves); the sgemm floor measured between them.
    sessions = {threads: OnnxRuntimeEngine(prototxt, model, threads=threads,
                                           cache_dir=args.work / "onnx_cache")
                for threads in sorted({1, cores})}
    configs = [(threads, passes, batch) for threads in sessions
               for passes in sorted({1, cores}) for batch in (1, 2)
               if threads * passes <= 2 * cores]
    images = blobs * max(1, 8 // len(blobs))
    for session in sessions.values():
        session.forward(np.concatenate(images[:2]))  # first passes allocate
    runs: dict = {config: [] for config in configs}
    floors = []
    for _ in range(args.repeats):
        floors.append(GFLOP_PER_IMAGE / sgemm_gflops())
        for threads, passes, batch in configs:
            runs[(threads, passes, batch)].append(
                concurrent_passes(sessions[threads].forward, images, batch, passes))
    floor = min(floors)
    print(f"sgemm floor {floor * 1000:.1f} ms/image (numpy float32, all cores)")
    for (threads, passes, batch), measured in runs.items():
        quiet = [m for m in measured if m[2] <= QUIET_CORES] or measured
        wall, cpu = min(m[0] for m in quiet), min(m[1] for m in quiet)
        print(f"onnxruntime threads {threads} passes at once {passes} batch {batch}: "
              f"{wall * 1000:7.1f} ms/image ({wall / floor:.2f}x the floor), CPU "
              f"{cpu * 1000:.0f} ms/image; others' load {max(m[2] for m in measured):.2f} "
              "cores at most")


# A measurement during which other processes kept more cores busy than this is noise.
QUIET_CORES = 0.15


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores, /proc/stat)."""
    with open("/proc/stat") as stat:
        ticks = [int(v) for v in stat.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def sgemm_gflops(size: int = 2048) -> float:
    """numpy's float32 matrix product, GFLOP/s (best of 3)."""
    a = np.random.default_rng(0).random((size, size), dtype=np.float32)
    a @ a
    best = min(_timed(lambda: a @ a) for _ in range(3))
    return 2 * size ** 3 / best / 1e9


def _timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def concurrent_passes(forward, blobs, batch, passes) -> tuple[float, float, float]:
    """Wall and CPU seconds per image of ``passes`` concurrent passes of ``batch`` images over
    ``blobs``, and the cores other processes kept busy meanwhile."""
    from concurrent.futures import ThreadPoolExecutor

    batches = [np.concatenate(blobs[i:i + batch]) for i in range(0, len(blobs) - batch + 1,
                                                                  batch)]
    busy, own, started = busy_seconds(), sum(os.times()[:2]), time.perf_counter()
    with ThreadPoolExecutor(passes) as runners:
        list(runners.map(forward, batches))
    wall, cpu = time.perf_counter() - started, sum(os.times()[:2]) - own
    images = len(batches) * batch
    return wall / images, cpu / images, max(0.0, busy_seconds() - busy - cpu) / wall

if __name__ == "__main__":
    main()
