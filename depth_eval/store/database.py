"""The results store: one SQLite file holding every (snapshot, image) result a run computed.

A *unit* is one snapshot evaluated on one image pair.  Its key (:func:`unit_key`) is a sha256
over everything its numbers depend on, so a later run (or a concurrent one) that needs the same
unit reads it back instead of computing it.  Each unit is committed in its own transaction as
it finishes (WAL journal), so a run killed at any point loses only the units in flight, and
several processes may share one store (a busy timeout serialises their short writes).

Schema (version :data:`depth_eval.store.schema.SCHEMA_VERSION`, the ``schema_version`` row of
``meta``; docs/store.md documents it for users):

``meta(name, value)``
    ``schema_version`` (this file's schema), ``created_by`` (tool version that created it).
``runs(id, started, finished, exit_status, options, tool_version, numbers_version)``
    One row per run; ``options`` is the run's settings as JSON; ``finished`` stays NULL for a
    run that was killed.
``snapshots(caffemodel_sha256, prototxt_sha256, name, iteration, first_seen)``
    Which names each (weights, definition) pair was seen under; ``iteration`` is parsed from
    ``_iter_N`` in the name (NULL without one).
``units(key, task, snapshot, image, caffemodel_sha256, prototxt_sha256, metrics, numbers_version,
created, run_id, seconds, checksum)``
    One row per computed unit; ``metrics`` is a JSON object of metric name to number, with the
    non-finite values written as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``;
    ``checksum`` is :func:`~depth_eval.store.keys.unit_checksum` of the key and that text,
    checked before the unit is trusted (a unit that fails is computed again).
``run_units(run_id, snapshot, image, key, position, reused)``
    The units each run reported (computed or reused), in the run's image order, so a run's
    summary (and ``depth-eval history``) can be rebuilt from the store alone.
``unit_files(path, key)``
    Which unit's numbers each picture on disk shows (absolute path; the last writer's key).
``file_hashes(path, size, mtime_ns, ctime_ns, inode, sha256, hashed)``
    Content hashes of files, reused while the file's size, times and inode are unchanged.

Why one JSON object per unit rather than a (unit, metric, value) table: a unit is written and
read as a whole (one row, one write per unit), the set of metrics varies with the options, and
SQLite's REAL type cannot hold NaN (the sqlite3 module stores it as NULL), which metrics often
are; JSON text keeps every float bit for bit (Python writes the shortest repr that round-trips).
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping
from urllib.parse import quote

from depth_eval import __version__
from depth_eval.store import schema
from depth_eval.store.keys import (NUMBERS_VERSION, HistoryRow, SnapshotRef, canonical_json, decode_metrics, encode_metrics,
    iteration_of, unit_checksum, unit_key)
from depth_eval.store.store_file import (check_store_path, check_wal, companions,
                                         create_store_file, file_identity, new_identity)
from depth_eval.store.schema import SCHEMA_VERSION, NotAStoreError, StoreError, StoreVersionError
from depth_eval.scoring.keys import MetricKey
from depth_eval.scoring.score import summarise

__all__ = ["NUMBERS_VERSION", "SCHEMA_VERSION", "StoreError", "StoreVersionError",
           "NotAStoreError", "SnapshotRef", "HistoryRow", "ResultsStore", "unit_key",
           "canonical_json", "encode_metrics", "decode_metrics", "iteration_of", "BUSY_TIMEOUT_S"]

# A busy store (another process committing) is waited for this long before giving up.
BUSY_TIMEOUT_S = 30.0
# SQLite's default limit on host parameters is 999 in old builds: query keys in chunks.
_CHUNK = 500
# A content hash as the store writes it.
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# SQLite's primary result codes for a full disk and an I/O error (sqlite3.h).
_SQLITE_FULL, _SQLITE_IOERR = 13, 10
# Free bytes under which an I/O error of the store is reported as the disk being full: SQLite
# says "disk I/O error" when a write to its shared-memory or log file fails with ENOSPC.
_NEARLY_FULL_BYTES = 1 << 20


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


# --------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------

class ResultsStore:
    """An open results store; thread-safe (one connection behind a lock), a context manager.

    Parameters
    ----------
    path : str or Path
        The SQLite file (``OUT_DIR/results.sqlite`` by default on the command line).
    create : bool
        Create the file when missing (its folder must exist); False raises :class:`StoreError`.
    readonly : bool
        Open for reading only (``history``): nothing is written, not even a schema upgrade;
        a store whose folder cannot be written is read as it is.

    Raises
    ------
    NotAStoreError
        The file is not an SQLite database, or one with other tables.
    StoreVersionError
        The file's schema is newer than this depth_eval knows (or too old to upgrade).
    StoreError
        The file cannot be created, opened or locked within :data:`BUSY_TIMEOUT_S`; the
        path, its ``-wal`` or ``-shm`` is not a regular file (a FIFO, a device, a dangling
        link: :func:`~depth_eval.store.store_file.check_store_path`); its ``-wal`` is another
        database's (:func:`~depth_eval.store.store_file.check_wal`).
    """

    def __init__(self, path, *, create: bool = True, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        # Every check on the path comes before SQLite opens it: opening replays a log and
        # switching the journal rewrites the header of whatever database is there.
        exists = check_store_path(self.path, must_exist=readonly or not create)
        try:
            if not exists:
                create_store_file(self.path, schema.create)
            check_wal(self.path)
            self._db = self._connect()
        except sqlite3.Error as error:
            raise self._error(error) from None
        except OSError as error:
            raise StoreError(f"{self.path}: cannot open the results store: "
                             f"{self._reason(error)}") from None
        self._lock = threading.RLock()
        try:
            self._setup()
        except BaseException:
            self._db.close()
            raise

    def _connect(self) -> sqlite3.Connection:
        if not self.readonly:
            # Autocommit mode: every write below runs in its own explicit BEGIN IMMEDIATE.
            return sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                   check_same_thread=False)
        uri = f"file:{quote(str(self.path.absolute()))}?mode=ro"
        wal = companions(self.path)[0]
        if not wal.exists() or wal.stat().st_size == 0:
            # Everything is in the file: read it as it is, making no -wal / -shm beside it
            # (a read-only connection could not remove them when it closes).
            return sqlite3.connect(f"{uri}&immutable=1", uri=True, isolation_level=None,
                                   check_same_thread=False)
        db = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                             check_same_thread=False)
        try:
            db.execute("SELECT count(*) FROM sqlite_master").fetchall()
            return db
        except sqlite3.OperationalError:
            # A read-only file in a read-only folder: WAL needs its shared-memory file, which
            # cannot be made there; read the file as it is (the log, if any, left aside).
            db.close()
            return sqlite3.connect(f"{uri}&immutable=1", uri=True, isolation_level=None,
                                   check_same_thread=False)

    @classmethod
    def open(cls, path, *, create: bool = True, readonly: bool = False) -> "ResultsStore":
        return cls(path, create=create, readonly=readonly)

    def __enter__(self) -> "ResultsStore":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (the last connection to close folds the WAL back into it)."""
        with self._lock:
            self._db.close()

    # -- internals ---------------------------------------------------------------------------

    def _reason(self, error: OSError) -> str:
        return error.strerror or str(error)

    def _error(self, error: sqlite3.Error) -> StoreError:
        """The one-line error of a failed SQLite call, naming the store."""
        text = str(error)
        if "not a database" in text:
            return NotAStoreError(
                f"{self.path}: not an SQLite database, so not a depth_eval results store "
                "(give another --store, or remove the file)")
        code = getattr(error, "sqlite_errorcode", 0) & 0xFF
        if code == _SQLITE_FULL or (code == _SQLITE_IOERR and self._nearly_full()):
            return StoreError(f"{self.path}: results store: No space left on device")
        return StoreError(f"{self.path}: results store: {text}")

    def _nearly_full(self) -> bool:
        try:
            status = os.statvfs(self.path.parent)
        except OSError:
            return False
        return status.f_bavail * status.f_frsize < _NEARLY_FULL_BYTES

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as error:
            raise self._error(error) from None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction holding the write lock from its start (no upgrade deadlock)."""
        if self.readonly:
            raise StoreError(f"{self.path}: results store opened read-only")
        with self._lock, self._errors():
            self._db.execute("BEGIN IMMEDIATE")
            if self._identity:
                # Rewritten in every commit, so each commit's pages in the log include the
                # header that names the store (store_file.check_wal relies on it).
                self._db.execute(f"PRAGMA user_version = {self._identity}")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _read(self, sql: str, parameters=()) -> list[tuple]:
        with self._lock, self._errors():
            return self._db.execute(sql, parameters).fetchall()

    def _setup(self) -> None:
        self._identity = 0
        with self._lock, self._errors():
            self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            # Read only, before anything is written: another application's database is
            # refused as it is (not switched to WAL first).
            # A read-only store keeps its version: one from before checksums has none to read.
            version = schema.version_of(self._db, self.path)
            self._checksums = "u.checksum" if version >= 2 or not self.readonly else "NULL"
            if self.readonly:
                return
            # WAL: readers never block the writer; a commit is one append to the log.
            self._journal_wal()
            # NORMAL in WAL mode: a killed process loses nothing committed; only a power cut
            # may drop the last commits (never corrupts), and commits need no fsync each.
            self._db.execute("PRAGMA synchronous = NORMAL")
        with self._write() as db:
            schema.prepare(db, self.path)
            (identity,), = db.execute("PRAGMA user_version").fetchall()
            if not identity:  # a store made before identities gets one (the file's if it has)
                identity = file_identity(self.path) or new_identity()
                db.execute(f"PRAGMA user_version = {identity}")
        self._identity = identity

    def _journal_wal(self) -> None:
        """Switch to WAL, waiting for other processes opening the same new file.

        Changing the journal mode needs the file to itself, and SQLite answers "database is
        locked" at once, without its busy timeout, while another connection holds it (two
        runs starting together on a new store): retried here up to :data:`BUSY_TIMEOUT_S`.
        """
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                self._db.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    # -- runs --------------------------------------------------------------------------------

    def begin_run(self, options: Mapping[str, Any], tool_version: str = __version__) -> int:
        """Record a run starting with these settings (JSON values); returns its id."""
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO runs (started, options, tool_version, numbers_version) "
                "VALUES (?, ?, ?, ?)", (_now(), canonical_json(dict(options)), tool_version,
                                        NUMBERS_VERSION))
            return int(cursor.lastrowid)

    def finish_run(self, run_id: int, exit_status: int) -> None:
        """Mark a run finished (a run killed before this keeps ``finished`` NULL)."""
        with self._write() as db:
            db.execute("UPDATE runs SET finished = ?, exit_status = ? WHERE id = ?",
                       (_now(), int(exit_status), run_id))

    def runs(self, ids: Iterable[int] | None = None) -> list[dict]:
        """Recorded runs, oldest first (every run, or those of ``ids``): id, started, finished,
        exit_status, tool_version."""
        columns = "SELECT id, started, finished, exit_status, tool_version FROM runs"
        if ids is None:
            rows = self._read(f"{columns} ORDER BY id")
        else:
            ids, rows = list(ids), []
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start:start + _CHUNK]
                rows += self._read(f"{columns} WHERE id IN ({','.join('?' * len(chunk))})",
                                   chunk)
            rows.sort(key=lambda row: row[0])
        return [{"id": r[0], "started": r[1], "finished": r[2], "exit_status": r[3],
                 "tool_version": r[4]} for r in rows]

    # -- units -------------------------------------------------------------------------------

    def checked(self, keys: Iterable[str]) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
        """The stored units of those keys that are stored, checked: ``(good, damaged)``.

        ``good`` maps key -> metric name -> value for the units whose metrics match their
        checksum and decode; ``damaged`` maps key -> what is wrong with the others (computed
        again by a run, which replaces them).
        """
        keys = list(dict.fromkeys(keys))
        good: dict[str, dict[str, float]] = {}
        damaged: dict[str, str] = {}
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start:start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for key, text, checksum in self._read(
                    f"SELECT key, metrics, checksum FROM units WHERE key IN ({marks})", chunk):
                try:
                    good[key] = self._trusted(key, text, checksum)
                except ValueError as error:
                    damaged[key] = str(error)
        return good, damaged

    @staticmethod
    def _trusted(key: str, text, checksum) -> dict[str, float]:
        """A unit's metrics once its checksum and text check out; ValueError saying why not."""
        if not isinstance(text, str) or checksum != unit_checksum(key, text):
            raise ValueError("its metrics do not match the checksum stored with them")
        return decode_metrics(text)

    def get(self, keys: Iterable[str]) -> dict[str, dict[str, float]]:
        """The stored metrics of those keys that are stored and check out (see :meth:`checked`)."""
        return self.checked(keys)[0]

    def put(self, key: str, snapshot: SnapshotRef, image: str, metrics: Mapping[str, float], *,
            task: str, run_id: int | None = None, position: int | None = None,
            seconds: float | None = None, replace: bool = False,
            files: Iterable = ()) -> bool:
        """Store one unit's metrics and commit at once; True if this call stored them.

        An existing unit of the same key is kept (same key, same inputs: same numbers) unless
        ``replace`` (``--recompute``).  With ``run_id``, the unit is also recorded as computed
        by that run at ``position`` (its image's place in the run's order).  ``files`` are the
        pictures written for the unit (already on disk), recorded as made by this key in the
        same transaction (see :meth:`keys_with_files`).
        """
        if run_id is not None and position is None:
            raise ValueError("put: a unit recorded for a run needs its position")
        text = encode_metrics(metrics)
        conflict = ("DO UPDATE SET metrics = excluded.metrics, created = excluded.created, "
                    "run_id = excluded.run_id, seconds = excluded.seconds, "
                    "snapshot = excluded.snapshot, image = excluded.image, "
                    "task = excluded.task, checksum = excluded.checksum") if replace \
            else "DO NOTHING"
        with self._write() as db:
            self._add_snapshot(db, snapshot)
            stored = db.execute(
                "INSERT INTO units (key, task, snapshot, image, caffemodel_sha256, "
                "prototxt_sha256, metrics, numbers_version, created, run_id, seconds, "
                f"checksum) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) "
                f"{conflict}",
                (key, task, snapshot.name, image, snapshot.caffemodel_sha256,
                 snapshot.prototxt_sha256, text, NUMBERS_VERSION, _now(), run_id,
                 seconds, unit_checksum(key, text))).rowcount == 1
            if run_id is not None:
                db.execute("INSERT OR REPLACE INTO run_units VALUES (?, ?, ?, ?, ?, 0)",
                           (run_id, snapshot.name, image, key, position))
            self._record_files(db, key, files)
        return stored

    def record_files(self, key: str, files: Iterable) -> None:
        """Record files (pictures) as written for the unit ``key``, replacing earlier owners."""
        with self._write() as db:
            self._record_files(db, key, files)

    @staticmethod
    def _record_files(db: sqlite3.Connection, key: str, files: Iterable) -> None:
        db.executemany("INSERT OR REPLACE INTO unit_files VALUES (?, ?)",
                       [(os.path.abspath(path), key) for path in files])

    def keys_with_files(self, expected: Mapping[str, Iterable]) -> set[str]:
        """The keys whose every expected file exists and was last recorded for that key.

        A picture written by a run with other options (another key) under the same name, or
        one that is missing, makes its unit count as not on disk: the run computes it again.
        """
        wanted = {key: [os.path.abspath(path) for path in paths]
                  for key, paths in expected.items()}
        paths = [path for group in wanted.values() for path in group]
        owner: dict[str, str] = {}
        for start in range(0, len(paths), _CHUNK):
            chunk = paths[start:start + _CHUNK]
            owner.update(self._read("SELECT path, key FROM unit_files WHERE path IN "
                                    f"({','.join('?' * len(chunk))})", chunk))
        return {key for key, group in wanted.items()
                if all(owner.get(path) == key and os.path.isfile(path) for path in group)}

    def record_reused(self, run_id: int, snapshot: SnapshotRef,
                      units: Iterable[tuple[int, str, str]]) -> None:
        """Record units a run took from the store: ``(position, image, key)`` each, one commit."""
        with self._write() as db:
            self._add_snapshot(db, snapshot)
            db.executemany("INSERT OR REPLACE INTO run_units VALUES (?, ?, ?, ?, ?, 1)",
                           [(run_id, snapshot.name, image, key, position)
                            for position, image, key in units])

    def reused_counts(self, run_id: int) -> dict[str, dict[str, int]]:
        """Per snapshot of a run: how many of its units were ``reused`` and ``computed``."""
        counts: dict[str, dict[str, int]] = {}
        for name, reused, number in self._read(
                "SELECT snapshot, reused, COUNT(*) FROM run_units WHERE run_id = ? "
                "GROUP BY snapshot, reused", (run_id,)):
            entry = counts.setdefault(name, {"reused": 0, "computed": 0})
            entry["reused" if reused else "computed"] = number
        return counts

    @staticmethod
    def _add_snapshot(db: sqlite3.Connection, snapshot: SnapshotRef) -> None:
        db.execute("INSERT OR IGNORE INTO snapshots VALUES (?, ?, ?, ?, ?)",
                   (snapshot.caffemodel_sha256, snapshot.prototxt_sha256, snapshot.name,
                    snapshot.iteration, _now()))

    # -- history -----------------------------------------------------------------------------

    def _task_filter(self, task: str | None) -> tuple[str, tuple]:
        return ("AND u.task = ?", (task,)) if task is not None else ("", ())

    def _decoded(self, key: str, text, checksum, run_id: int, snapshot: str) -> dict:
        """A unit's metrics (MetricKey keys) for history; StoreError naming the row if bad."""
        try:
            return _keyed(self._trusted(key, text, checksum) if checksum is not None
                          else decode_metrics(text))  # a unit stored without one (schema 1)
        except ValueError as error:
            raise StoreError(f"{self.path}: unit {key} (snapshot {snapshot!r}, run {run_id}) "
                             f"is damaged: {error}; a run of evaluate with this store computes "
                             "it again") from None

    def metric_names_by_run(self, task: str | None = None) -> dict[int, set[str]]:
        """Per run: every summary name ``history`` can show of it (scales as ``_median`` /
        ``_std``).  One unit per (run, snapshot) is read: a snapshot's images share names."""
        where, parameters = self._task_filter(task)
        names: dict[int, set[str]] = {}
        of_text: dict = {}
        for run_id, snapshot, key, text, checksum in self._read(
                f"SELECT r.run_id, r.snapshot, u.key, u.metrics, {self._checksums} "
                "FROM run_units r "
                f"JOIN units u ON u.key = r.key WHERE 1 {where} GROUP BY r.run_id, r.snapshot",
                parameters):
            if text not in of_text:  # runs reusing a unit share its text
                of_text[text] = {str(name) for name in summarise(
                    [self._decoded(key, text, checksum, run_id, snapshot)])}
            names.setdefault(run_id, set()).update(of_text[text])
        return names

    def metric_names(self, task: str | None = None) -> list[str]:
        """Every summary name ``history`` can show (scales as ``_median`` / ``_std``), sorted."""
        return sorted(set().union(*self.metric_names_by_run(task).values()))

    def summaries(self, task: str | None = None, run_ids: Iterable[int] | None = None
                  ) -> dict[tuple[int, str], tuple[dict, int]]:
        """(run, snapshot) -> (summary by metric name, images), for those runs (default all).

        Each unit is decoded once however many runs reused it, each summary made once.
        """
        where, parameters = self._task_filter(task)
        groups: dict[tuple[int, str], list[dict]] = {}
        decoded: dict[str, dict] = {}
        selected = None if run_ids is None else sorted(set(run_ids))
        chunks = [None] if selected is None else [selected[i:i + _CHUNK]
                                                  for i in range(0, len(selected), _CHUNK)]
        for chunk in chunks:
            runs = "" if chunk is None else f"AND r.run_id IN ({','.join('?' * len(chunk))})"
            for run_id, snapshot, key, text, checksum in self._read(
                    f"SELECT r.run_id, r.snapshot, u.key, u.metrics, {self._checksums} "
                    "FROM run_units r "
                    f"JOIN units u ON u.key = r.key WHERE 1 {where} {runs} "
                    "ORDER BY r.run_id, r.snapshot, r.position",
                    parameters + tuple(chunk or ())):
                if key not in decoded:
                    decoded[key] = self._decoded(key, text, checksum, run_id, snapshot)
                groups.setdefault((run_id, str(snapshot)), []).append(decoded[key])
        return {group: ({str(name): value for name, value in summarise(images).items()},
                        len(images)) for group, images in groups.items()}

    def histories(self, metrics: Iterable[str], task: str | None = None, last: int = 0
                  ) -> dict[str, tuple[list[HistoryRow], int]]:
        """Per metric: its rows (:meth:`history`) for the ``last`` newest runs that recorded
        it (0: all), and how many runs recorded it.  Only the units of those runs are read."""
        by_run = self.metric_names_by_run(task)
        shown: dict[str, list[int]] = {}
        totals: dict[str, int] = {}
        for metric in metrics:
            runs = sorted(run for run, names in by_run.items() if metric in names)
            shown[metric], totals[metric] = (runs[-last:] if last > 0 else runs), len(runs)
        summaries = self.summaries(task, {run for runs in shown.values() for run in runs})
        result = {}
        for metric, runs in shown.items():
            wanted = set(runs)
            rows = [HistoryRow(name, iteration_of(name), run_id, values[metric], images)
                    for (run_id, name), (values, images) in summaries.items()
                    if run_id in wanted and metric in values]
            rows.sort(key=lambda row: (row.iteration is None, row.iteration or 0,
                                       row.snapshot, row.run))
            result[metric] = (rows, totals[metric])
        return result

    def history(self, metric: str, task: str | None = None) -> list[HistoryRow]:
        """One metric's summary per snapshot and stored run, ordered by iteration then run.

        Snapshots without ``_iter_N`` come after the others, by name.  A run that did not
        record the metric for a snapshot has no row for it.
        """
        return self.histories([metric], task)[metric][0]

    # -- file hashes -------------------------------------------------------------------------

    def known_file_hash(self, path: str, size: int, mtime_ns: int, ctime_ns: int,
                        inode: int) -> str | None:
        """The sha256 recorded for ``path`` if its size, times and inode are still these."""
        rows = self._read("SELECT sha256 FROM file_hashes WHERE path = ? AND size = ? AND "
                          "mtime_ns = ? AND ctime_ns = ? AND inode = ?",
                          (path, size, mtime_ns, ctime_ns, inode))
        # Only a sha256 in hex is a hash: any other value (a damaged row) means read it again.
        known = rows[0][0] if rows else None
        return known if isinstance(known, str) and _SHA256_HEX.fullmatch(known) else None

    def remember_file_hash(self, path: str, size: int, mtime_ns: int, ctime_ns: int,
                           inode: int, sha256: str) -> None:
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO file_hashes VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (path, size, mtime_ns, ctime_ns, inode, sha256, _now()))

    def integrity_check(self) -> str:
        """SQLite's own check of the file: ``"ok"``, or what is wrong."""
        return "; ".join(row[0] for row in self._read("PRAGMA integrity_check"))


def _keyed(metrics: dict) -> dict:
    """Stored per-image metrics (text keys) as MetricKey-keyed values."""
    return {MetricKey.parse(name): value for name, value in metrics.items()}
