"""The command line: ``depth-eval COMMAND ...`` (evaluate by default, so ``depth-eval IN GT OUT
SNAPS`` works) and the thesis' own ``test_depth.py INPUT_DIR GT_DIR OUT_DIR SNAPSHOTS_DIR [--log]``.

Arguments only: each command's module builds its validated settings once and runs.  Every
error the tool reports (:class:`~depth_eval.errors.DepthEvalError`) becomes one line on stderr
and its exit status here, and only here:

0 every snapshot and image was evaluated; 1 something was skipped (the message says what and
why); 2 nothing could be evaluated, or the run cannot be trusted (or an output could not be
written); 3 a --fail-if rule broke; 130 interrupted (Ctrl-C); 143 terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys
import threading

from depth_eval import __version__, commands, timings
from depth_eval.console import Console
from depth_eval.errors import (EXIT_INTERRUPTED, EXIT_NOTHING, EXIT_OK, DepthEvalError,
                               exit_status_of)

# The evaluator runs its small matrix products (the cubic upsampling) on worker threads beside
# the network's forward pass: a multithreaded BLAS would only contend with it for the cores.
# Set by the entry point before numpy loads (an explicit setting wins), not on import.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# glibc's malloc: arrays up to this size come from its heap, and freed memory is kept until this
# much is free.  Its defaults return the evaluator's per-image arrays (a dozen of ~1 MB) to the
# system after each image and fault them in again for the next: 3,000 page faults and 4.5 of the
# 6 ms the thesis metrics take per image (measured); the heap keeps a few tens of MB instead.
MALLOC_MMAP_THRESHOLD_BYTES = 16 << 20
MALLOC_TRIM_THRESHOLD_BYTES = 64 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)


def keep_freed_memory() -> None:
    """Tune glibc's malloc for the per-image arrays (Linux; elsewhere nothing)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return
    mallopt(_M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD_BYTES)
    mallopt(_M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD_BYTES)


# SIGTERM, as a shell reports a process it ended (128 + 15).
EXIT_TERMINATED = 128 + signal.SIGTERM


def _command_parser(name: str, prog: str | None = None,
                    subparsers=None) -> argparse.ArgumentParser:
    module = commands.load(name)
    description = getattr(module, "DESCRIPTION", module.HELP)
    if subparsers is None:
        parser = argparse.ArgumentParser(prog=prog, description=description)
    else:
        parser = subparsers.add_parser(name, help=module.HELP, description=description)
    module.add_arguments(parser)
    parser.add_argument("--version", action="version", version=f"depth_eval {__version__}")
    parser.set_defaults(command=name)
    return parser


def build_parser(prog: str = "depth-eval") -> argparse.ArgumentParser:
    """``depth-eval`` with one sub-command per entry of :data:`depth_eval.commands.COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Evaluate Caffe-era depth-estimation snapshots with OpenCV's dnn module. "
                    f"Without a command, '{prog} IN GT OUT SNAPS' runs "
                    f"'{prog} {commands.DEFAULT_COMMAND} IN GT OUT SNAPS'.")
    parser.add_argument("--version", action="version", version=f"depth_eval {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in commands.COMMANDS:
        _command_parser(name, subparsers=subparsers)
    return parser


def parse(argv: list[str], prog: str = "depth-eval",
          only: str | None = None) -> argparse.Namespace:
    """Parse a command line; ``only`` fixes the command (``test_depth.py`` is evaluate only)."""
    if only is not None:
        return _command_parser(only, prog=prog).parse_args(argv)
    first = argv[0] if argv else None
    if first is not None and first not in commands.COMMANDS and not first.startswith("-"):
        argv = [commands.DEFAULT_COMMAND, *argv]
    if argv and argv[0] in commands.COMMANDS:
        # Only the named command's module is imported (another's may need numpy or OpenCV).
        return _command_parser(argv[0], prog=f"{prog} {argv[0]}").parse_args(argv[1:])
    args = build_parser(prog).parse_args(argv)
    if getattr(args, "command", None) is None:
        build_parser(prog).error(f"a command is needed: {', '.join(commands.COMMANDS)}")
    return args


def main(argv: list[str] | None = None, prog: str | None = None,
         only: str | None = None) -> int:
    """Run one command line; returns the exit status (see the module docstring)."""
    for variable in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(variable, "1")
    keep_freed_memory()
    argv = sys.argv[1:] if argv is None else list(argv)
    prog = prog or (os.path.basename(sys.argv[0]) if only else "depth-eval")
    args = parse(argv, prog, only)
    timings.start()
    console = Console(quiet=getattr(args, "quiet", False))
    module = commands.load(args.command)
    previous = _catch_sigterm()
    try:
        with timings.phase("settings"):  # imports the modules a run needs (numpy, OpenCV)
            settings = module.settings_from_args(args)
        return module.run(settings, console)
    except DepthEvalError as error:
        console.error(str(error))
        return exit_status_of(error)
    except Terminated:
        console.error("terminated")
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        console.error("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the output piped into a reader that stopped (| head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as error:  # a bug: one line, the traceback only on request
        if os.environ.get("DEPTH_EVAL_DEBUG"):
            raise
        console.error(f"unexpected {type(error).__name__}: {error} (set DEPTH_EVAL_DEBUG=1 for "
                      "the traceback, and please report it)")
        return EXIT_NOTHING
    finally:
        timings.report()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C: the file being written is removed and the
    results written so far stay (the default action would kill the process mid-write)."""


def _raise_terminated(_signum, _frame):
    raise Terminated()


def _catch_sigterm():
    """Turn SIGTERM into :class:`Terminated` while a command runs; the previous handler, or
    None where no handler can be set (not the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


def test_depth_main() -> int:
    """``test_depth.py``: the original's positional form (evaluate only)."""
    return main(prog="test_depth.py", only="evaluate")


def test_grad_main() -> int:
    """``test_grad.py``: the original's positional form (the gradient evaluation only)."""
    return main(prog="test_grad.py", only="gradients")


if __name__ == "__main__":
    sys.exit(main())
