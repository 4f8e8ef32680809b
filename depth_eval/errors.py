"""Every error the tool reports, under one base class, and the exit statuses they map to.

The command line turns a :class:`DepthEvalError` into one line on stderr and the exit status
of its class (:func:`exit_status_of`); anything else is a bug.  Errors that concern one
snapshot or one image are caught by the run, reported, and that unit is skipped; the others
stop the run.
"""

from __future__ import annotations

import errno
import os

# Exit statuses (docs/command-line.md, "Exit status"): every unit evaluated / something
# skipped / nothing could be evaluated or the run cannot be trusted / a --fail-if rule broke.
EXIT_OK, EXIT_PARTIAL, EXIT_NOTHING, EXIT_GATE = 0, 1, 2, 3
# Ctrl-C, as a shell reports a process killed by SIGINT.
EXIT_INTERRUPTED = 130


class DepthEvalError(Exception):
    """Base of every error depth_eval reports; the message names the file and the cause."""

    exit_status = EXIT_NOTHING


class UsageError(DepthEvalError):
    """The command line or its folders: nothing can be done."""


class EngineUnavailableError(UsageError):
    """The chosen engine's package is not installed (or lacks the device)."""


class OutputError(DepthEvalError):
    """Results cannot be written (disk full, read-only folder): the run stops at once."""


class SnapshotError(DepthEvalError, ValueError):
    """One snapshot cannot be evaluated; the run goes on with the others."""


class CaffeFormatError(SnapshotError):
    """A prototxt or caffemodel that does not parse as Caffe's schema."""


class ShapeError(SnapshotError):
    """A deploy definition whose blob shapes cannot be inferred (or weights that do not fit)."""


class UnsupportedLayerError(SnapshotError):
    """A layer type or parameter an engine cannot run."""


class ImageError(DepthEvalError, ValueError):
    """One image (or pair) cannot be evaluated; the run goes on with the others."""


class ImageReadError(ImageError):
    """An image file that cannot be read or decoded."""


def describe(error: BaseException) -> str:
    """An error as its one-line reason: an OSError as ``FILE: what`` (not ``[Errno N] ...``),
    a name too long with its length in bytes."""
    if isinstance(error, OSError) and error.strerror and error.filename is not None:
        text = f"{error.filename}: {error.strerror}"
        if error.errno == errno.ENAMETOOLONG:
            name = os.path.basename(os.fsencode(error.filename))
            text += f" (a {len(name)}-byte name, from an input whose name is too long for it)"
        return text
    return str(error)


def exit_status_of(error: BaseException) -> int:
    """The exit status for an error that ended the run."""
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return getattr(error, "exit_status", EXIT_NOTHING)
