"""The user's cache of derived files (onnxruntime translations), shared by every run.

Lives in ``$XDG_CACHE_HOME/depth_eval``, else ``~/.cache/depth_eval`` (``--cache-dir`` picks
another folder), so a CI job with a fresh OUT_DIR reuses what an earlier job made.  Entries are
files named by their key (a sha256 in hex, with an optional extension), written through a
temporary file and a rename: a reader sees a whole entry or none, and two processes writing
the same key at once both succeed (the last rename wins; both wrote the same bytes).  The
folder is kept under a size bound by removing the least recently used entries (an entry's
mtime is set on every write and read).  A cache that cannot be written (read-only, no home
folder, disk full) is reported once and the run goes on without it.

Entries are not fsynced: after a power cut an entry may be cut short or hold zeros, which its
user must treat as a miss: the onnxruntime engine's entries carry checksums, checked before
they are loaded (:mod:`depth_eval.engines.onnx_cache`).
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from depth_eval.writing import write_atomic

__all__ = ["BlobCache", "default_cache_dir", "parse_size", "DEFAULT_MAX_BYTES"]

# A translated thesis network is ~280 MB: room for a few snapshots' translations.
DEFAULT_MAX_BYTES = 2 * 1024 ** 3
CACHE_SUBDIR = "depth_eval"
# A temporary file this old belongs to a writer that was killed: eviction removes it.
STALE_TEMP_S = 3600.0
# Entry names: a sha256 in hex and an optional extension.  Only such files are ever evicted,
# so a --cache-dir that holds other files keeps them.
KEY_PATTERN = re.compile(r"[0-9a-f]{64}(\.[A-Za-z0-9]{1,16})?")
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}


def default_cache_dir(environ=None) -> Path:
    """``$XDG_CACHE_HOME/depth_eval``, else ``~/.cache/depth_eval``.

    A relative ``XDG_CACHE_HOME`` is ignored, as the XDG base directory rules say.  Raises
    RuntimeError when there is no home folder to fall back on.
    """
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CACHE_HOME", "")
    if base and os.path.isabs(base):
        return Path(base) / CACHE_SUBDIR
    return Path.home() / ".cache" / CACHE_SUBDIR


def parse_size(text: str) -> int:
    """Bytes of a size such as ``2G``, ``500M``, ``1.5G`` or ``1048576`` (binary units)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([KMGT]?)(?:i?B)?\s*", str(text), re.IGNORECASE)
    if not match:
        raise ValueError(f"not a size: {text!r} (expected e.g. 2G, 500M, 1048576)")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()])


def _stderr_warning(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


class BlobCache:
    """Bytes by key in one folder, bounded in size, least recently used evicted first.

    Parameters
    ----------
    directory : str or Path, optional
        The cache folder (``--cache-dir``); default :func:`default_cache_dir`.  Made if missing.
    max_bytes : int
        Bound on the entries' total size, checked after every write.
    warn : callable, optional
        Receives the one message said when the cache cannot be used (``Console.warn``);
        default: a ``warning:`` line on stderr.

    Attributes
    ----------
    directory : Path or None
        None when there is no folder to use (no home folder).
    writable : bool
        False once writing has failed (or the folder cannot be made): entries already
        there are still read, nothing is written.
    """

    def __init__(self, directory=None, max_bytes: int = DEFAULT_MAX_BYTES,
                 warn: Callable[[str], None] | None = None):
        if max_bytes < 0:
            raise ValueError(f"max_bytes must not be negative, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self._warn = warn or _stderr_warning
        self._warned = False
        self._lock = threading.Lock()
        self.writable = True
        try:
            self.directory: Path | None = Path(directory) if directory is not None \
                else default_cache_dir()
        except RuntimeError as error:  # no HOME and no passwd entry
            self.directory = None
            self._disable(f"no cache folder ({error})")
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            if not os.access(self.directory, os.W_OK | os.X_OK):
                raise PermissionError(13, "not writable", str(self.directory))
        except OSError as error:
            self._disable(self._describe(error))

    # -- reading -----------------------------------------------------------------------------

    def path_of(self, key: str) -> Path | None:
        """Where the entry of ``key`` lives (whether or not it exists); None without a folder."""
        if not KEY_PATTERN.fullmatch(key):
            raise ValueError(f"cache key must be a sha256 in hex with an optional extension, "
                             f"got {key!r}")
        return None if self.directory is None else self.directory / key

    def get_path(self, key: str) -> Path | None:
        """The entry's file if it is there (marked as just used), else None.

        For readers that open the file themselves (onnxruntime loads a model from a path).
        """
        path = self.path_of(key)
        if path is None or not path.is_file():
            return None
        self._touch(path)
        return path

    def get(self, key: str) -> bytes | None:
        """The entry's bytes (marked as just used), or None when it is not cached."""
        path = self.path_of(key)
        if path is None:
            return None
        try:
            data = path.read_bytes()
        except OSError:  # missing, evicted meanwhile, or unreadable: a miss
            return None
        self._touch(path)
        return data

    # -- writing -----------------------------------------------------------------------------

    def put(self, key: str, data: bytes) -> Path | None:
        """Store ``data`` under ``key`` atomically; returns its file, or None if not stored.

        Not stored: the cache is not writable, or ``data`` alone exceeds ``max_bytes``.
        Older entries are then evicted until the total fits ``max_bytes``.
        """
        path = self.path_of(key)
        if path is None or not self.writable or len(data) > self.max_bytes:
            return None
        try:
            write_atomic(path, data)
            self._touch(path)
            self.evict(keep=path)
        except OSError as error:
            self._disable(self._describe(error))
            return None
        return path

    def evict(self, keep: Path | None = None) -> list[str]:
        """Remove least recently used entries until the total fits; returns the names removed.

        Also removes temporary files left by killed writers.  Safe while other processes use
        the cache: an entry removed under a reader is a miss for its next lookup.
        """
        if self.directory is None:
            return []
        entries, total, now = [], 0, time.time()
        with self._lock:
            try:
                listing = list(os.scandir(self.directory))
            except OSError:
                return []
            for entry in listing:
                try:
                    status = entry.stat(follow_symlinks=False)
                    if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                        if now - status.st_mtime > STALE_TEMP_S:
                            os.unlink(entry.path)
                        continue
                    if not KEY_PATTERN.fullmatch(entry.name) or not entry.is_file(
                            follow_symlinks=False):
                        continue
                except OSError:
                    continue  # removed meanwhile
                entries.append((status.st_mtime_ns, entry.name, status.st_size))
                total += status.st_size
            removed = []
            for _, name, size in sorted(entries):
                if total <= self.max_bytes:
                    break
                if keep is not None and name == keep.name:
                    continue
                try:
                    os.unlink(self.directory / name)
                except FileNotFoundError:
                    pass  # another process evicted it
                except OSError:
                    continue
                total -= size
                removed.append(name)
        return removed

    def total_bytes(self) -> int:
        """The entries' total size now."""
        if self.directory is None or not self.directory.is_dir():
            return 0
        return sum(entry.stat().st_size for entry in os.scandir(self.directory)
                   if KEY_PATTERN.fullmatch(entry.name) and entry.is_file())

    # -- internals ---------------------------------------------------------------------------

    @staticmethod
    def _touch(path: Path) -> None:
        """Mark as just used: mtime now, to the nanosecond (file systems round ``utime(None)``)."""
        now = time.time_ns()
        try:
            os.utime(path, ns=(now, now))
        except OSError:
            pass  # a read-only cache still serves its entries

    def report(self, message: str) -> None:
        """Say one thing about an entry (one damaged and made again) as the cache warns."""
        self._warn(message)

    def failed(self, error: OSError) -> None:
        """A write made outside :meth:`put` (a writer that streams its own files) failed: the
        cache is not written any more, as after a failed ``put`` (said once)."""
        self._disable(self._describe(error))

    def _describe(self, error: OSError) -> str:
        return f"{error.filename or self.directory}: {error.strerror or error}"

    def _disable(self, reason: str) -> None:
        self.writable = False
        if not self._warned:
            self._warned = True
            self._warn(f"cache not used ({reason}); derived files are made again each run "
                       "(--cache-dir gives another folder)")
