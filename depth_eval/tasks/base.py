"""What a task is: what an evaluation reads, scores and draws, per image of a snapshot.

A task (``depth``, ``predict``, ...) plugs into the one run (:mod:`depth_eval.execution.run`):

- ``Task(settings)`` once per run; :meth:`Task.find_items` lists the images (pairs or inputs);
- :meth:`Task.start_snapshot` claims the snapshot's output names and returns its
  :class:`SnapshotWork`, whose ``prepare`` (read, preprocess: worker threads) and ``finish``
  (the decoded network output -> metrics and pictures: worker threads) the executor calls;
- :meth:`Task.summarise` turns the per-image metrics into the snapshot's values;
- :meth:`Task.unit_inputs`, :meth:`Task.unit_files` and :meth:`Task.reusable` tell the results
  store (:mod:`depth_eval.execution.stored_units`) what a (snapshot, image) unit reads and writes;
- :meth:`Task.after_run` draws what needs every snapshot (figures);
- :meth:`Task.facts` / :meth:`Task.add_facts`: what ``prepare`` / ``finish`` learnt that
  results.json reports, carried from a cluster's workers to the run's own task.

Adding a task is one module with a Task subclass plus one line in :mod:`depth_eval.tasks`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from depth_eval.engines.base import OutputRule
from depth_eval.inputs import images
from depth_eval.inputs.conventions import THESIS_INPUT, Convention, thesis_convention
from depth_eval.scoring.keys import MetricKey


# The thesis' convention: its input, its depth / 10 output.
THESIS_CONVENTION = thesis_convention()


@dataclass
class ImageResult:
    """One image's outcome: its metrics, and what the task keeps for drawing after the run."""

    stem: str
    metrics: dict[MetricKey, float]
    kept: object = None


@dataclass
class Prepared:
    """One image read and preprocessed: the network input and whatever the task needs later."""

    item: object
    blob: np.ndarray                        # 1 x 3 x H x W network input, by ``convention``
    extra: dict = field(default_factory=dict)
    convention: Convention = THESIS_CONVENTION  # the snapshot's (its output's meaning too)
    # The image by the thesis' input convention where the network takes another (None: blob).
    thesis_blob: np.ndarray | None = None

    @classmethod
    def of_image(cls, item, rgb_unit: np.ndarray, convention: Convention = THESIS_CONVENTION,
                 extra: dict | None = None) -> "Prepared":
        """An image (H x W x 3 RGB in [0, 1] at the input's size) as the snapshot's network
        input, and as the thesis' blob for the colours picture (the original's picture
        whatever the network's convention)."""
        blob = images.to_network_blob(rgb_unit, convention.input)
        thesis = None if convention.input == THESIS_INPUT else images.to_network_blob(rgb_unit)
        return cls(item, blob, extra or {}, convention, thesis)

    @property
    def colors_blob(self) -> np.ndarray:
        """The thesis' blob of the image, what the colours picture is made from."""
        return self.blob if self.thesis_blob is None else self.thesis_blob


class SnapshotWork:
    """The task's work on one snapshot (its output folders claimed)."""

    def prepare(self, item, input_hw: tuple[int, int],
                convention: Convention = THESIS_CONVENTION) -> Prepared:
        """Read and preprocess one item for a network of input size ``input_hw`` and the
        snapshot's ``convention`` (the blob is made by its input convention)."""
        raise NotImplementedError

    def finish(self, prepared: Prepared, maps: np.ndarray) -> ImageResult:
        raise NotImplementedError

    @staticmethod
    def input_path(item) -> Path:
        """The input file an item stands for (messages, progress)."""
        return getattr(item, "color_path", item)

    @staticmethod
    def input_name(item) -> str:
        """An item's identity in a run: its input file's name (unique in INPUT_DIR)."""
        return SnapshotWork.input_path(item).name


class Task:
    """Base of the tasks; see the module docstring."""

    name: ClassVar[str] = ""
    # The network output the task reads (engines find the blob with it).
    output_rule: ClassVar[OutputRule]
    # Further outputs of the same forward pass; with any, ``finish`` gets a tuple of maps.
    extra_output_rules: ClassVar[tuple[OutputRule, ...]] = ()
    # True: items are (colour, ground truth) pairs and the task reports metrics.
    scored: ClassVar[bool] = True

    def __init__(self, settings, console=None):
        self.settings = settings
        self.console = console
        # Input files find_items found and did not take (each named in its warning): a run
        # that leaves any out did not do everything it was given (exit status 1).
        self.left_out: list[str] = []

    def metric_keys(self) -> list[MetricKey]:
        """Every per-image key the task reports with these settings (checked before any work)."""
        raise NotImplementedError(f"task {self.name!r} must list its metric keys")

    def image_keys(self) -> list[MetricKey]:
        """Every key of one image's metrics, in results.json order (the summary's by default)."""
        return self.metric_keys()

    def find_items(self, console) -> list:
        raise NotImplementedError

    def start_snapshot(self, snapshot_name: str, items: list) -> SnapshotWork:
        raise NotImplementedError

    def summarise(self, results: list[ImageResult]) -> dict[MetricKey, float]:
        """The snapshot's values from its images' results."""
        raise NotImplementedError(f"task {self.name!r} must summarise its images' results")

    def unit_inputs(self, item) -> tuple[Path, Path | None]:
        """The files an item's numbers depend on: its input and its ground truth (or None)."""
        return SnapshotWork.input_path(item), getattr(item, "depth_path", None)

    def unit_files(self, snapshot_name: str, item) -> list[Path]:
        """Every file the task writes for one item of one snapshot with these settings: a
        stored unit is reused only while all of them are there (a scored task must say)."""
        raise NotImplementedError(f"task {self.name!r} must list the files a unit writes")

    def unit_reused(self, item) -> None:
        """Learn what reading the item would have taught (facts results.json reports): its
        unit came from the results store, so its files were not read."""

    def reusable(self, item) -> bool:
        """Whether a stored result may stand for the item (False: it needs the prediction)."""
        return True

    def document_fields(self) -> dict:
        """Task-specific fields of results.json."""
        return {}

    def facts(self) -> dict:
        """What this task object learnt from the images it ran that :meth:`document_fields`
        reports (picklable); a cluster's worker sends it with each unit's results."""
        return {}

    def add_facts(self, facts: dict) -> None:
        """Add what another task object (on a worker) learnt: see :meth:`facts`."""

    def after_run(self, items: list, kept: dict, means: dict, console,
                  intervals: dict | None = None) -> list[str]:
        """Drawing that needs every snapshot; returns problems (one line each).

        ``intervals``: snapshot -> metric title -> (low, high), the means' intervals."""
        return []

    def report_pictures(self, snapshot_name: str, item) -> dict[str, Path]:
        """The pictures of one item of one snapshot the browser report shows, by what they
        show: ``input``, ``ground truth``, ``raw`` and ``fitted`` prediction (none by
        default)."""
        return {}
