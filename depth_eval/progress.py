"""Progress per snapshot: a bar on a terminal, plain periodic lines in logs, nothing when quiet."""

from __future__ import annotations

import sys
import time

from depth_eval.console import one_line

# Seconds between plain progress lines when stderr is not a terminal (CI logs).
PLAIN_INTERVAL_S = 10.0


class Progress:
    """Counts finished images of one snapshot and shows the rate and the time left.

    Parameters
    ----------
    label : str
        The snapshot's name.
    total : int
        Images to evaluate.
    mode : {'auto', 'bar', 'plain', 'off'}
        ``auto`` picks a bar on a terminal and plain lines otherwise.
    """

    def __init__(self, label: str, total: int, mode: str = "auto", stream=None):
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if self.stream.isatty() else "plain"
        # One line each: a name with a newline would split the bar or the log line.
        self.mode, self.label, self.total = mode, one_line(label), total
        self.done = 0
        self.started = self._last_line = time.monotonic()
        self._bar = None
        if mode == "bar":
            from tqdm import tqdm  # only on a terminal

            self._bar = tqdm(total=total, desc=self.label, unit="img", file=self.stream,
                             dynamic_ncols=True, leave=True)

    def update(self, _stem: str = "") -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.update(1)
        elif self.mode == "plain":
            now = time.monotonic()
            if now - self._last_line >= PLAIN_INTERVAL_S or self.done == self.total:
                self._last_line = now
                self.stream.write(self.line(now) + "\n")
                self.stream.flush()

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        return (f"{self.label}: {self.done}/{self.total} images, {rate:.2f} img/s, "
                f"{elapsed:.0f} s elapsed, ETA {left:.0f} s")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
