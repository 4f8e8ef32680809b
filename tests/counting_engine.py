"""An engine for the results-store tests and bench: OpenCV, counting its loads and its forward
passes, one per image, in this process and (with ``DEPTH_EVAL_TEST_PASSES``) in a file shared
by processes.  Each logged pass names the snapshot and the image's input blob.

Run as a script it is ``depth-eval`` with this engine registered as ``--engine counting``
(for runs in a subprocess: killed, or two at once).
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from depth_eval import engines  # noqa: F401
from depth_eval.engines.opencv import OpenCVEngine  # noqa: F401

# A file that gets one line per image forward pass: "<caffemodel stem> <input blob digest>".
PASSES_ENV = "DEPTH_EVAL_TEST_PASSES"
# Seconds each forward pass waits first (a slow network, so a test can kill a run mid-way).
SLOW_ENV = "DEPTH_EVAL_TEST_SLOW_S"
ENGINE_NAME = "counting"


class CountingEngine(OpenCVEngine):
    """OpenCV counting loads and per-image forward passes (see the module docstring)."""

    engine = ENGINE_NAME
    loads = 0
    passes: list[str] = []
    _lock = threading.Lock()

    def __init__(self, *args, **options):
        super().__init__(*args, **options)
        with CountingEngine._lock:
            CountingEngine.loads += 1

    def forward(self, batch):
        delay = float(os.environ.get(SLOW_ENV) or 0)
        if delay:
            time.sleep(delay)
        output = super().forward(batch)
        lines = [f"{self.caffemodel.stem} {hashlib.sha1(one.tobytes()).hexdigest()[:16]}"
                 for one in batch]
        with CountingEngine._lock:
            CountingEngine.passes.extend(lines)
        path = os.environ.get(PASSES_ENV)
        if path:
            with open(path, "a", encoding="utf-8") as log:  # one short append per pass
                log.write("".join(line + "\n" for line in lines))
        return output

    @classmethod
    def reset(cls) -> None:
        cls.loads, cls.passes = 0, []


def register() -> None:
    """``--engine counting`` (one registry line, as any engine)."""
    engines.ENGINES[ENGINE_NAME] = f"{__name__}:CountingEngine" if __name__ != "__main__" \
        else "counting_engine:CountingEngine"


def dask_setup(worker) -> None:
    """As a Dask preload (``distributed.worker.preload: [counting_engine]``): the workers of a
    cluster the run makes get ``--engine counting`` too."""
    register()


def logged_passes(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.is_file() else []


if __name__ == "__main__":
    register()
    from depth_eval import cli

    sys.exit(cli.main(sys.argv[1:]))
