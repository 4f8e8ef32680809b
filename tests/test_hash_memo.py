"""What a warm run keeps in the user cache: file hashes (a fresh OUT_DIR does not read unchanged
files again) and the zoom matrices (SciPy is not imported)."""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy
from helpers import evaluate, results

from depth_eval.inputs import hashing
from depth_eval.inputs.hashing import FileHasher
from depth_eval.scoring import upsample
from depth_eval.store import hash_memo
from depth_eval.store.database import ResultsStore
from depth_eval.store.hash_memo import HEADER, MEMO_NAME, HashMemo


def write(path, data: bytes):
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def memo_in(folder, said=None):
    return HashMemo(folder / MEMO_NAME, warn=None if said is None else said.append)


def test_a_remembered_hash_is_trusted_only_while_the_files_signature_is_unchanged(tmp_path):
    path, digest = write(tmp_path / "a.bin", b"weights" * 1000)
    memo = memo_in(tmp_path)
    assert memo.lookup(path.stat()) is None
    memo.remember(path.stat(), digest)
    assert memo.lookup(path.stat()) == digest
    assert memo_in(tmp_path).lookup(path.stat()) == digest  # the next run reads the file
    text = (tmp_path / MEMO_NAME).read_text()
    assert text.startswith(HEADER) and text.count("\n") == 2
    # Same size, mtime put back: ctime moved, the record is not trusted.
    status = path.stat()
    path.write_bytes(b"WEIGHTS" * 1000)
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))
    assert memo_in(tmp_path).lookup(path.stat()) is None
    # Replaced by a rename: another inode.
    other, _ = write(tmp_path / "b.bin", b"weights" * 1000)
    os.replace(other, path)
    assert memo_in(tmp_path).lookup(path.stat()) is None


def test_damaged_records_are_ignored_said_once_and_dropped_on_the_next_write(tmp_path):
    files = [write(tmp_path / f"f{i}.bin", bytes([i]) * 100) for i in range(3)]
    memo = memo_in(tmp_path)
    for path, digest in files:
        memo.remember(path.stat(), digest)
    memo_path = tmp_path / MEMO_NAME
    lines = memo_path.read_text().split("\n")
    # Record 1: one digit of its sha256 changed (the check no longer matches); record 2: a
    # record cut short by a killed writer (no newline).
    sha = lines[1].split(" ")[5]
    lines[1] = lines[1].replace(sha, ("0" if sha[0] != "0" else "1") + sha[1:])
    memo_path.write_text("\n".join(lines[:3]) + "\n" + lines[3][:40])
    said = []
    memo = memo_in(tmp_path, said)
    assert [memo.lookup(p.stat()) for p, _ in files] == [None, files[1][1], None]
    assert memo.damaged == 1
    assert said == [(f"{memo_path}: 1 damaged file-hash record(s) ignored; those files are "
                     "hashed again")]
    memo.remember(files[0][0].stat(), files[0][1])
    assert memo_path.read_text().count("\n") == 3  # header + the two good records
    again = memo_in(tmp_path, said)
    assert [again.lookup(p.stat()) for p, _ in files] == [files[0][1], files[1][1], None]
    assert again.damaged == 0 and len(said) == 1


def test_a_file_that_is_not_a_memo_is_left_alone(tmp_path):
    path, digest = write(tmp_path / "a.bin", b"x")
    foreign = tmp_path / MEMO_NAME
    foreign.write_text("my notes\n")
    said = []
    memo = memo_in(tmp_path, said)
    memo.remember(path.stat(), digest)
    assert memo.lookup(path.stat()) is None
    assert foreign.read_text() == "my notes\n"
    assert said == [f"{foreign}: not a depth_eval hash memo; left alone, files are hashed again"]


def test_an_unwritable_memo_is_said_once_and_the_run_goes_on(tmp_path):
    path, digest = write(tmp_path / "a.bin", b"x")
    said = []
    memo = HashMemo(tmp_path / "missing-folder-file" / "sub" / MEMO_NAME, warn=said.append)
    (tmp_path / "missing-folder-file").write_text("a file where the folder would be")
    memo.remember(path.stat(), digest)
    memo.remember(path.stat(), "0" * 64)
    assert memo.lookup(path.stat()) is None
    assert said == [(f"{memo.path}: cannot read remembered file hashes (Not a directory); "
                     "files are hashed again")]


def test_the_memo_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(hash_memo, "MAX_RECORDS", 6)
    monkeypatch.setattr(hash_memo, "KEEP_RECORDS", 3)
    files = [write(tmp_path / f"f{i}.bin", bytes([i])) for i in range(8)]
    memo = memo_in(tmp_path)
    for path, digest in files:
        memo.remember(path.stat(), digest)
    records = (tmp_path / MEMO_NAME).read_text().count("\n") - 1
    assert records <= 6
    fresh = memo_in(tmp_path)
    assert fresh.lookup(files[-1][0].stat()) == files[-1][1]  # the newest are kept
    assert fresh.lookup(files[0][0].stat()) is None


def test_a_fresh_store_reuses_the_memo_and_a_changed_file_is_read_again(tmp_path):
    files = [write(tmp_path / f"f{i}.bin", os.urandom(2_500_000)) for i in range(2)]
    memo_folder = tmp_path / "cache"
    for run in range(3):
        (tmp_path / f"out{run}").mkdir()  # a store is made in an existing folder only
    for run, (read, reused) in enumerate(((2, 0), (0, 2))):
        with ResultsStore.open(tmp_path / f"out{run}" / "r.sqlite") as store:
            hasher = FileHasher(store, memo=HashMemo.in_cache(memo_folder))
            assert [hasher(p) for p, _ in files] == [d for _, d in files]
            assert (hasher.files_read, hasher.files_reused) == (read, reused)
    path, _ = files[0]
    path.write_bytes(os.urandom(2_500_000))
    with ResultsStore.open(tmp_path / "out2" / "r.sqlite") as store:
        hasher = FileHasher(store, memo=HashMemo.in_cache(memo_folder))
        assert hasher(path) == hashlib.sha256(path.read_bytes()).hexdigest()
        assert hasher(files[1][0]) == files[1][1]
        assert (hasher.files_read, hasher.files_reused) == (1, 1)
    # Not trusting signatures reads every file, memo or not.
    careful = FileHasher(memo=HashMemo.in_cache(memo_folder), trust_stat=False)
    assert careful(files[1][0]) == files[1][1] and careful.files_read == 1


def test_a_run_in_a_fresh_out_dir_does_not_read_the_caffemodel_again(workspace, user_cache,
                                                                      monkeypatch):
    assert evaluate(workspace, "--quiet") == 0
    first = results(workspace)
    assert (user_cache / MEMO_NAME).is_file()
    read = []
    real = hashing._hash_open

    def counted(path):
        read.append(os.path.basename(path))
        return real(path)

    monkeypatch.setattr(hashing, "_hash_open", counted)
    assert evaluate(workspace, "--quiet", out="out2") == 0
    assert read == []  # neither the caffemodel nor the images nor the ground truths
    second = results(workspace, out="out2")
    for document in (first, second):
        for entry in document["snapshots"].values():
            entry.pop("seconds", None)
    assert json.dumps(first["snapshots"], sort_keys=True) == json.dumps(
        second["snapshots"], sort_keys=True)
    # A replaced caffemodel is read again.
    (model,) = (workspace / "snapshots").glob("*.caffemodel")
    data = model.read_bytes()
    model.unlink()
    model.write_bytes(data)
    assert evaluate(workspace, "--quiet", out="out3") == 0
    assert read == [model.name]


@pytest.mark.parametrize("engine", ["opencv", "onnxruntime"])
def test_both_engines_use_the_memo(workspace, user_cache, engine):
    if engine == "onnxruntime":
        pytest.importorskip("onnxruntime")
    assert evaluate(workspace, "--quiet", "--engine", engine) == 0
    (model,) = (workspace / "snapshots").glob("*.caffemodel")
    memo = HashMemo.in_cache(user_cache)
    assert memo.lookup(model.stat()) == hashlib.sha256(model.read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------------
# Zoom matrices kept in the user cache: a warm run does not import SciPy
# --------------------------------------------------------------------------------------------

def test_kept_zoom_matrices_are_scipys_and_a_damaged_one_is_made_again(tmp_path, monkeypatch):
    from scipy.ndimage import zoom

    upsample.keep_matrices_in(tmp_path)
    try:
        upsample._zoom_matrix.cache_clear()
        depth = np.random.default_rng(3).random((27, 37)).astype(np.float32)
        made = upsample.upsample(depth)
        files = sorted(p.name for p in tmp_path.glob(f"{upsample.MATRIX_PREFIX}*"))
        assert len(files) == 2 and all(name.endswith(f"-scipy{scipy.__version__}.f64")
                                       for name in files)
        upsample._zoom_matrix.cache_clear()

        def no_scipy(*args, **kwargs):
            raise AssertionError("zoomed again")

        monkeypatch.setattr("scipy.ndimage.zoom", no_scipy)
        assert np.array_equal(upsample.upsample(depth), made)  # from the files, bit for bit
        monkeypatch.undo()
        theirs = zoom(depth, (320 / 27, 420 / 37), order=3)
        assert np.abs(made.view(np.int32).astype(np.int64) - theirs.view(np.int32)).max() <= 4
        # One value altered: the file's checksum fails, the matrix is made again and rewritten.
        path = tmp_path / files[0]
        data = bytearray(path.read_bytes())
        data[100] ^= 0xFF
        path.write_bytes(bytes(data))
        upsample._zoom_matrix.cache_clear()
        assert np.array_equal(upsample.upsample(depth), made)
        assert path.read_bytes() != bytes(data)
    finally:
        upsample.keep_matrices_in(None)
        upsample._zoom_matrix.cache_clear()


def test_a_warm_run_imports_neither_scipys_ndimage_nor_stats(workspace, user_cache):
    # scipy.special (the BCa intervals) is imported; ndimage (the zoom) and stats are not.
    program = ("import sys; from depth_eval import cli; status = cli.main(sys.argv[1:]); "
               "print('scipy.ndimage' in sys.modules or 'scipy.stats' in sys.modules); "
               "sys.exit(status)")
    command = [sys.executable, "-c", program, str(workspace / "colors"),
               str(workspace / "depths"), "", str(workspace / "snapshots"), "--quiet"]
    env = {**os.environ, "XDG_CACHE_HOME": str(user_cache.parent)}
    for out, imported in (("out", "True"), ("out2", "False")):
        command[5] = str(workspace / out)
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split()[-1] == imported
    assert results(workspace, "out2")["snapshots"].keys() == results(workspace)["snapshots"].keys()
