"""Safe file writing: atomic writes, and folders the tool writes into without touching files it
did not create.

A write that fails because of the disk or the folder (full, read-only, no permission, quota)
raises :class:`~depth_eval.errors.OutputError` naming the path and the cause: the run stops
there, and the files written before (results.json of the snapshots done) stay as they were.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import threading
from contextlib import contextmanager
from pathlib import Path

from depth_eval.errors import OutputError

try:
    import fcntl
except ImportError:  # not POSIX: concurrent runs into one folder are not guarded
    fcntl = None

# Write failures that concern the disk or the folder, not one file's name: the run stops.
# Other errors (a name too long for one image...) stay OSErrors, reported for that image.
STOP_ERRNOS = frozenset(getattr(errno, name) for name in (
    "ENOSPC", "EDQUOT", "EROFS", "EACCES", "EPERM", "EIO", "EFBIG") if hasattr(errno, name))


def output_error(path: Path, error: OSError) -> OSError | OutputError:
    """``error`` as an OutputError naming ``path`` when it stops the run; else unchanged."""
    if error.errno in STOP_ERRNOS:
        return OutputError(f"{path}: cannot write ({error.strerror or error}); the run stops, "
                           "files written before are kept")
    return error


# The longest file name (bytes) the common file systems take (ext4, XFS, btrfs, tmpfs: NAME_MAX).
NAME_MAX_BYTES = 255


def temporary_name(path: Path, tag: str) -> Path:
    """A hidden temporary file beside ``path`` for a write that ends in a rename to it:
    ``.<name>.<tag>.tmp``, its name shortened (a digest of the whole name kept) so that a
    legal name of up to :data:`NAME_MAX_BYTES` bytes never gets a temporary one too long."""
    path = Path(path)
    name = f".{path.name}.{tag}.tmp"
    if len(os.fsencode(name)) <= NAME_MAX_BYTES:
        return path.with_name(name)
    digest = hashlib.sha256(os.fsencode(path.name)).hexdigest()[:16]
    room = NAME_MAX_BYTES - len(os.fsencode(f".~{digest}.{tag}.tmp"))
    head = os.fsencode(path.name)[:max(room, 0)].decode("utf-8", "ignore")
    return path.with_name(f".{head}~{digest}.{tag}.tmp")


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    A reader never sees a half-written file, and an interrupted run leaves the old file intact.

    Raises
    ------
    OutputError
        The disk or the folder refuses the write (:data:`STOP_ERRNOS`); no temporary file is
        left behind and the old file is intact.
    """
    path = Path(path)
    temp = temporary_name(path, f"{os.getpid()}.{threading.get_ident()}")
    try:
        # O_EXCL: never write through a file or link someone else put there; 0o666 & umask as open().
        handle = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as error:
        raise output_error(path, _naming(path, error)) from None
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temp, path)
    except BaseException as error:
        try:
            os.unlink(temp)
        except OSError:
            pass
        if isinstance(error, OSError):
            raise output_error(path, _naming(path, error)) from None
        raise


def _naming(path: Path, error: OSError) -> OSError:
    """``error`` about the file being written, ``path``, not its temporary file."""
    if error.errno is None:
        return error
    return type(error)(error.errno, error.strerror, str(path))


# Names of the files depth_eval wrote into a folder, so a rerun replaces those and no others.
MANIFEST_NAME = ".depth_eval-written"
# The manifest's layout: JSON holds any name (a name with a newline broke the old one-name-a-line
# layout, which is still read once and rewritten as JSON on the next write).
MANIFEST_FORMAT = "depth_eval-written/2"


def read_manifest(data: bytes) -> set[str]:
    """The names a manifest lists: the JSON layout, or the older one name a line."""
    text = data.decode("utf-8", errors="surrogateescape")
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if isinstance(document, dict) and isinstance(document.get("written"), list):
        return {name for name in document["written"] if isinstance(name, str)}
    return set(text.split("\n")) - {""}


def written_names(folder: Path) -> set[str]:
    """The names the tool wrote into ``folder``, from its manifest (none without one)."""
    manifest = Path(folder) / MANIFEST_NAME
    try:
        return read_manifest(manifest.read_bytes()) if manifest.is_file() else set()
    except OSError as error:
        raise OutputError(f"{manifest}: cannot read the list of the tool's files "
                          f"({error.strerror or error}); the run stops") from None


def manifest_bytes(names) -> bytes:
    return (json.dumps({"format": MANIFEST_FORMAT, "written": sorted(names)}, indent=0,
                       ensure_ascii=True) + "\n").encode("ascii")


class OutputFolder:
    """A folder the tool writes into without touching files it did not create.

    A rerun may replace a file listed in the folder's manifest (written by an earlier run);
    any other existing file of the same name is left alone and reported as a conflict.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise NotADirectoryError(f"{self.path}: exists and is not a folder")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise output_error(self.path, error) from None
        self._written = self._read_manifest()
        self._lock = threading.Lock()  # worker threads claim names concurrently

    def _read_manifest(self) -> set[str]:
        return written_names(self.path)

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
            return [n for n in names if n not in self._written and _exists(self.path / n)]

    def claim(self, names) -> list[str]:
        """Reserve ``names`` for writing; return those that exist and are not the tool's.

        The manifest on disk is read again first: a concurrent run may have claimed (and
        written) names since this folder was opened, and its claims must not be lost.
        """
        with self._lock, self._folder_lock():
            self._written |= self._read_manifest()
            conflicts = [n for n in names if n not in self._written and _exists(self.path / n)]
            fresh = set(names) - set(conflicts) - self._written
            if fresh:
                manifest = self.path / MANIFEST_NAME
                try:
                    write_atomic(manifest, manifest_bytes(self._written | fresh))
                except OSError as error:  # a folder in its place...: nothing can be claimed
                    raise OutputError(f"{manifest}: cannot write ({error.strerror or error}); "
                                      "the run stops, files written before are kept") from None
                self._written |= fresh
            return conflicts

    def write(self, name: str, data: bytes) -> Path:
        """Write one claimed file atomically."""
        if name not in self._written:
            raise PermissionError(f"{self.path / name}: not claimed by this run")
        target = self.path / name
        write_atomic(target, data)
        return target


def _exists(path: Path) -> bool:
    """Anything at ``path``, a dangling link included (writing would replace the link)."""
    return os.path.lexists(path)
