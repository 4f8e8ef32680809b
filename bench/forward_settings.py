#!/usr/bin/env python3
"""Which forward-pass settings are fastest on this CPU? (issue 4: threads, batch, engine)

Times the full refining network (the workload of bench/run.py, made by it) for OpenCV's dnn
with 1..cores threads and batches of 1, 2, 4 images, and the same for onnxruntime when it is
installed; prints ms per image and GFLOP/s (20.4 GFLOP per image). Only faithful settings:
float32 on the CPU (OpenCV's FP16/INT8 targets change the numbers).

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

    for threads in sorted({1, cores}):
        engine = OnnxRuntimeEngine(prototxt, model, threads=threads,
                                    cache_dir=args.work / "onnx_cache")
        for batch in (1, 2, 4):
            seconds = time_forward(engine.forward, blobs, batch, args.repeats)
            print(f"onnxruntime threads {threads} batch {batch}: {seconds * 1000:7.1f} ms/image "
                  f"{GFLOP_PER_IMAGE / seconds:6.1f} GFLOP/s")


if __name__ == "__main__":
    main()
