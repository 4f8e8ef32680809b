"""Content hashes of input files, computed once per run and reused from the results store.

A run needs the sha256 of every caffemodel, prototxt, colour image and ground truth to make
the store's unit keys before any work.  :class:`FileHasher` reads each file at most once per
run, and with a store it does not read an unchanged file again on later runs.

"Unchanged" is judged by the file's stat signature: absolute path, size, mtime_ns, ctime_ns
and inode.  The trade-off: a recorded hash is trusted without reading the file while all five
match.  Rewriting a file in place changes its mtime and ctime (tools that restore mtime, such
as ``cp -p``, ``rsync -t`` or ``tar``, still change ctime, which no tool can set back), and
replacing it by a rename changes its inode, so all ordinary ways of changing a file are seen;
what is not seen is a change that also forges ctime (a clock set back, or raw block edits).
A fresh CI checkout gives every file new inodes and ctimes: everything is read once there,
which is correct and costs one pass over the files.  ``trust_stat=False`` always reads.

A results store lives in OUT_DIR, so a fresh OUT_DIR would read every file again; a ``memo``
(:class:`depth_eval.store.hash_memo.HashMemo`, in the user cache) remembers hashes by device
and inode across OUT_DIRs, trusted on the same signature.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from depth_eval import timings
from depth_eval.inputs.limits import open_regular

__all__ = ["file_sha256", "FileHasher"]

# Read files in 1 MiB pieces: no whole caffemodel in memory, few system calls.
CHUNK_BYTES = 1 << 20


def file_sha256(path) -> str:
    """sha256 (hex) of a file's bytes, read in :data:`CHUNK_BYTES` pieces."""
    return _hash_open(path)[0]


def _signature(status: os.stat_result) -> tuple[int, int, int, int]:
    return status.st_size, status.st_mtime_ns, status.st_ctime_ns, status.st_ino


def _hash_open(path) -> tuple[str, os.stat_result | None]:
    """sha256 of the file and its stat, or None if it changed while being read."""
    digest = hashlib.sha256()
    with open_regular(path) as stream:  # a FIFO would block the run forever
        before = os.fstat(stream.fileno())
        for piece in iter(lambda: stream.read(CHUNK_BYTES), b""):
            digest.update(piece)
        after = os.fstat(stream.fileno())
    return digest.hexdigest(), before if _signature(before) == _signature(after) else None


class FileHasher:
    """sha256 of files, each read at most once per instance (one per run).

    Parameters
    ----------
    store : depth_eval.store.database.ResultsStore, optional
        Where hashes are remembered between runs (its ``file_hashes`` table).
    trust_stat : bool
        Reuse a recorded hash while the file's stat signature is unchanged (see the module
        docstring); False reads every file once per run.
    memo : depth_eval.store.hash_memo.HashMemo, optional
        Hashes remembered outside the store (the user cache's): ``lookup(stat)`` and
        ``remember(stat, sha256)``.

    Attributes
    ----------
    files_read, files_reused : int
        How many files were read and hashed, and how many hashes came from the store.
    """

    def __init__(self, store=None, trust_stat: bool = True, memo=None):
        self.store, self.memo = store, memo
        self.trust_stat = trust_stat
        self.files_read = 0
        self.files_reused = 0
        self._memo: dict[tuple, str] = {}

    def sha256(self, path) -> str:
        """The sha256 (hex) of the file at ``path``; OSError if it cannot be read."""
        absolute = os.path.abspath(path)
        status = os.stat(absolute)
        signature = _signature(status)
        memo_key = (absolute, *signature)
        known = self._memo.get(memo_key)
        if known is not None:
            return known
        if self.trust_stat:
            in_store = None if self.store is None else self.store.known_file_hash(
                absolute, *signature)
            known = in_store or (None if self.memo is None else self.memo.lookup(status))
            if known is not None:
                self.files_reused += 1
                self._memo[memo_key] = known
                if in_store is None and self.store is not None:
                    self.store.remember_file_hash(absolute, *signature, known)
                elif self.memo is not None:
                    self.memo.remember(status, known)  # nothing written when it has it
                return known
        with timings.phase("hash"):
            digest, read_status = _hash_open(absolute)
        self.files_read += 1
        if read_status is not None:  # not changed while read: safe to remember
            read_signature = _signature(read_status)
            self._memo[(absolute, *read_signature)] = digest
            if self.store is not None:
                self.store.remember_file_hash(absolute, *read_signature, digest)
            if self.memo is not None:
                self.memo.remember(read_status, digest)
        return digest

    def __call__(self, path: Path | str) -> str:
        return self.sha256(path)
