"""Evaluating one snapshot on the image pairs: load -> forward -> upsample -> score -> write.

Image loading and everything after the forward pass run on a small thread pool while the
calling thread keeps OpenCV's forward pass busy; results come back in the pairs' order, the
same as a serial run.
"""

from __future__ import annotations

import functools
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
from scipy.ndimage import zoom

import cv2

from . import gt_encoding, io, metrics, outputs, standard_metrics
from .discover import GROUND_TRUTH_SUFFIX, INPUT_SUFFIX, ImagePair

# A ground truth whose width/height differs from its input's by more than this is a mismatched pair.
ASPECT_TOLERANCE = 0.02
# Per-image alignment scale recorded beside the metrics (``median/scale``), summarised not averaged.
SCALE_SUFFIX = "/scale"
# Suffix of the visualised ground truth written beside each prediction (test_depth.py: X_gt.png).
GT_VISUAL_SUFFIX = "_gt"


class ImageError(ValueError):
    """An image pair that cannot be evaluated (unreadable file, mismatched sizes)."""


@dataclass(frozen=True)
class GroundTruthOptions:
    """How ground-truth files store depth (``--gt-encoding``, ``--depth-scale``)."""

    encoding: str = "auto"
    depth_scale: float | None = None


@dataclass(frozen=True)
class ScoringOptions:
    """Which metrics to compute per image, after which alignments, on which pixels.

    The thesis metrics use every pixel, as the original did; the standard (Eigen et al.)
    metrics use the valid pixels (``min_depth < gt < max_depth``, inside the crop).
    """

    metric_sets: tuple[str, ...] = ("thesis",)
    alignments: tuple[str, ...] = ("none",)
    min_depth: float = standard_metrics.DEFAULT_MIN_DEPTH_M
    max_depth: float = standard_metrics.DEFAULT_MAX_DEPTH_M
    crop: str = "none"


@dataclass
class PreparedImage:
    pair: ImagePair
    blob: np.ndarray          # 1 x 3 x H x W network input
    ground_truth: np.ndarray  # 320 x 420, depth / 10
    gt_encoding: str = "thesis"


@dataclass
class ImageResult:
    stem: str
    metrics: dict[str, float]
    prediction: np.ndarray | None = None  # upsampled raw prediction, depth / 10 (kept on request)


@dataclass
class SnapshotRun:
    """Per-image outcome of one snapshot: the metrics of evaluated images, reasons for the rest."""

    results: list[ImageResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def mean_metrics(self) -> dict[str, float]:
        """Mean of each metric over the images evaluated (not over all files, as the original).

        The thesis metrics are plain means, as the original's; the others skip images where
        the metric is undefined (NaN: no valid pixel).  A per-image scale (``median/scale``) is
        summarised by its median and standard deviation instead, as monodepth2 reports it.
        """
        summary = {}
        for key in self.results[0].metrics if self.results else ():
            values = np.array([r.metrics[key] for r in self.results], dtype=np.float64)
            if key.endswith(SCALE_SUFFIX):
                summary[f"{key}_median"] = float(np.nanmedian(values))
                summary[f"{key}_std"] = float(np.nanstd(values))
            elif key in metrics.THESIS_METRIC_TITLES or np.isnan(values).all():
                summary[key] = float(np.mean(values))
            else:
                summary[key] = float(np.nanmean(values))
        return summary


def output_names(stem: str) -> tuple[str, str, str]:
    """The three PNG names the original wrote for input ``<X>_colors``: colours, depth, ground truth."""
    base = stem[: -len(INPUT_SUFFIX)] if stem.endswith(INPUT_SUFFIX) else stem
    return f"{stem}.png", f"{base}{GROUND_TRUTH_SUFFIX}.png", f"{base}{GT_VISUAL_SUFFIX}.png"


def load_ground_truth(path: Path, options: GroundTruthOptions) -> tuple[np.ndarray, str]:
    """A ground truth at its stored size in depth / 10 units, and the encoding it was read as.

    8-bit images take the thesis' own path (caffe.io.load_image: grey, value / 255), so the
    default results stay exactly the original's; other encodings go through gt_encoding.
    """
    thesis = options.encoding == "thesis" or (
        options.encoding == "auto" and path.suffix.lower() != ".npy")
    if thesis:
        try:
            raw = io.read_image(path)
        except io.ImageReadError as error:
            raise ImageError(str(error)) from None
        if raw.dtype == np.uint8 or options.encoding == "thesis":
            if raw.dtype != np.uint8:
                raise ImageError(f"{path}: {raw.dtype} ground truth but --gt-encoding thesis "
                                 "expects 8-bit")
            if options.depth_scale is None:
                return io.as_gray(io.to_unit_float(raw)), "thesis"
            depth_m = io.as_gray(raw.astype(np.float64)) * options.depth_scale
            return (depth_m / metrics.DEPTH_RANGE_M).astype(np.float32), "thesis"
    try:
        depth_m, used = gt_encoding.read_depth_m(path, options.encoding, options.depth_scale)
    except ValueError as error:
        raise ImageError(str(error)) from None
    return (depth_m / metrics.DEPTH_RANGE_M).astype(np.float32), used


def resize_ground_truth(ground_truth: np.ndarray, encoding: str) -> np.ndarray:
    """To 320 x 420: bilinear for the thesis encoding (as the original); nearest otherwise, so
    pixels without depth (0) do not blend into their neighbours."""
    if encoding == "thesis" or ground_truth.shape == io.GT_SHAPE:
        return io.resize_bilinear(ground_truth, io.GT_SHAPE)
    return cv2.resize(ground_truth, io.GT_SHAPE[::-1], interpolation=cv2.INTER_NEAREST)


def prepare_image(pair: ImagePair, input_hw: tuple[int, int],
                  gt_options: GroundTruthOptions = GroundTruthOptions()) -> PreparedImage:
    """Read and preprocess one pair; raises ImageError naming the file and the cause."""
    try:
        color = io.read_image(pair.color_path)
    except io.ImageReadError as error:
        raise ImageError(str(error)) from None
    depth, encoding = load_ground_truth(pair.depth_path, gt_options)
    color_aspect = color.shape[1] / color.shape[0]
    depth_aspect = depth.shape[1] / depth.shape[0]
    if abs(depth_aspect / color_aspect - 1.0) > ASPECT_TOLERANCE:
        raise ImageError(
            f"{pair.depth_path}: ground truth is {depth.shape[1]}x{depth.shape[0]} but input "
            f"{pair.color_path.name} is {color.shape[1]}x{color.shape[0]} (aspect ratios differ "
            f"by more than {ASPECT_TOLERANCE:.0%}: mismatched pair?)")
    rgb = io.resize_bilinear(io.as_rgb(io.to_unit_float(color)), input_hw)
    ground_truth = resize_ground_truth(depth, encoding)
    return PreparedImage(pair, io.to_network_blob(rgb), ground_truth, encoding)


def decode_output(output: np.ndarray, log_encoded: bool) -> np.ndarray:
    """The network's h x w output map in depth / 10 units (``--log``: undo the log encoding)."""
    depth = output.reshape(output.shape[-2:])
    if log_encoded:
        depth = np.exp((depth - 1.0) / metrics.LOG_ENCODING_SLOPE)
    return depth


def upsample(depth: np.ndarray, shape: tuple[int, int] = io.GT_SHAPE) -> np.ndarray:
    """Cubic-spline zoom to the ground truth's size, as ``scipy.ndimage.zoom(order=3)``.

    The original zoomed the 1 x 1 x h x w blob.  The zoom is linear and separable, so it is
    ``A_rows @ depth @ A_cols.T`` with each axis' matrix made once by SciPy's own zoom of unit
    impulses: the same values (within 4 float32 ulps; 5 of 10.7 M differed in a test of 240
    maps) in 0.6 ms instead of 10.
    """
    rows, cols = _zoom_matrix(depth.shape[0], shape[0]), _zoom_matrix(depth.shape[1], shape[1])
    return (rows @ depth.astype(np.float64) @ cols.T).astype(np.float32)


@functools.lru_cache(maxsize=16)
def _zoom_matrix(size: int, out_size: int) -> np.ndarray:
    """out_size x size matrix of scipy.ndimage.zoom(order=3) along one axis (factor out/size)."""
    eye = np.eye(size)  # column j zoomed as a size x 1 map (the unit axis stays as it is)
    columns = [zoom(eye[:, j:j + 1], (out_size / size, 1), order=3)[:, 0] for j in range(size)]
    return np.stack(columns, axis=1)


def score_image(prediction_m: np.ndarray, gt_m: np.ndarray,
                options: ScoringOptions = ScoringOptions()) -> dict[str, float]:
    """Every requested metric of one image, keyed ``TITLE`` or ``ALIGNMENT/TITLE``.

    Without alignment the thesis metrics keep their plain titles (the original's output); the
    standard metrics are keyed by their short names (``rmse``).  ``median`` and ``lsq`` also
    record the fitted scale (``median/scale``).
    """
    scores: dict[str, float] = {}
    needs_mask = "standard" in options.metric_sets or set(options.alignments) - {"none", "mvn"}
    mask = (standard_metrics.valid_mask(gt_m, options.min_depth, options.max_depth, options.crop)
            if needs_mask else None)
    for align in options.alignments:
        prefix = "" if align == "none" else f"{align}/"
        if "thesis" in options.metric_sets:
            if align == "none":
                aligned = prediction_m
            elif align == "mvn":  # the thesis oracle: fitted on the whole map, as OUT_DIR shows
                aligned = metrics.mvn_fit(prediction_m, gt_m)
            else:
                aligned, _, _ = _aligned_or_nan(prediction_m, gt_m, mask, align)
            scores.update({prefix + k: v for k, v in metrics.thesis_metrics(aligned, gt_m).items()})
        if "standard" in options.metric_sets:
            values, info = standard_metrics.evaluate_standard(
                prediction_m, gt_m, min_depth=options.min_depth, max_depth=options.max_depth,
                crop=options.crop, align=align)
            scores.update({prefix + k: v for k, v in values.items()})
            if align in ("median", "lsq"):
                scores[f"{align}{SCALE_SUFFIX}"] = _none_to_nan(info.get("scale"))
        elif align in ("median", "lsq"):
            scores[f"{align}{SCALE_SUFFIX}"] = _aligned_or_nan(prediction_m, gt_m, mask, align)[1]
    return scores


def _none_to_nan(value) -> float:
    return float("nan") if value is None else float(value)


def _aligned_or_nan(prediction_m, gt_m, mask, align):
    """align_prediction, or a NaN map when the fit is impossible (no valid pixel, zero median)."""
    try:
        aligned, scale, shift = standard_metrics.align_prediction(prediction_m, gt_m, mask, align)
    except ValueError:
        return np.full_like(prediction_m, np.nan), float("nan"), float("nan")
    return aligned, _none_to_nan(scale), _none_to_nan(shift)


def score_and_pictures(prepared: PreparedImage, output: np.ndarray, log_encoded: bool,
                       scoring: ScoringOptions = ScoringOptions()):
    """Metrics and the four distinct PNG images (colours, gt, raw depth, MVN-fitted depth)."""
    prediction = upsample(decode_output(output, log_encoded))
    gt = prepared.ground_truth
    image_metrics = score_image(prediction * metrics.DEPTH_RANGE_M, gt * metrics.DEPTH_RANGE_M,
                                scoring)
    pictures = {
        "colors": outputs.input_visual(prepared.blob),
        "gt": outputs.depth_visual(gt),
        "raw": outputs.depth_visual(prediction),
        "fitted": outputs.depth_visual(metrics.mvn_fit(prediction, gt)),
    }
    return prediction, image_metrics, pictures


def write_pictures(stem: str, pictures: dict, fitted_dir: outputs.OutputFolder,
                   raw_dir: outputs.OutputFolder, png_strategy: str = "rle") -> None:
    """OUT_DIR gets the MVN-fitted depth, OUT_DIR_abs the raw; both get colours and ground truth."""
    color_name, depth_name, gt_name = output_names(stem)
    color_png = outputs.encode_png(pictures["colors"], png_strategy)
    gt_png = outputs.encode_png(pictures["gt"], png_strategy)
    for folder, depth_key in ((fitted_dir, "fitted"), (raw_dir, "raw")):
        folder.write(color_name, color_png)
        folder.write(depth_name, outputs.encode_png(pictures[depth_key], png_strategy))
        folder.write(gt_name, gt_png)


def stream(items: Iterable, prepare: Callable, forward: Callable, finish: Callable,
           jobs: int = 2, batch_size: int = 1,
           forward_workers: int = 1) -> Iterator[tuple[object, object]]:
    """Run ``finish(prepared, output)`` over items, the forward passes overlapped with the rest.

    ``prepare(item)`` and ``finish(prepared, output)`` run on a pool of ``jobs`` threads;
    ``forward(list of prepared)`` returns one output per prepared item and runs ``batch_size``
    items at a time (fewer at the end) on ``forward_workers`` threads of its own (more than one
    only for an engine whose forward pass may run concurrently).  The network never waits for
    file I/O, and the items in flight are bounded, so memory does not grow with their number.
    Yields ``(item, result)`` in the items' order; an ImageError or OSError raised for one item
    is yielded as its result.
    """
    lookahead = max(2, 2 * jobs, 2 * batch_size * forward_workers)

    def failed(error: Exception) -> Future:
        future: Future = Future()
        future.set_exception(error)
        return future

    def outcome(future: Future):
        try:
            return future.result()
        except (ImageError, OSError) as error:
            return error

    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="depth_eval") as pool, \
            ThreadPoolExecutor(max_workers=forward_workers, thread_name_prefix="forward") as nets:
        loading: deque = deque()
        finishing: deque = deque()
        batch: list = []
        item_iter = iter(items)

        def refill():
            while len(loading) < lookahead:
                item = next(item_iter, _END)
                if item is _END:
                    return
                loading.append((item, pool.submit(prepare, item)))

        def forward_then_finish(prepared: list, results: list[Future]) -> None:
            try:
                outputs = forward(prepared)
            except BaseException as error:  # the network failed: every item of the batch fails
                for result in results:
                    result.set_exception(error)
                return
            for one, output, result in zip(prepared, outputs, results):
                pool.submit(finish, one, output).add_done_callback(
                    lambda done, result=result: _copy_outcome(done, result))

        def run_batch():
            if batch:
                results = [Future() for _ in batch]
                nets.submit(forward_then_finish, [prepared for _, prepared in batch], results)
                finishing.extend((item, result) for (item, _), result in zip(batch, results))
                batch.clear()

        refill()
        while loading:
            item, future = loading.popleft()
            refill()
            prepared = outcome(future)
            if isinstance(prepared, Exception):
                run_batch()  # keep the order: the batch so far goes first
                finishing.append((item, failed(prepared)))
            else:
                batch.append((item, prepared))
                if len(batch) >= batch_size or not loading:
                    run_batch()
            while len(finishing) > lookahead or (finishing and finishing[0][1].done()):
                item, done = finishing.popleft()
                yield item, outcome(done)
        run_batch()
        while finishing:
            item, done = finishing.popleft()
            yield item, outcome(done)


def _copy_outcome(source: Future, target: Future) -> None:
    error = source.exception()
    if error is not None:
        target.set_exception(error)
    else:
        target.set_result(source.result())


def batched_forward(forward: Callable[[np.ndarray], np.ndarray], blob_of: Callable):
    """A ``stream`` forward from a network's blob forward: stack the inputs, split the outputs."""
    def run(prepared: list) -> list[np.ndarray]:
        blobs = [blob_of(p) for p in prepared]
        output = forward(blobs[0] if len(blobs) == 1 else np.concatenate(blobs))
        return [output[i:i + 1] for i in range(len(blobs))]
    return run


_END = object()


def colormap_names(stem: str, colormap: str | None) -> tuple[str, ...]:
    """Colour-mapped picture names (``--colormap``): depth and ground truth."""
    if not colormap:
        return ()
    _, depth_name, gt_name = output_names(stem)
    return tuple(name.replace(".png", f"_{colormap}.png") for name in (depth_name, gt_name))


def write_colormapped(stem, prediction, ground_truth, colormap, fitted_dir, raw_dir,
                      png_strategy="rle") -> None:
    """Depth pictures through a matplotlib colour map, on one fixed 0-10 m scale."""
    from .figures import colormap_png

    depth_name, gt_name = colormap_names(stem, colormap)
    scale = metrics.DEPTH_RANGE_M
    gt_png = outputs.encode_png(colormap_png(ground_truth * scale, colormap, 0.0, scale), png_strategy)
    fitted = metrics.mvn_fit(prediction, ground_truth)
    for folder, depth in ((fitted_dir, fitted), (raw_dir, prediction)):
        folder.write(depth_name, outputs.encode_png(colormap_png(depth * scale, colormap, 0.0, scale),
                                                    png_strategy))
        folder.write(gt_name, gt_png)


@dataclass(frozen=True)
class EvaluationOptions:
    """Everything about one evaluation run that is not a file or the network.

    ``forward_workers``: forward passes that may run at once (an engine that allows it).
    ``keep_predictions``: True keeps every upsampled prediction in the results, a set of stems
    keeps those (figures), False none.  ``save_raw`` writes each prediction in metres as float32
    ``.npy`` and 16-bit millimetre PNG into ``OUT_DIR_abs/<snapshot>``.  ``colormap`` also
    writes the depth pictures through that matplotlib colour map (``X_depth_<name>.png``,
    ``X_gt_<name>.png``, 0 to 10 m).
    """

    log_encoded: bool = False
    png_strategy: str = "rle"
    scoring: ScoringOptions = ScoringOptions()
    ground_truth: GroundTruthOptions = GroundTruthOptions()
    save_raw: bool = False
    keep_predictions: bool | frozenset = False
    colormap: str | None = None
    batch_size: int = 1
    forward_workers: int = 1


def evaluate_snapshot(
    forward: Callable[[np.ndarray], np.ndarray],
    input_hw: tuple[int, int],
    pairs: Iterable[ImagePair],
    fitted_dir: outputs.OutputFolder,
    raw_dir: outputs.OutputFolder,
    options: EvaluationOptions = EvaluationOptions(),
    *,
    jobs: int = 2,
    on_image: Callable[[str], None] | None = None,
    on_encoding: Callable[[str, str], None] | None = None,
) -> SnapshotRun:
    """Run one network over the pairs, writing its pictures and collecting its metrics.

    Parameters
    ----------
    forward : callable
        Maps a 1 x 3 x H x W input blob to the network's output blob.
    input_hw : (int, int)
        The network's input height and width.
    pairs : iterable of ImagePair
        In the order results are wanted.
    fitted_dir, raw_dir : OutputFolder
        ``OUT_DIR/<snapshot>`` and ``OUT_DIR_abs/<snapshot>``.
    options : EvaluationOptions
        ``--log``, metrics, alignments, ground-truth encoding, extra outputs.
    jobs : int
        Worker threads for reading, upsampling, scoring and writing.
    on_image : callable, optional
        Called with each image's stem once it is done (progress).
    on_encoding : callable, optional
        Called with (ground-truth file name, encoding used) for each image read.
    """
    started = time.perf_counter()
    pairs = list(pairs)

    def names_of(pair: ImagePair) -> dict[outputs.OutputFolder, list[str]]:
        both = list(output_names(pair.stem)) + list(colormap_names(pair.stem, options.colormap))
        extra = list(prediction_names(pair.stem)[1:]) if options.save_raw else []
        return {fitted_dir: both, raw_dir: both + extra}

    # Claim every output name once (one manifest write per folder, not one per image).
    conflicts = {}
    for folder in (fitted_dir, raw_dir):
        wanted = [name for pair in pairs for name in names_of(pair)[folder]]
        conflicts.update({(folder, name): folder.path / name for name in folder.claim(wanted)})

    def prepare(pair: ImagePair) -> PreparedImage:
        taken = [conflicts[(folder, name)] for folder, names in names_of(pair).items()
                 for name in names if (folder, name) in conflicts]
        if taken:
            raise ImageError(f"{taken[0]}: exists and was not written by depth_eval; "
                             f"left untouched, {pair.color_path.name} not evaluated")
        prepared = prepare_image(pair, input_hw, options.ground_truth)
        if on_encoding is not None:
            on_encoding(pair.depth_path.name, prepared.gt_encoding)
        return prepared

    def finish(prepared: PreparedImage, output: np.ndarray) -> ImageResult:
        stem = prepared.pair.stem
        prediction, image_metrics, pictures = score_and_pictures(
            prepared, output, options.log_encoded, options.scoring)
        write_pictures(stem, pictures, fitted_dir, raw_dir, options.png_strategy)
        if options.colormap:
            write_colormapped(stem, prediction, prepared.ground_truth, options.colormap,
                              fitted_dir, raw_dir, options.png_strategy)
        if options.save_raw:
            write_raw_maps(raw_dir, stem, prediction)
        keep = options.keep_predictions
        kept = prediction if keep is True or (keep and stem in keep) else None
        return ImageResult(stem, image_metrics, kept)

    forward_batch = batched_forward(forward, lambda p: p.blob)
    outcomes = stream(pairs, prepare, forward_batch, finish, jobs, options.batch_size,
                      options.forward_workers)
    return _gather(outcomes, lambda pair: pair.color_path, started, on_image)


def prediction_names(stem: str) -> tuple[str, str, str]:
    """Files ``predict`` writes for input ``stem``: visualisation, metres (.npy), millimetres (PNG)."""
    base = stem[: -len(INPUT_SUFFIX)] if stem.endswith(INPUT_SUFFIX) else stem
    depth = f"{base}{GROUND_TRUTH_SUFFIX}"
    return f"{depth}.png", f"{depth}.npy", f"{depth}_mm.png"


def write_raw_maps(folder: outputs.OutputFolder, stem: str, depth_unit: np.ndarray) -> None:
    """The upsampled prediction in metres: float32 ``.npy`` and 16-bit millimetre PNG."""
    _, metres_name, mm_name = prediction_names(stem)
    depth_m = (depth_unit * metrics.DEPTH_RANGE_M).astype(np.float32)
    folder.write(metres_name, outputs.encode_npy(depth_m))
    folder.write(mm_name, gt_encoding.encode_depth_mm_png(depth_m))


def predict_snapshot(
    forward: Callable[[np.ndarray], np.ndarray],
    input_hw: tuple[int, int],
    image_paths: Iterable[Path],
    raw_dir: outputs.OutputFolder,
    *,
    log_encoded: bool = False,
    jobs: int = 2,
    png_strategy: str = "rle",
    batch_size: int = 1,
    forward_workers: int = 1,
    on_image: Callable[[str], None] | None = None,
) -> SnapshotRun:
    """Depth maps without ground truth (the thesis' get_depth.py): pictures and raw maps only.

    Each image gets, at the thesis' evaluation size 320 x 420: the log visualisation
    (``X_depth.png``), the depth in metres as float32 (``X_depth.npy``) and as a 16-bit
    millimetre PNG (``X_depth_mm.png``).  ``results`` holds one ImageResult per image with
    empty metrics.
    """
    started = time.perf_counter()
    image_paths = list(image_paths)
    conflicts = set(raw_dir.claim([n for p in image_paths for n in prediction_names(p.stem)]))

    def prepare(path: Path) -> tuple[Path, np.ndarray]:
        taken = [n for n in prediction_names(path.stem) if n in conflicts]
        if taken:
            raise ImageError(f"{raw_dir.path / taken[0]}: exists and was not written by "
                             f"depth_eval; left untouched, {path.name} not predicted")
        try:
            return path, io.to_network_blob(io.load_color_input(path, input_hw))
        except io.ImageReadError as error:
            raise ImageError(str(error)) from None

    def finish(prepared: tuple[Path, np.ndarray], output: np.ndarray) -> ImageResult:
        path = prepared[0]
        depth = upsample(decode_output(output, log_encoded))
        raw_dir.write(prediction_names(path.stem)[0],
                      outputs.encode_png(outputs.depth_visual(depth), png_strategy))
        write_raw_maps(raw_dir, path.stem, depth)
        return ImageResult(path.stem, {})

    forward_batch = batched_forward(forward, lambda p: p[1])
    outcomes = stream(image_paths, prepare, forward_batch, finish, jobs, batch_size,
                      forward_workers)
    return _gather(outcomes, lambda path: path, started, on_image)


def _gather(outcomes, input_path: Callable, started: float, on_image) -> SnapshotRun:
    """Collect ``stream``'s (item, result) pairs: results, and skipped inputs with the reason."""
    run = SnapshotRun()
    for item, result in outcomes:
        path = input_path(item)
        if isinstance(result, Exception):
            run.skipped[path.name] = str(result)
        else:
            run.results.append(result)
        if on_image is not None:
            on_image(path.stem)
    run.seconds = time.perf_counter() - started
    return run
