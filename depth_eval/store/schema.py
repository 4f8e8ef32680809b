"""The results store's tables, their version, and the check (or upgrade) made at every open.

See :mod:`depth_eval.store.database` for what each table holds.  Bump :data:`SCHEMA_VERSION` whenever a
table changes, and add the step that upgrades the previous version to :data:`MIGRATIONS`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Callable

from depth_eval import __version__
from depth_eval.errors import DepthEvalError

# The store's schema version (the ``schema_version`` row of ``meta``).
SCHEMA_VERSION = 1


class StoreError(DepthEvalError):
    """The results store cannot be opened, read or written."""


class StoreVersionError(StoreError):
    """The store was written by a newer depth_eval (a schema this version does not know)."""


class NotAStoreError(StoreError):
    """The file is not an SQLite database, or not a depth_eval results store."""


TABLES = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT, started TEXT NOT NULL, finished TEXT,
        exit_status INTEGER, options TEXT NOT NULL, tool_version TEXT NOT NULL,
        numbers_version INTEGER NOT NULL)""",
    """CREATE TABLE snapshots (
        caffemodel_sha256 TEXT NOT NULL, prototxt_sha256 TEXT NOT NULL, name TEXT NOT NULL,
        iteration INTEGER, first_seen TEXT NOT NULL,
        PRIMARY KEY (caffemodel_sha256, prototxt_sha256, name))""",
    """CREATE TABLE units (
        key TEXT PRIMARY KEY, task TEXT NOT NULL, snapshot TEXT NOT NULL, image TEXT NOT NULL,
        caffemodel_sha256 TEXT NOT NULL, prototxt_sha256 TEXT NOT NULL, metrics TEXT NOT NULL,
        numbers_version INTEGER NOT NULL, created TEXT NOT NULL, run_id INTEGER, seconds REAL)""",
    """CREATE TABLE run_units (
        run_id INTEGER NOT NULL, snapshot TEXT NOT NULL, image TEXT NOT NULL,
        key TEXT NOT NULL, position INTEGER NOT NULL, reused INTEGER NOT NULL,
        PRIMARY KEY (run_id, snapshot, image))""",
    "CREATE INDEX run_units_by_key ON run_units (key)",
    "CREATE TABLE unit_files (path TEXT PRIMARY KEY, key TEXT NOT NULL)",
    """CREATE TABLE file_hashes (
        path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
        ctime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, sha256 TEXT NOT NULL,
        hashed TEXT NOT NULL)""",
)

# Schema upgrades: MIGRATIONS[n] turns a version-n store into version n+1 (run at open, in the
# same transaction as the version update).  Version 1 is the first: nothing to upgrade yet.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {}


def prepare(db: sqlite3.Connection, path: Path) -> None:
    """Create the tables in an empty database, or check (and upgrade) an existing store.

    Runs inside the caller's write transaction, so two processes opening a new file at once
    create it once.
    """
    tables = {row[0] for row in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")} - {"sqlite_sequence"}
    if not tables:
        for statement in TABLES:
            db.execute(statement)
        db.executemany("INSERT INTO meta (name, value) VALUES (?, ?)",
                       [("schema_version", str(SCHEMA_VERSION)),
                        ("created_by", f"depth_eval {__version__}")])
        return
    row = db.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone() \
        if "meta" in tables else None
    if row is None:
        raise NotAStoreError(f"{path}: an SQLite database, but not a depth_eval results store "
                             "(no schema version); give another --store")
    version = int(row[0])
    if version > SCHEMA_VERSION:
        raise StoreVersionError(
            f"{path}: results store schema version {version} is newer than this depth_eval "
            f"{__version__} reads (up to {SCHEMA_VERSION}); upgrade depth_eval or give "
            "another --store")
    while version < SCHEMA_VERSION:
        if version not in MIGRATIONS:
            raise StoreVersionError(f"{path}: results store schema version {version} cannot "
                                    f"be upgraded to {SCHEMA_VERSION}; give another --store")
        MIGRATIONS[version](db)
        version += 1
        db.execute("UPDATE meta SET value = ? WHERE name = 'schema_version'", (str(version),))
