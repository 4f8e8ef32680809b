"""The thesis' gradient evaluation (``test_grad.py``): per image, the filtered ground truth, the
network's ``gradient`` blob zoomed to it, RMSE and MVN per channel, and the original's five
pictures in ``OUT_DIR/S/`` (SPEC-grad.md; the numbers are :mod:`depth_eval.scoring.gradient_metrics`').

Keys in results.json: the snapshot values are ``RMSE`` and ``MVN``, the mean over the images
evaluated and both channels (the original's numbers).  Per image: ``RMSE`` / ``MVN`` are the
mean of the image's two channels (so the snapshot value is their mean over images), and
``grad1/RMSE``, ``grad2/RMSE``, ``grad1/MVN``, ``grad2/MVN`` each channel's own value (named
after the channel's picture, ``X_grad1.png`` / ``X_grad2.png``).  In a joint evaluation
(:mod:`.joint`) the mean keys carry the prefix ``grad/`` so they do not collide with the depth
metrics of the same names.
"""

from __future__ import annotations


from depth_eval.inputs import discover, gt_encodings
from depth_eval.scoring import gradient_metrics
from depth_eval.pictures import pngs
from depth_eval.engines.base import GRADIENT_OUTPUT
from depth_eval.errors import ImageError
from depth_eval.writing import OutputFolder
from depth_eval.scoring.keys import NO_ALIGNMENT, MetricKey
from depth_eval.tasks.base import THESIS_CONVENTION, ImageResult, SnapshotWork
from depth_eval.tasks.depth import PairTask, output_folder, prepare_image

# Per-image keys of each channel's value: the channel's picture name (X_grad1.png, X_grad2.png).
CHANNEL_PREFIXES = ("grad1", "grad2")
# The prefix of the gradient means in a joint evaluation ("grad/RMSE" beside the depth "RMSE").
JOINT_PREFIX = "grad"



def colors_name(stem: str) -> str:
    """The network input picture, ``X_colors.png`` (the depth task writes the same file)."""
    return f"{stem}.png"


def picture_names(stem: str) -> dict[str, str]:
    """Picture suffix (``_grad1``, ``_grad2``, ``_gt1``, ``_gt2``) -> its file name for input
    ``stem``."""
    base = discover.input_base(stem)
    return {suffix: f"{base}{suffix}.png" for suffix in gradient_metrics.PICTURE_SUFFIXES}


def channel_values(image_metrics: dict[MetricKey, float]) -> dict[str, list[float]]:
    """One image's per-channel values back from its keys: title -> [channel 1, channel 2]."""
    return {title: [image_metrics[MetricKey(prefix, title)] for prefix in CHANNEL_PREFIXES]
            for title in gradient_metrics.METRIC_TITLES}


class GradientsWork(SnapshotWork):
    """One snapshot's gradient evaluation: metrics, and the five pictures per image in
    ``folder`` (``OUT_DIR/S``).

    Parameters
    ----------
    task : GradientsTask
    snapshot_name : str
    folder : OutputFolder
        ``OUT_DIR/S``, shared with the depth work in a joint evaluation (one manifest).
    items : list of ImagePair
    write_colors : bool
        Write ``X_colors.png`` (False when the depth work writes the same file).
    """

    def __init__(self, task: "GradientsTask", snapshot_name: str, folder: OutputFolder,
                 items: list, write_colors: bool = True):
        self.task, self.snapshot_name = task, snapshot_name
        self.folder, self.write_colors = folder, write_colors
        self.strategy = task.settings.outputs.png_strategy
        self.conflicts = set(folder.claim([n for item in items for n in self.names_of(item.stem)]))

    def names_of(self, stem: str) -> list[str]:
        names = list(picture_names(stem).values())
        return [colors_name(stem), *names] if self.write_colors else names

    def check_outputs(self, item) -> None:
        """Refuse an image whose picture names belong to files the tool did not write."""
        taken = [name for name in self.names_of(item.stem) if name in self.conflicts]
        if taken:
            raise ImageError(f"{self.folder.path / taken[0]}: exists and was not written by "
                             f"depth_eval; left untouched, {item.color_path.name} not evaluated")

    def prepare(self, item, input_hw, convention=THESIS_CONVENTION):
        self.check_outputs(item)
        prepared = prepare_image(item, input_hw, self.task.settings.inputs.ground_truth,
                                 convention)
        self.task.note_encoding(item.depth_path.name, prepared.extra["encoding"])
        return prepared

    def finish(self, prepared, maps):
        """``maps``: the decoded ``gradient`` blob, 2 x h x w."""
        item = prepared.item
        target = gradient_metrics.ground_truth_gradients(prepared.extra["ground_truth"])
        prediction = gradient_metrics.upsample_gradients(maps)
        values = gradient_metrics.gradient_metrics(prediction, target)
        for title, channels in gradient_metrics.undefined_channels(values).items():
            self.task.warn_undefined(self.snapshot_name, item, title, channels, target)
        if self.write_colors:
            self.folder.write(colors_name(item.stem), pngs.encode_png(
                pngs.input_visual(prepared.colors_blob), self.strategy))
        names = picture_names(item.stem)
        for suffix, picture in gradient_metrics.gradient_pictures(prediction, target).items():
            self.folder.write(names[suffix], pngs.encode_png(picture, self.strategy))
        kept = prediction if item.stem in self.task.kept_stems else None
        return ImageResult(item.stem, self.task.image_metrics(values), kept)


class GradientsTask(PairTask):
    """RMSE and MVN of gradient (and joint) networks' ``gradient`` output (test_grad.py).

    Parameters
    ----------
    settings : RunSettings
    console : Console, optional
    align : str
        The alignment part of the snapshot keys: none (``RMSE``, the original's titles) or
        :data:`JOINT_PREFIX` in a joint evaluation (``grad/RMSE``).
    """

    name = "gradients"
    output_rule = GRADIENT_OUTPUT

    def __init__(self, settings, console=None, align: str = NO_ALIGNMENT):
        super().__init__(settings, console)
        self.align = align
        self.warned: set[tuple] = set()

    def metric_keys(self) -> list[MetricKey]:
        """The snapshot keys (ranked, gated); per-channel keys are per-image only."""
        return [MetricKey(self.align, title) for title in gradient_metrics.METRIC_TITLES]

    def image_keys(self) -> list[MetricKey]:
        """Every per-image key, in results.json order."""
        return self.metric_keys() + [MetricKey(prefix, title) for title in gradient_metrics.METRIC_TITLES
                                     for prefix in CHANNEL_PREFIXES]

    def image_metrics(self, values: dict[str, list[float]]) -> dict[MetricKey, float]:
        """One image's keys from :func:`gradient_metrics.gradient_metrics`' per-channel values."""
        means = gradient_metrics.image_contribution(values)
        keyed = {MetricKey(self.align, title): means[title] / gradient_metrics.GRADIENT_CHANNELS
                 for title in gradient_metrics.METRIC_TITLES}
        for title in gradient_metrics.METRIC_TITLES:
            for prefix, value in zip(CHANNEL_PREFIXES, values[title]):
                keyed[MetricKey(prefix, title)] = value
        return keyed

    def start_snapshot(self, snapshot_name, items):
        return GradientsWork(self, snapshot_name,
                             output_folder(self.settings.outputs.out_dir / snapshot_name), items)

    def unit_files(self, snapshot_name, item, write_colors: bool = True):
        folder = self.settings.outputs.out_dir / snapshot_name
        names = list(picture_names(item.stem).values())
        return [folder / name for name in ([colors_name(item.stem)] if write_colors else [])
                + names]

    def summarise(self, results):
        """The original's mean over images and both channels (divided by 2 x the images
        evaluated, not by 2 x every entry of INPUT_DIR: SPEC-grad.md 9)."""
        means = gradient_metrics.mean_over_images(channel_values(r.metrics) for r in results)
        return {MetricKey(self.align, title): means[title] for title in gradient_metrics.METRIC_TITLES}

    def note_encoding(self, name: str, encoding: str) -> None:
        """Say once per encoding other than the thesis' 8-bit how a ground truth was read."""
        if not self.first_encoding(encoding):
            return
        if self.console is not None and encoding != "thesis":
            self.console.note(f"ground truth {name}: read as {gt_encodings.describe(encoding)}")

    def warn_undefined(self, snapshot_name: str, item, title: str, channels: list[int],
                       target) -> None:
        """One warning line naming the file and the metric recorded as NaN: once per ground
        truth for its constant filtered channels, once per snapshot and image for the others."""
        flat = [c for c in channels if not target[c - 1].std() > 0]
        causes = {
            (str(item.depth_path), title): (
                flat, f"{item.depth_path}: filtered ground truth "
                      f"{' and '.join(f'gt{c}' for c in flat)} constant (for every snapshot)"),
            (snapshot_name, item.stem, title): (
                [c for c in channels if c not in flat],
                f"snapshot {snapshot_name}, {item.color_path.name}: predicted gradient constant "
                "or not finite")}
        for key, (which, cause) in causes.items():
            with self._lock:
                if not which or key in self.warned:
                    continue
                self.warned.add(key)
            if self.console is not None:
                self.console.warn(f"{cause}: {title} of {' and '.join(f'grad{c}' for c in which)}"
                                  " is 0 / 0, recorded as NaN (the snapshot's value is NaN and "
                                  "ranks last)")

    def after_run(self, items, kept, means, console, intervals=None):
        if not (self.settings.outputs.figures and means):
            return []
        from depth_eval.tasks.gradient_figures import write_figures  # matplotlib: --figures only

        return write_figures(self.settings.outputs.out_dir / "figures", items, kept, means,
                             self.settings.inputs.ground_truth, intervals=intervals)

