"""DEPTH_EVAL_TIMINGS: one line of phase times on stderr, and nothing without it."""

from __future__ import annotations

import re

import pytest

from depth_eval import timings
from helpers import evaluate


def timing_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("timings: ")]


@pytest.mark.parametrize("engine", ["opencv", "onnxruntime"])
def test_a_run_prints_one_line_of_phases(workspace, capsys, monkeypatch, engine):
    if engine == "onnxruntime":
        pytest.importorskip("onnxruntime")
    monkeypatch.setenv(timings.ENV_VARIABLE, "1")
    for run in range(2):  # the second run: the cached translation, and no phase left over
        # (a fresh OUT_DIR each time: its results store would give the units without a pass)
        assert evaluate(workspace, "--quiet", "--engine", engine, out=f"out{run}") == 0
        (line,) = timing_lines(capsys.readouterr().err)
        phases = dict((name, float(value)) for name, value in
                      re.findall(r"([a-z][a-z -]*?) (\d+\.\d\d) s", line[len("timings: "):]))
        # The second run reads no file to hash it: the user cache remembers the hashes.
        assert {"start-up", "settings", "model read", "first forward", "image loop", "total",
                *(("hash",) if run == 0 else ())} <= set(phases)
        # The model is loaded (session), or translated and optimised on the first run.
        assert "session" in phases or {"translate", "optimise"} <= set(phases)
        assert phases["first forward"] <= phases["image loop"] <= phases["total"]
        assert sum(v for k, v in phases.items() if k not in ("first forward", "total")) \
            <= phases["total"] + 0.02  # each phase counted once (rounding aside)
    if engine == "onnxruntime":  # the second run loaded the optimised graph: no translation
        assert "translate" not in phases and "optimise" not in phases


def test_nothing_is_printed_without_the_variable(workspace, capsys, monkeypatch):
    monkeypatch.delenv(timings.ENV_VARIABLE, raising=False)
    assert evaluate(workspace, "--quiet") == 0
    assert timing_lines(capsys.readouterr().err) == []
    monkeypatch.setenv(timings.ENV_VARIABLE, "0")
    assert evaluate(workspace, "--quiet") == 0
    assert timing_lines(capsys.readouterr().err) == []
