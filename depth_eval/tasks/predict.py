"""Depth maps without ground truth (the thesis' ``get_depth.py``): pictures and raw maps only.

Each image gets, at the thesis' evaluation size 320 x 420, in ``OUT_DIR_abs/<snapshot>/``: the
log visualisation (``X_depth.png``), the depth in metres as float32 (``X_depth.npy``) and as a
16-bit millimetre PNG (``X_depth_mm.png``).
"""

from __future__ import annotations

from depth_eval.inputs import discover, images
from depth_eval.pictures import pngs
from depth_eval.engines.base import DEPTH_OUTPUT
from depth_eval.errors import ImageError, UsageError
from depth_eval.scoring.upsample import upsample
from depth_eval.tasks.base import THESIS_CONVENTION, ImageResult, Prepared, SnapshotWork, Task
from depth_eval.tasks.depth import output_folder, prediction_names, write_raw_maps


class PredictWork(SnapshotWork):
    def __init__(self, raw_dir, paths: list, png_strategy: str):
        self.raw_dir, self.png_strategy = raw_dir, png_strategy
        self.conflicts = set(raw_dir.claim([n for p in paths for n in prediction_names(p.stem)]))

    def prepare(self, item, input_hw, convention=THESIS_CONVENTION):
        taken = [n for n in prediction_names(item.stem) if n in self.conflicts]
        if taken:
            raise ImageError(f"{self.raw_dir.path / taken[0]}: exists and was not written by "
                             f"depth_eval; left untouched, {item.name} not predicted")
        return Prepared.of_image(item, images.load_color_input(item, input_hw), convention)

    def finish(self, prepared, maps):
        path = prepared.item
        depth = upsample(maps)
        self.raw_dir.write(prediction_names(path.stem)[0],
                           pngs.encode_png(pngs.depth_visual(depth), self.png_strategy))
        write_raw_maps(self.raw_dir, path.stem, depth)
        return ImageResult(path.stem, {})


class PredictTask(Task):
    """Every image of INPUT_DIR (any name) through every snapshot; no metrics."""

    name = "predict"
    output_rule = DEPTH_OUTPUT
    scored = False

    def metric_keys(self):
        return []

    def summarise(self, results):
        return {}

    def find_items(self, console) -> list:
        """The images of INPUT_DIR in name order, one per stem: ``a.png`` and ``a.jpg`` would
        write the same ``a_depth*`` files, so the first is predicted and the others listed in
        one warning.  A FIFO or broken link with an image name is kept, and refused (named)
        when it is read."""
        folder = self.settings.inputs.input_dir
        found = sorted((p for p in folder.iterdir()
                         if not p.is_dir() and discover.is_image(p) and not p.name.startswith(".")),
                        key=lambda p: p.name)
        if not found:
            raise UsageError(f"{folder}: no image in INPUT_DIR")
        first: dict[str, object] = {}
        for path in found:
            first.setdefault(path.stem, path)
        dropped = [f"{p.name} (same stem as {first[p.stem].name})"
                   for p in found if first[p.stem] is not p]
        self.left_out = dropped
        if dropped:
            console.warn(f"{len(dropped)} file(s) in INPUT_DIR not predicted: "
                         + "; ".join(dropped))
        return list(first.values())

    def start_snapshot(self, snapshot_name, items):
        outputs = self.settings.outputs
        return PredictWork(output_folder(outputs.abs_dir / snapshot_name), items,
                           outputs.png_strategy)
