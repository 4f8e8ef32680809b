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

# The store's schema version (the ``schema_version`` row of ``meta``).  2: units carry a
# checksum of their metrics.
SCHEMA_VERSION = 2


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
        numbers_version INTEGER NOT NULL, created TEXT NOT NULL, run_id INTEGER, seconds REAL,
        checksum TEXT)""",
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



def _add_unit_checksums(db: sqlite3.Connection) -> None:
    """Version 1 -> 2: every unit gets the checksum of its metrics as they are now."""
    from depth_eval.store.keys import unit_checksum

    db.execute("ALTER TABLE units ADD COLUMN checksum TEXT")
    db.create_function("unit_checksum", 2, unit_checksum, deterministic=True)
    db.execute("UPDATE units SET checksum = unit_checksum(key, metrics) "
               "WHERE typeof(key) = 'text' AND typeof(metrics) = 'text'")


# The tables every version of the store has (each version adds columns only so far).
TABLE_NAMES = tuple(statement.split()[2] for statement in TABLES
                    if statement.startswith("CREATE TABLE"))


# Schema upgrades: MIGRATIONS[n] turns a version-n store into version n+1 (run at open, in the
# same transaction as the version update).
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _add_unit_checksums}


def _tables(db: sqlite3.Connection) -> set[str]:
    return {row[0] for row in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")} - {"sqlite_sequence"}


def create(db: sqlite3.Connection) -> None:
    """The tables of a new store, in an empty database (inside the caller's transaction)."""
    for statement in TABLES:
        db.execute(statement)
    db.executemany("INSERT INTO meta (name, value) VALUES (?, ?)",
                   [("schema_version", str(SCHEMA_VERSION)),
                    ("created_by", f"depth_eval {__version__}")])


def version_of(db: sqlite3.Connection, path: Path) -> int:
    """The store's schema version, read only; NotAStoreError / StoreVersionError naming the
    file when it is not a store, or one newer than this depth_eval reads."""
    tables = _tables(db)
    if not tables:
        raise NotAStoreError(f"{path}: an SQLite database without tables, not a depth_eval "
                             "results store; give another --store")
    rows = db.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchall() \
        if "meta" in tables else []
    if not rows:
        raise NotAStoreError(f"{path}: an SQLite database, but not a depth_eval results store "
                             "(no schema version); give another --store")
    text = rows[0][0]
    try:
        version = int(text)
    except (TypeError, ValueError):
        raise NotAStoreError(f"{path}: results store's schema_version {text!r} (table meta) is "
                             "not a number; the file is damaged, or not a depth_eval results "
                             "store: give another --store") from None
    if version > SCHEMA_VERSION:
        raise StoreVersionError(
            f"{path}: results store schema version {version} is newer than this depth_eval "
            f"{__version__} reads (up to {SCHEMA_VERSION}); upgrade depth_eval or give "
            "another --store")
    if version < 1 or (version < SCHEMA_VERSION and version not in MIGRATIONS):
        raise StoreVersionError(f"{path}: results store schema version {version} cannot "
                                f"be upgraded to {SCHEMA_VERSION}; give another --store")
    missing = sorted(set(TABLE_NAMES) - tables)
    if missing:
        raise NotAStoreError(f"{path}: results store without its table(s) {', '.join(missing)}; "
                             "the file is damaged: give another --store")
    return version


def prepare(db: sqlite3.Connection, path: Path) -> None:
    """Check an existing store and upgrade it to :data:`SCHEMA_VERSION` (inside the caller's
    write transaction, so two processes opening it at once upgrade it once)."""
    version = version_of(db, path)
    while version < SCHEMA_VERSION:
        if version not in MIGRATIONS:
            raise StoreVersionError(f"{path}: results store schema version {version} cannot "
                                    f"be upgraded to {SCHEMA_VERSION}; give another --store")
        MIGRATIONS[version](db)
        version += 1
        db.execute("UPDATE meta SET value = ? WHERE name = 'schema_version'", (str(version),))
