#!/usr/bin/env python3
"""Benchmark: the whole CLI against the bare forward pass, on the full-size refining network.

Makes its own workload (cached in --work): the thesis' refining network (norm_abs) with random
weights written as a real 287 MB caffemodel, and N synthetic 420 x 320 scenes. Then, in one
run, times (a) the bare OpenCV forward pass over the preprocessed images and (b) the whole
``test_depth.py`` on the same images (a fresh process, as a user runs it), and prints both, the
ratio (b)/(a), images per second, GFLOP/s, the CLI's peak RSS and the machine's core count.

    python bench/run.py --images 40 [--snapshots 3] [--jobs N]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
from concurrent.futures import ThreadPoolExecutor
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tools"), str(REPO / "tests")]

from caffemodel_factory import write_random_caffemodel  # noqa: E402
from depth_eval.inputs import images as io  # noqa: F401
from depth_eval.engines.opencv import OpenCVEngine  # noqa: F401
from synth_scenes import render_scene, write_scene  # noqa: E402

PROTOTXT = REPO / "prototxt" / "refining_network" / "norm_abs.prototxt"
# Multiply-adds x 2 of one forward pass of the full refining network at 218 x 298 (issue 4).
GFLOP_PER_IMAGE = 20.4


def make_workload(work: Path, images: int, snapshots: int) -> tuple[Path, Path, Path]:
    colors, depths, snaps = work / "colors", work / "depths", work / f"snapshots_{snapshots}"
    model = work / "model" / "refining_norm_abs.caffemodel"
    if not model.exists():
        model.parent.mkdir(parents=True, exist_ok=True)
        print(f"writing random weights for {PROTOTXT.relative_to(REPO)} ...", flush=True)
        write_random_caffemodel(PROTOTXT, model, seed=0, period=1 << 16)
    for index in range(images):
        stem = f"{index:05d}"
        if not (depths / f"{stem}_depth.png").exists():
            rgb, depth = render_scene(10_000 + index)
            write_scene(rgb, depth, colors / f"{stem}_colors.png", depths / f"{stem}_depth.png")
    for extra in sorted(colors.glob("*_colors.png"))[images:]:  # a smaller run than before
        extra.unlink()
        (depths / extra.name.replace("_colors", "_depth")).unlink()
    snaps.mkdir(parents=True, exist_ok=True)
    for k in range(snapshots):
        name = f"refine_iter_{(k + 1) * 1000}"
        if not (snaps / f"{name}.caffemodel").exists():
            os.link(model, snaps / f"{name}.caffemodel")  # same bytes, no extra disk
            (snaps / f"{name}.prototxt").write_bytes(PROTOTXT.read_bytes())
    return colors, depths, snaps


def open_network(engine: str, model: Path):
    """The engine as the CLI configures it (onnxruntime: one thread per run, a run per core,
    its translation and optimised graph cached beside the model)."""
    if engine == "onnxruntime":
        from depth_eval.engines.onnx_runtime import OnnxRuntimeEngine

        return OnnxRuntimeEngine(model.with_suffix(".prototxt"), model, threads=1,
                                 cache_dir=model.parent.parent / "onnx_cache")
    return OpenCVEngine(model.with_suffix(".prototxt"), model)


def bare_forward(engine: str, snapshots_dir: Path, colors: Path, repeats: int,
                 batch: int = 1) -> tuple[float, float]:
    """Seconds per image of the forward pass alone (inputs preprocessed beforehand), and load s.

    As many passes run at once as the engine allows (the CLI does the same).
    """
    model = sorted(snapshots_dir.glob("*.caffemodel"))[0]
    started = time.perf_counter()
    network = open_network(engine, model)
    load_s = time.perf_counter() - started
    blobs = [io.to_network_blob(io.load_color_input(p, network.input_hw))
             for p in sorted(colors.glob("*_colors.png"))]
    batches = [np.concatenate(blobs[i:i + batch]) for i in range(0, len(blobs), batch)]
    network.forward(batches[0])  # first pass allocates
    started = time.perf_counter()
    with ThreadPoolExecutor(network.concurrent_forwards) as runners:
        list(runners.map(network.forward, batches * repeats))
    return (time.perf_counter() - started) / (repeats * len(blobs)), load_s


def peak_rss_mib(pid: int, last: float) -> float:
    """VmHWM of a running process (its own peak RSS since exec), or ``last`` once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return max(last, int(line.split()[1]) / 1024)
    except OSError:
        pass
    return last


def whole_cli(colors: Path, depths: Path, snapshots_dir: Path, out: Path, extra: list[str]):
    """Wall seconds, peak RSS (MiB) and results.json of one test_depth.py process.

    The peak is the child's VmHWM polled every 20 ms (ru_maxrss would include the memory this
    benchmark process held when it forked).
    """
    command = [sys.executable, str(REPO / "test_depth.py"), str(colors), str(depths), str(out),
               str(snapshots_dir), "--quiet", *extra]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    peak = 0.0
    while process.poll() is None:
        peak = peak_rss_mib(process.pid, peak)
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"test_depth.py failed with status {process.returncode}")
    results = json.loads((out / "results.json").read_text())
    return seconds, peak, results


# The original pipeline on real Caffe, full refining net, 2 cores (issue 4/6 measurements).
ORIGINAL_S_PER_IMAGE = 0.40


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=40, help="synthetic scenes (default 40)")
    parser.add_argument("--snapshots", type=int, default=1, help="snapshots K (default 1)")
    parser.add_argument("--engine", choices=("opencv", "onnxruntime", "both"), default="both")
    parser.add_argument("--batch", type=int, default=1, help="images per forward pass")
    parser.add_argument("--jobs", type=int, help="passed to test_depth.py --jobs")
    parser.add_argument("--repeats", type=int, default=2, help="bare forward passes per image")
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "work")
    parser.add_argument("--cli-args", default="", help="extra test_depth.py arguments")
    parser.add_argument("--memory-check", action="store_true",
                        help="also run the CLI on a quarter of the images: peak RSS must not grow with M")
    args = parser.parse_args()
    engines = ["opencv", "onnxruntime"] if args.engine == "both" else [args.engine]
    if "onnxruntime" in engines and importlib.util.find_spec("onnxruntime") is None:
        engines.remove("onnxruntime")
        print("onnxruntime not installed: OpenCV only (pip install '.[fast]')")

    colors, depths, snaps_k = make_workload(args.work, args.images, args.snapshots)
    _, _, snaps_1 = make_workload(args.work, args.images, 1)
    model_mib = (args.work / "model" / "refining_norm_abs.caffemodel").stat().st_size / 2**20
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads), Python {platform.python_version()}")
    print(f"workload: full refining network (norm_abs, {model_mib:.0f} MiB caffemodel), "
          f"{args.images} scenes 420x320, batch {args.batch}")
    forward_s = {}
    for engine in engines:
        forward_s[engine], load_s = bare_forward(engine, snaps_1, colors, args.repeats, args.batch)
        print(f"(a) bare forward, {engine:11s}: {forward_s[engine] * 1000:7.1f} ms/image "
              f"{1 / forward_s[engine]:5.2f} img/s {GFLOP_PER_IMAGE / forward_s[engine]:6.1f} "
              f"GFLOP/s (load {load_s:.1f} s)")
    if len(engines) == 2:
        print(f"    onnxruntime forward is {forward_s['opencv'] / forward_s['onnxruntime']:.2f}x "
              "faster than OpenCV")
    for engine in engines:
        extra = args.cli_args.split() + ["--engine", engine, "--batch", str(args.batch)] + (
            ["--jobs", str(args.jobs)] if args.jobs else [])
        cli_s, rss_mib, results = whole_cli(colors, depths, snaps_1,
                                            args.work / f"out_{engine}", extra)
        per_image = cli_s / args.images
        loop_s = sum(e["seconds"] for e in results["snapshots"].values()) / args.images
        print(f"(b) whole CLI, {engine:11s}: {per_image * 1000:7.1f} ms/image {1 / per_image:5.2f} "
              f"img/s (process {cli_s:.1f} s incl. start-up and model load); image loop "
              f"{loop_s * 1000:.1f} ms/image")
        print(f"    ratio (b)/(a): {per_image / forward_s[engine]:.3f} whole process, "
              f"{loop_s / forward_s[engine]:.3f} image loop; {ORIGINAL_S_PER_IMAGE / per_image:.2f}x "
              f"faster than the original's {ORIGINAL_S_PER_IMAGE} s/image "
              f"({ORIGINAL_S_PER_IMAGE / loop_s:.2f}x on the image loop)")
        print(f"    peak RSS: {rss_mib:.0f} MiB (model {model_mib:.0f} MiB; "
              f"model + 300 MiB = {model_mib + 300:.0f} MiB)")
        if args.memory_check:
            quarter = max(1, args.images // 4)
            small_colors, small_depths = args.work / "quarter_colors", args.work / "quarter_depths"
            for folder, source in ((small_colors, colors), (small_depths, depths)):
                folder.mkdir(exist_ok=True)
                for path in sorted(source.iterdir())[:quarter]:
                    if not (folder / path.name).exists():
                        os.link(path, folder / path.name)
            _, rss_small, _ = whole_cli(small_colors, small_depths, snaps_1,
                                        args.work / f"out_quarter_{engine}", extra)
            print(f"    peak RSS with {quarter} images: {rss_small:.0f} MiB, with {args.images}: "
                  f"{rss_mib:.0f} MiB (growth {rss_mib - rss_small:+.0f} MiB)")
        if args.snapshots > 1:
            cli_k, rss_k, _ = whole_cli(colors, depths, snaps_k,
                                        args.work / f"out_{args.snapshots}_{engine}", extra)
            print(f"    {args.snapshots} snapshots: {cli_k:.1f} s = {cli_k / cli_s:.2f} x the "
                  f"1-snapshot run (target <= {args.snapshots}), peak RSS {rss_k:.0f} MiB")


if __name__ == "__main__":
    main()
