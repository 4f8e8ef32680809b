"""Where a report file named on the command line may go, checked before any work, and how it
is written: the ``--per-image`` CSV, the ``--report`` page and the ``--junit`` XML.

Inside OUT_DIR the file is one of the run's outputs: it goes through OUT_DIR's manifest like
results.json (OUT_DIR is created by the run).  Anywhere else the folder is the user's: it must
exist already (no folder is created), no manifest is left there, and the file is written
atomically.  An existing file there is replaced only when its first line starts as the tool
writes it (:attr:`OwnFile.header`): a file from an earlier run.  Anything else (another file,
a folder, a FIFO) is refused before any work.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from depth_eval.inputs import limits
from depth_eval.errors import UsageError
from depth_eval.report.rankings import per_image_csv
from depth_eval.report.reporters import Reporter
from depth_eval.writing import OutputFolder, write_atomic, written_names


def in_out_dir(path: Path, out_dir: Path) -> bool:
    """Whether ``path`` is a file directly in OUT_DIR."""
    return os.path.abspath(path.parent) == os.path.abspath(out_dir)


@dataclass(frozen=True)
class OwnFile:
    """A kind of file the tool writes where the user says."""

    option: str          # the option naming it, for messages
    suffix: str          # the extension its name must have
    header: bytes        # how the tool's own file of this kind starts
    header_ends: tuple | None = None  # what may follow the header (None: anything)
    what: str = ""       # what the file is, for messages

    def check(self, path: Path | None, out_dir: Path, reserved=frozenset()) -> None:
        """Raise UsageError (before any work) if the file cannot be written at ``path``.

        ``reserved``: names of the run's own files in OUT_DIR (results.json, results.csv...).
        """
        if path is None:
            return
        if path.suffix.lower() != self.suffix:
            raise UsageError(f"{self.option} {path}: the name must end in {self.suffix} (the file "
                             f"is {self.what}; this also keeps it from replacing the tool's own "
                             "files)")
        if in_out_dir(path, out_dir):
            if path.name in reserved:
                raise UsageError(f"{self.option} {path}: that is one of the tool's own files in "
                                 "OUT_DIR; choose another name")
            if os.path.lexists(path) and not path.is_file():
                raise UsageError(f"{self.option} {path}: is {limits.describe(path)}, not a file")
            if os.path.lexists(path) and path.name not in written_names(out_dir):
                raise UsageError(f"{self.option} {path}: exists and was not written by "
                                 "depth_eval; left untouched, choose another name")
            return
        parent = path.parent
        if not parent.is_dir():
            what = limits.describe(parent)
            raise UsageError(f"{self.option} {path}: the folder {parent} "
                             f"{'does not exist' if what == 'missing' else 'is ' + what}; only "
                             "OUT_DIR is created by the run")
        problem = self.replace_problem(path)
        if problem:
            raise UsageError(f"{self.option} {path}: {problem}")

    def replace_problem(self, path: Path) -> str | None:
        """Why an existing file at ``path`` (outside OUT_DIR) must not be replaced, or None."""
        if not os.path.lexists(path):
            return None
        try:
            with limits.open_regular(path) as stream:
                first = stream.readline(len(self.header) + 1)
        except OSError as error:
            return f"exists and cannot be checked ({error.strerror or error})"
        rest = first[len(self.header):][:1]
        if first.startswith(self.header) and (self.header_ends is None or rest in self.header_ends):
            return None
        return (f"exists and was not written by depth_eval (its first line is not a "
                f"{self.option} header); left untouched, choose another name")

    def write(self, path: Path, out_dir: Path, data: bytes) -> list[str]:
        """Write the file; returns problems (one line each) when it was left unwritten."""
        if in_out_dir(path, out_dir):
            folder = OutputFolder(out_dir)
            if folder.claim([path.name]):
                return [f"{path}: exists and was not written by depth_eval; left untouched"]
            folder.write(path.name, data)
            return []
        problem = self.replace_problem(path)  # checked again: the file may have appeared meanwhile
        if problem:
            return [f"{path}: {problem}"]
        write_atomic(path, data)
        return []


# The first cells of the header report.per_image_csv writes: how an earlier file is recognised.
HEADER_START = b"snapshot,image"
# The extension the option takes (its metavar is FILE.csv).
SUFFIX = ".csv"
# The header ends there or goes on with more cells.
PER_IMAGE = OwnFile("--per-image", SUFFIX, HEADER_START, (b",", b"\n", b""), "a CSV table")
check = PER_IMAGE.check
replace_problem = PER_IMAGE.replace_problem
write = PER_IMAGE.write


class PerImageReporter(Reporter):
    """``--per-image``: one row per snapshot x image."""

    def wanted(self, run) -> bool:
        return run.settings.outputs.per_image is not None

    def report(self, run, console) -> list[str]:
        outputs = run.settings.outputs
        return write(outputs.per_image, outputs.out_dir, per_image_csv(run.tally.entries))
