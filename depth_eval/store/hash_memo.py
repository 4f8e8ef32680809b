"""File hashes remembered in the user cache, so a fresh OUT_DIR does not read an unchanged
caffemodel again.

The results store (in OUT_DIR) remembers the hashes of the files a run read, but a CI job with
a fresh OUT_DIR has a fresh store: without this memo every run reads the whole 287 MB
caffemodel once more only to find the hash it had.  The memo is one small text file in the
user cache folder (:data:`MEMO_NAME`; not a cache entry, so never evicted as one), one record
per line::

    <st_dev> <st_ino> <size> <mtime_ns> <ctime_ns> <sha256> <check>

A record is trusted only while the file found by its (device, inode) still has that size,
mtime_ns and ctime_ns (see :mod:`depth_eval.inputs.hashing` for what that signature sees),
and only if its ``check`` (the first 16 hex digits of the sha256 of the rest of the line)
matches: a record cut short or altered is ignored (said once) and its file is hashed again.
Records are appended with one ``write`` each on a file opened for appending, so concurrent
runs do not interleave them; the newest record of a (device, inode) wins.  When the file holds
more than :data:`MAX_RECORDS` lines, or damaged ones, it is rewritten (a temporary file and a
rename) with the newest :data:`KEEP_RECORDS` good records.  A memo that cannot be written is
said once, and the run goes on hashing files itself.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable
from pathlib import Path

from depth_eval.errors import OutputError
from depth_eval.store.user_cache import default_cache_dir
from depth_eval.writing import write_atomic

__all__ = ["MEMO_NAME", "HashMemo"]

# The memo's file in the cache folder (no sha256 name: BlobCache neither counts nor evicts it).
MEMO_NAME = "file-hashes.memo"
# First line of a memo file: a file without it is not ours and is left alone.
HEADER = "depth_eval file hashes 1\n"
# Rewritten beyond this many lines (about 130 bytes each), keeping the newest KEEP_RECORDS.
MAX_RECORDS = 4096
KEEP_RECORDS = 2048
_CHECK_DIGITS = 16


def _check(fields: str) -> str:
    return hashlib.sha256(fields.encode("ascii")).hexdigest()[:_CHECK_DIGITS]


def _record(key: tuple[int, int], signature: tuple[int, int, int], sha256: str) -> str:
    """One line: (dev, ino), (size, mtime_ns, ctime_ns), the sha256 and the check."""
    fields = " ".join(str(value) for value in (*key, *signature)) + f" {sha256}"
    return f"{fields} {_check(fields)}\n"


def _parse(line: str) -> tuple[tuple[int, int], tuple[int, int, int], str] | None:
    """((dev, ino), (size, mtime_ns, ctime_ns), sha256) of a good record, else None."""
    fields, _, check = line.rpartition(" ")
    parts = fields.split(" ")
    if len(parts) != 6 or len(parts[5]) != 64 or check != _check(fields):
        return None
    try:
        dev, ino, size, mtime_ns, ctime_ns = (int(value) for value in parts[:5])
        int(parts[5], 16)
    except ValueError:
        return None
    return (dev, ino), (size, mtime_ns, ctime_ns), parts[5]


def _stderr_warning(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


class HashMemo:
    """sha256 of files by (device, inode), trusted while size, mtime_ns and ctime_ns agree.

    Parameters
    ----------
    path : str or Path
        The memo's file (made on the first :meth:`remember`).
    warn : callable, optional
        Receives a one-line message, at most once: damaged records ignored, or the memo cannot
        be read or written; default: a ``warning:`` line on stderr.

    Attributes
    ----------
    damaged : int
        Records of the file that were ignored (cut short, altered, not ours).
    """

    def __init__(self, path, warn: Callable[[str], None] | None = None):
        self.path = Path(path)
        self._warn = warn or _stderr_warning
        self._warned = False
        self._records: dict[tuple[int, int], tuple[tuple[int, int, int], str]] | None = None
        self._lines = 0
        self.damaged = 0
        self._untidy = False  # damaged records, or a last line cut short: rewrite, not append
        self._usable = True   # False: the file is not ours, or cannot be written

    @classmethod
    def in_cache(cls, directory=None, warn=None) -> HashMemo | None:
        """The memo in the user cache folder (``--cache-dir``, else the default one); None
        when there is no such folder (no home folder)."""
        try:
            folder = Path(directory) if directory is not None else default_cache_dir()
        except RuntimeError:
            return None
        return cls(folder / MEMO_NAME, warn)

    def lookup(self, status: os.stat_result) -> str | None:
        """The remembered sha256 of the file whose ``os.stat`` is ``status``, or None."""
        known = self._load().get((status.st_dev, status.st_ino))
        if known is None or known[0] != (status.st_size, status.st_mtime_ns, status.st_ctime_ns):
            return None
        return known[1]

    def remember(self, status: os.stat_result, sha256: str) -> None:
        """Record ``sha256`` for the file whose ``os.stat`` (taken before and after reading it,
        unchanged) is ``status``."""
        records = self._load()
        key, signature = (status.st_dev, status.st_ino), (
            status.st_size, status.st_mtime_ns, status.st_ctime_ns)
        if not self._usable or records.get(key) == (signature, sha256):
            return
        records.pop(key, None)
        records[key] = (signature, sha256)
        try:
            if self._lines == 0 or self._lines >= MAX_RECORDS or self._untidy:
                self._rewrite()
            else:
                self._append(_record(key, signature, sha256))
        except (OSError, OutputError) as error:
            self._usable = False
            reason = getattr(error, "strerror", None) or error
            self._say(f"{self.path}: cannot remember file hashes ({reason}); "
                      "unchanged files are read again in each fresh OUT_DIR")

    # -- internals ---------------------------------------------------------------------------

    def _load(self) -> dict:
        if self._records is not None:
            return self._records
        self._records = {}
        try:
            with open(self.path, "rb") as stream:
                text = stream.read().decode("ascii", errors="replace")
        except FileNotFoundError:
            return self._records
        except OSError as error:
            self._usable = False
            self._say(f"{self.path}: cannot read remembered file hashes "
                      f"({error.strerror or error}); files are hashed again")
            return self._records
        if not text.startswith(HEADER):
            self._usable = False  # not ours: neither trusted nor overwritten
            self._say(f"{self.path}: not a depth_eval hash memo; left alone, files are "
                      "hashed again")
            return self._records
        lines = text[len(HEADER):].split("\n")
        # A last line without its newline is a record being appended (or cut short): skipped,
        # and the file is rewritten rather than appended to (no record glued onto it).
        self._untidy = lines[-1] != ""
        for line in lines[:-1]:
            if not line:
                continue
            self._lines += 1
            parsed = _parse(line)
            if parsed is None:
                self.damaged += 1
                continue
            key, signature, sha256 = parsed
            self._records.pop(key, None)  # re-inserted last: dict order is newest last
            self._records[key] = (signature, sha256)
        if self.damaged:
            self._untidy = True
            self._say(f"{self.path}: {self.damaged} damaged file-hash record(s) ignored; "
                      "those files are hashed again")
        return self._records

    def _append(self, line: str) -> None:
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(descriptor, line.encode("ascii"))
        finally:
            os.close(descriptor)
        self._lines += 1

    def _rewrite(self) -> None:
        """The newest good records as a new file (a reader sees the old file or the new)."""
        newest = list(self._records.items())[-KEEP_RECORDS:]
        body = "".join(_record(key, signature, sha256) for key, (signature, sha256) in newest)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, (HEADER + body).encode("ascii"))
        self._lines, self.damaged, self._untidy = len(newest), 0, False

    def _say(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            self._warn(message)
