"""The user cache: location, atomic writes under concurrency, LRU eviction, degraded modes."""

import hashlib
import multiprocessing
import os
import time
from pathlib import Path

import pytest

from depth_eval.store.user_cache import (DEFAULT_MAX_BYTES, STALE_TEMP_S, BlobCache, default_cache_dir, parse_size)


def key(name: str, extension: str = ".onnx") -> str:
    return hashlib.sha256(name.encode()).hexdigest() + extension


def collect():
    messages = []
    return messages, messages.append


def test_location_follows_xdg_and_falls_back_to_home(tmp_path, monkeypatch):
    assert default_cache_dir({"XDG_CACHE_HOME": "/x/cache"}) == Path("/x/cache/depth_eval")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_dir({}) == tmp_path / ".cache" / "depth_eval"
    assert default_cache_dir({"XDG_CACHE_HOME": "relative"}) == tmp_path / ".cache" / "depth_eval"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cache = BlobCache()
    assert cache.directory == tmp_path / "xdg" / "depth_eval" and cache.directory.is_dir()
    assert cache.max_bytes == DEFAULT_MAX_BYTES == 2 * 1024 ** 3


def test_put_get_round_trip_and_misses(tmp_path):
    cache = BlobCache(tmp_path / "c")
    data = os.urandom(100_000)
    assert cache.get(key("a")) is None and cache.get_path(key("a")) is None
    path = cache.put(key("a"), data)
    assert path == tmp_path / "c" / key("a") and path.read_bytes() == data
    assert cache.get(key("a")) == data and cache.get_path(key("a")) == path
    assert cache.put(key("b", ""), b"") is not None and cache.get(key("b", "")) == b""
    assert sorted(os.listdir(tmp_path / "c")) == sorted([key("a"), key("b", "")])  # no temps
    for bad in ("../x", "abc", key("a", "/x"), ".hidden"):
        with pytest.raises(ValueError):
            cache.get(bad)


def test_least_recently_used_is_evicted_first_and_the_bound_holds(tmp_path):
    cache = BlobCache(tmp_path, max_bytes=3000)
    (tmp_path / "notes.txt").write_bytes(b"x" * 5000)  # not an entry: never removed
    for name in "abc":
        cache.put(key(name), name.encode() * 1000)
    assert cache.total_bytes() == 3000
    assert cache.get(key("a")) == b"a" * 1000  # a is now the most recently used
    cache.put(key("d"), b"d" * 1000)
    assert cache.get(key("b")) is None
    assert [cache.get(key(n)) is not None for n in "acd"] == [True] * 3
    assert cache.get_path(key("c")) is not None  # reading by path marks use too
    cache.put(key("e"), b"e" * 2000)  # needs two entries' room: a, then d go
    assert {n for n in "abcde" if cache.get(key(n)) is not None} == {"c", "e"}
    assert cache.total_bytes() <= 3000
    assert cache.put(key("huge"), b"h" * 3001) is None  # never fits: not stored, nothing lost
    assert cache.get(key("c")) is not None and (tmp_path / "notes.txt").exists()


def test_stale_temporary_files_of_killed_writers_are_removed(tmp_path):
    cache = BlobCache(tmp_path)
    stale, fresh = tmp_path / f".{key('a')}.1.2.tmp", tmp_path / f".{key('b')}.3.4.tmp"
    stale.write_bytes(b"partial")
    fresh.write_bytes(b"being written")
    old = time.time() - STALE_TEMP_S - 10
    os.utime(stale, (old, old))
    cache.put(key("c"), b"c")
    assert not stale.exists() and fresh.exists()


def _hammer(directory: str, worker: int, start, rounds: int) -> None:
    cache = BlobCache(directory, max_bytes=64 * 1024 ** 2)
    same = bytes([7]) * 3_000_000  # every process writes the same entry
    start.wait()
    for i in range(rounds):
        assert cache.put(key("same"), same) is not None
        seen = cache.get(key("same"))
        assert seen is None or seen == same, "a reader saw a partial entry"
        own = bytes([worker]) * (1000 + i)
        assert cache.put(key(f"{worker}-{i}", ".bin"), own) is not None
        assert cache.get(key(f"{worker}-{i}", ".bin")) == own


def test_processes_writing_the_same_key_at_once(tmp_path):
    context = multiprocessing.get_context("fork")
    start = context.Barrier(3)
    workers = [context.Process(target=_hammer, args=(str(tmp_path), w, start, 25))
               for w in range(3)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(120)
    assert [p.exitcode for p in workers] == [0, 0, 0]
    cache = BlobCache(tmp_path)
    assert cache.get(key("same")) == bytes([7]) * 3_000_000
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]
    assert len(os.listdir(tmp_path)) == 1 + 3 * 25


def test_a_cache_folder_that_cannot_be_made_warns_once_and_is_not_used(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    messages, warn = collect()
    cache = BlobCache(blocker / "cache", warn=warn)
    assert not cache.writable
    assert cache.put(key("a"), b"data") is None and cache.put(key("b"), b"more") is None
    assert cache.get(key("a")) is None
    assert len(messages) == 1 and str(blocker) in messages[0] and "cache not used" in messages[0]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_cache_serves_its_entries_and_warns_once(tmp_path):
    BlobCache(tmp_path).put(key("a"), b"old entry")
    tmp_path.chmod(0o555)
    try:
        messages, warn = collect()
        cache = BlobCache(tmp_path, warn=warn)
        assert cache.get(key("a")) == b"old entry"
        assert cache.put(key("b"), b"new") is None and cache.put(key("c"), b"new") is None
        assert len(messages) == 1
    finally:
        tmp_path.chmod(0o755)


def test_a_write_that_fails_midway_disables_writing_with_one_warning(tmp_path):
    messages, warn = collect()
    cache = BlobCache(tmp_path / "c", warn=warn)
    (tmp_path / "c").rmdir()  # the folder vanished (cleaned by another job)
    (tmp_path / "c").write_text("now a file")
    assert cache.put(key("a"), b"data") is None and cache.put(key("b"), b"data") is None
    assert not cache.writable and len(messages) == 1


def test_parse_size():
    assert parse_size("2G") == 2 * 1024 ** 3 and parse_size("500M") == 500 * 1024 ** 2
    assert parse_size("1.5GiB") == 3 * 1024 ** 3 // 2 and parse_size("1048576") == 1048576
    assert parse_size("64k") == 65536
    with pytest.raises(ValueError):
        parse_size("lots")
