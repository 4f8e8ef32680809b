"""Shared paths, workspaces and runners for the tests (fixtures are in conftest.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "golden"
GOLDEN_E2E = GOLDEN / "e2e"
GOLDEN_NETS = GOLDEN / "nets"
# The golden e2e snapshots: a refining net (output depth-refine) and a global-context net (depth).
GOOD = "tiny_refining_network_norm_abs"
GLOBAL = "tiny_global_context_network_abs"
# The workspace's two scenes: a colour input and a grey one.
STEMS = ("00000", "gray00000")


def relative_range_error(actual, expected) -> float:
    """Max absolute difference divided by the reference blob's value range."""
    value_range = float(np.max(expected) - np.min(expected)) or 1.0
    return float(np.max(np.abs(np.asarray(actual, np.float64) - expected))) / value_range


def make_workspace(root: Path, snapshots=(GOOD,), stems=STEMS) -> Path:
    """colors/, depths/ (golden scenes) and snapshots/ (golden snapshots) under ``root``."""
    colors, depths, folder = (root / n for n in ("colors", "depths", "snapshots"))
    for path in (colors, depths, folder):
        path.mkdir(parents=True, exist_ok=True)
    for stem in stems:
        shutil.copy(GOLDEN_E2E / "colors" / f"{stem}_colors.png", colors)
        shutil.copy(GOLDEN_E2E / "depths" / f"{stem}_depth.png", depths)
    for snapshot in snapshots:
        for suffix in (".prototxt", ".caffemodel"):
            shutil.copy(GOLDEN_E2E / "snapshots" / f"{snapshot}{suffix}", folder)
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


def run_cli(workspace: Path, *extra, out="out", script="test_depth.py"):
    """Run test_depth.py in a subprocess; returns (status, stdout, stderr)."""
    args = [sys.executable, str(REPO / script), str(workspace / "colors"),
            str(workspace / "depths"), str(workspace / out), str(workspace / "snapshots"), *extra]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout, done.stderr


def evaluate(workspace: Path, *options, out="out", depths="depths") -> int:
    """The evaluate command in this process; returns the exit status."""
    from depth_eval import cli

    return cli.main([str(workspace / "colors"), str(workspace / depths), str(workspace / out),
                     str(workspace / "snapshots"), *options])


def results(workspace: Path, out="out") -> dict:
    return json.loads((workspace / out / "results.json").read_text())


def add_snapshot(workspace: Path, name: str, prototxt_text=None, model_bytes=None) -> None:
    """A snapshot named ``name``: the good one's files, or the text / bytes given."""
    folder = workspace / "snapshots"
    source = GOLDEN_E2E / "snapshots" / GOOD
    (folder / f"{name}.prototxt").write_text(
        prototxt_text if prototxt_text is not None else source.with_suffix(".prototxt").read_text())
    (folder / f"{name}.caffemodel").write_bytes(
        model_bytes if model_bytes is not None else source.with_suffix(".caffemodel").read_bytes())


def depth_settings(out_dir: Path, **options):
    """RunSettings of a depth evaluation writing into ``out_dir`` (engine options as keywords:
    ``log_encoded``, ``batch``; output options: ``jobs``)."""
    from depth_eval.settings import EngineSettings, InputSettings, OutputSettings, RunSettings

    engine = EngineSettings(log_encoded=options.pop("log_encoded", False),
                            batch=options.pop("batch", 1))
    outputs = OutputSettings(out_dir=Path(out_dir), jobs=options.pop("jobs", 1))
    assert not options, options
    inputs = InputSettings(GOLDEN_E2E / "colors", GOLDEN_E2E / "snapshots", GOLDEN_E2E / "depths")
    return RunSettings("depth", inputs, outputs, engine)


def evaluate_pairs(engine, pairs, out_dir: Path, snapshot="snapshot", jobs=1, batch=1):
    """One loaded engine over ``pairs`` with the depth task, in this process; every upsampled
    prediction is kept (``result.kept``)."""
    from depth_eval.execution.local import run_items
    from depth_eval.tasks.depth import DepthTask

    task = DepthTask(depth_settings(out_dir, jobs=jobs, batch=batch))
    task.kept_stems = frozenset(pair.stem for pair in pairs)
    work = task.start_snapshot(snapshot, list(pairs))
    return run_items(engine, work, pairs, jobs=jobs, batch_size=batch)
