"""The thesis' depth evaluation (``test_depth.py``): per image, read the pair, upsample the
depth output to 320 x 420 (and to the ground truth's own size for the standard metrics), score
it, and write the original's three pictures into OUT_DIR (MVN fitted) and OUT_DIR_abs (raw)."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import numpy as np

from depth_eval.scoring import score, standard_metrics
from depth_eval.scoring.alignments import fitted_picture
from depth_eval.inputs import discover, gt_encodings, images
from depth_eval.pictures import pngs
from depth_eval.engines.base import DEPTH_OUTPUT
from depth_eval.errors import ImageError, SnapshotError, UsageError
from depth_eval.writing import OutputFolder
from depth_eval.thesis import DEPTH_RANGE_M
from depth_eval.inputs.ground_truth import load_ground_truth, thesis_pixels
from depth_eval.scoring.upsample import upsample, warm_up
from depth_eval.inputs.conventions import Convention
from depth_eval.tasks.base import THESIS_CONVENTION, ImageResult, Prepared, SnapshotWork, Task

# A ground truth whose width/height differs from its input's by more than this is a mismatched pair.
ASPECT_TOLERANCE = 0.02
# Suffix of the visualised ground truth written beside each prediction (test_depth.py: X_gt.png).
GT_VISUAL_SUFFIX = "_gt"


def output_names(stem: str) -> tuple[str, str, str]:
    """The three PNG names the original wrote for input ``<X>_colors``: colours, depth, ground truth."""
    base = discover.input_base(stem)
    return f"{stem}.png", f"{base}{discover.GROUND_TRUTH_SUFFIX}.png", f"{base}{GT_VISUAL_SUFFIX}.png"


def prediction_names(stem: str) -> tuple[str, str, str]:
    """Raw depth files for input ``stem``: visualisation, metres (.npy), millimetres (PNG)."""
    depth = f"{discover.input_base(stem)}{discover.GROUND_TRUTH_SUFFIX}"
    return f"{depth}.png", f"{depth}.npy", f"{depth}_mm.png"


def colormap_names(stem: str, colormap: str | None) -> tuple[str, ...]:
    """Colour-mapped picture names (``--colormap``): depth and ground truth."""
    if not colormap:
        return ()
    _, depth_name, gt_name = output_names(stem)
    return tuple(name.replace(".png", f"_{colormap}.png") for name in (depth_name, gt_name))


def picture_names(stem: str, outputs) -> tuple[list[str], list[str]]:
    """The files one image gets in OUT_DIR/S (fitted) and in OUT_DIR_abs/S (raw), by the
    output settings (``--colormap``, ``--save-raw``)."""
    both = list(output_names(stem)) + list(colormap_names(stem, outputs.colormap))
    extra = list(prediction_names(stem)[1:]) if outputs.save_raw else []
    return both, both + extra



def prepare_image(pair: discover.ImagePair, input_hw: tuple[int, int],
                  gt_settings=None, convention: Convention = THESIS_CONVENTION) -> Prepared:
    """Read and preprocess one pair; raises ImageError naming the file and the cause.

    ``extra`` holds the ground truth at 320 x 420 as depth / 10 (``ground_truth``, for the
    pictures) and in metres (``gt_m``, for the thesis metrics), the pixels the thesis metrics
    score there (``thesis_pixels``, None for all), the ground truth in metres at its own size
    (``gt_native_m``, for the standard metrics) and the encoding it was read as.
    """
    color = images.read_image(pair.color_path)
    truth = (load_ground_truth(pair.depth_path) if gt_settings is None
             else load_ground_truth(pair.depth_path, gt_settings))
    height, width = truth.shape
    color_aspect = color.shape[1] / color.shape[0]
    if abs(width / height / color_aspect - 1.0) > ASPECT_TOLERANCE:
        raise ImageError(
            f"{pair.depth_path}: ground truth is {width}x{height} but input "
            f"{pair.color_path.name} is {color.shape[1]}x{color.shape[0]} (aspect ratios differ "
            f"by more than {ASPECT_TOLERANCE:.0%}: mismatched pair?)"
            + images.exif_hint(pair.color_path, pair.depth_path))
    rgb = images.resize_bilinear(images.as_rgb(images.color_to_unit(color, pair.color_path)), input_hw)
    unit, gt_m = truth.on_thesis_grid()
    return Prepared.of_image(pair, rgb, convention,
                             {"ground_truth": unit, "gt_m": gt_m,
                              "thesis_pixels": thesis_pixels(gt_m, truth.encoding),
                              "gt_native_m": truth.depth_m, "encoding": truth.encoding})


def write_raw_maps(folder: OutputFolder, stem: str, depth_unit: np.ndarray) -> None:
    """The upsampled prediction in metres: float32 ``.npy`` and 16-bit millimetre PNG."""
    _, metres_name, mm_name = prediction_names(stem)
    depth_m = (depth_unit * DEPTH_RANGE_M).astype(np.float32)
    folder.write(metres_name, pngs.encode_npy(depth_m))
    folder.write(mm_name, gt_encodings.encode_depth_mm_png(depth_m))


def claim_all(claims: dict[OutputFolder, list[str]]) -> dict[str, Path]:
    """Claim every output name at once (one manifest write per folder); name -> path of each
    one that exists and is not the tool's."""
    conflicts = {}
    for folder, names in claims.items():
        conflicts.update({f"{folder.path}/{name}": folder.path / name
                          for name in folder.claim(names)})
    return conflicts


def output_folder(path: Path) -> OutputFolder:
    try:
        return OutputFolder(path)
    except (NotADirectoryError, FileExistsError) as error:
        raise SnapshotError(f"{path}: exists and is not a folder") from error


class DepthWork(SnapshotWork):
    """One snapshot's depth evaluation: OUT_DIR/S gets the MVN-fitted pictures, OUT_DIR_abs/S
    the raw ones (and ``--save-raw`` maps)."""

    def __init__(self, task: "DepthTask", fitted_dir: OutputFolder, raw_dir: OutputFolder,
                 pairs: list, snapshot_name: str = ""):
        self.task, self.fitted_dir, self.raw_dir = task, fitted_dir, raw_dir
        self.snapshot_name = snapshot_name
        self.outputs = task.settings.outputs
        wanted = {fitted_dir: [], raw_dir: []}
        for pair in pairs:
            for folder, names in self.names_of(pair.stem).items():
                wanted[folder] += names
        self.conflicts = claim_all(wanted)

    def names_of(self, stem: str) -> dict[OutputFolder, list[str]]:
        fitted, raw = picture_names(stem, self.outputs)
        return {self.fitted_dir: fitted, self.raw_dir: raw}

    def prepare(self, item, input_hw, convention=THESIS_CONVENTION):
        taken = [self.conflicts[f"{folder.path}/{name}"]
                 for folder, names in self.names_of(item.stem).items() for name in names
                 if f"{folder.path}/{name}" in self.conflicts]
        if taken:
            raise ImageError(f"{taken[0]}: exists and was not written by depth_eval; "
                             f"left untouched, {item.color_path.name} not evaluated")
        prepared = prepare_image(item, input_hw, self.task.settings.inputs.ground_truth,
                                 convention)
        self.task.note_encoding(item.depth_path.name, prepared.extra["encoding"])
        self.task.note_pixels(item.depth_path, prepared.extra["thesis_pixels"])
        return prepared

    def finish(self, prepared, maps):
        stem, extra = prepared.item.stem, prepared.extra
        scoring_settings = self.task.settings.scoring
        if prepared.convention.output.kind == "inverse":  # --align lsq fits in inverse depth
            scoring_settings = replace(scoring_settings, lsq_in_inverse=True)
        prediction = upsample(maps)
        gt, pixels = extra["ground_truth"], extra["thesis_pixels"]
        native = None
        if scoring_settings.needs_native:
            # The standard metrics at the ground truth's own size (issue 10, item 5): the same
            # cubic zoom to that size, metres in float64.
            gt_native = extra["gt_native_m"]
            zoomed = prediction if gt_native.shape == prediction.shape else upsample(
                maps, gt_native.shape)
            native = (zoomed.astype(np.float64) * DEPTH_RANGE_M, gt_native)
        image_metrics = score.score_image(prediction * DEPTH_RANGE_M, extra["gt_m"],
                                            scoring_settings, native=native, thesis_pixels=pixels)
        missing = score.undefined(image_metrics)
        if missing:
            self.task.warn_undefined(self.snapshot_name, prepared.item.depth_path, missing,
                                     undefined_reasons(prediction, extra, native, scoring_settings))
        fitted = fitted_picture(prediction, gt, pixels)
        self.write_pictures(stem, prepared, gt, prediction, fitted)
        if self.outputs.colormap:
            self.write_colormapped(stem, prediction, fitted, gt)
        if self.outputs.save_raw:
            write_raw_maps(self.raw_dir, stem, prediction)
        kept = prediction if stem in self.task.kept_stems else None
        return ImageResult(stem, image_metrics, kept)

    def write_pictures(self, stem, prepared, gt, prediction, fitted) -> None:
        """Colours and ground truth into both folders; the fitted depth into OUT_DIR, the raw
        into OUT_DIR_abs (the original's pictures)."""
        strategy = self.outputs.png_strategy
        color_name, depth_name, gt_name = output_names(stem)
        color_png = pngs.encode_png(pngs.input_visual(prepared.colors_blob), strategy)
        gt_png = pngs.encode_png(pngs.depth_visual(gt), strategy)
        for folder, depth in ((self.fitted_dir, fitted), (self.raw_dir, prediction)):
            folder.write(color_name, color_png)
            folder.write(depth_name, pngs.encode_png(pngs.depth_visual(depth), strategy))
            folder.write(gt_name, gt_png)

    def write_colormapped(self, stem, prediction, fitted, gt) -> None:
        """Depth pictures through a matplotlib colour map, on one fixed 0-10 m scale."""
        from depth_eval.pictures import colormap_png  # matplotlib: only with --colormap

        colormap, strategy = self.outputs.colormap, self.outputs.png_strategy
        depth_name, gt_name = colormap_names(stem, colormap)
        scale = DEPTH_RANGE_M

        def png(depth_unit):
            return pngs.encode_png(colormap_png(depth_unit * scale, colormap, 0.0, scale),
                                       strategy)

        gt_png = png(gt)
        for folder, depth in ((self.fitted_dir, fitted), (self.raw_dir, prediction)):
            folder.write(depth_name, png(depth))
            folder.write(gt_name, gt_png)


class PairTask(Task):
    """What the tasks on colour / ground-truth pairs share (depth, gradients): the pairs and
    the files left out, the stems whose predictions ``--figures`` draws, and the ground-truth
    encodings read (carried back from Dask workers as facts)."""

    def __init__(self, settings, console=None):
        super().__init__(settings, console)
        self.encodings: set[str] = set()
        self._reused_encodings: dict[Path, str] = {}  # ground truth -> encoding, reused units
        self.kept_stems: frozenset = frozenset()
        self._lock = threading.Lock()

    def find_items(self, console) -> list:
        pairs, self.left_out = find_pairs(self.settings.inputs.input_dir,
                                          self.settings.inputs.gt_dir, console)
        if self.settings.outputs.figures:
            self.kept_stems = frozenset(figure_stems(pairs, self.settings.outputs.figures_max))
        return pairs

    def first_encoding(self, encoding: str) -> bool:
        """Record a ground-truth encoding read; True the first time (say it once)."""
        with self._lock:
            if encoding in self.encodings:
                return False
            self.encodings.add(encoding)
            return True

    def reusable(self, item):
        return item.stem not in self.kept_stems  # --figures draws its prediction

    def unit_reused(self, item):
        # Each snapshot reuses the same pairs: a ground truth's header is read once per run.
        encoding = self._reused_encodings.get(item.depth_path)
        if encoding is None:
            encoding = gt_encodings.encoding_of(item.depth_path,
                                                self.settings.inputs.ground_truth.encoding)
            self._reused_encodings[item.depth_path] = encoding
        self.note_encoding(item.depth_path.name, encoding)

    def document_fields(self) -> dict:
        return {"ground_truth_encodings": sorted(self.encodings),
                "files_not_evaluated": self.left_out}

    def facts(self) -> dict:
        with self._lock:
            return {"encodings": sorted(self.encodings)}

    def add_facts(self, facts):
        with self._lock:
            self.encodings.update(facts.get("encodings", ()))


class DepthTask(PairTask):
    """Thesis (and optionally standard) metrics of depth networks on colour / depth pairs."""

    name = "depth"
    output_rule = DEPTH_OUTPUT

    def __init__(self, settings, console=None):
        super().__init__(settings, console)
        self.partial_files: set[Path] = set()

    def metric_keys(self):
        return self.settings.scoring.metric_keys()

    def find_items(self, console) -> list:
        warm_up()  # SciPy's import overlaps the first model's loading
        return super().find_items(console)

    def start_snapshot(self, snapshot_name, items):
        outputs = self.settings.outputs
        return DepthWork(self, output_folder(outputs.out_dir / snapshot_name),
                         output_folder(outputs.abs_dir / snapshot_name), items, snapshot_name)

    def note_encoding(self, name: str, encoding: str) -> None:
        """Say once per encoding what a ground truth was read as (when it was guessed)."""
        if not self.first_encoding(encoding):
            return
        if self.console is not None and self.settings.inputs.ground_truth.encoding == "auto":
            self.console.note(f"ground truth {name}: read as {gt_encodings.describe(encoding)}; "
                              "--gt-encoding to choose")

    def note_pixels(self, path: Path, pixels: np.ndarray | None) -> None:
        """Say once per ground-truth file that the thesis metrics skip its pixels without depth."""
        if (pixels is None or not pixels.any()  # every pixel; or none (warned per metric)
                or "thesis" not in self.settings.scoring.metric_sets):
            return
        with self._lock:
            if path in self.partial_files:
                return
            self.partial_files.add(path)
        if self.console is not None:
            self.console.warn(
                f"{path}: {pixels.size - int(pixels.sum())} of {pixels.size} pixels at 320 x 420 "
                "have no depth (0, negative, NaN or inf): the thesis metrics score the other "
                f"{int(pixels.sum())}")

    def warn_undefined(self, snapshot_name: str, path: Path, keys: list,
                       reasons: list[str]) -> None:
        """One warning naming the file and the metrics undefined for it (left out of the means)."""
        if self.console is not None:
            because = f" ({'; '.join(reasons)})" if reasons else ""
            self.console.warn(f"{snapshot_name}: {path}: {', '.join(str(k) for k in keys)} "
                              f"undefined for this image{because}; left out of the snapshot's "
                              "means")

    def summarise(self, results):
        return score.summarise([result.metrics for result in results])

    def unit_files(self, snapshot_name, item):
        outputs = self.settings.outputs
        fitted, raw = picture_names(item.stem, outputs)
        return ([outputs.out_dir / snapshot_name / name for name in fitted]
                + [outputs.abs_dir / snapshot_name / name for name in raw])

    def report_pictures(self, snapshot_name, item):
        outputs = self.settings.outputs
        color_name, depth_name, gt_name = output_names(item.stem)
        fitted, raw = outputs.out_dir / snapshot_name, outputs.abs_dir / snapshot_name
        return {"input": fitted / color_name, "ground truth": fitted / gt_name,
                "raw": raw / depth_name, "fitted": fitted / depth_name}

    def after_run(self, items, kept, means, console, intervals=None):
        if not (self.settings.outputs.figures and means):
            return []
        from depth_eval.tasks.depth_figures import write_figures  # matplotlib: --figures only

        return write_figures(self.settings.outputs.out_dir / "figures", items, kept, means,
                             self.settings.inputs.ground_truth, intervals)


def undefined_reasons(prediction: np.ndarray, extra: dict, native, settings) -> list[str]:
    """Why metrics may be undefined for an image, as far as can be told (warnings only)."""
    reasons = []
    pixels = extra["thesis_pixels"]
    gt_m = extra["gt_m"] if pixels is None else extra["gt_m"][pixels]
    if pixels is not None and not pixels.any():
        reasons.append("the ground truth has no pixel with depth")
    elif "thesis" in settings.metric_sets and np.ptp(gt_m) == 0:
        reasons.append("the ground truth is constant")
    if native is not None and not standard_metrics.valid_mask(
            native[1], settings.min_depth, settings.max_depth, settings.crop).any():
        reasons.append(f"no ground-truth pixel in ({settings.min_depth:g}, "
                       f"{settings.max_depth:g}) m" + (" inside the Eigen crop"
                                                       if settings.crop == "eigen" else ""))
    if not np.isfinite(prediction).all():
        reasons.append("the prediction has NaN or inf values")
    elif np.ptp(prediction) == 0:
        reasons.append("the prediction is constant")
    return reasons


def find_pairs(input_dir: Path, gt_dir: Path, console) -> tuple[list[discover.ImagePair], list[str]]:
    """The image pairs and the files left out (after one warning listing them); no pair is a
    usage error."""
    search = discover.find_pairs(input_dir, gt_dir)
    left_out = ([f"{n} (no ground truth in {gt_dir})" for n in search.without_ground_truth]
                + [f"{n} (not an image named *_colors)" for n in search.not_inputs]
                + [f"{n} (another file has the same stem)" for n in search.duplicates])
    if left_out:
        console.warn(f"{len(left_out)} file(s) in INPUT_DIR/GT_DIR not evaluated: "
                     + "; ".join(left_out))
    if not search.pairs:
        raise UsageError(f"{input_dir}: no <stem>_colors image with a <stem>_depth ground "
                         f"truth in {gt_dir}")
    return search.pairs, left_out


def figure_stems(pairs, count: int) -> list[str]:
    """``count`` image stems spread evenly over the pairs (first and last included)."""
    if count <= 0 or not pairs:
        return []
    picks = np.unique(np.linspace(0, len(pairs) - 1, min(count, len(pairs))).round().astype(int))
    return [pairs[i].stem for i in picks]
