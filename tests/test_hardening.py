"""Hostile input on the store, the user cache, history, the gate and predict: each class of
failure rebuilt with real files, real SQLite, real FIFOs and devices, a real subprocess."""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import sqlite3
import subprocess
import signal
import sys
import time
from pathlib import Path

import pytest

from counting_engine import ENGINE_NAME, PASSES_ENV, SLOW_ENV, CountingEngine
from depth_eval import cli, engines, writing
from depth_eval.errors import EXIT_PARTIAL, OutputError, SnapshotError, describe
from depth_eval.execution.local import stream
from depth_eval.inputs import limits
from depth_eval.report import gate
from depth_eval.store.database import NotAStoreError, ResultsStore, SnapshotRef, StoreError
from depth_eval.store.keys import decode_metrics, unit_checksum
from helpers import GOOD, REPO as ROOT, evaluate, make_workspace, results, run_cli


# --------------------------------------------------------------------------------------------
# The gate: a baseline and --fail-if rules that used to pass quietly or hang
# --------------------------------------------------------------------------------------------

def _baseline(tmp_path, text: str):
    path = tmp_path / "baseline.json"
    path.write_text(text)
    return path


@pytest.mark.parametrize("value", ["Infinity", "-Infinity"])
def test_a_baseline_holding_an_infinity_is_refused_naming_the_metric(tmp_path, value):
    path = _baseline(tmp_path, '{"schema_version": 2, "snapshots": {"a": {"metrics": '
                               f'{{"RMSE": {value}}}}}}}}}')
    with pytest.raises(ValueError, match=r"baseline.json: snapshot 'a': metric 'RMSE' is "
                                         r"-?inf, not a finite number"):
        gate.load_results(path)


def test_an_infinite_baseline_value_given_directly_is_a_violation_not_a_pass():
    rule = gate.parse_rule("RMSE>+2%")
    baseline = {"schema_version": 2, "snapshots": {"a": {"metrics": {"RMSE": math.inf}}}}
    current = {"schema_version": 2, "snapshots": {"a": {"metrics": {"RMSE": 0.5}}}}
    [violation] = gate.compare(current, baseline, [rule])
    assert violation.reason == ("RMSE is inf, not a finite number in the baseline: the rule "
                                "cannot be checked")
    assert "nan" not in gate.comparison_table(current, baseline, ["RMSE"], violations=[violation])


def test_a_boolean_schema_version_is_not_read_as_one(tmp_path):
    path = _baseline(tmp_path, '{"schema_version": true, "snapshots": {}}')
    with pytest.raises(ValueError, match="schema_version True"):
        gate.load_results(path)


def test_a_deeply_nested_baseline_is_refused_in_one_line(tmp_path):
    path = _baseline(tmp_path, '{"snapshots": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ValueError, match="not a JSON file .nested deeper than 64 levels"):
        gate.load_results(path)


def test_brackets_inside_strings_do_not_count_as_nesting():
    assert limits.load_json('{"a": "[[[[\\"{{{{"}', max_depth=1) == {"a": '[[[["{{{{'}


@pytest.mark.parametrize("text", ["RMSE" + " " * 60_000 + "x", "RMSE>" + " " * 60_000 + "x",
                                  "RMSE>+1" + " " * 60_000 + "%x", "R>" + "1" * 60_000 + "x",
                                  " " * 30_000 + "<" * 30_000])
def test_a_long_bad_rule_is_refused_at_once_and_quoted_short(text):
    # The old pattern backtracked for 40-80 s on such rules (bench/ times the parser).
    with pytest.raises(ValueError, match="bad --fail-if rule") as caught:
        gate.parse_rule(text)
    assert len(str(caught.value)) < 300


def test_rules_still_parse_as_documented():
    rule = gate.parse_rule(" Threshold 1.25 < - 0.5 % ")
    assert (rule.metric, rule.op, rule.limit, rule.relative) == ("Threshold 1.25", "<", 0.5, True)
    assert gate.parse_rule("median/rmse>.5e1").limit == 5.0
    with pytest.raises(ValueError, match="a rise"):
        gate.parse_rule("RMSE>-2")


# --------------------------------------------------------------------------------------------
# predict: an input it does not take is exit status 1
# --------------------------------------------------------------------------------------------

def test_predict_with_two_inputs_of_one_stem_predicts_one_and_exits_1(workspace, capsys):
    colors = workspace / "colors"
    shutil.copy(colors / "00000_colors.png", colors / "a.png")
    shutil.copy(colors / "00000_colors.png", colors / "a.jpg")
    assert cli.main(["predict", str(colors), str(workspace / "pred"),
                     str(workspace / "snapshots")]) == EXIT_PARTIAL
    assert "a.png (same stem as a.jpg)" in capsys.readouterr().err
    folder = workspace / "pred_abs" / GOOD
    assert (folder / "a_depth.npy").is_file()
    assert sorted(p.name for p in folder.glob("*.npy")) == [
        "00000_depth.npy", "a_depth.npy", "gray00000_depth.npy"]


# --------------------------------------------------------------------------------------------
# The results store: stored data checked before it is trusted (class 1) and malformed rows
# (class 3)
# --------------------------------------------------------------------------------------------

@pytest.fixture
def counting(monkeypatch):
    monkeypatch.setitem(engines.ENGINES, ENGINE_NAME, "counting_engine:CountingEngine")
    CountingEngine.reset()
    return CountingEngine


def _values(document: dict) -> str:
    """A results.json's numbers (what must not depend on reuse), as comparable text."""
    return json.dumps({name: {k: v for k, v in entry.items()
                              if k not in ("seconds", "images_reused", "images_computed")}
                       for name, entry in document["snapshots"].items()})


def _edit_unit(store: Path, change) -> str:
    """Rewrite the first unit's metrics text with ``change(metrics dict) -> text``; its key."""
    with sqlite3.connect(store) as db:
        key, text = db.execute("SELECT key, metrics FROM units ORDER BY key LIMIT 1").fetchone()
        db.execute("UPDATE units SET metrics = ? WHERE key = ?", (change(json.loads(text)), key))
    return key


def _without_rmse(metrics: dict) -> str:
    return json.dumps({k: v for k, v in metrics.items() if k != "RMSE"})


@pytest.mark.parametrize("change, why", [
    (_without_rmse, "do not match the checksum"),
    (lambda m: json.dumps({**m, "RMSE": "NaN"}), "do not match the checksum"),
    (lambda m: "{not json", "do not match the checksum"),
])
def test_an_edited_stored_unit_is_computed_again_with_one_warning(workspace, counting, capsys,
                                                                    change, why):
    assert evaluate(workspace, "--quiet", "--engine", ENGINE_NAME) == 0
    fresh = _values(results(workspace))
    key = _edit_unit(workspace / "out" / "results.sqlite", change)
    counting.reset()
    capsys.readouterr()
    assert evaluate(workspace, "--engine", ENGINE_NAME) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if key in line]
    assert len(warnings) == 1 and why in warnings[0] and "computed again" in warnings[0]
    assert len(counting.passes) == 1  # that unit only
    assert _values(results(workspace)) == fresh
    # Replaced: the next run reuses it without a word.
    counting.reset()
    assert evaluate(workspace, "--engine", ENGINE_NAME) == 0
    assert len(counting.passes) == 0 and key not in capsys.readouterr().err


def test_a_stored_unit_lacking_a_metric_is_not_complete_even_with_a_valid_checksum(
        workspace, counting, capsys):
    assert evaluate(workspace, "--quiet", "--engine", ENGINE_NAME) == 0
    fresh = _values(results(workspace))
    store = workspace / "out" / "results.sqlite"
    key = _edit_unit(store, _without_rmse)
    with sqlite3.connect(store) as db:  # as a store written by a run that lacked RMSE
        (text,) = db.execute("SELECT metrics FROM units WHERE key = ?", (key,)).fetchone()
        db.execute("UPDATE units SET checksum = ? WHERE key = ?", (unit_checksum(key, text), key))
    counting.reset()
    capsys.readouterr()
    assert evaluate(workspace, "--engine", ENGINE_NAME) == 0
    [warning] = [line for line in capsys.readouterr().err.splitlines() if key in line]
    assert "lacks RMSE" in warning
    assert len(counting.passes) == 1 and _values(results(workspace)) == fresh


def test_a_stored_nan_is_computed_again(workspace, counting):
    assert evaluate(workspace, "--quiet", "--engine", ENGINE_NAME) == 0
    fresh = _values(results(workspace))
    store = workspace / "out" / "results.sqlite"
    key = _edit_unit(store, lambda m: json.dumps({**m, "RMSE": "NaN"}))
    with sqlite3.connect(store) as db:
        (text,) = db.execute("SELECT metrics FROM units WHERE key = ?", (key,)).fetchone()
        db.execute("UPDATE units SET checksum = ? WHERE key = ?", (unit_checksum(key, text), key))
    counting.reset()
    assert evaluate(workspace, "--quiet", "--engine", ENGINE_NAME) == 0
    assert len(counting.passes) == 1 and _values(results(workspace)) == fresh


def test_a_leftover_wal_of_another_store_is_not_replayed(tmp_path):
    mine, other = tmp_path / "mine.sqlite", tmp_path / "other.sqlite"
    ResultsStore.open(mine).close()
    before = mine.read_bytes()
    with ResultsStore.open(other) as store:  # the log exists while the store is open
        store.begin_run({"other": True})
        shutil.copy(f"{other}-wal", f"{mine}-wal")
    log = Path(f"{mine}-wal").read_bytes()
    with pytest.raises(NotAStoreError, match="mine.sqlite-wal: a write-ahead log that is not "
                                             "this results store's"):
        ResultsStore.open(mine)
    assert mine.read_bytes() == before and Path(f"{mine}-wal").read_bytes() == log
    # The other store itself is as it was.
    with ResultsStore.open(other) as store:
        assert [run["id"] for run in store.runs()] == [1]


def test_a_killed_runs_own_wal_is_replayed(tmp_path):
    path = tmp_path / "r.sqlite"
    code = ("import os, sys; sys.path.insert(0, %r)\n"
            "from depth_eval.store.database import ResultsStore\n"
            "s = ResultsStore.open(%r); s.begin_run({}); os._exit(0)\n") % (str(ROOT), str(path))
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert Path(f"{path}-wal").stat().st_size > 0
    with ResultsStore.open(path) as store:
        assert len(store.runs()) == 1


@pytest.mark.parametrize("value", ["abc", None])
def test_a_non_numeric_schema_version_is_one_line_in_evaluate_and_history(workspace, capsys,
                                                                            value):
    store = workspace / "out" / "results.sqlite"
    (workspace / "out").mkdir()
    ResultsStore.open(store).close()
    with sqlite3.connect(store) as db:
        db.execute("UPDATE meta SET value = ? WHERE name = 'schema_version'", (value or "",))
    before = store.read_bytes()
    assert evaluate(workspace, "--quiet") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {store}: results store's schema_version ") and \
        err.count("\n") == 1
    assert cli.main(["history", "--store", str(store)]) == 2
    assert "is not a number" in capsys.readouterr().err
    assert store.read_bytes() == before and not (workspace / "out" / "results.json").exists()


def test_history_names_a_malformed_row(workspace, counting, capsys):
    assert evaluate(workspace, "--quiet", "--engine", ENGINE_NAME) == 0
    store = workspace / "out" / "results.sqlite"
    key = _edit_unit(store, lambda m: "[1, 2")
    capsys.readouterr()
    assert cli.main(["history", "--store", str(store), "RMSE"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {store}: unit {key} (snapshot '{GOOD}', run 1) is damaged")
    assert err.count("\n") == 1


@pytest.mark.parametrize("text", ['[1, 2]', '{"RMSE": "x"}', '{"RMSE": true}',
                                  '{"RMSE": {"a": 1}}', "[" * 5000 + "]" * 5000, '"'])
def test_decoding_a_malformed_row_says_what_is_wrong(text):
    with pytest.raises(ValueError, match="metric|metrics"):
        decode_metrics(text)


# --------------------------------------------------------------------------------------------
# The store's path: refused before any work, nothing changed that the tool did not make
# --------------------------------------------------------------------------------------------

def _refused(workspace, capsys, *options, match: str) -> str:
    capsys.readouterr()
    assert evaluate(workspace, "--quiet", *options) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err, err
    assert "Traceback" not in err
    return err


def test_store_as_results_json_or_per_image_is_refused_before_work(workspace, capsys):
    assert evaluate(workspace, "--quiet") == 0
    document = (workspace / "out" / "results.json").read_bytes()
    _refused(workspace, capsys, "--store", str(workspace / "out" / "results.json"),
             match="OUT_DIR's results.json, which the run writes")
    assert (workspace / "out" / "results.json").read_bytes() == document
    same = workspace / "both.csv"
    _refused(workspace, capsys, "--store", str(same), "--per-image", str(same),
             match="the --per-image file, which the run writes")
    assert not same.exists()


def test_an_empty_file_or_another_applications_database_is_refused_and_left_alone(
        workspace, capsys):
    empty = workspace / "empty.sqlite"
    empty.touch()
    _refused(workspace, capsys, "--store", str(empty), match="an empty file, not a depth_eval")
    assert empty.read_bytes() == b"" and not (workspace / "out").exists()
    theirs = workspace / "theirs.sqlite"
    with sqlite3.connect(theirs) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
    before = theirs.read_bytes()
    _refused(workspace, capsys, "--store", str(theirs), match="not a depth_eval results store")
    assert theirs.read_bytes() == before  # the journal mode (header bytes 18-19) unchanged
    assert not Path(f"{theirs}-wal").exists()


def test_a_missing_folder_is_refused_not_made(workspace, capsys):
    store = workspace / "ci" / "deep" / "units.sqlite"
    _refused(workspace, capsys, "--store", str(store), match="ci/deep does not exist")
    assert not (workspace / "ci").exists()


@pytest.mark.parametrize("where", ["store", "wal", "shm"])
@pytest.mark.parametrize("kind", ["fifo", "link to /dev/zero", "dangling link"])
def test_a_fifo_device_or_dangling_link_at_the_store_or_its_log_is_named(workspace, capsys,
                                                                         where, kind):
    store = workspace / "units.sqlite"
    if where != "store":
        ResultsStore.open(store).close()
    target = {"store": store, "wal": Path(f"{store}-wal"), "shm": Path(f"{store}-shm")}[where]
    if kind == "fifo":
        os.mkfifo(target)
        what = "is a FIFO, not a regular file"
    elif kind == "link to /dev/zero":
        target.symlink_to("/dev/zero")
        what = "is a character device, not a regular file"
    else:
        target.symlink_to(workspace / "nowhere")
        what = "is a dangling symbolic link"
    err = _refused(workspace, capsys, "--store", str(store), match=what)
    assert err.startswith(f"error: {target}: the results store")


def test_a_full_disk_under_the_store_says_so(tmp_path):
    store = ResultsStore.open(tmp_path / "r.sqlite")
    try:
        error = sqlite3.OperationalError("database or disk is full")
        error.sqlite_errorcode = 13
        assert str(store._error(error)).endswith("results store: No space left on device")
    finally:
        store.close()


# --------------------------------------------------------------------------------------------
# history: read only, fast, and --plot never replaces a user's file
# --------------------------------------------------------------------------------------------

def test_history_never_writes_an_empty_file_or_a_store(workspace, counting, capsys):
    empty = workspace / "empty.sqlite"
    empty.touch()
    assert cli.main(["history", "--store", str(empty)]) == 2
    assert "an empty file, not a depth_eval results store" in capsys.readouterr().err
    assert empty.read_bytes() == b""
    assert evaluate(workspace, "--quiet", "--engine", ENGINE_NAME) == 0
    store = workspace / "out" / "results.sqlite"
    before, mtime = store.read_bytes(), store.stat().st_mtime_ns
    assert cli.main(["history", "--store", str(store), "RMSE"]) == 0
    assert store.read_bytes() == before and store.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in store.parent.glob("results.sqlite*")) == ["results.sqlite"]


def test_a_store_opened_read_only_refuses_writes(workspace, counting):
    assert evaluate(workspace, "--quiet", "--engine", ENGINE_NAME) == 0
    path = workspace / "out" / "results.sqlite"
    before = path.read_bytes()
    with ResultsStore.open(path, readonly=True) as store:
        assert store.metric_names() and store.readonly
        with pytest.raises(StoreError, match="opened read-only"):
            store.begin_run({})
    assert path.read_bytes() == before


def test_history_plot_replaces_its_own_chart_only(workspace, counting, capsys):
    assert evaluate(workspace, "--quiet", "--engine", ENGINE_NAME) == 0
    store = str(workspace / "out" / "results.sqlite")
    mine = workspace / "mine.png"
    shutil.copy(workspace / "colors" / "00000_colors.png", mine)
    before = mine.read_bytes()
    assert cli.main(["history", "--store", store, "RMSE", "--plot", str(mine)]) == 2
    assert "exists and was not written by depth-eval history" in capsys.readouterr().err
    assert mine.read_bytes() == before
    chart = workspace / "chart.png"
    assert cli.main(["history", "--store", store, "RMSE", "--plot", str(chart)]) == 0
    assert cli.main(["history", "--store", store, "RMSE", "--plot", str(chart)]) == 0


def test_history_of_many_runs_reads_each_unit_once_and_shows_the_newest(tmp_path):
    path = tmp_path / "r.sqlite"
    snapshot = SnapshotRef("net_iter_100", "1" * 64, "2" * 64)
    with ResultsStore.open(path) as store:
        first = store.begin_run({})
        for position in range(3):
            store.put(f"{position:064d}", snapshot, f"img{position}",
                      {"RMSE": 1.0 + position}, task="evaluate", run_id=first,
                      position=position)
        for _ in range(40):  # later runs reuse the three units
            run = store.begin_run({})
            store.record_reused(run, snapshot, [(p, f"img{p}", f"{p:064d}") for p in range(3)])
        decoded = []
        original = store._decoded
        store._decoded = lambda key, *rest: decoded.append(key) or original(key, *rest)
        ((rows, total),) = store.histories(["RMSE"], last=5).values()
    assert total == 41 and [row.run for row in rows] == list(range(37, 42))
    assert {row.value for row in rows} == {2.0}
    # one decode per unit for the names, one for the values: not one per run or metric
    assert len(decoded) <= 4


# --------------------------------------------------------------------------------------------
# The user cache: onnxruntime's cached files checked before they are loaded
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["zero-filled", "cut short", "graph replaced"])
def test_a_damaged_cached_translation_is_said_once_and_made_again(workspace, user_cache,
                                                                  damage):
    pytest.importorskip("onnxruntime")
    options = ("--engine", "onnxruntime", "--store", str(workspace / "none.sqlite"))
    assert run_cli(workspace, *options, out="clean")[0] == 0
    clean = _values(results(workspace, "clean"))
    files = sorted(user_cache.glob("*.d*")) if damage != "graph replaced" else sorted(
        user_cache.glob("*.onnx"))
    assert files
    for path in files:  # as a power cut can leave them: the size and times kept
        status = path.stat()
        data = b"\0" * status.st_size if damage == "zero-filled" else (
            path.read_bytes()[: status.st_size // 2] if damage == "cut short" else b"junk")
        path.write_bytes(data)
        os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))
    status, _, err = run_cli(workspace, *options, out="again")
    assert status == 0, err
    assert _values(results(workspace, "again")) == clean
    said = [line for line in err.splitlines() if "cached" in line]
    assert said and all(line.startswith("warning: ") and "made again" in line for line in said)
    assert len(said) == len({line.split(":")[1] for line in said})  # once per entry
    assert "[E:onnxruntime" not in err and " ERROR " not in err
    # The rebuilt entries are trusted again.
    status, _, err = run_cli(workspace, *options, out="third")
    assert status == 0 and "cached" not in err


# --------------------------------------------------------------------------------------------
# On the way out: Ctrl-C, SIGTERM and a full disk end in one line, no traceback
# --------------------------------------------------------------------------------------------

COUNTING_SCRIPT = Path(__file__).with_name("counting_engine.py")


@pytest.mark.parametrize("signum, status, line", [(signal.SIGINT, 130, "error: interrupted"),
                                                  (signal.SIGTERM, 143, "error: terminated")])
def test_a_signal_mid_run_ends_in_one_line(tmp_path, signum, status, line):
    workspace = make_workspace(tmp_path, (GOOD,), ("00000", "00001", "gray00000"))
    passes = tmp_path / "passes.log"
    env = dict(os.environ, **{PASSES_ENV: str(passes), SLOW_ENV: "0.5"})
    process = subprocess.Popen(
        [sys.executable, str(COUNTING_SCRIPT), str(workspace / "colors"),
         str(workspace / "depths"), str(workspace / "out"), str(workspace / "snapshots"),
         "--quiet", "--engine", ENGINE_NAME, "--jobs", "2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (passes.is_file() and passes.read_text()) and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == status
    assert err.splitlines() == [line], err


def test_an_output_error_mid_stream_cancels_the_rest_without_a_logged_traceback(caplog):
    """A full disk while pictures are written: the stream stops with the OutputError, the
    finishing work queued behind it is cancelled, and nothing is logged on the way."""
    def finish(prepared, output):
        time.sleep(0.01)
        if prepared == 3:
            raise OutputError("x.png: cannot write (No space left on device)")
        return prepared

    with caplog.at_level("DEBUG"), pytest.raises(OutputError, match="No space left"):
        for _ in stream(range(40), lambda item: item, lambda batch: batch, finish, jobs=2,
                        batch_size=4):
            pass
    assert caplog.records == []


# --------------------------------------------------------------------------------------------
# Messages that said the wrong thing
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("link, what", [("nowhere.caffemodel", "is a dangling symbolic link"),
                                        ("ghost.caffemodel", "is a symbolic link loop")])
def test_a_caffemodel_that_is_a_broken_link_is_named_as_such(workspace, capsys, link, what):
    (workspace / "snapshots" / "ghost.caffemodel").symlink_to(link)
    assert evaluate(workspace, "--quiet") == EXIT_PARTIAL
    err = capsys.readouterr().err
    assert f"ghost.caffemodel: cannot read ({what}" in err and "prototxt" not in err


def test_a_batch_larger_than_the_images_is_the_images(workspace, capsys):
    assert evaluate(workspace, "--quiet", "--batch", "100000") == 0
    assert results(workspace)["options"]["batch"] == 2
    assert "needs about" not in capsys.readouterr().err


def test_a_batch_that_does_not_fit_names_batch(tmp_path):
    shapes = {"data": (1, 3, 240, 320), "conv": (1, 64, 240, 320)}
    with pytest.raises(SnapshotError, match="a smaller --batch than 64 needs less"):
        limits.check_network_memory(tmp_path / "net.prototxt", shapes, (1, 3, 240, 320), 64,
                                    0, available=10 ** 6)


def test_a_legal_255_byte_input_name_is_evaluated(workspace, capsys):
    stem = "a" * (255 - len("_colors.png"))
    for kind, suffix in (("colors", "_colors.png"), ("depths", "_depth.png")):
        folder = workspace / kind
        (folder / f"00000{suffix}").rename(folder / f"{stem}{suffix}")
    assert len(os.fsencode(f"{stem}_colors.png")) == 255
    assert evaluate(workspace, "--quiet") == 0, capsys.readouterr().err
    assert (workspace / "out" / GOOD / f"{stem}_depth.png").is_file()


def test_a_temporary_name_fits_where_its_file_does(tmp_path):
    for length in (1, 200, 255):
        target = tmp_path / ("é" * (length // 2) + "x" * (length % 2))
        temp = writing.temporary_name(target, "123.456")
        assert len(os.fsencode(temp.name)) <= 255 and temp.parent == tmp_path
        temp.write_bytes(b"")  # the file system takes it
    error = OSError(errno.ENAMETOOLONG, "File name too long", str(tmp_path / ("x" * 300)))
    assert describe(error).endswith("File name too long (a 300-byte name, from an input whose "
                                    "name is too long for it)")


def test_a_store_of_schema_1_is_read_by_history_as_it_is_and_upgraded_by_a_run(workspace,
                                                                               counting, capsys):
    assert evaluate(workspace, "--quiet", "--engine", ENGINE_NAME) == 0
    fresh = _values(results(workspace))
    store = workspace / "out" / "results.sqlite"
    with sqlite3.connect(store) as db:  # as depth_eval wrote it before units had checksums
        db.execute("ALTER TABLE units DROP COLUMN checksum")
        db.execute("UPDATE meta SET value = '1' WHERE name = 'schema_version'")
        db.execute("PRAGMA user_version = 0")
    before = store.read_bytes()
    capsys.readouterr()
    assert cli.main(["history", "--store", str(store), "RMSE"]) == 0
    assert store.read_bytes() == before
    counting.reset()
    assert evaluate(workspace, "--engine", ENGINE_NAME) == 0
    assert len(counting.passes) == 0 and "computed again" not in capsys.readouterr().err
    assert _values(results(workspace)) == fresh
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone() == \
            ("2",)
        assert db.execute("SELECT count(*) FROM units WHERE checksum IS NULL").fetchone() == (0,)
