"""Safe file writing: atomic writes, and folders the tool writes into without touching files it
did not create."""

from __future__ import annotations

import os
import threading
from pathlib import Path


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
        manifest = self.path / MANIFEST_NAME
        self._written = set(manifest.read_text(encoding="utf-8").split("\n")) if manifest.is_file() else set()
        self._written.discard("")
        self._lock = threading.Lock()  # worker threads claim names concurrently

    def conflicts(self, names) -> list[str]:
        """Those of ``names`` that exist and are not the tool's, claiming nothing (a dry run)."""
        with self._lock:
            return [n for n in names if n not in self._written and (self.path / n).exists()]

    def claim(self, names) -> list[str]:
        """Reserve ``names`` for writing; return those that exist and are not the tool's."""
        with self._lock:
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
