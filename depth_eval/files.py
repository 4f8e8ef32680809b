"""Safe file writing: atomic writes, and folders the tool writes into without touching files it
did not create."""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: concurrent runs into one folder are not guarded
    fcntl = None


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    A reader never sees a half-written file, and an interrupted run leaves the old file intact.
    """
    path = Path(path)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    # O_EXCL: never write through a file or link someone else put there; 0o666 & umask as open().
    handle = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise


# Names of the files depth_eval wrote into a folder, so a rerun replaces those and no others.
MANIFEST_NAME = ".depth_eval-written"


class OutputFolder:
    """A folder the tool writes into without touching files it did not create.

    A rerun may replace a file listed in the folder's manifest (written by an earlier run);
    any other existing file of the same name is left alone and reported as a conflict.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise NotADirectoryError(f"{self.path}: exists and is not a folder")
        self.path.mkdir(parents=True, exist_ok=True)
        self._written = self._read_manifest()
        self._lock = threading.Lock()  # worker threads claim names concurrently

    def _read_manifest(self) -> set[str]:
        manifest = self.path / MANIFEST_NAME
        names = set(manifest.read_text(encoding="utf-8").split("\n")) if manifest.is_file() \
            else set()
        names.discard("")
        return names

    @contextmanager
    def _folder_lock(self):
        """Another process's claim on the folder waits (two runs sharing OUT_DIR and a store)."""
        try:
            handle = os.open(self.path, os.O_RDONLY) if fcntl is not None else None
        except OSError:  # a folder that cannot be listed: no lock, as without fcntl
            handle = None
        if handle is None:
            yield
            return
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        finally:
            os.close(handle)  # releases the lock

    def conflicts(self, names) -> list[str]:
        """Those of ``names`` that exist and are not the tool's, claiming nothing (a dry run)."""
        with self._lock:
            return [n for n in names if n not in self._written and (self.path / n).exists()]

    def claim(self, names) -> list[str]:
        """Reserve ``names`` for writing; return those that exist and are not the tool's.

        The manifest on disk is read again first: a concurrent run may have claimed (and
        written) names since this folder was opened, and its claims must not be lost.
        """
        with self._lock, self._folder_lock():
            self._written |= self._read_manifest()
            conflicts = [n for n in names if n not in self._written and (self.path / n).exists()]
            fresh = set(names) - set(conflicts) - self._written
            if fresh:
                self._written |= fresh
                write_atomic(self.path / MANIFEST_NAME,
                             "\n".join(sorted(self._written)).encode() + b"\n")
            return conflicts

    def write(self, name: str, data: bytes) -> Path:
        """Write one claimed file atomically."""
        if name not in self._written:
            raise PermissionError(f"{self.path / name}: not claimed by this run")
        target = self.path / name
        write_atomic(target, data)
        return target
