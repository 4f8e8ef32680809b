"""``depth-eval prepare-nyu LABELED_MAT SPLITS_MAT OUT_DIR``: the thesis' NYU Depth v2 test inputs.

Reads ``nyu_depth_v2_labeled.mat`` one image at a time and writes, for each image of the chosen
split, ``OUT_DIR/colors/NNNNN_colors.png`` and ``OUT_DIR/depths/NNNNN_depth.png`` as the thesis'
``convert.py`` + ``crop.py`` did (420 x 320, 8-bit depth code), or with ``--full-frame`` as
``convert.py`` alone did (640 x 480, 16-bit millimetres).  The arithmetic is :mod:`depth_eval.inputs.nyu`.
"""

from __future__ import annotations

import argparse
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from depth_eval.inputs import nyu
from depth_eval.writing import OutputFolder
from depth_eval.pictures.pngs import encode_png
from depth_eval.console import Console
from depth_eval.errors import (EXIT_NOTHING, EXIT_OK, EXIT_PARTIAL, ImageError, OutputError, UsageError)
from depth_eval.progress import Progress

NAME = "prepare-nyu"
HELP = "write the NYU Depth v2 test split as the thesis' inputs, from the labeled .mat and splits.mat"
COLORS_FOLDER, DEPTHS_FOLDER = "colors", "depths"
# Images read ahead of the PNG writers, per worker thread (bounds memory: ~3 MB an image).
READ_AHEAD_PER_JOB = 2


@dataclass(frozen=True)
class PrepareNyuSettings:
    """What ``prepare-nyu`` does, checked before any work (:func:`settings_from_args`)."""

    labeled_mat: Path
    splits_mat: Path
    out_dir: Path
    full_frame: bool = False
    split: str = "test"
    raw_depth: bool = False
    jobs: int = 2
    quiet: bool = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's positional arguments and options."""
    parser.add_argument("labeled_mat", type=Path, metavar="LABELED_MAT",
                        help="nyu_depth_v2_labeled.mat (MATLAB v7.3, 2.8 GB; needs h5py: "
                             f"{nyu.INSTALL_HINT})")
    parser.add_argument("splits_mat", type=Path, metavar="SPLITS_MAT",
                        help="the official splits.mat (trainNdxs, testNdxs)")
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR",
                        help="writes OUT_DIR/colors/NNNNN_colors.png and "
                             "OUT_DIR/depths/NNNNN_depth.png (NNNNN: 0-based index in the .mat)")
    parser.add_argument("--full-frame", action="store_true",
                        help="640 x 480 colours and 16-bit millimetre depths (the thesis' "
                             "convert.py output; evaluate with --gt-encoding mm) instead of the "
                             "420 x 320 centre crop with the thesis' 8-bit depth code")
    parser.add_argument("--split", choices=nyu.SPLITS, default="test",
                        help="which images: test (default, 654), train (795) or all")
    parser.add_argument("--raw-depth", action="store_true",
                        help="the raw Kinect depths (rawDepths, holes kept as 0 mm) instead of "
                             "the filled depths the thesis used")
    parser.add_argument("--jobs", type=int, metavar="N",
                        help="PNG-writing threads (default: the number of cores)")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress, summary or warnings; errors only")


def settings_from_args(args: argparse.Namespace) -> PrepareNyuSettings:
    """The settings of parsed arguments, after every check that needs no reading of the inputs.

    Raises
    ------
    UsageError
        A missing input file, an OUT_DIR that is a file, ``--jobs`` below 1, or no h5py.
    """
    for path in (args.labeled_mat, args.splits_mat):
        if path.is_dir():
            raise UsageError(f"{path}: is a folder, expected a .mat file")
        if not path.is_file():
            raise UsageError(f"{path}: no such file")
    for folder in (args.out_dir, args.out_dir / COLORS_FOLDER, args.out_dir / DEPTHS_FOLDER):
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"{folder}: exists and is not a folder")
    jobs = args.jobs if args.jobs is not None else (os.cpu_count() or 1)
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    nyu.import_h5py()
    return PrepareNyuSettings(
        labeled_mat=args.labeled_mat, splits_mat=args.splits_mat, out_dir=args.out_dir,
        full_frame=args.full_frame, split=args.split, raw_depth=args.raw_depth, jobs=jobs,
        quiet=args.quiet)


def run(settings: PrepareNyuSettings, console: Console) -> int:
    """Write the split's images; return EXIT_OK, or EXIT_PARTIAL when some image was skipped.

    Raises
    ------
    UsageError
        Inputs that are not the NYU files (SPEC-nyu.md's errors), checked before any writing.
    OutputError
        An output file that exists and was not written by depth_eval (nothing is written then),
        or a write that fails.
    """
    splits = nyu.read_splits(settings.splits_mat)
    with nyu.LabeledMat(settings.labeled_mat, settings.raw_depth) as labeled:
        indices = nyu.select_indices(labeled.count, splits, settings.split,
                                     settings.splits_mat, settings.labeled_mat)
        if not indices:
            raise UsageError(f"{settings.splits_mat}: the {settings.split} split has no images")
        colors, depths = _claim_outputs(settings.out_dir, indices)
        progress = Progress(f"NYU {settings.split}", len(indices),
                            "off" if settings.quiet else "auto")
        try:
            written, skipped, overflow = _write_images(labeled, indices, colors, depths,
                                                       settings, console, progress.update)
        finally:
            progress.close()
    if overflow[0]:
        console.warn(f"{settings.labeled_mat}: {overflow[0]} {labeled.depth_key} pixels in "
                     f"{overflow[1]} images at 10.04 m or more: written as 255 (the thesis' "
                     "crop.py would have wrapped them modulo 256)")
    kind = ("640 x 480, 16-bit millimetre depths" if settings.full_frame
            else "420 x 320, the thesis' 8-bit depths")
    console.info(f"{written} images of the NYU Depth v2 {settings.split} split ({kind}) in "
                 f"{colors.path} and {depths.path}")
    if skipped:
        console.error(f"{skipped} of {len(indices)} images skipped")
        return EXIT_PARTIAL if written else EXIT_NOTHING
    return EXIT_OK


def _claim_outputs(out_dir: Path, indices: list[int]):
    """The two output folders with every name claimed; refuses before writing if one is taken."""
    try:
        folders = [OutputFolder(out_dir / name) for name in (COLORS_FOLDER, DEPTHS_FOLDER)]
    except (NotADirectoryError, FileExistsError) as error:
        raise UsageError(str(error)) from None
    except OSError as error:
        raise OutputError(f"{error.filename or out_dir}: cannot create ({error.strerror})") from None
    wanted = [[nyu.output_names(i)[k] for i in indices] for k in (0, 1)]
    taken = [folder.path / name for folder, names in zip(folders, wanted)
             for name in folder.conflicts(names)]
    if taken:
        more = f" (and {len(taken) - 1} more)" if len(taken) > 1 else ""
        raise OutputError(f"{taken[0]}: exists and was not written by depth_eval{more}; left "
                          "untouched, nothing written (move it or choose another OUT_DIR)")
    try:
        for folder, names in zip(folders, wanted):
            folder.claim(names)
    except OSError as error:
        raise OutputError(f"{error.filename or out_dir}: cannot write ({error.strerror})") from None
    return folders


def _write_images(labeled: nyu.LabeledMat, indices: list[int], colors: OutputFolder,
                  depths: OutputFolder, settings: PrepareNyuSettings, console: Console,
                  on_image) -> tuple[int, int, tuple[int, int]]:
    """Read each image in order here, convert and write it on worker threads.

    h5py reads one image at a time in this thread (HDF5 is not read concurrently); the
    arithmetic and the PNG encoding (which release the GIL) run on ``settings.jobs`` threads.
    Returns (images written, images skipped, (pixels saturated, images with any)).
    """
    written = skipped = overflow_pixels = overflow_images = 0
    pending: deque[Future] = deque()

    def finish(future: Future) -> None:
        nonlocal written, skipped, overflow_pixels, overflow_images
        try:
            overflow = future.result()
        except ImageError as error:
            console.error(f"image skipped: {error}")
            skipped += 1
        else:
            written += 1
            overflow_pixels += overflow
            overflow_images += bool(overflow)
        on_image()

    pool = ThreadPoolExecutor(settings.jobs, thread_name_prefix="prepare-nyu")
    try:
        for index in indices:
            image, depth = _read(labeled, index)
            pending.append(pool.submit(_write_one, index, image, depth, settings.full_frame,
                                       colors, depths, labeled))
            while len(pending) >= READ_AHEAD_PER_JOB * settings.jobs:
                finish(pending.popleft())
        while pending:
            finish(pending.popleft())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return written, skipped, (overflow_pixels, overflow_images)


def _read(labeled: nyu.LabeledMat, index: int):
    try:
        return labeled.read(index)
    except (OSError, ValueError, KeyError) as error:  # a truncated or damaged HDF5 file
        raise UsageError(f"{labeled.path}: cannot read image {index} ({error}); an incomplete "
                         "download?") from None


def _write_one(index: int, image, depth, full_frame: bool, colors: OutputFolder,
               depths: OutputFolder, labeled: nyu.LabeledMat) -> int:
    """Convert and write one image; return the pixels saturated at 255."""
    try:
        frame = nyu.prepare_frame(image, depth, full_frame)
    except ValueError as error:
        raise ImageError(f"{labeled.path}: {labeled.depth_key} of image {index}: {error}") from None
    color_name, depth_name = nyu.output_names(index)
    for folder, name, pixels in ((colors, color_name, frame.colors_bgr),
                                 (depths, depth_name, frame.depth)):
        try:
            folder.write(name, encode_png(pixels))
        except OSError as error:
            raise OutputError(f"{folder.path / name}: cannot write "
                              f"({error.strerror or error})") from None
    return frame.overflow
