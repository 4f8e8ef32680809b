"""Joint networks (``evaluate --with-gradients``): the depth and the gradient output of one
snapshot from one forward pass, each scored as its own script scored it.

The depth half is the depth task (:mod:`.depth`: same metrics, pictures, keys); the gradient
half is the gradient task (:mod:`.gradients`) with its snapshot keys prefixed ``grad/``
(``grad/RMSE``, ``grad/MVN``) so they do not collide with the thesis' depth ``RMSE``; its
per-channel keys (``grad1/RMSE`` ...) are the gradient task's.  Both halves write into the
same ``OUT_DIR/S`` (one ``X_colors.png``, written by the depth half).
"""

from __future__ import annotations

from depth_eval.engines.base import DEPTH_OUTPUT, GRADIENT_OUTPUT
from depth_eval.tasks.base import THESIS_CONVENTION, ImageResult, SnapshotWork, Task
from depth_eval.tasks.depth import DepthTask
from depth_eval.tasks.gradients import JOINT_PREFIX, GradientsTask, GradientsWork


class JointWork(SnapshotWork):
    """One snapshot's depth and gradient work over the same prepared images."""

    def __init__(self, depth_work, gradient_work: GradientsWork):
        self.depth_work, self.gradient_work = depth_work, gradient_work

    def prepare(self, item, input_hw, convention=THESIS_CONVENTION):
        self.gradient_work.check_outputs(item)
        # The depth work's ground truth serves both halves.
        return self.depth_work.prepare(item, input_hw, convention)

    def finish(self, prepared, maps):
        """``maps``: (depth map, gradient maps), from one forward pass."""
        depth_maps, gradient_maps = maps
        depth = self.depth_work.finish(prepared, depth_maps)
        gradient = self.gradient_work.finish(prepared, gradient_maps)
        kept = ((depth.kept, gradient.kept)
                if depth.kept is not None or gradient.kept is not None else None)
        return ImageResult(depth.stem, {**depth.metrics, **gradient.metrics}, kept)


class JointTask(Task):
    """A joint network's depth metrics and gradient metrics on the same pairs."""

    name = "joint"
    output_rule = DEPTH_OUTPUT
    extra_output_rules = (GRADIENT_OUTPUT,)

    def __init__(self, settings, console=None):
        super().__init__(settings, console)
        self.depth = DepthTask(settings, console)
        self.gradients = GradientsTask(settings, console, align=JOINT_PREFIX)
        self._gradient_keys = frozenset(self.gradients.image_keys())

    def metric_keys(self):
        return self.depth.metric_keys() + self.gradients.metric_keys()

    def image_keys(self):
        return self.depth.image_keys() + self.gradients.image_keys()

    def find_items(self, console) -> list:
        pairs = self.depth.find_items(console)
        self.gradients.kept_stems = self.depth.kept_stems
        return pairs

    def start_snapshot(self, snapshot_name, items):
        depth_work = self.depth.start_snapshot(snapshot_name, items)
        # The depth work's OUT_DIR/S folder: one manifest for both halves' pictures.
        return JointWork(depth_work, GradientsWork(self.gradients, snapshot_name,
                                                   depth_work.fitted_dir, items,
                                                   write_colors=False))

    def split(self, results) -> tuple[list[ImageResult], list[ImageResult]]:
        """The depth results and the gradient results of the joint ones."""
        depth, gradient = [], []
        for result in results:
            kept = result.kept or (None, None)
            depth.append(ImageResult(result.stem, {k: v for k, v in result.metrics.items()
                                                   if k not in self._gradient_keys}, kept[0]))
            gradient.append(ImageResult(result.stem, {k: v for k, v in result.metrics.items()
                                                      if k in self._gradient_keys}, kept[1]))
        return depth, gradient

    def unit_files(self, snapshot_name, item):
        return (self.depth.unit_files(snapshot_name, item)
                + self.gradients.unit_files(snapshot_name, item, write_colors=False))

    def reusable(self, item):
        return self.depth.reusable(item)

    def unit_reused(self, item):
        self.depth.unit_reused(item)
        self.gradients.unit_reused(item)

    def summarise(self, results):
        depth, gradient = self.split(results)
        return {**self.depth.summarise(depth), **self.gradients.summarise(gradient)}

    def document_fields(self) -> dict:
        return self.depth.document_fields()

    def facts(self) -> dict:
        return {"depth": self.depth.facts(), "gradients": self.gradients.facts()}

    def add_facts(self, facts):
        self.depth.add_facts(facts.get("depth", {}))
        self.gradients.add_facts(facts.get("gradients", {}))

    def report_pictures(self, snapshot_name, item):
        return self.depth.report_pictures(snapshot_name, item)

    def after_run(self, items, kept, means, console, intervals=None):
        if not (self.settings.outputs.figures and means):
            return []
        # matplotlib: --figures only
        from depth_eval.tasks.depth_figures import write_figures as depth_figures
        from depth_eval.tasks.gradient_figures import write_figures as gradient_figures

        halves = [{stem: {name: pair[index] for name, pair in by_snapshot.items()}
                   for stem, by_snapshot in kept.items()} for index in (0, 1)]
        folder = self.settings.outputs.out_dir / "figures"
        gt_settings = self.settings.inputs.ground_truth
        return (depth_figures(folder, items, halves[0], means, gt_settings, intervals)
                + gradient_figures(folder, items, halves[1], means, gt_settings, charts=False))
