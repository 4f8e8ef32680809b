#!/usr/bin/env python3
"""Benchmark: ``--dask local:N`` (and other clusters) against the local run on the same work,
and a scaling model.

Makes the workload of bench/run.py (cached in --work): the thesis' full refining network
(norm_abs) with random weights as a real 287 MB caffemodel, K snapshots of it and N synthetic
420 x 320 scenes.  Then, in one run, alternates R times (a) the local run and (b) the same
command with ``--dask local:N`` and with each ``--also`` cluster (e.g. ``slurm:2``, as dask's
configuration describes its jobs; each a fresh ``test_depth.py`` process into a fresh
OUT_DIR, cluster start-up included), checks that every (b) gives the values of (a), and
prints the throughput ratio (a)/(b) of the fastest of each (the machine may be shared: the
minimum is the least disturbed).  Last, the scaling model for M machines, from the measured
per-image cost, model load and the bytes one chunk moves.

    python bench/dask.py --images 40 --snapshots 2 [--workers 2] [--repeats 3] [--also slurm:2]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import pickle
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the CLI and Dask's workers have it

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH)]

import run as bench_run  # noqa: E402  (bench/run.py: the workload and the CLI runner)

# This file is named dask.py: its folder must not hide the real dask from what follows.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]

import cv2  # noqa: E402

from depth_eval import cli, tasks  # noqa: F401
from depth_eval.execution.dask_worker import CollectingConsole, UnitReply  # noqa: F401
from depth_eval.inputs.discover import find_snapshots  # noqa: F401
from depth_eval.execution.local import run_items  # noqa: F401
from depth_eval.execution.dask_cluster import chunk_size, submission_order  # noqa: F401
from depth_eval.inputs.hashing import file_sha256  # noqa: F401
from depth_eval.engines import open_snapshot as open_engine  # noqa: F401
from depth_eval.settings import GateSettings  # noqa: F401

# Fields of a snapshot's entry that say how the run went, not what it found.
RUN_FIELDS = ("seconds", "images_reused", "images_computed")
# Assumed for the model (not measured here): the shared filesystem's total bandwidth (a 10 GbE
# file server), the scheduler's network (1 GbE) and its cost per task (Dask's documentation
# gives about 1 ms of overhead per task).
SHARED_FS_BYTES_PER_S = 1.0e9
NETWORK_BYTES_PER_S = 1.0e8
SCHEDULER_S_PER_CHUNK = 1e-3


def cpu_name() -> str:
    """The processor's model name (Linux), else the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.machine()


def values(document: dict) -> str:
    return json.dumps({name: {k: ({"sha256": v["sha256"]} if k in ("caffemodel", "prototxt")
                                  else v) for k, v in entry.items() if k not in RUN_FIELDS}
                       for name, entry in document["snapshots"].items()})


def one_run(colors, depths, snapshots, out: Path, extra: list[str]):
    for folder in (out, out.with_name(out.name + "_abs")):
        shutil.rmtree(folder, ignore_errors=True)
    seconds, _, results = bench_run.whole_cli(colors, depths, snapshots, out, extra)
    return seconds, results


def chunk_costs(colors, depths, snapshots, workers: int, extra: list[str]) -> dict:
    """One chunk run here as a worker runs it (one thread): the bytes sent to the worker and
    back, the model's load time and the seconds per image, and the bytes per image on disk."""
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "out"
        args = cli.parse(["evaluate", str(colors), str(depths), str(out), str(snapshots),
                          "--dask", f"local:{workers}", *extra])
        from depth_eval.commands import evaluate

        settings = evaluate.settings_from_args(args)
        console = CollectingConsole()
        task = tasks.get(settings.task)(settings, console)
        items = task.find_items(console)
        found = find_snapshots(settings.inputs.snapshots_dir, settings.inputs.prototxt)
        snapshot = found[0]
        size = chunk_size(len(found) * len(items), workers, settings.engine.batch)
        chunk = tuple(items[:size])
        sha = file_sha256(snapshot.caffemodel)
        started = time.perf_counter()
        engine = open_engine(settings.engine, task.output_rule, snapshot,
                             hasher=lambda _path: sha)
        load_s = time.perf_counter() - started
        run = run_items(engine, task.start_snapshot(snapshot.name, list(chunk)), chunk,
                        jobs=1, batch_size=settings.engine.batch)
        reply = UnitReply(run, console.drain(), task.facts())
        request = (dataclasses.replace(settings, gate=GateSettings()),
                   task.name, "0" * 32, snapshot, chunk, (sha, "x" * 80), sha, {"host": 1})
        written = sum(p.stat().st_size for p in Path(scratch).rglob("*.png"))
    read = sum(p.stat().st_size for item in chunk for p in (item.color_path, item.depth_path))
    return {"chunk": size, "load_s": load_s, "image_s": run.seconds / size,
            "request_bytes": len(pickle.dumps(request)),
            "reply_bytes": len(pickle.dumps(reply)), "written_per_image": written / size,
            "read_per_image": read / size, "model_bytes": snapshot.caffemodel.stat().st_size}


def predicted_s(costs: dict, snapshots: int, images: int, cores: int, machines: int) -> float:
    """Seconds the model predicts for ``snapshots`` x ``images`` on ``machines`` of ``cores``
    cores, one single-threaded worker process per core (see the README's "Clusters (Dask)").

    The chunks are laid out as the run submits them (:func:`submission_order`), chunk p going
    to worker p mod W as when every worker keeps the same pace.  The run is bound by the
    slowest of: the workers' compute (every image, plus one model load per worker and
    snapshot it meets, spread over the workers); the shared filesystem (each machine reads a
    snapshot's model once, its workers share its page cache; every image's input is read and
    its pictures written); the scheduler (one task per chunk, its bytes on the network).
    """
    workers = cores * machines
    size = chunk_size(snapshots * images, workers, 1)
    layout = [[snapshot] * math.ceil(images / size) for snapshot in range(snapshots)]
    order = submission_order(layout, workers)
    loads = {(position % workers, snapshot) for position, snapshot in enumerate(order)}
    reads = {(worker // cores, snapshot) for worker, snapshot in loads}
    compute = (snapshots * images * costs["image_s"] + len(loads) * costs["load_s"]) / workers
    shared = (len(reads) * costs["model_bytes"] + snapshots * images * (
        costs["read_per_image"] + costs["written_per_image"])) / SHARED_FS_BYTES_PER_S
    scheduler = len(order) * (SCHEDULER_S_PER_CHUNK + (
        costs["request_bytes"] + costs["reply_bytes"]) / NETWORK_BYTES_PER_S)
    return max(compute, shared, scheduler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=40, help="synthetic scenes (default 40)")
    parser.add_argument("--snapshots", type=int, default=2, help="snapshots (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="local:N (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each (default 3)")
    parser.add_argument("--engine", choices=("opencv", "onnxruntime"), default="opencv")
    parser.add_argument("--also", action="append", default=[], metavar="DASK",
                        help="another --dask value measured beside local:N (e.g. slurm:2)")
    parser.add_argument("--work", type=Path, default=BENCH / "work")
    args = parser.parse_args()
    colors, depths, snapshots = bench_run.make_workload(args.work, args.images, args.snapshots)
    extra = ["--engine", args.engine]
    print(f"machine: {os.cpu_count()} cores, {cpu_name()} (shared with other jobs: min of "
          f"{args.repeats}); workload: full refining network, {args.snapshots} snapshots x "
          f"{args.images} scenes, --engine {args.engine}")
    clusters = [f"local:{args.workers}", *args.also]
    local_s, cluster_s, reference, busy_image_s = [], {c: [] for c in clusters}, None, []
    for repeat in range(args.repeats):
        seconds, local = one_run(colors, depths, snapshots, args.work / "out_local", extra)
        local_s.append(seconds)
        reference = reference or values(local)
        line = [f"run {repeat + 1}: local {seconds:.1f} s"]
        for cluster in clusters:
            seconds, remote = one_run(colors, depths, snapshots, args.work / "out_dask",
                                      extra + ["--dask", cluster])
            cluster_s[cluster].append(seconds)
            if cluster == clusters[0]:
                # A chunk's seconds are its worker's; a snapshot's, the sum of its chunks'.
                busy_image_s.append(sum(e["seconds"] for e in remote["snapshots"].values())
                                    / (args.images * args.snapshots))
            same = values(local) == values(remote) == reference
            line.append(f"--dask {cluster} {seconds:.1f} s (ratio {local_s[-1] / seconds:.3f}; "
                        f"results identical: {same})")
            if not same:
                raise SystemExit(f"--dask {cluster}'s results differ from the local run's")
        print(", ".join(line))
    units = args.images * args.snapshots
    print(f"throughput: local {units / min(local_s):.2f} img/s" + "".join(
        f", --dask {cluster} {units / min(times):.2f} img/s (ratio {min(local_s) / min(times):.3f})"
        for cluster, times in cluster_s.items()) + f" (min of {args.repeats}; target >= 0.9)")
    dask_s = cluster_s[clusters[0]]

    costs = chunk_costs(colors, depths, snapshots, args.workers, extra)
    alone_s, costs["image_s"] = costs["image_s"], min(busy_image_s)
    print(f"per chunk of {costs['chunk']} images: {costs['image_s'] * 1000:.0f} ms/image on "
          f"a worker while all {args.workers} run ({alone_s * 1000:.0f} ms alone), model "
          f"load {costs['load_s']:.1f} s (alone); "
          f"sent {costs['request_bytes']} B, returned {costs['reply_bytes']} B "
          f"({costs['reply_bytes'] / costs['chunk']:.0f} B/image); shared filesystem per "
          f"image: {costs['read_per_image'] / 1e3:.0f} kB read, "
          f"{costs['written_per_image'] / 1e3:.0f} kB of pictures written; model "
          f"{costs['model_bytes'] / 1e6:.0f} MB read per machine and snapshot")
    here = predicted_s(costs, args.snapshots, args.images, args.workers, 1)
    print(f"model for this run: {here:.1f} s; measured {min(dask_s):.1f} s (the process's "
          "and the cluster's start and hashing the inputs included)")
    one = predicted_s(costs, 10, 654, 16, 1)
    print(f"model, 10 snapshots x 654 NYU test images on machines of 16 cores (16 workers of "
          f"one thread), shared filesystem {SHARED_FS_BYTES_PER_S / 1e9:.0f} GB/s:")
    for machines in (1, 2, 4, 8, 16, 32):
        seconds = predicted_s(costs, 10, 654, 16, machines)
        print(f"  {machines:2d} machines ({16 * machines:3d} workers): {seconds / 60:5.2f} min, "
              f"speed-up {one / seconds:5.2f}x")


if __name__ == "__main__":
    main()
