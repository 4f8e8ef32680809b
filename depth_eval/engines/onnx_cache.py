"""The onnxruntime engine's cached files: a snapshot's translation and its optimised graph.

Both live in the cache folder the engine is given, flat, named by key (a sha256 in hex, as
:mod:`depth_eval.store.user_cache` names its entries), and are stored the same way: ``<key>.onnx`` is the
graph (a few kilobytes) and ``<key>.d<8 hex digits>`` the weights it names (ONNX external data),
which onnxruntime maps from the file instead of reading and copying them.

- The translation, key :func:`cache_key` (definition, weights, output blob, translator
  version): written by the translator; any onnxruntime on any CPU loads it.
- The optimised graph, key :func:`optimised_key` (the translation's key, the onnxruntime version
  and this CPU): what onnxruntime's full graph optimisation makes of the translation (nodes
  fused, convolution weights reordered for this CPU's vector width), saved by onnxruntime and
  loaded with optimisation off.  It is specific to the CPU and the onnxruntime build, hence
  the key.

Writing is safe with several runs at once: the weights go to a file of a fresh name, then the
graph naming it replaces ``<key>.onnx`` in one rename, so a reader finds a whole entry or none.
``<key>.sha256`` lists the sha256 of the graph and of its weights file, written with them and
checked before an entry is used (:meth:`Entry.problem`): a file cut short or zero-filled in
place (a power cut) is found and the entry made again, where onnxruntime would load zeros.
A weights file that no graph names any more is removed by the next writer of its key once it
is an hour old (or by the cache's size bound: it is never used, so it is the least recent).
"""

from __future__ import annotations

import hashlib
import os
import platform
import secrets
import threading
import time
from contextlib import contextmanager
from pathlib import Path

__all__ = ["cache_key", "optimised_key", "cpu_signature", "Entry"]

# A weights file of a key whose graph names another is an orphan once this old (seconds): a
# writer of the same key finishes within seconds, and a file in use is touched on every load.
ORPHAN_AGE_S = 3600.0
# The checksum file's extension, and the size of the reads that hash a file.
SUMS_SUFFIX = ".sha256"
_HASH_CHUNK = 1 << 20


def _digest(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))  # unambiguous concatenation
        digest.update(data)
    return digest.hexdigest()


def cache_key(prototxt_sha256: str, caffemodel_sha256: str, output_blob: str,
              translator_version: str) -> str:
    """SHA-256 (hex) identifying one translation: definition, weights, output, translator."""
    return _digest(prototxt_sha256, caffemodel_sha256, output_blob, translator_version)


def cpu_signature() -> str:
    """This machine's architecture and CPU features (what the optimised graph depends on)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as stream:
            for line in stream:
                name, _, value = line.partition(":")
                if name.strip() in ("flags", "Features"):  # x86, ARM
                    return f"{platform.machine()} {' '.join(sorted(value.split()))}"
    except OSError:
        pass
    return f"{platform.machine()} {platform.processor()}"


def optimised_key(translation_key: str, onnxruntime_version: str) -> str:
    """SHA-256 (hex) of the optimised graph of a translation, for this onnxruntime and CPU."""
    return _digest(translation_key, "onnxruntime-optimised", onnxruntime_version,
                   cpu_signature())


def file_sha256(path: Path) -> str:
    """sha256 (hex) of a file's content, read in chunks (weights files are hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class Entry:
    """One cached graph and its weights file in ``folder``, by ``key``."""

    def __init__(self, folder, key: str):
        self.folder, self.key = Path(folder), key
        self.graph = self.folder / f"{key}.onnx"
        self.sums = self.folder / f"{key}{SUMS_SUFFIX}"

    def exists(self) -> bool:
        return self.graph.is_file()

    def problem(self) -> str | None:
        """Why the entry cannot be trusted (None: its files match the checksums written with
        them): no checksum file, a file missing, or one whose content changed."""
        try:
            lines = self.sums.read_text(encoding="ascii").splitlines()
        except FileNotFoundError:
            return "no checksum was written with it"
        except (OSError, UnicodeDecodeError) as error:
            return f"its checksum file cannot be read ({getattr(error, 'strerror', error)})"
        listed = dict(reversed(line.split("  ", 1)) for line in lines if "  " in line)
        if self.graph.name not in listed:
            return "its checksum file does not list the graph"
        for name, digest in listed.items():
            path = self.folder / name
            if path.parent != self.folder or not name.startswith(self.key):
                return f"its checksum file names {name!r}, not one of its files"
            try:
                if file_sha256(path) != digest:
                    return f"{name} does not match the checksum written with it"
            except FileNotFoundError:
                return f"{name} is missing"
            except OSError as error:
                return f"{name} cannot be read ({error.strerror or error})"
        return None

    def remove(self) -> None:
        """Remove the entry's graph, checksums and weights (a damaged entry, made again)."""
        for path in [self.graph, self.sums, *self._weights_files()]:
            try:
                path.unlink()
            except OSError:
                pass

    def _weights_files(self) -> list[Path]:
        prefix = f"{self.key}.d"
        try:
            return [Path(entry.path) for entry in os.scandir(self.folder)
                    if entry.name.startswith(prefix) and len(entry.name) == len(prefix) + 8]
        except OSError:
            return []

    def touch(self) -> None:
        """Mark the entry as just used (the cache's size bound evicts the least recent)."""
        now = time.time_ns()
        for path in [self.graph, self.sums, *self._weights_files()]:
            try:
                os.utime(path, ns=(now, now))
            except OSError:
                pass  # a read-only cache still serves its entries

    @contextmanager
    def writing(self):
        """Yield ``(temporary graph path, weights path)`` to write; on success the graph becomes
        the entry's in one rename, on an exception both files are removed."""
        self.folder.mkdir(parents=True, exist_ok=True)
        temp = self.folder / f".{self.key}.{os.getpid()}.{threading.get_ident()}.tmp"
        sums = temp.with_name(f"{temp.name[:-len('.tmp')]}.sums.tmp")
        weights = self.folder / f"{self.key}.d{secrets.token_hex(4)}"
        try:
            yield temp, weights
            listed = [(self.graph.name, temp)] + ([(weights.name, weights)]
                                                  if weights.exists() else [])
            sums.write_text("".join(f"{file_sha256(path)}  {name}\n" for name, path in listed),
                            encoding="ascii")
            os.replace(temp, self.graph)
            os.replace(sums, self.sums)
        except BaseException:
            for path in (temp, sums, weights):
                try:
                    path.unlink()
                except OSError:
                    pass
            raise
        self._remove_orphans(keep=weights)

    def _remove_orphans(self, keep: Path) -> None:
        now = time.time()
        for path in self._weights_files():
            try:
                if path != keep and now - path.stat().st_mtime > ORPHAN_AGE_S:
                    path.unlink()
            except OSError:
                pass
