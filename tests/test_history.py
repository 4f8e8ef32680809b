"""depth-eval history: the table from a real store, the chart, the sub-command's checks."""

import argparse
import io
import math
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from depth_eval.commands import history as command
from depth_eval.console import Console
from depth_eval.errors import UsageError
from depth_eval.report.history import shown_runs
from depth_eval.store.database import ResultsStore, SnapshotRef, StoreError

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOTS = [SnapshotRef(f"refine_iter_{n}", f"{i}" * 64, "b" * 64)
             for i, n in enumerate((10000, 500, 2000))]
# Per snapshot, two images' RMSE / rmse; the 10000 snapshot has a NaN image in RMSE.
VALUES = {"refine_iter_500": [(0.9, 0.8), (0.7, 0.6)],
          "refine_iter_2000": [(0.6, 0.5), (0.4, 0.3)],
          "refine_iter_10000": [(0.5, 0.2), (math.nan, 0.4)]}


def key(snapshot, position):
    return f"{snapshot.caffemodel_sha256[:1] * 63}{position}"


def make_store(path: Path) -> Path:
    """Run 1 computes three snapshots, run 2 reuses two and adds `final`, run 3 is killed."""
    with ResultsStore.open(path) as store:
        first = store.begin_run({})
        for snapshot in SNAPSHOTS:
            for position, (thesis, standard) in enumerate(VALUES[snapshot.name]):
                store.put(key(snapshot, position), snapshot, f"img{position}",
                          {"RMSE": thesis, "rmse": standard}, task="evaluate",
                          run_id=first, position=position)
        store.finish_run(first, 0)
        second = store.begin_run({})
        for snapshot in SNAPSHOTS[1:]:
            store.record_reused(second, snapshot, [(p, f"img{p}", key(snapshot, p))
                                                   for p in range(2)])
        final = SnapshotRef("final", "f" * 64, "b" * 64)
        store.put("f" * 64, final, "img0", {"RMSE": 0.25, "rmse": 0.125}, task="evaluate",
                  run_id=second, position=0)
        store.finish_run(second, 1)
        third = store.begin_run({})
        store.record_reused(third, SNAPSHOTS[1], [(0, "img0", key(SNAPSHOTS[1], 0))])
    return path


def run_command(argv, capsys=None):
    parser = argparse.ArgumentParser(prog="depth-eval history")
    command.add_arguments(parser)
    settings = command.settings_from_args(parser.parse_args(argv))
    out, err = io.StringIO(), io.StringIO()
    status = command.run(settings, Console(out=out, err=err))
    return status, out.getvalue(), err.getvalue()


def test_table_orders_snapshots_by_iteration_with_one_column_per_run(tmp_path):
    store = make_store(tmp_path / "r.sqlite")
    status, out, _ = run_command(["--store", str(store), "RMSE"])
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == "RMSE (lower is better): 4 snapshots, 3 runs"
    assert lines[1].split() == ["snapshot", "iteration", "run", "1", "run", "2", "run", "3"]
    assert [line.split() for line in lines[2:6]] == [
        ["refine_iter_500", "500", "0.8000", "0.8000", "0.9000"],
        ["refine_iter_2000", "2000", "0.5000", "0.5000", "-"],
        ["refine_iter_10000", "10000", "0.5000", "-", "-"],  # over the image with an RMSE
        ["final", "-", "-", "0.2500", "-"],
    ]
    assert lines[6].startswith("run 1: started ") and "finished, exit status 0" in lines[6]
    assert "finished, exit status 1" in lines[7]
    assert "not finished (killed, or still running)" in lines[8] and len(lines) == 9


def test_standard_metric_skips_nan_images_and_last_limits_columns(tmp_path):
    store = make_store(tmp_path / "r.sqlite")
    _, out, _ = run_command(["--store", str(store), "rmse", "--last", "1"])
    lines = out.splitlines()
    assert lines[0] == ("rmse (lower is better): 1 snapshots, 1 runs "
                        "(the newest 1 of 3; --last 0 shows all)")
    assert [line.split() for line in lines[2:3]] == [["refine_iter_500", "500", "0.8000"]]
    with ResultsStore.open(store) as opened:
        rows = opened.history("rmse")
    assert [r.value for r in rows if r.snapshot == "refine_iter_10000"] == [0.30000000000000004]
    assert shown_runs(rows, 0) == [1, 2, 3] and shown_runs(rows, 2) == [2, 3]


def test_without_metric_every_metric_is_shown(tmp_path):
    store = make_store(tmp_path / "r.sqlite")
    _, out, _ = run_command(["--store", str(store)])
    titles = [line for line in out.splitlines() if "snapshots," in line]
    assert [t.split(" ")[0] for t in titles] == ["RMSE", "rmse"]


def test_plot_writes_a_png_chart(tmp_path):
    store = make_store(tmp_path / "r.sqlite")
    chart = tmp_path / "rmse.png"
    status, out, _ = run_command(["--store", str(store), "rmse", "--plot", str(chart)])
    assert status == 0 and f"chart: {chart}" in out
    data = chart.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    picture = cv2.imdecode(__import__("numpy").frombuffer(data, "uint8"), cv2.IMREAD_COLOR)
    assert picture.shape == (450, 800, 3)
    assert picture.std() > 10  # lines and text, not a blank canvas
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_plot_with_snapshots_without_iterations(tmp_path):
    from depth_eval.report.history import plot_history

    store = make_store(tmp_path / "r.sqlite")
    with ResultsStore.open(store) as opened:
        rows = opened.history("RMSE")
    plot_history(rows, "RMSE", tmp_path / "named.png", last=0)  # "final" has no _iter_N
    assert cv2.imread(str(tmp_path / "named.png")).shape == (450, 800, 3)
    numbered = [row for row in rows if row.iteration is not None]  # x axis: iterations
    plot_history(numbered, "RMSE", tmp_path / "numbered.png", last=0)
    assert cv2.imread(str(tmp_path / "numbered.png")).shape == (450, 800, 3)


def test_the_table_does_not_import_matplotlib(tmp_path):
    store = make_store(tmp_path / "r.sqlite")
    code = ("import sys, io\n"
            "from depth_eval.commands import history as h\n"
            "from depth_eval.console import Console\n"
            "s = h.HistorySettings(store=__import__('pathlib').Path(sys.argv[1]), metric='RMSE')\n"
            "assert h.run(s, Console(out=io.StringIO())) == 0\n"
            "print(sorted(m for m in ('matplotlib', 'cv2') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code, str(store)], capture_output=True,
                            text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("argv, message", [
    (["--store", "{tmp}/none.sqlite"], "no results store there"),
    (["--store", "{store}", "--last", "-1"], "--last must be 0"),
    (["--store", "{store}", "--plot", "{tmp}/x.png"], "--plot needs a METRIC"),
    (["--store", "{store}", "RMSE", "--plot", "{tmp}/x.jpg"], "ending in .png"),
    (["--store", "{store}", "RMSE", "--plot", "{tmp}/no/x.png"], "does not exist"),
])
def test_settings_are_checked(tmp_path, argv, message):
    store = make_store(tmp_path / "r.sqlite")
    argv = [a.format(tmp=tmp_path, store=store) for a in argv]
    with pytest.raises(UsageError, match=message):
        run_command(argv)


def test_unknown_metric_task_and_not_a_store(tmp_path):
    store = make_store(tmp_path / "r.sqlite")
    with pytest.raises(UsageError, match=r"no metric 'AbsRel'.*it holds: RMSE, rmse"):
        run_command(["--store", str(store), "AbsRel"])
    with pytest.raises(UsageError, match="holds no results for task 'nyu'"):
        run_command(["--store", str(store), "--task", "nyu"])
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"junk" * 1000)
    with pytest.raises(StoreError, match="not an SQLite database"):
        run_command(["--store", str(junk)])
    settings = command.HistorySettings(store=store)
    with pytest.raises(Exception):  # frozen
        settings.metric = "x"
    assert command.NAME == "history" and command.HELP
