"""Reporters: every output of a finished run is one, and receives the same finished run.

A reporter writes a file (results.json and results.csv, the per-image CSV, the figures, the
browser report, JUnit XML) or prints (the rankings and tables at the end).  The verdict (the
gate, the pairing with the baseline) is decided once, before any reporter runs
(:func:`depth_eval.report.verdict.decide`), so every reporter shows the same one.  Adding an
output is one module with a :class:`Reporter` subclass and one line in ``REPORTERS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from depth_eval.registry import resolve


@dataclass(frozen=True)
class FinishedRun:
    """What every reporter receives."""

    settings: object        # settings.RunSettings
    task: object            # the run's tasks.base.Task
    items: list             # the task's items (image pairs)
    tally: object           # report.results.Tally: entries, means, kept pictures
    document: dict          # results.json, as written
    verdict: object         # report.verdict.Verdict
    files: object           # report.results.ResultsFiles (results.json / results.csv)


class Reporter:
    """One output of a run; see the module docstring."""

    # True: prints at the end of the run (after the files, and only when something was
    # evaluated); False: writes files, whatever the outcome.
    prints: ClassVar[bool] = False

    def wanted(self, run: FinishedRun) -> bool:
        """Whether this run asked for the output."""
        return True

    def report(self, run: FinishedRun, console) -> list[str]:
        """Write or print the output; returns its problems (one line each)."""
        raise NotImplementedError(f"{type(self).__name__} must implement report()")


class FiguresReporter(Reporter):
    """The task's drawings over every snapshot (``--figures``)."""

    def report(self, run, console):
        intervals = {name: entry.get("metrics_ci", {}) for name, entry in run.tally.entries.items()}
        return run.task.after_run(run.items, run.tally.kept, run.tally.means, console,
                                  intervals=intervals)


# reporter name -> "module:class", in the order they run.
REPORTERS = {
    "results": "depth_eval.report.results:ResultsReporter",
    "per_image": "depth_eval.report.per_image:PerImageReporter",
    "figures": "depth_eval.report.reporters:FiguresReporter",
    "html": "depth_eval.report.html:HtmlReporter",
    "junit": "depth_eval.report.junit:JunitReporter",
    "terminal": "depth_eval.report.terminal:TerminalReporter",
}


def run_reporters(run: FinishedRun, console, printing: bool) -> list[str]:
    """Every wanted reporter that prints (``printing``) or writes files; their problems."""
    problems = []
    for spec in REPORTERS.values():
        reporter = resolve(spec)()
        if reporter.prints == printing and reporter.wanted(run):
            problems += reporter.report(run, console)
    return problems
