"""Evaluating one snapshot on the image pairs: load -> forward -> upsample -> score -> write.

Image loading and everything after the forward pass run on a small thread pool while the
calling thread keeps OpenCV's forward pass busy; results come back in the pairs' order, the
same as a serial run.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
from scipy.ndimage import zoom

from . import io, metrics, outputs
from .discover import GROUND_TRUTH_SUFFIX, INPUT_SUFFIX, ImagePair

# A ground truth whose width/height differs from its input's by more than this is a mismatched pair.
ASPECT_TOLERANCE = 0.02
# Suffix of the visualised ground truth written beside each prediction (test_depth.py: X_gt.png).
GT_VISUAL_SUFFIX = "_gt"


class ImageError(ValueError):
    """An image pair that cannot be evaluated (unreadable file, mismatched sizes)."""


@dataclass
class PreparedImage:
    pair: ImagePair
    blob: np.ndarray          # 1 x 3 x H x W network input
    ground_truth: np.ndarray  # 320 x 420, depth / 10


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
        """Mean of each metric over the images evaluated (not over all files, as the original)."""
        return {title: float(np.mean([r.metrics[title] for r in self.results]))
                for title in metrics.THESIS_METRIC_TITLES}


def output_names(stem: str) -> tuple[str, str, str]:
    """The three PNG names the original wrote for input ``<X>_colors``: colours, depth, ground truth."""
    base = stem[: -len(INPUT_SUFFIX)] if stem.endswith(INPUT_SUFFIX) else stem
    return f"{stem}.png", f"{base}{GROUND_TRUTH_SUFFIX}.png", f"{base}{GT_VISUAL_SUFFIX}.png"


def prepare_image(pair: ImagePair, input_hw: tuple[int, int]) -> PreparedImage:
    """Read and preprocess one pair; raises ImageError naming the file and the cause."""
    try:
        color = io.read_image(pair.color_path)
        depth = io.read_image(pair.depth_path)
    except io.ImageReadError as error:
        raise ImageError(str(error)) from None
    color_aspect = color.shape[1] / color.shape[0]
    depth_aspect = depth.shape[1] / depth.shape[0]
    if abs(depth_aspect / color_aspect - 1.0) > ASPECT_TOLERANCE:
        raise ImageError(
            f"{pair.depth_path}: ground truth is {depth.shape[1]}x{depth.shape[0]} but input "
            f"{pair.color_path.name} is {color.shape[1]}x{color.shape[0]} (aspect ratios differ "
            f"by more than {ASPECT_TOLERANCE:.0%}: mismatched pair?)")
    rgb = io.resize_bilinear(io.as_rgb(io.to_unit_float(color)), input_hw)
    ground_truth = io.resize_bilinear(io.as_gray(io.to_unit_float(depth)), io.GT_SHAPE)
    return PreparedImage(pair, io.to_network_blob(rgb), ground_truth)


def decode_output(output: np.ndarray, log_encoded: bool) -> np.ndarray:
    """The network's h x w output map in depth / 10 units (``--log``: undo the log encoding)."""
    depth = output.reshape(output.shape[-2:])
    if log_encoded:
        depth = np.exp((depth - 1.0) / metrics.LOG_ENCODING_SLOPE)
    return depth


def upsample(depth: np.ndarray, shape: tuple[int, int] = io.GT_SHAPE) -> np.ndarray:
    """Cubic-spline zoom to the ground truth's size, as ``scipy.ndimage.zoom(order=3)``.

    The original zoomed the 1 x 1 x h x w blob; zooming the 2-D map with the same factors gives
    bit-identical values 30x faster.
    """
    return zoom(depth, (shape[0] / depth.shape[0], shape[1] / depth.shape[1]), order=3)


def score_and_pictures(prepared: PreparedImage, output: np.ndarray, log_encoded: bool):
    """Metrics and the four distinct PNG images (colours, gt, raw depth, MVN-fitted depth)."""
    prediction = upsample(decode_output(output, log_encoded))
    gt = prepared.ground_truth
    image_metrics = metrics.thesis_metrics(prediction * metrics.DEPTH_RANGE_M,
                                           gt * metrics.DEPTH_RANGE_M)
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
           jobs: int = 2) -> Iterator[tuple[object, object]]:
    """Run ``finish(prepare(item), forward(prepare(item)))`` over items, overlapped, in order.

    ``prepare`` and ``finish`` run on a pool of ``jobs`` threads, ``forward`` on the calling
    thread, so the network never waits for file I/O; at most ``2 * jobs`` items are in flight
    on each side, so memory does not grow with the number of items.  Yields ``(item, result)``
    in the items' order; an ImageError or OSError raised for one item is yielded as its result.
    """
    lookahead = max(2, 2 * jobs)

    def failed(error: Exception) -> Future:
        future: Future = Future()
        future.set_exception(error)
        return future

    def outcome(future: Future):
        try:
            return future.result()
        except (ImageError, OSError) as error:
            return error

    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="depth_eval") as pool:
        loading: deque = deque()
        finishing: deque = deque()
        item_iter = iter(items)

        def refill():
            while len(loading) < lookahead:
                item = next(item_iter, _END)
                if item is _END:
                    return
                loading.append((item, pool.submit(prepare, item)))

        refill()
        while loading:
            item, future = loading.popleft()
            refill()
            prepared = outcome(future)
            if isinstance(prepared, Exception):
                finishing.append((item, failed(prepared)))
            else:
                finishing.append((item, pool.submit(finish, prepared, forward(prepared))))
            while len(finishing) > lookahead or (finishing and finishing[0][1].done()):
                item, done = finishing.popleft()
                yield item, outcome(done)
        while finishing:
            item, done = finishing.popleft()
            yield item, outcome(done)


_END = object()


def evaluate_snapshot(
    forward: Callable[[np.ndarray], np.ndarray],
    input_hw: tuple[int, int],
    pairs: Iterable[ImagePair],
    fitted_dir: outputs.OutputFolder,
    raw_dir: outputs.OutputFolder,
    *,
    log_encoded: bool = False,
    jobs: int = 2,
    keep_predictions: bool = False,
    png_strategy: str = "rle",
    on_image: Callable[[str], None] | None = None,
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
    log_encoded : bool
        The network outputs log depth (``--log``).
    jobs : int
        Worker threads for reading, upsampling, scoring and writing.
    keep_predictions : bool
        Keep each upsampled prediction in the result (tests, ``--save-raw``).
    png_strategy : {'rle', 'default'}
        zlib strategy of the PNGs (``outputs.encode_png``); the pixels are the same.
    on_image : callable, optional
        Called with each image's stem once it is done (progress).
    """
    started = time.perf_counter()
    run = SnapshotRun()

    # Claim every output name once (one manifest write per folder, not one per image).
    pairs = list(pairs)
    names = [name for pair in pairs for name in output_names(pair.stem)]
    conflicts = {name: folder.path / name for folder in (fitted_dir, raw_dir)
                 for name in folder.claim(names)}

    def prepare(pair: ImagePair) -> PreparedImage:
        taken = [conflicts[n] for n in output_names(pair.stem) if n in conflicts]
        if taken:
            raise ImageError(f"{taken[0]}: exists and was not written by depth_eval; "
                             f"left untouched, {pair.color_path.name} not evaluated")
        return prepare_image(pair, input_hw)

    def finish(prepared: PreparedImage, output: np.ndarray) -> ImageResult:
        stem = prepared.pair.stem
        prediction, image_metrics, pictures = score_and_pictures(prepared, output, log_encoded)
        write_pictures(stem, pictures, fitted_dir, raw_dir, png_strategy)
        return ImageResult(stem, image_metrics, prediction if keep_predictions else None)

    for pair, result in stream(pairs, prepare, lambda p: forward(p.blob), finish, jobs):
        if isinstance(result, Exception):
            run.skipped[pair.color_path.name] = str(result)
        else:
            run.results.append(result)
        if on_image is not None:
            on_image(pair.stem)
    run.seconds = time.perf_counter() - started
    return run


def prediction_names(stem: str) -> tuple[str, str, str]:
    """Files ``predict`` writes for input ``stem``: visualisation, metres (.npy), millimetres (PNG)."""
    base = stem[: -len(INPUT_SUFFIX)] if stem.endswith(INPUT_SUFFIX) else stem
    depth = f"{base}{GROUND_TRUTH_SUFFIX}"
    return f"{depth}.png", f"{depth}.npy", f"{depth}_mm.png"


def predict_snapshot(
    forward: Callable[[np.ndarray], np.ndarray],
    input_hw: tuple[int, int],
    image_paths: Iterable[Path],
    raw_dir: outputs.OutputFolder,
    *,
    log_encoded: bool = False,
    jobs: int = 2,
    png_strategy: str = "rle",
    on_image: Callable[[str], None] | None = None,
) -> SnapshotRun:
    """Depth maps without ground truth (the thesis' get_depth.py): pictures and raw maps only.

    Each image gets, at the thesis' evaluation size 320 x 420: the log visualisation
    (``X_depth.png``), the depth in metres as float32 (``X_depth.npy``) and as a 16-bit
    millimetre PNG (``X_depth_mm.png``).  ``results`` holds one ImageResult per image with
    empty metrics.
    """
    started = time.perf_counter()
    run = SnapshotRun()
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
        depth_m = (depth * metrics.DEPTH_RANGE_M).astype(np.float32)
        visual_name, metres_name, mm_name = prediction_names(path.stem)
        raw_dir.write(visual_name, outputs.encode_png(outputs.depth_visual(depth), png_strategy))
        raw_dir.write(metres_name, outputs.encode_npy(depth_m))
        raw_dir.write(mm_name, outputs.encode_depth_mm_png(depth_m))
        return ImageResult(path.stem, {})

    for path, result in stream(image_paths, prepare, lambda p: forward(p[1]), finish, jobs):
        if isinstance(result, Exception):
            run.skipped[path.name] = str(result)
        else:
            run.results.append(result)
        if on_image is not None:
            on_image(path.stem)
    run.seconds = time.perf_counter() - started
    return run
