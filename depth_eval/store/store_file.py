"""What a results store's path may hold before SQLite is let near it, and how a new store's file
is made, so that no file the tool did not make is ever changed.

- :func:`check_store_path`: the store and its ``-wal`` / ``-shm`` companions must each be a
  regular file or absent (a FIFO would block SQLite's open, a device would be read or written
  as pages); an existing store file must be a non-empty SQLite database (an empty file is a
  user's: a new store never appears empty, see below); its folder must exist.
- :func:`check_wal`: a ``-wal`` beside the store must be the store's own.  SQLite replays any
  write-ahead log it finds beside a database, whatever database wrote it; a leftover log of
  another store would put that store's pages into this one.  Each store made here carries a
  random identity in its header's ``user_version`` field; the log's newest copy of page 1
  (the header) must carry the same, or the log is refused and left untouched.
- :func:`create_store_file`: a new store is built whole in a temporary file beside its path
  (tables, identity, WAL journal) and linked into place, so the path never holds a
  half-made store, and two runs creating it at once end with one of theirs.
"""

from __future__ import annotations

import errno
import os
import secrets
import sqlite3
import struct
from pathlib import Path
from typing import Callable

from depth_eval.inputs import limits
from depth_eval.store.schema import NotAStoreError, StoreError
from depth_eval.writing import temporary_name

__all__ = ["SQLITE_HEADER", "companions", "check_store_path", "check_wal", "create_store_file",
           "file_identity", "header_identity", "new_identity"]

# The first 16 bytes of every SQLite 3 database file (the file format's magic string).
SQLITE_HEADER = b"SQLite format 3\x00"
# Database header: page size (2 bytes, big-endian, 1 meaning 65536) at 16, user_version at 60.
_PAGE_SIZE_AT, _USER_VERSION_AT = 16, 60
# Write-ahead log: a 32-byte header (magic, version, page size, checkpoint, salt-1, salt-2,
# checksums), then frames of a 24-byte header (page number, size, salt-1, salt-2, checksums)
# and one page each (SQLite's file format documentation, "The WAL File Format").
_WAL_MAGICS = (0x377F0682, 0x377F0683)
_WAL_HEADER, _FRAME_HEADER = 32, 24


def companions(path: Path) -> tuple[Path, Path]:
    """The ``-wal`` and ``-shm`` files SQLite keeps beside a WAL-mode database (beside the
    file a symbolic link names, as SQLite resolves links)."""
    real = os.path.realpath(path)
    return Path(f"{real}-wal"), Path(f"{real}-shm")


def _regular_or_absent(path: Path, what: str) -> bool:
    """True when ``path`` is a regular file (links followed), False when nothing is there;
    StoreError naming it otherwise."""
    try:
        os.lstat(path)
    except FileNotFoundError:
        return False
    except OSError as error:
        raise StoreError(f"{path}: {what} cannot be examined: {error.strerror}") from None
    kind = limits.describe(path)
    if kind != "a regular file":
        raise StoreError(f"{path}: {what} is {kind}, not a regular file; give another --store")
    return True


def check_store_path(path: Path, *, must_exist: bool = False) -> bool:
    """Refuse a store path that is not a store this tool made (or room for one); True when a
    store file is there.

    Raises
    ------
    StoreError
        The path, its ``-wal`` or ``-shm`` is a FIFO, device, folder, socket, dangling link or
        link loop; the folder is missing; nothing is there and ``must_exist``.
    NotAStoreError
        The file is empty or does not start as an SQLite database.
    """
    path = Path(path)
    exists = _regular_or_absent(path, "the results store")
    wal, shm = companions(path)
    _regular_or_absent(wal, "the results store's write-ahead log")
    _regular_or_absent(shm, "the results store's shared-memory file")
    if not exists:
        if must_exist:
            raise StoreError(f"{path}: no results store there (file not found)")
        if not path.parent.is_dir():
            raise StoreError(f"{path}: the folder {path.parent} does not exist (the store is "
                             "made in an existing folder only)")
        return False
    try:
        with limits.open_regular(path) as stream:
            head = stream.read(len(SQLITE_HEADER))
    except OSError as error:
        raise StoreError(f"{path}: cannot read the results store: {error.strerror}") from None
    if not head:
        raise NotAStoreError(f"{path}: an empty file, not a depth_eval results store (a store "
                             "is never empty); give another --store, or remove the file")
    if head != SQLITE_HEADER:
        raise NotAStoreError(f"{path}: not an SQLite database, so not a depth_eval results "
                             "store (give another --store, or remove the file)")
    return True


def header_identity(header: bytes) -> tuple[int, int]:
    """(page size, user_version) of a database header (its first 100 bytes)."""
    page_size = struct.unpack_from(">H", header, _PAGE_SIZE_AT)[0]
    return (65536 if page_size == 1 else page_size,
            struct.unpack_from(">I", header, _USER_VERSION_AT)[0])


def file_identity(path: Path) -> int:
    """The identity in the database file's own header (0: none, or unreadable)."""
    try:
        with open(path, "rb") as stream:
            return header_identity(stream.read(100).ljust(100, b"\0"))[1]
    except OSError:
        return 0


def check_wal(path: Path) -> None:
    """NotAStoreError when the store's ``-wal`` was written for another database (see the
    module docstring); nothing when there is none, or nothing in it to tell."""
    wal = companions(path)[0]
    try:
        with open(path, "rb") as stream:
            page_size, identity = header_identity(stream.read(100).ljust(100, b"\0"))
        with open(wal, "rb") as stream:
            header = stream.read(_WAL_HEADER)
            if len(header) < _WAL_HEADER:
                return  # empty or cut short: SQLite ignores (and resets) such a log
            magic, _, wal_page_size, _, salt1, salt2 = struct.unpack_from(">6I", header)
            if magic not in _WAL_MAGICS:
                return
            if identity and wal_page_size != page_size:
                raise NotAStoreError(_foreign(wal, f"its pages are {wal_page_size} bytes, the "
                                                   f"store's {page_size}"))
            logged = _last_logged_identity(stream, wal_page_size, salt1, salt2)
    except FileNotFoundError:
        return
    except OSError as error:
        raise StoreError(f"{wal}: cannot read the results store's write-ahead log: "
                         f"{error.strerror}") from None
    # Every commit of this tool rewrites page 1 (ResultsStore._write), so another store's log
    # carries that store's identity.  A log without page 1 (another program's commit to this
    # store, which may still be open), or a store or page without an identity (0), proves
    # nothing.
    if identity and logged and logged != identity:
        raise NotAStoreError(_foreign(wal, "it belongs to another database"))


def _last_logged_identity(stream, page_size: int, salt1: int, salt2: int) -> int | None:
    """user_version in the log's newest frame of page 1 (frames of this log's salts only);
    None when no frame is of page 1."""
    found, offset = None, _WAL_HEADER
    while True:
        stream.seek(offset)
        frame = stream.read(_FRAME_HEADER + _USER_VERSION_AT + 4)
        if len(frame) < _FRAME_HEADER + _USER_VERSION_AT + 4:
            return found
        page, _, frame_salt1, frame_salt2 = struct.unpack_from(">4I", frame)
        if (frame_salt1, frame_salt2) != (salt1, salt2):
            return found  # frames of an older generation of the log: not replayed
        if page == 1:
            found = struct.unpack_from(">I", frame, _FRAME_HEADER + _USER_VERSION_AT)[0]
        offset += _FRAME_HEADER + page_size


def _foreign(wal: Path, why: str) -> str:
    return (f"{wal}: a write-ahead log that is not this results store's ({why}); it is not "
            "replayed and left untouched: remove it if no run is using the store, or give "
            "another --store")


def new_identity() -> int:
    """A random store identity: a positive 31-bit ``user_version`` (0 means none)."""
    return secrets.randbelow(2 ** 31 - 1) + 1


def create_store_file(path: Path, prepare: Callable[[sqlite3.Connection], None]) -> None:
    """Make a new store at ``path``: ``prepare`` fills a temporary database beside it (in a
    transaction), which gets an identity and the WAL journal and is then linked into place.
    Nothing happens when a store appears at ``path`` meanwhile (another run made it)."""
    temp = temporary_name(path, f"{os.getpid()}.{secrets.token_hex(4)}")
    try:
        db = sqlite3.connect(str(temp), isolation_level=None)
        try:
            # The identity goes into the file's own header, before the WAL journal exists.
            db.execute(f"PRAGMA user_version = {new_identity()}")
            db.execute("BEGIN IMMEDIATE")
            prepare(db)
            db.execute("COMMIT")
            db.execute("PRAGMA journal_mode = WAL")
        finally:
            db.close()  # the last connection folds the log back into the file
        try:
            os.link(temp, path)
        except FileExistsError:
            pass  # another run made the store first: use theirs
        except OSError as error:
            if error.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP):
                raise
            _rename_if_absent(temp, path)  # a file system without hard links
    finally:
        for leftover in (temp, *companions(temp)):
            try:
                os.unlink(leftover)
            except FileNotFoundError:
                pass


def _rename_if_absent(temp: Path, path: Path) -> None:
    """Rename ``temp`` to ``path`` unless something is there (a small race, no hard links)."""
    try:
        os.lstat(path)
    except FileNotFoundError:
        os.rename(temp, path)
