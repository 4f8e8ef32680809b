"""The results store wired into the run: only missing units are computed, results identical to
a fresh full run, resumable after SIGKILL, two runs at once on one store."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from counting_engine import ENGINE_NAME, PASSES_ENV, SLOW_ENV, CountingEngine, logged_passes
from depth_eval import cli, engines
from depth_eval.engines.base import Engine
from depth_eval.store.database import ResultsStore
from helpers import GLOBAL, GOLDEN_E2E, GOOD, evaluate, make_workspace, results

ENGINE = ("--engine", ENGINE_NAME)
# Three scenes x the two golden snapshots: six units.
STEMS3 = ("00000", "00001", "gray00000")
SCRIPT = Path(__file__).with_name("counting_engine.py")
# Fields of a snapshot's results.json entry that say how this run got its values, not what
# they are (the values must be those of a fresh full run).
RUN_FIELDS = ("seconds", "images_reused", "images_computed")


@pytest.fixture
def counting(monkeypatch):
    monkeypatch.setitem(engines.ENGINES, ENGINE_NAME, "counting_engine:CountingEngine")
    CountingEngine.reset()
    return CountingEngine


def add_golden_snapshot(workspace: Path, name: str) -> None:
    for suffix in (".prototxt", ".caffemodel"):
        target = workspace / "snapshots" / f"{name}{suffix}"
        shutil.copy(GOLDEN_E2E / "snapshots" / f"{name}{suffix}", target)
        target.chmod(0o644)


def values(document: dict) -> dict:
    """What must not depend on reuse: every snapshot entry without the run's own fields."""
    return {name: {k: v for k, v in entry.items() if k not in RUN_FIELDS}
            for name, entry in document["snapshots"].items()}


def same_values(first: dict, second: dict) -> None:
    """Equal values, NaN included, metrics and images in the same order."""
    assert json.dumps(values(first)) == json.dumps(values(second))


def counts(document: dict) -> dict:
    return {name: (entry["images_reused"], entry["images_computed"])
            for name, entry in document["snapshots"].items()}


def units_in(store_path: Path) -> list[tuple]:
    with sqlite3.connect(store_path) as db:
        return db.execute("SELECT key, snapshot, image FROM units").fetchall()


def fresh_full_run(workspace: Path, *options) -> dict:
    """The reference: every unit computed, into its own OUT_DIR and store."""
    assert evaluate(workspace, "--quiet", *ENGINE, *options, out="fresh") in (0, 1)
    return results(workspace, "fresh")


# --------------------------------------------------------------------------------------------
# In this process
# --------------------------------------------------------------------------------------------

def test_a_rerun_computes_only_the_new_snapshot_and_matches_a_fresh_run(workspace, counting):
    assert evaluate(workspace, "--quiet", *ENGINE) == 0
    assert len(counting.passes) == 2 and (workspace / "out" / "results.sqlite").is_file()
    assert counts(results(workspace)) == {GOOD: (0, 2)}
    add_golden_snapshot(workspace, GLOBAL)
    counting.reset()
    assert evaluate(workspace, "--quiet", *ENGINE) == 0
    assert {line.split()[0] for line in counting.passes} == {GLOBAL}
    assert len(counting.passes) == 2 and counting.loads == 1
    rerun = results(workspace)
    assert counts(rerun) == {GOOD: (2, 0), GLOBAL: (0, 2)}
    fresh = fresh_full_run(workspace)
    same_values(rerun, fresh)
    assert (workspace / "out" / "results.csv").read_bytes() == \
        (workspace / "fresh" / "results.csv").read_bytes()
    # Everything stored and on disk: no network is even loaded, the values stay the same.
    counting.reset()
    assert evaluate(workspace, "--quiet", *ENGINE) == 0
    assert counting.passes == [] and counting.loads == 0
    assert counts(results(workspace)) == {GOOD: (2, 0), GLOBAL: (2, 0)}
    same_values(results(workspace), fresh)
    with ResultsStore.open(workspace / "out" / "results.sqlite") as store:
        assert [run["exit_status"] for run in store.runs()] == [0, 0, 0]
        assert store.reused_counts(3) == {GOOD: {"reused": 2, "computed": 0},
                                          GLOBAL: {"reused": 2, "computed": 0}}
        history = store.history("RMSE")
        good = [row.value for row in history if row.snapshot == GOOD]
        assert len(good) == 3 and len(set(good)) == 1  # one value, three runs
        assert good[0] == fresh["snapshots"][GOOD]["metrics"]["RMSE"]


@pytest.mark.snapshots(GOOD, GLOBAL)
def test_a_missing_picture_recomputes_that_unit_only(workspace, counting):
    assert evaluate(workspace, "--quiet", *ENGINE) == 0
    picture = workspace / "out_abs" / GLOBAL / "gray00000_depth.png"
    before = picture.read_bytes()
    picture.unlink()
    counting.reset()
    assert evaluate(workspace, "--quiet", *ENGINE) == 0
    assert len(counting.passes) == 1 and counting.passes[0].startswith(GLOBAL)
    assert picture.read_bytes() == before
    assert counts(results(workspace)) == {GOOD: (2, 0), GLOBAL: (1, 1)}
    assert len(units_in(workspace / "out" / "results.sqlite")) == 4


@pytest.mark.snapshots(GOOD, GLOBAL)
def test_recompute_computes_every_unit_and_replaces_none_twice(workspace, counting):
    assert evaluate(workspace, "--quiet", *ENGINE) == 0
    first = results(workspace)
    counting.reset()
    assert evaluate(workspace, "--quiet", *ENGINE, "--recompute") == 0
    assert len(counting.passes) == 4
    assert counts(results(workspace)) == {GOOD: (0, 2), GLOBAL: (0, 2)}
    same_values(results(workspace), first)
    assert len(units_in(workspace / "out" / "results.sqlite")) == 4


def test_jobs_change_no_number_and_batch_or_log_are_in_the_key(workspace, counting):
    assert evaluate(workspace, "--quiet", *ENGINE, "--jobs", "1") == 0
    one_thread = results(workspace)
    # Three threads, computed afresh elsewhere: bit-identical values ...
    assert evaluate(workspace, "--quiet", *ENGINE, "--jobs", "3", out="threads") == 0
    same_values(results(workspace, "threads"), one_thread)
    # ... so --jobs is not in the key: a rerun with other --jobs reuses everything.
    counting.reset()
    assert evaluate(workspace, "--quiet", *ENGINE, "--jobs", "3") == 0
    assert counting.passes == [] and counts(results(workspace)) == {GOOD: (2, 0)}
    # The same weights copied over the snapshot (a new inode and ctime): read again, same key.
    weights = workspace / "snapshots" / f"{GOOD}.caffemodel"
    shutil.copy(GOLDEN_E2E / "snapshots" / f"{GOOD}.caffemodel", weights)
    assert evaluate(workspace, "--quiet", *ENGINE) == 0
    assert counting.passes == []
    # --batch may change the last bits (onnxruntime), --log every number: both miss.
    for option in (("--batch", "2"), ("--log",)):
        counting.reset()
        assert evaluate(workspace, "--quiet", *ENGINE, *option) == 0
        assert len(counting.passes) == 2 and counts(results(workspace)) == {GOOD: (0, 2)}
    # The plain units are stored, but their pictures now show the --log numbers: computed.
    counting.reset()
    assert evaluate(workspace, "--quiet", *ENGINE) == 0
    assert len(counting.passes) == 2
    same_values(results(workspace), one_thread)


@pytest.mark.snapshots(GOOD, GLOBAL)
def test_gate_and_best_are_the_same_on_reused_results(workspace, counting, capsys):
    assert evaluate(workspace, "--quiet", *ENGINE, out="base") == 0
    document = results(workspace, "base")
    document["snapshots"][GOOD]["metrics"]["RMSE"] -= 0.1  # the baseline was better
    baseline = workspace / "baseline.json"
    baseline.write_text(json.dumps(document))
    gate = ("--baseline", str(baseline), "--fail-if", "RMSE>+0.01", "--best", "RMSE")
    capsys.readouterr()
    assert evaluate(workspace, "--quiet", *ENGINE, *gate) == 3
    computed = capsys.readouterr()
    counting.reset()
    assert evaluate(workspace, "--quiet", *ENGINE, *gate) == 3
    reused = capsys.readouterr()
    assert counting.passes == [] and counts(results(workspace))[GOOD] == (2, 0)
    assert reused.out == computed.out and reused.err == computed.err
    assert reused.out.splitlines()[-1] in (GOOD, GLOBAL)
    assert "gate: snapshot" in reused.err


def test_failed_images_are_not_units_and_are_tried_again(workspace, counting):
    (workspace / "colors" / "broken_colors.png").write_bytes(b"not a png")
    shutil.copy(workspace / "depths" / "00000_depth.png", workspace / "depths" / "broken_depth.png")
    assert evaluate(workspace, "--quiet", *ENGINE) == 1
    assert {image for _, _, image in units_in(workspace / "out" / "results.sqlite")} == \
        {"00000_colors", "gray00000_colors"}
    counting.reset()
    assert evaluate(workspace, "--quiet", *ENGINE) == 1  # the same outcome, nothing recomputed
    assert counting.passes == []
    entry = results(workspace)["snapshots"][GOOD]
    assert list(entry["images_skipped"]) == ["broken_colors.png"]
    assert (entry["images_reused"], entry["images_computed"]) == (2, 0)


def test_figures_recompute_the_drawn_images_only(workspace, counting):
    assert evaluate(workspace, "--quiet", *ENGINE) == 0
    counting.reset()
    assert evaluate(workspace, "--quiet", *ENGINE, "--figures", "--figures-max", "1") == 0
    assert len(counting.passes) == 1  # the one drawn image needs its prediction
    assert (workspace / "out" / "figures" / "00000_colors.png").is_file()
    assert counts(results(workspace)) == {GOOD: (1, 1)}


def test_store_option_predict_and_a_foreign_file(workspace, counting, capsys):
    elsewhere = workspace / "ci-store" / "units.sqlite"
    # The store is made in an existing folder only (no folder beyond OUT_DIR's is made).
    assert evaluate(workspace, "--quiet", *ENGINE, "--store", str(elsewhere)) == 2
    assert "ci-store does not exist" in capsys.readouterr().err
    assert not elsewhere.parent.exists()
    elsewhere.parent.mkdir()
    assert evaluate(workspace, "--quiet", *ENGINE, "--store", str(elsewhere)) == 0
    assert elsewhere.is_file() and not (workspace / "out" / "results.sqlite").exists()
    # Another OUT_DIR, same store: the values are there but not the pictures, so the units
    # are computed again (the pictures are part of a unit).
    counting.reset()
    assert evaluate(workspace, "--quiet", *ENGINE, "--store", str(elsewhere), out="o2") == 0
    assert len(counting.passes) == 2
    # predict has no numbers: no store.
    assert cli.main(["predict", str(workspace / "colors"), str(workspace / "pred"),
                     str(workspace / "snapshots"), "--quiet"]) == 0
    assert not (workspace / "pred" / "results.sqlite").exists()
    # A file that is not a store is refused in one line and left alone.
    foreign = workspace / "notes.sqlite"
    foreign.write_text("my notes")
    capsys.readouterr()
    assert evaluate(workspace, "--quiet", "--store", str(foreign)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {foreign}: not an SQLite database") and err.count("\n") == 1
    assert foreign.read_text() == "my notes"


def test_the_onnxruntime_translation_lives_in_the_user_cache_and_is_not_hashed_again(
        workspace, user_cache, monkeypatch, tmp_path):
    pytest.importorskip("onnxruntime")
    assert evaluate(workspace, "--quiet", "--engine", "onnxruntime") == 0
    assert len(list(user_cache.glob("*.onnx"))) == 2  # the translation, its optimised graph

    def hashed_again(self):
        raise AssertionError("the caffemodel was hashed again")

    monkeypatch.setattr(Engine, "hash_weights", hashed_again)
    # --recompute loads the network: the cached translation, found with the run's own hash.
    assert evaluate(workspace, "--quiet", "--engine", "onnxruntime", "--recompute") == 0
    # --cache-dir: another folder.
    other = tmp_path / "my-cache"
    assert evaluate(workspace, "--quiet", "--engine", "onnxruntime", "--cache-dir", str(other),
                    out="o2") == 0
    assert len(list(other.glob("*.onnx"))) == 2


def test_ctrl_c_is_recorded_and_the_units_finished_before_it_are_kept(workspace, counting,
                                                                      monkeypatch):
    forward = CountingEngine.forward

    def interrupted_on_the_second_pass(self, batch):
        if CountingEngine.passes:
            raise KeyboardInterrupt
        return forward(self, batch)

    monkeypatch.setattr(CountingEngine, "forward", interrupted_on_the_second_pass)
    assert evaluate(workspace, "--quiet", *ENGINE) == 130
    store_path = workspace / "out" / "results.sqlite"
    assert [image for _, _, image in units_in(store_path)] == ["00000_colors"]
    with ResultsStore.open(store_path) as store:
        (run,) = store.runs()
        assert run["exit_status"] == 130 and run["finished"] is not None
    monkeypatch.setattr(CountingEngine, "forward", forward)
    counting.reset()
    assert evaluate(workspace, "--quiet", *ENGINE) == 0
    assert len(counting.passes) == 1 and counts(results(workspace)) == {GOOD: (1, 1)}


# --------------------------------------------------------------------------------------------
# Killed and concurrent runs (subprocesses)
# --------------------------------------------------------------------------------------------

def start(workspace: Path, passes: Path, slow_s: float = 0.0, out="out") -> subprocess.Popen:
    env = dict(os.environ, **{PASSES_ENV: str(passes), SLOW_ENV: str(slow_s)})
    args = [sys.executable, str(SCRIPT), str(workspace / "colors"), str(workspace / "depths"),
            str(workspace / out), str(workspace / "snapshots"), "--quiet", *ENGINE]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_for_units(store_path: Path, count: int, process: subprocess.Popen,
                   timeout_s: float = 60.0) -> None:
    """Poll the store (as another reader would) until it holds ``count`` units."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        if store_path.is_file():
            try:
                if len(units_in(store_path)) >= count:
                    return
            except sqlite3.OperationalError:  # being created
                pass
        time.sleep(0.02)
    raise AssertionError(f"the store did not reach {count} units in {timeout_s} s")


def test_a_run_killed_with_sigkill_resumes_and_no_unit_is_computed_twice(tmp_path):
    workspace = make_workspace(tmp_path, (GOOD, GLOBAL), STEMS3)
    store_path, passes = workspace / "out" / "results.sqlite", tmp_path / "passes.log"
    # Slow passes (0.8 s): the kill lands while the second snapshot's first pass runs.
    victim = start(workspace, passes, slow_s=0.8)
    wait_for_units(store_path, 3, victim)  # the first snapshot is committed
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(30) == -signal.SIGKILL
    killed = logged_passes(passes)
    assert len(killed) == 3 and len(units_in(store_path)) == 3
    rerun = start(workspace, passes)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    every = logged_passes(passes)
    assert len(every) == 6 == len(set(every))  # forward passes = units, none twice
    assert len(units_in(store_path)) == 6
    document = results(workspace)
    assert counts(document) == {GLOBAL: (0, 3), GOOD: (3, 0)} or \
        counts(document) == {GOOD: (0, 3), GLOBAL: (3, 0)}
    with ResultsStore.open(store_path) as store:
        assert store.integrity_check() == "ok"
        killed_run, resumed = store.runs()
        assert killed_run["finished"] is None and resumed["exit_status"] == 0
    fresh = start(workspace, tmp_path / "fresh.log", out="fresh")  # its own store
    assert fresh.wait(120) == 0
    same_values(document, results(workspace, "fresh"))


def test_two_runs_at_once_on_one_store(tmp_path):
    workspace = make_workspace(tmp_path, (GOOD, GLOBAL), STEMS3)
    store_path, passes = workspace / "out" / "results.sqlite", tmp_path / "passes.log"
    first = start(workspace, passes, slow_s=0.3)
    wait_for_units(store_path, 3, first)
    second = start(workspace, passes, slow_s=0.3)  # while the first is on its second snapshot
    for process in (first, second):
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    keys = [key for key, _, _ in units_in(store_path)]
    assert len(keys) == 6 == len(set(keys))  # every unit once
    with ResultsStore.open(store_path) as store:
        assert store.integrity_check() == "ok"
        runs = store.runs()
        assert [run["exit_status"] for run in runs] == [0, 0]
        # The second run reused what the first had finished.
        second_counts = store.reused_counts(runs[1]["id"])
        assert any(entry == {"reused": 3, "computed": 0} for entry in second_counts.values())
    fresh = start(workspace, tmp_path / "fresh.log", out="fresh")
    assert fresh.wait(120) == 0
    same_values(results(workspace), results(workspace, "fresh"))



def test_a_store_another_run_is_writing_is_waited_for(tmp_path):
    """Two runs starting together: while one holds the store's write lock (upgrading it,
    committing), the other's open waits for it instead of failing."""
    path = tmp_path / "new.sqlite"
    ResultsStore.open(path).close()
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # as a run committing a unit holds it
    releaser = threading.Timer(0.3, other.execute, ("ROLLBACK",))
    releaser.start()
    started = time.monotonic()
    with ResultsStore.open(path) as store:
        assert store.runs() == [] and time.monotonic() - started >= 0.25
    releaser.join()
    other.close()
