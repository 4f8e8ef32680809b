#!/usr/bin/env python3
"""Benchmark of the results store (issue 14): a rerun with one new snapshot among N, and a run
killed with SIGKILL then rerun.

Makes its own workload (cached in --work): N snapshots of the thesis' refining network
(norm_abs) with random weights, a distinct seed each (real 287 MB caffemodels), and M
synthetic 420 x 320 scenes.  Then, in one run, each step a fresh process as a user runs it:

(a) N - 1 snapshots evaluated into OUT_DIR (the store fills), the N-th added, the rerun timed;
(b) the N-th snapshot alone into a fresh OUT_DIR, timed; target (a) / (b) <= 1.3.  (a) and (b)
    are repeated, alternately (OUT_DIR and its store put back in place before each rerun), and
    the medians compared: the machine is shared;
(c) all N snapshots into a fresh OUT_DIR: its results.json values must equal the rerun's;
(d) all N snapshots with a pass-counting engine (tests/counting_engine.py: OpenCV logging
    every image's forward pass), killed with SIGKILL once half the units are stored, then
    rerun: forward passes of both runs against the units.

    python bench/store.py [--images 12] [--snapshots 6] [--repeats 3] [--engine opencv]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tools"), str(REPO / "tests")]

from caffemodel_factory import write_random_caffemodel  # noqa: E402
from counting_engine import PASSES_ENV, logged_passes  # noqa: E402
from synth_scenes import render_scene, write_scene  # noqa: E402

PROTOTXT = REPO / "prototxt" / "refining_network" / "norm_abs.prototxt"
# Fields of a results.json snapshot entry that say how a run got its values, not what they are.
RUN_FIELDS = ("seconds", "images_reused", "images_computed")
# The bound on a rerun with one new snapshot, relative to that snapshot alone.
TARGET_RATIO = 1.3


def make_workload(work: Path, images: int, snapshots: int) -> tuple[Path, Path, list[str]]:
    colors, depths, models = work / "colors", work / "depths", work / "models"
    for folder in (colors, depths, models):
        folder.mkdir(parents=True, exist_ok=True)
    for index in range(images):
        stem = f"{index:05d}"
        if not (depths / f"{stem}_depth.png").exists():
            rgb, depth = render_scene(20_000 + index)
            write_scene(rgb, depth, colors / f"{stem}_colors.png", depths / f"{stem}_depth.png")
    for extra in sorted(colors.glob("*_colors.png"))[images:]:
        extra.unlink()
        (depths / extra.name.replace("_colors", "_depth")).unlink()
    names = [f"refine_iter_{(k + 1) * 1000}" for k in range(snapshots)]
    for seed, name in enumerate(names):
        model = models / f"{name}.caffemodel"
        if not model.exists():
            print(f"writing random weights for {name} ...", flush=True)
            write_random_caffemodel(PROTOTXT, model, seed=seed, period=1 << 16)
        shutil.copy(PROTOTXT, models / f"{name}.prototxt")
    return colors, depths, names


def snapshot_folder(work: Path, label: str, names: list[str]) -> Path:
    """A SNAPSHOTS_DIR holding ``names`` (hard links: no extra disk, same inode and hash)."""
    folder = work / f"snapshots_{label}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    for name in names:
        for suffix in (".caffemodel", ".prototxt"):
            os.link(work / "models" / f"{name}{suffix}", folder / f"{name}{suffix}")
    return folder


def command(colors, depths, out: Path, snapshots: Path, extra: list[str],
            counting: bool = False) -> list[str]:
    script = REPO / ("tests/counting_engine.py" if counting else "test_depth.py")
    engine = ["--engine", "counting"] if counting else []
    return [sys.executable, str(script), str(colors), str(depths), str(out), str(snapshots),
            "--quiet", *engine, *extra]


def timed(args: list[str], env=None) -> float:
    started = time.perf_counter()
    done = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          env=env)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:2])} failed ({done.returncode}): {done.stderr}")
    return seconds


def fresh(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    abs_dir = path.with_name(path.name + "_abs")
    if abs_dir.exists():
        shutil.rmtree(abs_dir)
    return path


def values(out: Path) -> str:
    document = json.loads((out / "results.json").read_text())
    return json.dumps({name: {k: v for k, v in entry.items() if k not in RUN_FIELDS}
                       for name, entry in document["snapshots"].items()})


def reused(out: Path) -> dict:
    document = json.loads((out / "results.json").read_text())
    return {name: (entry["images_reused"], entry["images_computed"])
            for name, entry in document["snapshots"].items()}


def stored_units(store: Path) -> int:
    try:
        with sqlite3.connect(store) as db:
            return db.execute("SELECT COUNT(*) FROM units").fetchone()[0]
    except sqlite3.Error:  # not created yet
        return 0


def killed_then_rerun(work: Path, colors, depths, snapshots: Path, units: int) -> dict:
    """(d): SIGKILL once half the units are stored, then the rerun; passes counted."""
    out, passes = fresh(work / "out_killed"), work / "passes.log"
    passes.unlink(missing_ok=True)
    env = dict(os.environ, **{PASSES_ENV: str(passes)})
    args = command(colors, depths, out, snapshots, [], counting=True)
    victim = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=env)
    store = out / "results.sqlite"
    while stored_units(store) < units // 2:
        if victim.poll() is not None:
            raise SystemExit("the run to kill ended before half its units were stored")
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    at_kill = {"stored": stored_units(store), "passes": len(logged_passes(passes))}
    rerun_s = timed(args, env)
    every = logged_passes(passes)
    twice = sum(count - 1 for count in Counter(every).values() if count > 1)
    return {"at_kill": at_kill, "passes": len(every), "twice": twice,
            "units": stored_units(store), "rerun_s": rerun_s, "reused": reused(out)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=12, help="synthetic scenes M (default 12)")
    parser.add_argument("--snapshots", type=int, default=6, help="snapshots N (default 6)")
    parser.add_argument("--engine", choices=("opencv", "onnxruntime"), default="opencv")
    parser.add_argument("--repeats", type=int, default=3, help="timings of (a) and (b) each")
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "work" / "store")
    args = parser.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    colors, depths, names = make_workload(work, args.images, args.snapshots)
    old, new = names[:-1], names[-1:]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; engine {args.engine}")
    print(f"workload: full refining network (norm_abs, "
          f"{(work / 'models' / f'{new[0]}.caffemodel').stat().st_size / 2**20:.0f} MiB "
          f"caffemodels, distinct weights), N = {args.snapshots} snapshots, "
          f"M = {args.images} scenes 420x320")

    def extra(label: str) -> list[str]:  # a cache of its own: no run gains from another's
        return ["--engine", args.engine, "--cache-dir", str(fresh(work / f"cache_{label}"))]

    # (a) N - 1 snapshots, then the N-th added and the rerun timed.
    # One SNAPSHOTS_DIR, as a user's: the new snapshot appears beside the others.
    out, everything = fresh(work / "out"), snapshot_folder(work, "run", old)
    first_s = timed(command(colors, depths, out, everything, extra("first")))
    kept = {folder: work / f"kept_{folder.name}" for folder in (out, work / "out_abs")}
    for folder, copy in kept.items():  # the state before the rerun, to put back
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(folder, copy)
    for suffix in (".caffemodel", ".prototxt"):
        os.link(work / "models" / f"{new[0]}{suffix}", everything / f"{new[0]}{suffix}")
    alone_dir = snapshot_folder(work, "new", new)
    reruns, alones = [], []
    for _ in range(args.repeats):
        for folder, copy in kept.items():  # same paths: the store names pictures by path
            shutil.rmtree(folder)
            shutil.copytree(copy, folder)
        reruns.append(timed(command(colors, depths, out, everything, extra("rerun"))))
        # (b) the N-th alone.
        alones.append(timed(command(colors, depths, fresh(work / "out_alone"), alone_dir,
                                    extra("alone"))))
    counts = reused(out)
    rerun_s, alone_s = statistics.median(reruns), statistics.median(alones)
    # (c) all N fresh.
    full_out = fresh(work / "out_full")
    full_s = timed(command(colors, depths, full_out, everything, extra("full")))
    identical = values(out) == values(full_out)
    ratio = rerun_s / alone_s
    print(f"(a) {len(old)} snapshots: {first_s:.1f} s; rerun with {new[0]} added: median "
          f"{rerun_s:.1f} s of {', '.join(f'{t:.1f}' for t in reruns)} (reused/computed per "
          f"snapshot: {sorted(set(counts.values()))})")
    print(f"(b) {new[0]} alone: median {alone_s:.1f} s of "
          f"{', '.join(f'{t:.1f}' for t in alones)} -> ratio rerun/alone {ratio:.3f} "
          f"(target <= {TARGET_RATIO}: {'met' if ratio <= TARGET_RATIO else 'MISSED'}; "
          f"pairwise {', '.join(f'{r / a:.2f}' for r, a in zip(reruns, alones))})")
    print(f"(c) fresh full run of {len(names)} snapshots: {full_s:.1f} s; rerun's results.json "
          f"values {'identical' if identical else 'DIFFER'} (rerun/full {rerun_s / full_s:.3f})")
    # (d) killed with SIGKILL halfway, then rerun.
    units = len(names) * args.images
    killed = killed_then_rerun(work, colors, depths, everything, units)
    print(f"(d) SIGKILL at {killed['at_kill']['stored']}/{units} units stored "
          f"({killed['at_kill']['passes']} passes done); rerun {killed['rerun_s']:.1f} s; "
          f"forward passes in all {killed['passes']} for {killed['units']} units, "
          f"{killed['twice']} twice -> "
          f"{'passes = units' if killed['passes'] == killed['units'] == units else 'MISMATCH'}")
    if not identical or ratio > TARGET_RATIO or killed["passes"] != units:
        sys.exit(1)


if __name__ == "__main__":
    main()
