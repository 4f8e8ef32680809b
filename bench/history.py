#!/usr/bin/env python3
"""Benchmark of ``depth-eval history`` on a store of many runs (a CI store after a year of jobs).

Builds a store of R runs over S snapshots of I images: the first run computes every unit, each
later run reuses them (as CI runs on unchanged snapshots do), with the thesis metrics and
``--align median``'s.  Then, side by side in this process:

(a) ``depth-eval history --store STORE RMSE`` as a user runs it (the 5 newest runs), and
    ``depth-eval history --store STORE`` (every metric);
(b) RMSE's table read the way history used to: every row of every run decoded (a unit as many
    times as runs reused it) and every run summarised, for each metric shown.

The figure is the ratio (b) / (a) for RMSE, medians of --repeats.

    python bench/history.py [--runs 10000] [--snapshots 3] [--images 12] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from depth_eval import cli  # noqa: E402
from depth_eval.store.database import ResultsStore, SnapshotRef  # noqa: E402
from depth_eval.store.keys import decode_metrics  # noqa: E402
from depth_eval.scoring.keys import MetricKey  # noqa: E402
from depth_eval.scoring.score import summarise  # noqa: E402

THESIS = ("AbsRelDiff", "SqrRelDiff", "RMSE", "RMSELog", "SIMSE", "Log10", "MVN",
          "Threshold 1.25", "Threshold 1.25^2", "Threshold 1.25^3")


def build(path: Path, runs: int, snapshots: int, images: int) -> None:
    rng = random.Random(0)
    refs = [SnapshotRef(f"net_iter_{1000 * (s + 1)}", f"{s:064x}", "f" * 64)
            for s in range(snapshots)]
    with ResultsStore.open(path) as store:
        first = store.begin_run({})
        for ref in refs:
            for image in range(images):
                metrics = {name: rng.random() for name in THESIS}
                metrics.update({f"median/{name}": rng.random() for name in THESIS})
                metrics["median/scale"] = 1.0 + rng.random()
                store.put(f"{ref.caffemodel_sha256[:60]}{image:04d}", ref, f"img{image}",
                          metrics, task="evaluate", run_id=first, position=image)
        store.finish_run(first, 0)
        # The later runs in one transaction: what record_reused writes, run by run.
        with store._write() as db:
            for run in range(runs - 1):
                run_id = db.execute("INSERT INTO runs (started, finished, exit_status, options, "
                                    "tool_version, numbers_version) VALUES "
                                    "('2026-01-01T00:00:00', '2026-01-01T00:01:00', 0, '{}', "
                                    "'bench', 1)").lastrowid
                db.executemany("INSERT INTO run_units VALUES (?, ?, ?, ?, ?, 1)", [
                    (run_id, ref.name, f"img{image}",
                     f"{ref.caffemodel_sha256[:60]}{image:04d}", image)
                    for ref in refs for image in range(images)])


def timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--snapshots", type=int, default=3)
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "results.sqlite"
        print(f"building {args.runs} runs x {args.snapshots} snapshots x {args.images} images")
        build(path, args.runs, args.snapshots, args.images)

        def history(*metric):
            def call():
                with contextlib.redirect_stdout(io.StringIO()):
                    assert cli.main(["history", "--store", str(path), *metric]) == 0
            return call

        def before():
            with ResultsStore.open(path, readonly=True) as store:
                groups: dict = {}
                for run_id, name, text in store._read(
                        "SELECT r.run_id, r.snapshot, u.metrics FROM run_units r JOIN units u "
                        "ON u.key = r.key ORDER BY r.run_id, r.snapshot, r.position"):
                    groups.setdefault((run_id, name), []).append(
                        {MetricKey.parse(k): v for k, v in decode_metrics(text).items()})
                for images in groups.values():
                    summarise(images).get(MetricKey.parse("RMSE"))

        one, every, old = [], [], []
        for _ in range(args.repeats):
            one.append(timed(history("RMSE")))
            every.append(timed(history()))
            old.append(timed(before))
        a, b = statistics.median(one), statistics.median(old)
        print(f"(a) history RMSE:         {a:.2f} s; every metric: "
              f"{statistics.median(every):.2f} s (medians of {args.repeats})")
        print(f"(b) RMSE the former way:  {b:.2f} s")
        print(f"ratio (b) / (a) for RMSE: {b / a:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
