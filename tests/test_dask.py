"""``--dask``: snapshots x images on a Dask cluster give the local run's values and pixels, the
results store works the same, a killed worker costs nothing, Ctrl-C keeps what finished, and
a worker that cannot see a folder stops the run before any work.

One LocalCluster of two worker processes serves the module (``--dask tcp://...``); the first
tests make their own with ``--dask local:2``, as a user would.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io as _io
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")

import dask  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402
from distributed.diagnostics.plugin import WorkerPlugin  # noqa: E402

from counting_engine import ENGINE_NAME, PASSES_ENV, SLOW_ENV, logged_passes  # noqa: E402
from depth_eval import cli, engines  # noqa: F401
from depth_eval.execution import dask_cluster as executor_dask
from depth_eval.inputs import images as io
from depth_eval.engines.opencv import OpenCVEngine  # noqa: F401
from depth_eval.execution.local import Unit  # noqa: F401
from depth_eval.execution.dask_cluster import chunk_size, chunks, submission_order  # noqa: F401
from depth_eval.writing import MANIFEST_NAME, OutputFolder, read_manifest  # noqa: F401
from helpers import GLOBAL, GOOD, add_snapshot, evaluate, make_workspace, results  # noqa: E402
from test_gradients_task import JOINT, make_grad_workspace  # noqa: E402

STEMS4 = ("00000", "00001", "gray00000", "big00000")
# Fields of a snapshot's entry that say how this run got its values, not what they are.
RUN_FIELDS = ("seconds", "images_reused", "images_computed")
ONNX = pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None,
                          reason="onnxruntime not installed (pip install '.[fast]')")
ENGINES = ["opencv", pytest.param("onnxruntime", marks=ONNX)]
SCRIPT = Path(__file__).with_name("counting_engine.py")


class CountingOnWorkers(WorkerPlugin):
    """``--engine counting`` on every worker (restarted ones too), optionally slow and logging
    its passes to a file (the counting engine reads both from the environment)."""

    def __init__(self, slow_s: float = 0.0, passes: str | None = None):
        self.variables = {SLOW_ENV: str(slow_s), **({PASSES_ENV: passes} if passes else {})}

    def setup(self, worker):
        engines.ENGINES[ENGINE_NAME] = "counting_engine:CountingEngine"
        os.environ.update(self.variables)

    def teardown(self, worker):
        for name in self.variables:
            os.environ.pop(name, None)


@pytest.fixture(scope="module")
def cluster():
    """(scheduler address, client) of two single-threaded worker processes."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0", silence_logs=logging.ERROR) as local, \
            Client(local) as client:
        client.register_plugin(CountingOnWorkers(), name="counting")
        yield local.scheduler_address, client


@pytest.fixture
def counting(monkeypatch):
    monkeypatch.setitem(engines.ENGINES, ENGINE_NAME, "counting_engine:CountingEngine")


@contextlib.contextmanager
def slow_workers(client, passes: Path, slow_s: float):
    client.register_plugin(CountingOnWorkers(slow_s, str(passes)), name="slow")
    try:
        yield
    finally:
        client.unregister_worker_plugin("slow")


def run_cli(*args) -> tuple[int, str, str]:
    """One command in this process: (status, stdout, stderr)."""
    stdout, stderr = _io.StringIO(), _io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = cli.main([str(a) for a in args])
    return status, stdout.getvalue(), stderr.getvalue()


def values(document: dict) -> dict:
    """Every snapshot's entry but the run's own fields and the files' paths (absolute under
    --dask): the values must be those of the local run, NaN included, in the same order."""
    return {name: {k: ({"sha256": v["sha256"]} if k in ("caffemodel", "prototxt") else v)
                   for k, v in entry.items() if k not in RUN_FIELDS}
            for name, entry in document["snapshots"].items()}


def same_values(first: dict, second: dict) -> None:
    assert json.dumps(values(first)) == json.dumps(values(second))


def same_pixels(first: Path, second: Path) -> int:
    """Every picture of ``second`` has the same pixels in ``first``; the number compared."""
    pictures = sorted(p for p in second.rglob("*.png"))
    for picture in pictures:
        twin = first / picture.relative_to(second)
        assert np.array_equal(io.read_image(twin), io.read_image(picture)), twin
    return len(pictures)


def units_in(store_path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(store_path) as db:
        return db.execute("SELECT snapshot, image FROM units").fetchall()


def wait_until(condition, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def rerun_counts(dask_scheduler) -> list[int]:
    """Per task of the run: how many workers died while running it (on the scheduler)."""
    return [task.suspicious for key, task in dask_scheduler.tasks.items()
            if str(key).startswith("depth_eval_chunk-")]


def stored_units(store_path: Path) -> int:
    try:
        return len(units_in(store_path)) if store_path.is_file() else 0
    except sqlite3.OperationalError:  # being created
        return 0


# --------------------------------------------------------------------------------------------
# Same numbers and pictures as the local run
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("engine", ENGINES)
def test_local_cluster_gives_the_local_runs_values_and_pixels(engine, tmp_path):
    workspace = make_workspace(tmp_path, (GOOD, GLOBAL), STEMS4)
    options = ("--engine", engine, "--metrics", "thesis,standard", "--align", "none,lsq")
    assert evaluate(workspace, "--quiet", *options, out="local") == 0
    assert evaluate(workspace, "--quiet", *options, "--dask", "local:2", out="out") == 0
    dask_run, local_run = results(workspace), results(workspace, "local")
    same_values(dask_run, local_run)
    assert dask_run["ground_truth_encodings"] == local_run["ground_truth_encodings"] == ["thesis"]
    assert dask_run["options"]["input_dir"] == str(workspace / "colors")  # absolute
    assert {e["images_computed"] for e in dask_run["snapshots"].values()} == {4}
    for out in ("out", "out_abs"):
        assert same_pixels(workspace / out, workspace / out.replace("out", "local")) == 24
    # Each snapshot's names were claimed chunk by chunk (four of one image): all listed.
    for snapshot in (GOOD, GLOBAL):
        written = read_manifest((workspace / "out" / snapshot / MANIFEST_NAME).read_bytes())
        assert len(written) == 12


def test_joint_gradients_and_predict_on_a_cluster(cluster, tmp_path):
    address, _ = cluster
    root = make_grad_workspace(tmp_path, stems=("00000", "00002", "gray00000"))
    for command, extra in (("gradients", ()), ("evaluate", ("--with-gradients",))):
        snapshots = root / "snapshots"
        if command == "evaluate":  # the joint network alone
            snapshots = tmp_path / "joint"
            snapshots.mkdir()
            for suffix in (".prototxt", ".caffemodel"):
                os.link(root / "snapshots" / f"{JOINT}{suffix}", snapshots / f"{JOINT}{suffix}")
        folders = [root / "colors", root / "depths"]
        local = run_cli(command, *folders, root / f"{command}_local", snapshots, *extra)
        remote = run_cli(command, *folders, root / command, snapshots, *extra, "--dask", address)
        assert local[0] == remote[0] == 0, remote[2]
        assert remote[1] == local[1].replace(f"{command}_local", command)  # rankings, tables
        same_values(results(root, command), results(root, f"{command}_local"))
        assert same_pixels(root / command, root / f"{command}_local") >= 15
    depth_nets = make_workspace(tmp_path / "predict", (GOOD, GLOBAL), ("00000", "gray00000"))
    folders = (depth_nets / "colors", depth_nets / "p", depth_nets / "snapshots")
    status, stdout, _ = run_cli("predict", *folders, "--log", "--dask", address)
    assert status == 0 and stdout.count("depth maps in") == 2
    assert run_cli("predict", *folders[:1], depth_nets / "q", folders[2], "--log")[0] == 0
    maps = sorted((depth_nets / "q_abs").rglob("*.npy"))
    assert len(maps) == 4
    for depth in maps:
        twin = depth_nets / "p_abs" / depth.relative_to(depth_nets / "q_abs")
        assert np.array_equal(np.load(depth), np.load(twin))


def test_warnings_given_on_the_workers_are_printed_once(cluster, tmp_path):
    address, _ = cluster
    workspace = make_workspace(tmp_path, (GOOD, GLOBAL), ("00000", "00001"))
    depth = np.full((48, 64), 128, np.uint8)  # a constant ground truth: undefined metrics
    import cv2

    cv2.imwrite(str(workspace / "depths" / "00001_depth.png"), depth)
    local = run_cli(workspace / "colors", workspace / "depths", workspace / "local",
                    workspace / "snapshots")
    remote = run_cli(workspace / "colors", workspace / "depths", workspace / "out",
                     workspace / "snapshots", "--dask", address)
    assert remote[0] == local[0]
    warnings = [line for line in remote[2].splitlines() if line.startswith("warning:")]
    assert warnings and len(warnings) == len(set(warnings))
    assert sorted(warnings) == sorted(line for line in local[2].splitlines()
                                      if line.startswith("warning:"))


# --------------------------------------------------------------------------------------------
# The results store, faults, Ctrl-C
# --------------------------------------------------------------------------------------------

def test_a_rerun_submits_nothing_and_a_local_rerun_reuses_the_cluster_units(cluster, counting,
                                                                            tmp_path):
    address, client = cluster
    workspace = make_workspace(tmp_path, (GOOD, GLOBAL), STEMS4)
    passes = tmp_path / "passes.log"
    with slow_workers(client, passes, 0.0):
        assert evaluate(workspace, "--quiet", "--engine", ENGINE_NAME, "--dask", address) == 0
        assert len(logged_passes(passes)) == 8
        first = results(workspace)
        assert evaluate(workspace, "--quiet", "--engine", ENGINE_NAME, "--dask", address) == 0
        assert len(logged_passes(passes)) == 8  # nothing submitted
    again = results(workspace)
    same_values(first, again)
    assert {(e["images_reused"], e["images_computed"])
            for e in again["snapshots"].values()} == {(4, 0)}
    assert evaluate(workspace, "--quiet", "--engine", ENGINE_NAME) == 0  # here, same keys
    assert {e["images_reused"] for e in results(workspace)["snapshots"].values()} == {4}


def test_a_worker_killed_mid_run_costs_nothing(cluster, counting, tmp_path):
    address, client = cluster
    workspace = make_workspace(tmp_path, (GOOD, GLOBAL), STEMS4)
    store_path, passes = workspace / "out" / "results.sqlite", tmp_path / "passes.log"
    status: list[int] = []
    with slow_workers(client, passes, 0.3):
        runner = threading.Thread(target=lambda: status.append(evaluate(
            workspace, "--quiet", "--engine", ENGINE_NAME, "--dask", address)))
        runner.start()
        wait_until(lambda: stored_units(store_path) >= 2)
        busy = [worker for worker, keys in client.processing().items() if keys]
        assert busy, "the run ended before a worker could be killed"
        os.kill(client.run(os.getpid, workers=busy[:1])[busy[0]], signal.SIGKILL)
        # The scheduler saw it die while running chunks of the run: they run again elsewhere.
        wait_until(lambda: max(client.run_on_scheduler(rerun_counts), default=0) >= 1, 10)
        runner.join(120)
    assert status == [0]
    stored = units_in(store_path)
    assert len(stored) == len(set(stored)) == 8  # every unit, once
    assert len(logged_passes(passes)) >= 8
    assert evaluate(workspace, "--quiet", "--engine", ENGINE_NAME, out="local") == 0
    same_values(results(workspace), results(workspace, "local"))
    client.wait_for_workers(2, timeout=60)  # the nanny restarted it, for the next tests


def test_ctrl_c_cancels_the_rest_and_keeps_the_snapshots_done(cluster, tmp_path):
    address, client = cluster
    workspace = make_workspace(tmp_path, (GOOD, GLOBAL), STEMS4)
    for name in ("zzz_1", "zzz_2"):  # after the first two, which run side by side
        add_snapshot(workspace, name)
    passes = tmp_path / "passes.log"
    with slow_workers(client, passes, 0.4):
        process = subprocess.Popen(
            [sys.executable, str(SCRIPT), workspace / "colors", workspace / "depths",
             workspace / "out", workspace / "snapshots", "--quiet", "--engine", ENGINE_NAME,
             "--dask", address], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        document = workspace / "out" / "results.json"
        wait_until(lambda: document.is_file() or process.poll() is not None)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 130, stderr
        time.sleep(1.5)  # a chunk running when it was cancelled still finishes
    done = results(workspace)["snapshots"]
    assert list(done) in ([GLOBAL], [GLOBAL, GOOD])  # recorded in order, the last ones not
    stored = [snapshot for snapshot, _ in units_in(workspace / "out" / "results.sqlite")]
    for name, entry in done.items():
        assert entry["status"] == "evaluated" and stored.count(name) == 4
    assert len(logged_passes(passes)) < 16  # the queued chunks never ran


class DyingEngine(OpenCVEngine):
    """OpenCV, but a snapshot named ``crash*`` ends its worker process in its forward pass
    (as the kernel's OOM killer would)."""

    def forward(self, batch):
        if self.caffemodel.name.startswith("crash"):
            os._exit(1)
        return super().forward(batch)


class DyingOnWorkers(WorkerPlugin):
    def setup(self, worker):
        engines.ENGINES["dying"] = "test_dask:DyingEngine"


def test_a_snapshot_that_kills_its_workers_is_skipped_with_one_line(monkeypatch, tmp_path):
    workspace = make_workspace(tmp_path, (), ("00000",))
    add_snapshot(workspace, "crash")
    monkeypatch.setitem(engines.ENGINES, "dying", "test_dask:DyingEngine")
    # Dask gives up on a chunk after this many worker deaths (3 by default).
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0",
                         silence_logs=logging.CRITICAL) as local, Client(local) as client:
        client.register_plugin(DyingOnWorkers(), name="dying")
        status, _, stderr = run_cli(workspace / "colors", workspace / "depths",
                                    workspace / "out", workspace / "snapshots", "--quiet",
                                    "--engine", "dying", "--dask", local.scheduler_address)
    assert status == 2
    assert stderr.splitlines() == [
        f"error: snapshot crash skipped: {workspace / 'snapshots' / 'crash.caffemodel'}: the "
        "workers running it died (out of memory?)", "error: nothing could be evaluated"]


# --------------------------------------------------------------------------------------------
# Checks before any work
# --------------------------------------------------------------------------------------------

@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux /proc")
def test_a_worker_that_cannot_see_a_folder_stops_the_run(cluster, tmp_path):
    address, _ = cluster
    workspace = make_workspace(tmp_path, (GOOD,), ("00000",))
    # /proc/self/fd/N is this process's open folder: a path the workers do not have, as a
    # folder on a disk that is not shared.
    handle = os.open(workspace / "colors", os.O_RDONLY)
    unseen = os.dup2(handle, 900)
    try:
        status, _, stderr = run_cli(f"/proc/self/fd/{unseen}", workspace / "depths",
                                    workspace / "out", workspace / "snapshots", "--dask", address)
    finally:
        os.close(handle)
        os.close(unseen)
    assert status == 2
    (line,) = stderr.splitlines()
    assert line.startswith(f"error: /proc/self/fd/{unseen}: worker tcp://") and "INPUT_DIR" in line
    assert not (workspace / "out" / GOOD).exists()


@pytest.mark.parametrize("value, message", [
    ("local:0", "local:N needs N"), ("local:two", "local:N needs N"),
    ("localhost", "expected a scheduler's address"), ("tcp://host:99999", "expected"),
    ("http://host:8786", "expected a scheduler's address")])
def test_bad_dask_addresses_are_refused_before_any_work(value, message, workspace):
    status, _, stderr = run_cli(workspace / "colors", workspace / "depths", workspace / "out",
                                workspace / "snapshots", "--dask", value)
    assert status == 2 and message in stderr and not (workspace / "out").exists()


def test_no_scheduler_there_is_one_line(workspace, monkeypatch):
    monkeypatch.setattr(executor_dask, "CONNECT_TIMEOUT_S", 1)
    status, _, stderr = run_cli(workspace / "colors", workspace / "depths", workspace / "out",
                                workspace / "snapshots", "--dask", "tcp://127.0.0.1:9")
    assert status == 2 and "cannot reach the scheduler" in stderr
    assert len(stderr.splitlines()) == 1 and not (workspace / "out").exists()


def test_dask_missing_says_how_to_install_it(workspace, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    status, _, stderr = run_cli(workspace / "colors", workspace / "depths", workspace / "out",
                                workspace / "snapshots", "--dask", "local:2")
    assert status == 2 and "pip install 'depth_eval[dask]'" in stderr


# --------------------------------------------------------------------------------------------
# Chunks and the manifest shared by worker processes
# --------------------------------------------------------------------------------------------

def test_chunks_are_whole_batches_about_four_per_worker():
    assert chunk_size(654, 16, 1) == 11 and chunk_size(40, 2, 1) == 5
    assert chunk_size(40, 2, 4) == 8 and chunk_size(3, 8, 2) == 2
    unit = Unit("s", tuple(range(11)))
    parts = chunks(unit, 4)
    assert [p.items for p in parts] == [(0, 1, 2, 3), (4, 5, 6, 7), (8, 9, 10)]
    assert chunks(Unit("s", ()), 4) == [Unit("s", ())]


def test_chunks_are_submitted_so_that_each_worker_keeps_one_snapshot():
    a, b, c = (["a1", "a2", "a3"], ["b1", "b2", "b3"], ["c1", "c2"])
    # Two workers: a and b side by side (worker 0 gets a, worker 1 b), then c.
    assert submission_order([a, b, c], 2) == ["a1", "b1", "a2", "b2", "a3", "b3", "c1", "c2"]
    # Four workers, two snapshots: two workers each.
    assert submission_order([a, b], 4) == ["a1", "a2", "b1", "b2", "a3", "b3"]
    # Three workers, one snapshot: in order.
    assert submission_order([a], 3) == a


def _claim(folder: str, names: list[str]) -> list[str]:
    return OutputFolder(Path(folder)).claim(names)


def test_worker_processes_claiming_in_one_folder_lose_no_name(cluster, tmp_path):
    _, client = cluster
    names = [[f"{chunk:02d}_{n:02d}.png" for n in range(20)] for chunk in range(24)]
    futures = client.map(_claim, [str(tmp_path)] * len(names), names, pure=False)
    assert all(conflicts == [] for conflicts in client.gather(futures))
    written = read_manifest((tmp_path / MANIFEST_NAME).read_bytes())
    assert written == {name for chunk in names for name in chunk}


def test_a_snapshots_sidecar_is_read_on_the_workers_and_again_for_each_run(cluster, tmp_path):
    address, _ = cluster
    workspace = make_workspace(tmp_path, (GOOD, GLOBAL), ("00000", "gray00000"))
    sidecar = workspace / "snapshots" / f"{GOOD}.depth_eval.toml"
    sidecar.write_text("channel-swap = [2, 1, 0]\nmean-values = [104, 117, 123]\n"
                       "output-scale = 7.5\n")
    for out in ("local", "out"):
        dask = ("--dask", address) if out == "out" else ()
        assert evaluate(workspace, "--quiet", *dask, out=out) == 0
    dask_run, local_run = results(workspace), results(workspace, "local")
    same_values(dask_run, local_run)
    assert dask_run["snapshots"][GOOD]["convention"]["output-scale"] == 7.5
    assert dask_run["snapshots"][GLOBAL]["convention"]["output-scale"] == 10.0
    # The workers keep the engine loaded; a changed sidecar is read again all the same.
    sidecar.write_text("output-scale = 5\n")
    assert evaluate(workspace, "--quiet", "--dask", address, "--store",
                    str(tmp_path / "other.sqlite"), out="again") == 0
    again = results(workspace, "again")["snapshots"][GOOD]
    assert again["convention"]["output-scale"] == 5.0
    assert again["convention"]["channel-swap"] is None
