"""The run in this process: settings built directly (no command line), the engine and task
registries, the console, results written as the run goes."""

import io
import json
import sys
import types

import pytest

from depth_eval import engines
from depth_eval.execution import run
from depth_eval.console import Console
from depth_eval.engines.opencv import OpenCVEngine
from depth_eval.errors import EXIT_OK, EXIT_PARTIAL, UsageError
from depth_eval.settings import EngineSettings, InputSettings, OutputSettings, RunSettings
from helpers import GOOD, add_snapshot


def settings_for(workspace, **engine_options):
    inputs = InputSettings(workspace / "colors", workspace / "snapshots", workspace / "depths")
    return RunSettings("depth", inputs, OutputSettings(workspace / "out", jobs=2, quiet=True),
                       EngineSettings(**engine_options))


def quiet_console():
    out, err = io.StringIO(), io.StringIO()
    return Console(quiet=True, out=out, err=err), out, err


def test_run_from_settings_ranks_and_writes_results(workspace):
    console, out, err = quiet_console()
    assert run.run(settings_for(workspace), console) == EXIT_OK
    lines = out.getvalue().splitlines()
    assert lines[0] == "TOP 1 for AbsRelDiff" and lines[1].startswith(f"0. {GOOD}: 0.")
    document = json.loads((workspace / "out" / "results.json").read_text())
    entry = document["snapshots"][GOOD]
    assert document["options"]["task"] == "depth"
    assert entry["images_evaluated"] == 2 and entry["output_blob"] == "depth-refine"
    assert entry["engine"] == "opencv" and len(entry["caffemodel"]["sha256"]) == 64
    assert err.getvalue() == ""


def test_a_skipped_snapshot_is_an_error_line_and_a_partial_run(workspace):
    add_snapshot(workspace, "broken", model_bytes=b"\x00garbage")
    console, out, err = quiet_console()
    assert run.run(settings_for(workspace), console) == EXIT_PARTIAL
    assert err.getvalue().startswith("error: snapshot broken skipped: ")
    assert len(err.getvalue().splitlines()) == 1


def test_no_snapshot_is_a_usage_error(workspace):
    for path in (workspace / "snapshots").iterdir():
        path.unlink()
    with pytest.raises(UsageError, match="no \\*.caffemodel snapshot"):
        run.run(settings_for(workspace), quiet_console()[0])


class CountingEngine(OpenCVEngine):
    """A third engine, registered with one line: OpenCV counting its forward passes."""

    engine = "counting"
    passes = 0

    def forward(self, batch):
        CountingEngine.passes += 1
        return super().forward(batch)


def test_a_new_engine_is_one_class_and_one_registry_line(workspace, monkeypatch):
    module = types.ModuleType("counting_engine")
    module.CountingEngine = CountingEngine
    monkeypatch.setitem(sys.modules, "counting_engine", module)
    monkeypatch.setitem(engines.ENGINES, "counting", "counting_engine:CountingEngine")
    CountingEngine.passes = 0
    console = quiet_console()[0]
    assert run.run(settings_for(workspace, name="counting"), console) == EXIT_OK
    assert CountingEngine.passes == 2
    entry = json.loads((workspace / "out" / "results.json").read_text())["snapshots"][GOOD]
    assert entry["engine"] == "counting"


def test_log_is_decoded_by_the_engine(workspace):
    snapshot = workspace / "snapshots" / GOOD
    plain = OpenCVEngine(snapshot.with_suffix(".prototxt"), snapshot.with_suffix(".caffemodel"))
    logged = OpenCVEngine(snapshot.with_suffix(".prototxt"), snapshot.with_suffix(".caffemodel"),
                          log_encoded=True)
    import numpy as np

    blob = np.linspace(-1, 1, 3 * 218 * 298, dtype=np.float32).reshape(1, 3, 218, 298)
    output = plain.forward(blob)
    assert plain.decode(output).shape == output.shape[-2:]
    np.testing.assert_allclose(logged.decode(output),
                               np.exp((output[0, 0] - 1.0) / 0.179581), rtol=1e-6)
