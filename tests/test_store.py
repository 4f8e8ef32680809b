"""The results store: exact values, keys that miss on any change, crash and concurrency safety."""

import hashlib
import math
import multiprocessing
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from depth_eval import errors
from depth_eval.inputs.hashing import FileHasher, file_sha256
from depth_eval.store.database import (NUMBERS_VERSION, NotAStoreError, ResultsStore, SnapshotRef, StoreError, StoreVersionError,
    canonical_json, decode_metrics, encode_metrics, iteration_of, unit_key)
from depth_eval.store.schema import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parents[1]
SNAP = SnapshotRef("net_iter_500", "a" * 64, "b" * 64)
OPTIONS = {"log": False, "metrics": ["thesis"], "alignments": ["none", "median"],
           "min_depth": 0.001, "max_depth": 10.0, "crop": "none", "engine": "opencv"}


def key_of(i: int, options=OPTIONS, snapshot=SNAP) -> str:
    image = hashlib.sha256(f"image {i}".encode()).hexdigest()
    gt = hashlib.sha256(f"gt {i}".encode()).hexdigest()
    return unit_key("evaluate", snapshot.caffemodel_sha256, snapshot.prototxt_sha256, image, gt,
                    options)


def metrics_of(i: int) -> dict:
    return {"RMSE": 0.1 * i + 1 / 3, "AbsRelDiff": i / 7, "rmse": math.sqrt(i + 2)}


def bits(value: float) -> bytes:
    return struct.pack("<d", value)


# --------------------------------------------------------------------------------------------
# Values and keys
# --------------------------------------------------------------------------------------------

def test_values_round_trip_bit_for_bit_nan_and_infinities_included(tmp_path):
    rng = np.random.default_rng(7)
    awkward = [0.1 + 0.2, 1 / 3, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
               -0.0, 0.0, math.pi * 1e-17, float(np.float32(0.1)), math.nan, math.inf, -math.inf]
    awkward += [float(x) for x in rng.standard_normal(50) * 10.0 ** rng.integers(-30, 30, 50)]
    metrics = {f"m{i}": value for i, value in enumerate(awkward)}
    metrics["Threshold 1.25^2"] = np.float32(0.75)  # numpy scalars are stored as doubles
    with ResultsStore.open(tmp_path / "r.sqlite") as store:
        store.put("k", SNAP, "img", metrics, task="evaluate")
    with ResultsStore.open(tmp_path / "r.sqlite") as store:
        back = store.get(["k", "missing"])["k"]
    assert set(back) == set(metrics)
    for name, value in metrics.items():
        assert type(back[name]) is float
        assert bits(back[name]) == bits(float(value)) or (math.isnan(value) and
                                                          math.isnan(back[name])), name
    # The column is standard JSON (NaN is not JSON): other tools can read the store.
    text = sqlite3.connect(tmp_path / "r.sqlite").execute("SELECT metrics FROM units").fetchone()[0]
    import json
    json.loads(text, parse_constant=lambda name: pytest.fail(f"non-standard JSON {name}"))
    assert decode_metrics(encode_metrics({"a": math.nan}))["a"] != 0  # still NaN
    with pytest.raises(TypeError):
        encode_metrics({"flag": True})


def test_key_is_stable_and_misses_on_any_change():
    base = dict(task="evaluate", caffemodel_sha256="a" * 64, prototxt_sha256="b" * 64,
                image_sha256="c" * 64, ground_truth_sha256="d" * 64, options=OPTIONS)
    key = unit_key(**base)
    assert len(key) == 64 and int(key, 16) >= 0
    # The same inputs, options in another order: the same key.
    assert unit_key(**{**base, "options": dict(reversed(list(OPTIONS.items())))}) == key
    changed = [
        {"task": "nyu"}, {"caffemodel_sha256": "e" * 64}, {"prototxt_sha256": "e" * 64},
        {"image_sha256": "e" * 64}, {"ground_truth_sha256": "e" * 64},
        {"ground_truth_sha256": None}, {"options": {**OPTIONS, "log": True}},
        {"options": {**OPTIONS, "alignments": ["median", "none"]}},
        {"options": {**OPTIONS, "max_depth": 80.0}},
        {"options": {**OPTIONS, "output_blob": "depth"}},
        {"numbers_version": NUMBERS_VERSION + 1},
    ]
    keys = {unit_key(**{**base, **change}) for change in changed}
    assert len(keys) == len(changed) and key not in keys
    with pytest.raises(TypeError):  # a value whose text is not stable is refused
        unit_key(**{**base, "options": {"path": Path("/x")}})
    with pytest.raises(ValueError):
        unit_key(**{**base, "image_sha256": ""})
    assert canonical_json({"b": [1, 2.5], "a": math.inf}) == '{"a":"Infinity","b":[1,2.5]}'


def test_stored_unit_is_reused_and_a_different_key_misses(tmp_path):
    path = tmp_path / "r.sqlite"
    with ResultsStore.open(path) as store:
        assert store.put(key_of(1), SNAP, "img1", metrics_of(1), task="evaluate")
    with ResultsStore.open(path) as store:  # a later run
        assert store.get([key_of(1)]) == {key_of(1): metrics_of(1)}
        assert not store.put(key_of(1), SNAP, "img1", {"RMSE": 9.0}, task="evaluate")
        assert store.get([key_of(1)])[key_of(1)] == metrics_of(1)  # first kept
        other_options = {**OPTIONS, "crop": "eigen"}
        assert store.get([key_of(1, other_options), key_of(2)]) == {}
        # --recompute replaces.
        assert store.put(key_of(1), SNAP, "img1", {"RMSE": 9.0}, task="evaluate", replace=True)
        assert store.get([key_of(1)])[key_of(1)] == {"RMSE": 9.0}
        # get() in chunks: more keys than one SQL statement takes.
        many = [key_of(i) for i in range(1200)]
        assert set(store.get(many)) == {key_of(1)}


def test_runs_record_computed_and_reused_units_and_history(tmp_path):
    early = SnapshotRef("net_iter_500", "1" * 64, "b" * 64)
    late = SnapshotRef("net_iter_10000", "2" * 64, "b" * 64)
    odd = SnapshotRef("final", "3" * 64, "b" * 64)
    values = {early.name: [0.9, 0.7], late.name: [0.5, math.nan], odd.name: [0.4, 0.2]}
    with ResultsStore.open(tmp_path / "r.sqlite") as store:
        first = store.begin_run({"images": 2})
        for snap in (late, early):
            for position in range(2):
                store.put(key_of(position, snapshot=snap), snap, f"img{position}",
                          {"RMSE": values[snap.name][position], "median/scale": 2.0 + position},
                          task="evaluate", run_id=first, position=position, seconds=0.5)
        store.finish_run(first, errors.EXIT_OK)
        second = store.begin_run({"images": 2})
        for snap in (early, late):
            store.record_reused(second, snap, [(p, f"img{p}", key_of(p, snapshot=snap))
                                               for p in range(2)])
        for position in range(2):
            store.put(key_of(position, snapshot=odd), odd, f"img{position}",
                      {"RMSE": values[odd.name][position]}, task="evaluate", run_id=second,
                      position=position)
        assert store.reused_counts(second) == {
            early.name: {"reused": 2, "computed": 0}, late.name: {"reused": 2, "computed": 0},
            odd.name: {"reused": 0, "computed": 2}}
        runs = store.runs()
        assert [r["id"] for r in runs] == [first, second]
        assert runs[0]["exit_status"] == 0 and runs[1]["finished"] is None
        rows = store.history("RMSE")
        assert [(r.snapshot, r.iteration, r.run) for r in rows] == [
            ("net_iter_500", 500, first), ("net_iter_500", 500, second),
            ("net_iter_10000", 10000, first), ("net_iter_10000", 10000, second),
            ("final", None, second)]
        assert rows[0].value == pytest.approx(0.8) and rows[0].images == 2
        # A mean is over the images where the metric is defined (SPEC.md section 9).
        assert rows[2].value == 0.5 and rows[2].images == 2
        assert rows[4].value == pytest.approx(0.3)
        scale = store.history("median/scale_median")
        assert [r.value for r in scale] == [2.5] * 4
        assert store.history("nope") == [] and store.history("RMSE", task="nyu") == []
        assert store.metric_names() == ["RMSE", "median/scale_median", "median/scale_std"]
        snapshots = store._read("SELECT name, iteration FROM snapshots ORDER BY name")
        assert snapshots == [("final", None), ("net_iter_10000", 10000), ("net_iter_500", 500)]


def test_iteration_of():
    assert iteration_of("refine_iter_90000") == 90000
    assert iteration_of("a_iter_5_iter_700_ft") == 700
    assert iteration_of("final") is None


# --------------------------------------------------------------------------------------------
# Files that are not (this version's) stores
# --------------------------------------------------------------------------------------------

def test_newer_schema_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "r.sqlite"
    ResultsStore.open(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = ? WHERE name = 'schema_version'",
                   (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StoreVersionError) as caught:
        ResultsStore.open(path)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message
    assert f"version {SCHEMA_VERSION + 1} is newer" in message
    assert isinstance(caught.value, errors.DepthEvalError)


@pytest.mark.parametrize("content", [b"not a database\n" * 300, b"SQLite format 3\x00" + b"x" * 200])
def test_a_file_that_is_not_sqlite_is_a_one_line_error(tmp_path, content):
    path = tmp_path / "results.sqlite"
    path.write_bytes(content)
    with pytest.raises(NotAStoreError) as caught:
        ResultsStore.open(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: not an SQLite database") and "\n" not in message
    assert path.read_bytes() == content  # left as it was


def test_another_applications_database_is_refused(tmp_path):
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE photos (id INTEGER)")
    with pytest.raises(NotAStoreError, match="not a depth_eval results store"):
        ResultsStore.open(path)


def test_missing_store_without_create(tmp_path):
    with pytest.raises(StoreError, match="file not found"):
        ResultsStore.open(tmp_path / "none.sqlite", create=False)
    assert not (tmp_path / "none.sqlite").exists()
    # With create (the default) a new store is made, in an existing folder only.
    with pytest.raises(StoreError, match="the folder .*a/b does not exist"):
        ResultsStore.open(tmp_path / "a" / "b" / "r.sqlite")
    assert not (tmp_path / "a").exists()
    with ResultsStore.open(tmp_path / "r.sqlite") as store:
        assert store.integrity_check() == "ok"
        assert store._read("PRAGMA journal_mode") == [("wal",)]


# --------------------------------------------------------------------------------------------
# Concurrency and crashes
# --------------------------------------------------------------------------------------------

def _writer(path: str, worker: int, start, shared: int, own: int) -> None:
    start.wait()
    with ResultsStore.open(path) as store:  # both processes may create the file at once
        run = store.begin_run({"worker": worker})
        for i in range(shared + own):
            # Keys 0..shared-1 are the same in both processes; the rest are each one's own.
            number = i if i < shared else 1000 * (worker + 1) + i
            store.put(key_of(number), SNAP, f"img{number}", metrics_of(number),
                      task="evaluate", run_id=run, position=i)
        store.finish_run(run, 0)


def test_two_processes_writing_one_store_lose_and_duplicate_nothing(tmp_path):
    path = str(tmp_path / "shared.sqlite")
    context = multiprocessing.get_context("fork")
    start = context.Barrier(2)
    shared, own = 150, 150
    workers = [context.Process(target=_writer, args=(path, w, start, shared, own))
               for w in range(2)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(120)
        assert process.exitcode == 0
    expected = set(range(shared)) | {1000 * (w + 1) + i for w in range(2)
                                     for i in range(shared, shared + own)}
    with ResultsStore.open(path) as store:
        assert store.integrity_check() == "ok"
        keys = [key_of(n) for n in expected]
        assert store.get(keys) == {key_of(n): metrics_of(n) for n in expected}
        assert store._read("SELECT COUNT(*), COUNT(DISTINCT key) FROM units") == \
            [(len(expected), len(expected))]
        runs = store.runs()
        assert len(runs) == 2 and all(r["exit_status"] == 0 for r in runs)
        for run in runs:
            assert store.reused_counts(run["id"]) == {
                SNAP.name: {"reused": 0, "computed": shared + own}}


_KILLED_WRITER = """
import sys
from depth_eval.store.database import ResultsStore, SnapshotRef
sys.path.insert(0, sys.argv[2])
from test_store import SNAP, key_of, metrics_of
store = ResultsStore.open(sys.argv[1])
run = store.begin_run({})
for i in range(1000000):
    store.put(key_of(i), SNAP, f"img{i}", metrics_of(i), task="evaluate", run_id=run, position=i)
    print(i, flush=True)  # after the commit returned
"""


def test_a_run_killed_mid_loop_keeps_every_committed_unit(tmp_path):
    path = tmp_path / "r.sqlite"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get(
        "PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(path),
                              str(ROOT / "tests")], stdout=subprocess.PIPE, env=env, text=True)
    committed = []
    try:
        for line in child.stdout:
            committed.append(int(line))
            if len(committed) == 300:
                os.kill(child.pid, signal.SIGKILL)  # while it goes on putting
                break
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL and len(committed) == 300
    assert (tmp_path / "r.sqlite-wal").exists()  # killed: the log was not folded back
    with ResultsStore.open(path) as store:
        assert store.integrity_check() == "ok"
        found = store.get(key_of(i) for i in range(400))
        assert {key_of(i) for i in committed} <= set(found)
        # Nothing half-written: every stored unit is whole, and the stored ones are a prefix.
        stored = sorted(i for i in range(400) if key_of(i) in found)
        assert stored == list(range(len(stored)))
        assert all(found[key_of(i)] == metrics_of(i) for i in stored)
        # A resumed run adds the rest.
        store.put(key_of(len(stored)), SNAP, "next", metrics_of(0), task="evaluate")


def test_threads_share_one_store(tmp_path):
    with ResultsStore.open(tmp_path / "r.sqlite") as store:
        def work(offset):
            for i in range(offset, offset + 40):
                store.put(key_of(i), SNAP, f"img{i}", metrics_of(i), task="evaluate")
        threads = [threading.Thread(target=work, args=(40 * t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(store.get(key_of(i) for i in range(160))) == 160


# --------------------------------------------------------------------------------------------
# File hashes
# --------------------------------------------------------------------------------------------

def test_file_hashes_read_once_per_run_and_reused_while_unchanged(tmp_path):
    files = []
    for i in range(3):
        path = tmp_path / f"f{i}.bin"
        path.write_bytes(os.urandom(3_000_000 + i))  # several read chunks
        files.append(path)
    expected = [hashlib.sha256(p.read_bytes()).hexdigest() for p in files]
    assert [file_sha256(p) for p in files] == expected
    with ResultsStore.open(tmp_path / "r.sqlite") as store:
        first = FileHasher(store)
        assert [first(p) for p in files + files] == expected * 2
        assert (first.files_read, first.files_reused) == (3, 0)
        second = FileHasher(store)  # the next run: nothing is read
        assert [second(p) for p in files] == expected
        assert (second.files_read, second.files_reused) == (0, 3)
        # Changed in place, same size, mtime put back: ctime still moves, so it is read again.
        status = files[0].stat()
        files[0].write_bytes(os.urandom(status.st_size))
        os.utime(files[0], ns=(status.st_atime_ns, status.st_mtime_ns))
        third = FileHasher(store)
        assert third(files[0]) == hashlib.sha256(files[0].read_bytes()).hexdigest()
        assert third(files[1]) == expected[1]
        assert (third.files_read, third.files_reused) == (1, 1)
        # Without trusting stat signatures, every file is read once.
        careful = FileHasher(store, trust_stat=False)
        assert careful(files[2]) == careful(files[2]) == expected[2]
        assert careful.files_read == 1
    with pytest.raises(FileNotFoundError):
        FileHasher()(tmp_path / "missing")


def test_pictures_count_only_while_on_disk_and_made_by_the_same_key(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    pictures = {i: [out / f"img{i}.png", out / f"img{i}_gt.png"] for i in range(3)}
    for group in pictures.values():
        for path in group:
            path.write_bytes(b"png")
    with ResultsStore.open(tmp_path / "r.sqlite") as store:
        for i in range(3):
            store.put(key_of(i), SNAP, f"img{i}", metrics_of(i), task="evaluate",
                      files=pictures[i])
        expected = {key_of(i): pictures[i] for i in range(3)}
        assert store.keys_with_files(expected) == {key_of(0), key_of(1), key_of(2)}
        pictures[1][1].unlink()  # a picture removed: that unit is computed again
        # A run with other options rewrote img2.png: its pictures no longer show key_of(2).
        store.record_files(key_of(2, {**OPTIONS, "log": True}), [pictures[2][0]])
        assert store.keys_with_files(expected) == {key_of(0)}
        # Relative and absolute spellings of a path are the same file.
        monkeypatch.chdir(tmp_path)
        assert store.keys_with_files({key_of(0): [Path("out/img0.png")]}) == {key_of(0)}
        assert store.keys_with_files({key_of(3): pictures[0]}) == set()
