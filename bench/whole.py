#!/usr/bin/env python3
"""Benchmark of the whole job: a fresh ``test_depth.py`` process per run, as CI runs it.

Makes the workload of bench/run.py (the thesis' full refining network with random weights, a
287 MB caffemodel, and synthetic 420 x 320 scenes), then measures in one run, for each engine:

- the whole process at 4, 16 and 120 images (fresh OUT_DIR each time; min of --repeats), its
  peak RSS (the child's VmHWM) and CPU time; onnxruntime both cold (nothing cached) and warm;
- the marginal cost per image (from the 16 vs 120 and the 4 vs 16 differences) against the
  sgemm floor (numpy's float32 matrix product, measured here, x 20.4 GFLOP per image);
- the fixed cost broken down (``DEPTH_EVAL_TIMINGS=1``: start-up, settings (with the imports a
  run needs), hash, model read, translate, optimise, session, first forward (inside the image
  loop); the rest is the results store, results.json, the printout and the exit);
- the image loop against the bare forward pass (the engine alone over preprocessed inputs);
- ``depth-eval --help`` and the largest imports of a run (``python -X importtime``);
- OpenCV's own copies of the weights (RSS after reading the model and after a first pass);
- the original on real Caffe, when ``CAFFE_PYTHONPATH`` names a pycaffe build and
  ``ORIGINAL_SCRIPTS`` a folder with the thesis' test_depth.py + eval_depth.py
  (/work/shared/tools/README.md); otherwise no ratio to the original is printed.

Every run has a fresh OUT_DIR (so a fresh results store in it: every file is hashed, nothing
reused) and ``--cache-dir``: an empty folder for the cold runs, the folder a cold run filled for
the warm ones (the user's own cache is never touched).  Figures are compared as ratios of
this one run; a run during which other processes kept more than 0.1 core busy is repeated.

    python bench/whole.py [--images 4 16 120] [--repeats 3] [--engine both]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(BENCH), str(REPO)]

from run import GFLOP_PER_IMAGE, bare_forward, make_workload  # noqa: E402

ORIGINAL_SHIM = "/work/shared/tools/orig_shim.py"
# The whole process on 16 images against the original, measured side by side (the targets).
SPEED_UP_TARGET = {"onnxruntime": 6.5, "opencv": 3.5}
PHASES = ("start-up", "settings", "hash", "model read", "translate", "optimise", "session",
          "first forward", "image loop")


# -- measuring one process -------------------------------------------------------------------

def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores, /proc/stat)."""
    with open("/proc/stat") as stat:
        ticks = [int(v) for v in stat.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def others(function):
    """``function()`` and the cores other processes kept busy meanwhile (noise on a shared
    machine: a figure measured with others at work is slower than this code is)."""
    busy, own, started = busy_seconds(), sum(os.times()[:4]), time.perf_counter()
    result = function()
    wall = time.perf_counter() - started
    return result, max(0.0, (busy_seconds() - busy) - (sum(os.times()[:4]) - own)) / wall


def measure(command: list[str], env: dict | None = None, cwd: Path | None = None) -> dict:
    """Wall and CPU seconds, peak RSS (MiB), stderr and the other processes' load (cores) of
    one process."""
    busy, own = busy_seconds(), sum(os.times()[:2])
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env=env, cwd=cwd)
    peak, status, usage = 0.0, None, None
    while status is None:
        peak = max(peak, _hwm(process.pid))
        pid, code, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            status = os.waitstatus_to_exitcode(code)
        else:
            time.sleep(0.01)
    seconds = time.perf_counter() - started
    stderr = process.stderr.read().decode(errors="replace")
    process.stderr.close()
    process.returncode = status
    if status != 0:
        raise SystemExit(f"{' '.join(command[:3])}... failed ({status}):\n{stderr[-2000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    foreign = (busy_seconds() - busy) - cpu - (sum(os.times()[:2]) - own)
    return {"wall": seconds, "cpu": cpu, "rss": peak, "stderr": stderr,
            "others": max(0.0, foreign) / seconds}


def _hwm(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def phases(stderr: str) -> dict[str, float]:
    line = next((l for l in stderr.splitlines() if l.startswith("timings: ")), "")
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r"([a-z][a-z -]*?) (\d+\.\d+) s", line[len("timings: "):])}


# -- the workload ----------------------------------------------------------------------------

def image_set(work: Path, colors: Path, depths: Path, count: int) -> tuple[Path, Path]:
    """The first ``count`` scenes as their own folders (hard links)."""
    root = work / "sets" / str(count)
    pairs = sorted(colors.glob("*_colors.png"))[:count]
    for folder, sources in ((root / "colors", pairs),
                            (root / "depths", [depths / p.name.replace("_colors", "_depth")
                                               for p in pairs])):
        if folder.is_dir() and len(list(folder.iterdir())) == count:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for source in sources:
            os.link(source, folder / source.name)
    return root / "colors", root / "depths"


def fresh(folder: Path) -> Path:
    """``folder``, emptied (made if missing), and its ``_abs`` sibling (test_depth.py's raw maps,
    which the original also writes) removed."""
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(folder.with_name(folder.name + "_abs"), ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def cli_run(engine: str, colors: Path, depths: Path, snaps: Path, out: Path,
            cache: Path) -> dict:
    """One ``test_depth.py`` process (fresh ``out``), with its DEPTH_EVAL_TIMINGS phases."""
    command = [sys.executable, str(REPO / "test_depth.py"), str(colors), str(depths),
               str(fresh(out)), str(snaps), "--quiet", "--engine", engine, "--cache-dir",
               str(cache)]
    env = {**os.environ, "DEPTH_EVAL_TIMINGS": "1", "PYTHONPATH": str(REPO)}
    result = measure(command, env)
    result["phases"] = phases(result["stderr"])
    document = json.loads((out / "results.json").read_text())
    result["loop"] = sum(e["seconds"] for e in document["snapshots"].values())
    return result


# Runs during which other processes kept more than this many cores busy are noise.
QUIET_CORES = 0.1


def quietest(runs: list[dict]) -> dict:
    """The fastest run among those the other processes left alone (else the fastest)."""
    quiet = [r for r in runs if r["others"] <= QUIET_CORES]
    return min(quiet or runs, key=lambda r: r["wall"])


def quiet_or_all(runs: list[dict]) -> list[dict]:
    return [r for r in runs if r["others"] <= QUIET_CORES] or runs


def repeat_quietly(function, repeats: int, extra: int) -> list[dict]:
    """``function()`` (a dict with ``others``) ``repeats`` times, and up to ``extra`` more times
    while fewer than ``repeats`` of them ran on a quiet machine."""
    runs = [function() for _ in range(repeats)]
    while extra > 0 and sum(r["others"] <= QUIET_CORES for r in runs) < repeats:
        runs.append(function())
        extra -= 1
    return runs


def sgemm_gflops(size: int = 2048, repeats: int = 5) -> dict:
    """numpy's float32 matrix product, GFLOP/s (best of ``repeats``), all cores."""
    a = np.random.default_rng(0).random((size, size), dtype=np.float32)
    b = np.random.default_rng(1).random((size, size), dtype=np.float32)
    a @ b
    best, load = others(lambda: min(_timed(lambda: a @ b) for _ in range(repeats)))
    return {"gflops": 2 * size ** 3 / best / 1e9, "others": load}


def _timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


# -- the other measurements ------------------------------------------------------------------

def help_seconds(repeats: int) -> float:
    script = shutil.which("depth-eval", path=str(Path(sys.executable).parent))
    command = [script, "--help"] if script else [sys.executable, "-m", "depth_eval.cli", "--help"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return min(measure(command, env)["wall"] for _ in range(repeats))


def import_times(engine: str, colors, depths, snaps, out, cache) -> list[tuple[float, str]]:
    """The largest top-level imports of one run, (seconds, module)."""
    command = [sys.executable, "-X", "importtime", str(REPO / "test_depth.py"), str(colors),
               str(depths), str(fresh(out)), str(snaps), "--quiet", "--engine", engine,
               "--cache-dir", str(cache)]
    stderr = measure(command, {**os.environ, "PYTHONPATH": str(REPO)})["stderr"]
    top = []
    for line in stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\S.*)$", line)
        if match:  # no indentation: imported by the program itself
            top.append((int(match.group(1)) / 1e6, match.group(2)))
    return sorted(top, reverse=True)


OPENCV_COPIES = """
import sys, cv2, numpy as np
def rss():
    return [int(l.split()[1]) // 1024 for l in open('/proc/self/status') if l.startswith('VmRSS')][0]
before = rss()
net = cv2.dnn.readNetFromCaffe(sys.argv[1], sys.argv[2])
read = rss()
net.setInput(np.zeros((1, 3, 218, 298), np.float32))
net.forward()
print(before, read, rss())
"""


def opencv_copies(snaps: Path) -> tuple[int, int, int]:
    """RSS (MiB) of a bare Python: before, after readNetFromCaffe, after a first forward."""
    model = sorted(snaps.glob("*.caffemodel"))[0]
    done = subprocess.run([sys.executable, "-c", OPENCV_COPIES, str(model.with_suffix(".prototxt")),
                           str(model)], capture_output=True, text=True, check=True)
    return tuple(int(v) for v in done.stdout.split())


def original_available() -> bool:
    return bool(os.environ.get("CAFFE_PYTHONPATH") and os.environ.get("ORIGINAL_SCRIPTS")
                and Path(os.environ.get("ORIGINAL_SHIM", ORIGINAL_SHIM)).is_file())


def original_run(colors: Path, depths: Path, snaps: Path, out: Path) -> dict:
    """The thesis' own test_depth.py on real Caffe (CAFFE_PYTHONPATH: pycaffe; ORIGINAL_SCRIPTS:
    the folder with its test_depth.py and eval_depth.py), through the shared shim."""
    env = {**os.environ, "PYTHONPATH": os.environ["CAFFE_PYTHONPATH"],
           "ORIG_SCRIPT": "test_depth.py",
           "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "Cooperlake")}
    shim = os.environ.get("ORIGINAL_SHIM", ORIGINAL_SHIM)
    return measure(["/usr/bin/python3", shim, str(colors), str(depths), str(fresh(out)),
                    str(snaps)], env, cwd=Path(os.environ["ORIGINAL_SCRIPTS"]))


# -- the report ------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, nargs="+", default=[4, 16, 120])
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (the min)")
    parser.add_argument("--engine", choices=("opencv", "onnxruntime", "both"), default="both")
    parser.add_argument("--work", type=Path, default=BENCH / "work")
    args = parser.parse_args()
    engines = ["opencv", "onnxruntime"] if args.engine == "both" else [args.engine]
    counts = sorted(args.images)
    colors, depths, snaps = make_workload(args.work, max(counts), 1)
    model_mib = sorted(snaps.glob("*.caffemodel"))[0].stat().st_size / 2 ** 20
    sets = {n: image_set(args.work, colors, depths, n) for n in counts}
    gflops = max((r["gflops"] for r in quiet_or_all(repeat_quietly(sgemm_gflops, 3, 10))))
    floor = GFLOP_PER_IMAGE / gflops
    print(f"{os.cpu_count()} cores; model {model_mib:.0f} MiB; sgemm {gflops:.0f} GFLOP/s -> "
          f"floor {floor * 1000:.1f} ms/image (20.4 GFLOP)", flush=True)
    cache, out = args.work / "whole_cache", args.work / "out_whole"
    report: dict = {"sgemm_gflops": gflops, "floor_s": floor, "model_mib": model_mib}
    for engine in engines:
        def one_bare():
            seconds, load = others(lambda: bare_forward(engine, snaps, sets[counts[0]][0], 2)[0])
            return {"seconds": seconds, "others": load}

        bare = min(r["seconds"] for r in quiet_or_all(
            repeat_quietly(one_bare, args.repeats, 3 * args.repeats)))
        rows = {}
        if engine == "onnxruntime":  # cold: an empty cache; the last one is the warm cache
            small = 16 if 16 in sets else counts[0]
            rows["cold"] = quietest(repeat_quietly(
                lambda: cli_run(engine, *sets[small], snaps, out, fresh(cache)),
                args.repeats, args.repeats))
        for n in counts:
            runs = repeat_quietly(lambda: cli_run(engine, *sets[n], snaps, out, cache),
                                  args.repeats, 2 * args.repeats)
            rows[n] = quietest(runs)
            rows[n]["rss"] = max(r["rss"] for r in runs)
        report[engine] = summarise(engine, rows, counts, bare, floor, model_mib)
    report["help_s"] = help_seconds(5)
    print(f"depth-eval --help: {report['help_s']:.3f} s (min of 5)")
    for engine in engines:
        top = import_times(engine, *sets[counts[0]], snaps, out, cache)
        print(f"imports of a warm run, {engine}: "
              + ", ".join(f"{m} {s * 1000:.0f} ms" for s, m in top[:8]))
    if "opencv" in engines:
        before, read, forward = opencv_copies(snaps)
        print(f"OpenCV's own copies of the weights (bare Python): +{read - before} MiB after "
              f"readNetFromCaffe, +{forward - before} MiB after the first forward pass "
              f"(model {model_mib:.0f} MiB)")
    original, original_cpu = None, None
    if original_available() and 16 in sets:
        runs = {n: quietest(repeat_quietly(lambda: original_run(*sets[n], snaps, out),
                                           args.repeats, args.repeats))
                for n in (4, 16) if n in sets}
        original = runs[16]["wall"]
        original_cpu = runs[16]["cpu"]
        marginal = (runs[16]["wall"] - runs[4]["wall"]) / 12 if 4 in runs else float("nan")
        print(f"original on Caffe (this run): 16 images {original:.2f} s ({original_cpu:.2f} s "
              f"of CPU, others' load {runs[16]['others']:.2f} cores), peak RSS "
              f"{runs[16]['rss']:.0f} MiB, marginal per image {marginal:.3f} s")
    else:
        print("original on Caffe: no build (CAFFE_PYTHONPATH, ORIGINAL_SCRIPTS): no ratio to it "
              "(a figure of another run or machine is no baseline)")
        return
    for engine in engines:
        key = "warm 16" if engine == "onnxruntime" else "16"
        whole = report[engine].get(key)
        if whole:
            print(f"{engine}, 16 images: {whole:.2f} s = {original / whole:.1f}x faster than the "
                  f"original's {original:.1f} s (target: >= {SPEED_UP_TARGET[engine]}x)")
        cpu = report[engine].get(f"{key} cpu")
        if cpu and original_cpu:  # CPU seconds move less than wall time on a loaded machine
            print(f"{engine}, 16 images: {cpu:.2f} s of CPU = {original_cpu / cpu:.1f}x less "
                  f"than the original's {original_cpu:.2f} s")


def concurrent_passes(engine: str) -> int:
    """How many forward passes the CLI runs at once with ``engine`` (its own rule)."""
    if engine == "onnxruntime":
        from depth_eval.engines.onnx_runtime import cpu_plan

        return cpu_plan()[1]
    return 1


def summarise(engine: str, rows: dict, counts: list[int], bare: float, floor: float,
              model_mib: float) -> dict:
    label = "warm " if engine == "onnxruntime" else ""
    print(f"\n{engine}: bare forward {bare * 1000:.1f} ms/image "
          f"({bare / floor:.2f}x the sgemm floor)")
    print("| run | images | whole s | CPU s | others' cores | peak RSS MiB |"
          " image loop ms/img (x bare) | fixed breakdown (s) |")
    print("|---|---|---|---|---|---|---|---|")
    out = {}
    for name, row in rows.items():
        n = 16 if name == "cold" else name
        ph = row["phases"]
        rest = row["wall"] - sum(ph.get(p, 0.0) for p in PHASES if p != "first forward")
        breakdown = ", ".join(f"{p} {ph[p]:.2f}" for p in PHASES if p in ph and p != "image loop")
        print(f"| {'cold' if name == 'cold' else label + 'cache' if label else 'fresh'} | {n} | "
              f"{row['wall']:.2f} | {row['cpu']:.2f} | {row['others']:.2f} | {row['rss']:.0f} | "
              f"{row['loop'] / n * 1000:.1f} ({row['loop'] / n / bare:.3f}) | {breakdown}, "
              f"rest (store, results, exit) {rest:.2f} |")
        out[f"{label}{name}" if name != "cold" else "cold 16"] = row["wall"]
        out[f"{label}{name} cpu" if name != "cold" else "cold 16 cpu"] = row["cpu"]
    for name, row in rows.items():
        n = 16 if name == "cold" else name
        first = row["phases"].get("first forward")
        if first and n > 1:
            # One pass lasts (image loop / images) x the passes running at once.
            one_pass = row["loop"] / n * concurrent_passes(engine)
            print(f"first forward pass ({name}): {first * 1000:.0f} ms = {first / one_pass:.2f}x "
                  f"a pass of the image loop ({one_pass * 1000:.0f} ms)")
    for small, large in zip(counts, counts[1:]):
        marginal = (rows[large]["wall"] - rows[small]["wall"]) / (large - small)
        fixed = rows[large]["wall"] - large * marginal
        print(f"marginal per image ({small} -> {large}): {marginal * 1000:.1f} ms = "
              f"{marginal / floor:.2f}x the sgemm floor, {marginal / bare:.2f}x the bare "
              f"forward; fixed cost {fixed:.2f} s")
    limit = 2 * model_mib + 200
    peak = max(row["rss"] for row in rows.values())
    print(f"peak RSS {peak:.0f} MiB; 2 x model + 200 = {limit:.0f} MiB "
          f"({'within' if peak <= limit else 'over'})")
    return out


if __name__ == "__main__":
    main()
