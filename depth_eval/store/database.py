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
created, run_id, seconds)``
    One row per computed unit; ``metrics`` is a JSON object of metric name to number, with the
    non-finite values written as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``.
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

import json
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from depth_eval import __version__
from depth_eval.store import schema
from depth_eval.store.keys import (NUMBERS_VERSION, HistoryRow, SnapshotRef, canonical_json, decode_metrics, encode_metrics,
    iteration_of, unit_key)
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
        Create the file (and its folder) when missing; False raises :class:`StoreError`.

    Raises
    ------
    NotAStoreError
        The file is not an SQLite database, or one with other tables.
    StoreVersionError
        The file's schema is newer than this depth_eval knows (or too old to upgrade).
    StoreError
        The file cannot be created, opened or locked within :data:`BUSY_TIMEOUT_S`.
    """

    def __init__(self, path, *, create: bool = True):
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise StoreError(f"{self.path}: no results store there (file not found)")
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit mode: every write below runs in its own explicit BEGIN IMMEDIATE.
            self._db = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S,
                                       isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as error:
            raise StoreError(f"{self.path}: cannot open the results store: "
                             f"{getattr(error, 'strerror', None) or error}") from None
        self._lock = threading.RLock()
        try:
            self._setup()
        except BaseException:
            self._db.close()
            raise

    @classmethod
    def open(cls, path, *, create: bool = True) -> "ResultsStore":
        return cls(path, create=create)

    def __enter__(self) -> "ResultsStore":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (the last connection to close folds the WAL back into it)."""
        with self._lock:
            self._db.close()

    # -- internals ---------------------------------------------------------------------------

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.DatabaseError as error:
            text = str(error)
            if "not a database" in text:
                raise NotAStoreError(
                    f"{self.path}: not an SQLite database, so not a depth_eval results store "
                    "(give another --store, or remove the file)") from None
            raise StoreError(f"{self.path}: results store: {text}") from None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction holding the write lock from its start (no upgrade deadlock)."""
        with self._lock, self._errors():
            self._db.execute("BEGIN IMMEDIATE")
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
        with self._lock, self._errors():
            self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            # WAL: readers never block the writer; a commit is one append to the log.
            self._journal_wal()
            # NORMAL in WAL mode: a killed process loses nothing committed; only a power cut
            # may drop the last commits (never corrupts), and commits need no fsync each.
            self._db.execute("PRAGMA synchronous = NORMAL")
        with self._write() as db:
            schema.prepare(db, self.path)

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

    def runs(self) -> list[dict]:
        """Every recorded run, oldest first: id, started, finished, exit_status, tool_version."""
        rows = self._read("SELECT id, started, finished, exit_status, tool_version, options "
                          "FROM runs ORDER BY id")
        return [{"id": r[0], "started": r[1], "finished": r[2], "exit_status": r[3],
                 "tool_version": r[4], "options": json.loads(r[5])} for r in rows]

    # -- units -------------------------------------------------------------------------------

    def get(self, keys: Iterable[str]) -> dict[str, dict[str, float]]:
        """The stored metrics of those keys that are stored (key -> metric name -> value)."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, dict[str, float]] = {}
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start:start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for key, text in self._read(f"SELECT key, metrics FROM units WHERE key IN ({marks})",
                                        chunk):
                found[key] = decode_metrics(text)
        return found

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
                    "snapshot = excluded.snapshot, image = excluded.image") if replace \
            else "DO NOTHING"
        with self._write() as db:
            self._add_snapshot(db, snapshot)
            stored = db.execute(
                "INSERT INTO units (key, task, snapshot, image, caffemodel_sha256, "
                "prototxt_sha256, metrics, numbers_version, created, run_id, seconds) "
                f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) {conflict}",
                (key, task, snapshot.name, image, snapshot.caffemodel_sha256,
                 snapshot.prototxt_sha256, text, NUMBERS_VERSION, _now(), run_id,
                 seconds)).rowcount == 1
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

    def _run_images(self, task: str | None) -> dict[tuple[int, str], list[dict[str, float]]]:
        """(run, snapshot) -> per-image metrics in the run's order, for every recorded run."""
        where, parameters = ("WHERE u.task = ?", (task,)) if task is not None else ("", ())
        groups: dict[tuple[int, str], list[dict[str, float]]] = {}
        for run_id, name, text in self._read(
                "SELECT r.run_id, r.snapshot, u.metrics FROM run_units r "
                f"JOIN units u ON u.key = r.key {where} "
                "ORDER BY r.run_id, r.snapshot, r.position", parameters):
            groups.setdefault((run_id, name), []).append(decode_metrics(text))
        return groups

    def metric_names(self, task: str | None = None) -> list[str]:
        """Every summary name ``history`` can show (scales as ``_median`` / ``_std``), sorted."""
        where, parameters = ("WHERE u.task = ?", (task,)) if task is not None else ("", ())
        names: set[str] = set()
        # One image per (run, snapshot): the images of one snapshot in one run share names.
        for (text,) in self._read("SELECT u.metrics FROM run_units r JOIN units u "
                                  f"ON u.key = r.key {where} GROUP BY r.run_id, r.snapshot",
                                  parameters):
            names.update(str(key) for key in summarise([_keyed(decode_metrics(text))]))
        return sorted(names)

    def history(self, metric: str, task: str | None = None) -> list[HistoryRow]:
        """One metric's summary per snapshot and stored run, ordered by iteration then run.

        Snapshots without ``_iter_N`` come after the others, by name.  A run that did not
        record the metric for a snapshot has no row for it.
        """
        rows = []
        for (run_id, name), images in self._run_images(task).items():
            value = summarise([_keyed(image) for image in images]).get(MetricKey.parse(metric))
            if value is not None:
                rows.append(HistoryRow(name, iteration_of(name), run_id, value, len(images)))
        return sorted(rows, key=lambda row: (row.iteration is None, row.iteration or 0,
                                             row.snapshot, row.run))

    # -- file hashes -------------------------------------------------------------------------

    def known_file_hash(self, path: str, size: int, mtime_ns: int, ctime_ns: int,
                        inode: int) -> str | None:
        """The sha256 recorded for ``path`` if its size, times and inode are still these."""
        rows = self._read("SELECT sha256 FROM file_hashes WHERE path = ? AND size = ? AND "
                          "mtime_ns = ? AND ctime_ns = ? AND inode = ?",
                          (path, size, mtime_ns, ctime_ns, inode))
        return rows[0][0] if rows else None

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
