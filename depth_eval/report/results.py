"""results.json / results.csv: what a run found, built from the tally and written atomically
(after every snapshot, so an interrupted run keeps what it finished)."""

from __future__ import annotations

import dataclasses
import platform
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from depth_eval import __version__
from depth_eval.report import rankings
from depth_eval.report.reporters import Reporter
from depth_eval.scoring import score
from depth_eval.writing import OutputFolder
from depth_eval.scoring.keys import as_text
from depth_eval.scoring.uncertainty import Confidence, mean_intervals

# The files every evaluation writes into OUT_DIR.
RESULTS_JSON, RESULTS_CSV = "results.json", "results.csv"


def library_versions() -> dict[str, str]:
    # Imported by the run already; here so that reading results.json needs none of them.
    import cv2
    import numpy as np

    # SciPy's version from its metadata: a run that kept its zoom matrices never imports SciPy.
    return {"depth_eval": __version__, "python": platform.python_version(),
            "opencv": cv2.__version__, "numpy": np.__version__,
            "scipy": metadata.version("scipy"),
            "scikit-image": metadata.version("scikit-image")}


@dataclasses.dataclass
class Tally:
    """What a run over the snapshots found so far."""

    entries: dict = dataclasses.field(default_factory=dict)     # results.json's snapshots
    means: dict = dataclasses.field(default_factory=dict)       # evaluated: name -> key -> value
    images: dict = dataclasses.field(default_factory=dict)      # images evaluated per snapshot
    bad_images: dict = dataclasses.field(default_factory=dict)  # input file -> reason
    kept: dict = dataclasses.field(default_factory=dict)        # stem -> snapshot -> kept data
    started: float = dataclasses.field(default_factory=time.time)
    confidence: Confidence = Confidence()                       # how metrics_ci is made

    def record(self, name: str, entry: dict, run, summary: dict, reused: int = 0) -> None:
        """A snapshot's run: its entry, means and the results the task kept; ``reused`` of
        its results came from the results store, the others were computed by this run."""
        entry.update(images_skipped=dict(self.bad_images), images_evaluated=len(run.results),
                     images_reused=reused, images_computed=len(run.results) - reused,
                     seconds=round(run.seconds, 3))
        if not run.results:
            entry["error"] = "no image could be evaluated"
            return
        entry["status"] = "evaluated"
        entry["metrics"] = as_text(summary)
        # A mean is over the images where its metric is defined; say so where that is fewer.
        counts = score.defined_counts([result.metrics for result in run.results])
        fewer = {key: n for key, n in counts.items() if n != len(run.results)}
        if fewer:
            entry["metric_images"] = as_text(fewer)
        entry["metrics_ci"] = metric_intervals(summary, run.results, self.confidence)
        entry["per_image"] = {r.stem: as_text(r.metrics) for r in run.results}
        self.means[name] = summary
        self.images[name] = len(run.results)
        for result in run.results:
            if result.kept is not None:
                self.kept.setdefault(result.stem, {})[name] = result.kept


def metric_intervals(summary: dict, results: list, confidence: Confidence) -> dict:
    """``{KEY: [low, high]}``: the bootstrap interval of each mean in the summary over the
    images (a summary value that is no mean of per-image values, like a scale's median, has
    none)."""
    keys = [key for key in summary if key in results[0].metrics]
    values = np.array([[result.metrics[key] for result in results] for key in keys])
    intervals = mean_intervals(values, confidence) if keys else []
    return {str(key): [float(low), float(high)] for key, (low, high) in zip(keys, intervals)}


def options_document(settings) -> dict:
    """The run's options as results.json records them."""
    inputs, engine, scoring, outputs = (settings.inputs, settings.engine, settings.scoring,
                                        settings.outputs)
    return {"task": settings.task,
            "input_dir": str(inputs.input_dir), "gt_dir": str(inputs.gt_dir),
            "out_dir": str(outputs.out_dir), "out_abs_dir": str(outputs.abs_dir),
            "snapshots_dir": str(inputs.snapshots_dir), "log": engine.log_encoded,
            "prototxt": str(inputs.prototxt) if inputs.prototxt else None,
            "output_blob": engine.output_blob, "engine": engine.name,
            "device": engine.device, "jobs": outputs.jobs, "batch": engine.batch,
            "png_strategy": outputs.png_strategy,
            "metrics": list(scoring.metric_sets), "align": list(scoring.alignments),
            "min_depth": scoring.min_depth, "max_depth": scoring.max_depth,
            "crop": scoring.crop, "gt_encoding": inputs.ground_truth.encoding,
            "depth_scale": inputs.ground_truth.depth_scale, "save_raw": outputs.save_raw,
            # The command line's convention options (each snapshot's entry has its own).
            "convention": engine.convention.record()}


def results_document(settings, task, tally: Tally, images_found: int) -> dict:
    """results.json (the schema: docs/outputs.md)."""
    return {
        "schema_version": rankings.RESULTS_SCHEMA_VERSION,
        "tool": "depth_eval",
        "versions": library_versions(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(tally.started)),
        "seconds": round(time.time() - tally.started, 3),
        "options": options_document(settings),
        **task.document_fields(),
        "images_found": images_found,
        "confidence": tally.confidence.document(),
        "snapshots": tally.entries,
    }


class ResultsFiles:
    """results.json and results.csv in OUT_DIR, claimed once and rewritten as the run goes.

    A file of either name that the tool did not write is left alone and reported once.
    """

    def __init__(self, out_dir: Path):
        self.folder = OutputFolder(out_dir)
        self.conflicts = self.folder.claim([RESULTS_JSON, RESULTS_CSV])
        self.problems = [f"{self.folder.path / name}: exists and was not written by depth_eval; "
                         "left untouched, results not saved there" for name in self.conflicts]

    def write(self, document: dict) -> None:
        files = {RESULTS_JSON: rankings.results_json(document),
                 RESULTS_CSV: rankings.results_csv(document["snapshots"])}
        for name, data in files.items():
            if name not in self.conflicts:
                self.folder.write(name, data)



class ResultsReporter(Reporter):
    """results.json and results.csv as the run ends (they are also written after every
    snapshot, so an interrupted run keeps what it finished)."""

    def report(self, run, console) -> list[str]:
        run.files.write(run.document)
        return list(run.files.problems)
