"""Where the ``--per-image`` CSV may go, checked before any work, and how it is written.

Inside OUT_DIR the file is one of the run's outputs: it goes through OUT_DIR's manifest like
results.json (OUT_DIR is created by the run).  Anywhere else the folder is the user's: it must
exist already (no folder is created), no manifest is left there, and the file is written
atomically.  An existing file there is replaced only when its first line is the header the
tool writes (``snapshot,image,...``): a CSV from an earlier ``--per-image`` run.  Anything else
(another CSV, a folder, a FIFO) is refused before any work.
"""

from __future__ import annotations

import os
from pathlib import Path

from depth_eval.inputs import limits
from depth_eval.errors import UsageError
from depth_eval.writing import OutputFolder, write_atomic, written_names

# The first cells of the header report.per_image_csv writes: how an earlier file is recognised.
HEADER_START = b"snapshot,image"
# The extension the option takes (its metavar is FILE.csv).
SUFFIX = ".csv"


def in_out_dir(path: Path, out_dir: Path) -> bool:
    """Whether ``path`` is a file directly in OUT_DIR."""
    return os.path.abspath(path.parent) == os.path.abspath(out_dir)


def check(path: Path | None, out_dir: Path, reserved=frozenset()) -> None:
    """Raise UsageError (before any work) if the CSV cannot be written at ``path``.

    ``reserved``: names of the run's own files in OUT_DIR (results.json, results.csv...).
    """
    if path is None:
        return
    if path.suffix.lower() != SUFFIX:
        raise UsageError(f"--per-image {path}: the name must end in {SUFFIX} (the file is a CSV "
                         "table; this also keeps it from replacing the tool's own files)")
    if in_out_dir(path, out_dir):
        if path.name in reserved:
            raise UsageError(f"--per-image {path}: that is one of the tool's own files in OUT_DIR; "
                             "choose another name")
        if os.path.lexists(path) and not path.is_file():
            raise UsageError(f"--per-image {path}: is {limits.describe(path)}, not a file")
        if os.path.lexists(path) and path.name not in written_names(out_dir):
            raise UsageError(f"--per-image {path}: exists and was not written by depth_eval; "
                             "left untouched, choose another name")
        return
    parent = path.parent
    if not parent.is_dir():
        what = limits.describe(parent)
        raise UsageError(f"--per-image {path}: the folder {parent} "
                         f"{'does not exist' if what == 'missing' else 'is ' + what}; only "
                         "OUT_DIR is created by the run")
    problem = replace_problem(path)
    if problem:
        raise UsageError(f"--per-image {path}: {problem}")


def replace_problem(path: Path) -> str | None:
    """Why an existing file at ``path`` (outside OUT_DIR) must not be replaced, or None."""
    if not os.path.lexists(path):
        return None
    try:
        with limits.open_regular(path) as stream:
            first = stream.readline(len(HEADER_START) + 1)
    except OSError as error:
        return f"exists and cannot be checked ({error.strerror or error})"
    if first.startswith(HEADER_START) and first[len(HEADER_START):][:1] in (b",", b"\n", b""):
        return None
    return ("exists and was not written by depth_eval (its first line is not a --per-image "
            "header); left untouched, choose another name")


def write(path: Path, out_dir: Path, data: bytes) -> list[str]:
    """Write the CSV; returns problems (one line each) when it was left unwritten."""
    if in_out_dir(path, out_dir):
        folder = OutputFolder(out_dir)
        if folder.claim([path.name]):
            return [f"{path}: exists and was not written by depth_eval; left untouched"]
        folder.write(path.name, data)
        return []
    problem = replace_problem(path)  # checked again: the file may have appeared meanwhile
    if problem:
        return [f"{path}: {problem}"]
    write_atomic(path, data)
    return []
