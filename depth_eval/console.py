"""Where messages go: results on stdout, warnings, notes and errors on stderr, one line each."""

from __future__ import annotations

import sys


def one_line(text: str) -> str:
    """``text`` with control characters (newlines from file names included) shown escaped."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in str(text))


class Console:
    """The run's messages; ``quiet`` keeps only errors and results."""

    def __init__(self, quiet: bool = False, out=None, err=None):
        self.quiet = quiet
        self._out = out
        self._err = err

    @property
    def out(self):
        return self._out or sys.stdout

    @property
    def err(self):
        return self._err or sys.stderr

    def result(self, text: str = "") -> None:
        """A result line (rankings, tables): printed even when quiet."""
        print(text, file=self.out)

    def info(self, text: str = "") -> None:
        """Extra output on stdout (tables, paths): not when quiet."""
        if not self.quiet:
            print(text, file=self.out)

    def warn(self, message: str) -> None:
        if not self.quiet:
            print(f"warning: {one_line(message)}", file=self.err)

    def note(self, message: str) -> None:
        if not self.quiet:
            print(f"note: {one_line(message)}", file=self.err)

    def error(self, message: str) -> None:
        print(f"error: {one_line(message)}", file=self.err)
