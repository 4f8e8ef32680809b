"""Finding the snapshots to evaluate and the colour / ground-truth image pairs."""

from __future__ import annotations

import re

import os
from dataclasses import dataclass
from pathlib import Path

# Extensions OpenCV decodes; inputs and ground truths may use different ones (JPEG + PNG).
IMAGE_EXTENSIONS = frozenset({
    ".png", ".jpg", ".jpeg", ".jpe", ".jp2", ".bmp", ".dib", ".ppm", ".pgm", ".pbm", ".pnm",
    ".pxm", ".tif", ".tiff", ".webp", ".sr", ".ras", ".hdr", ".pic", ".exr",
})
# Ground truths may also be float depth maps saved with numpy (--gt-encoding npy).
GROUND_TRUTH_EXTENSIONS = IMAGE_EXTENSIONS | {".npy"}
# The thesis' naming: <stem>_colors.<ext> in INPUT_DIR pairs with <stem>_depth.<ext> in GT_DIR.
INPUT_SUFFIX = "_colors"
# Caffe's solver names its snapshots <snapshot_prefix>_iter_<N>.caffemodel.
ITERATION_PATTERN = re.compile(r"_iter_(\d+)")
GROUND_TRUTH_SUFFIX = "_depth"


@dataclass(frozen=True)
class Snapshot:
    """One trained snapshot: its name (the caffemodel's stem) and its two files; ``problem``
    says why it cannot be evaluated, found before any work (a name that is not usable)."""

    name: str
    caffemodel: Path
    prototxt: Path | None
    problem: str | None = None


@dataclass(frozen=True)
class ImagePair:
    """A colour input and its ground truth; ``stem`` is the input's name without extension."""

    stem: str
    color_path: Path
    depth_path: Path


@dataclass
class PairSearch:
    """The pairs found, and what in INPUT_DIR was left out (not counted as evaluated)."""

    pairs: list[ImagePair]
    without_ground_truth: list[str]
    not_inputs: list[str]
    duplicates: list[str]


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def find_snapshots(snapshots_dir: Path, shared_prototxt: Path | None = None,
                   reserved=frozenset()) -> list[Snapshot]:
    """Every ``*.caffemodel`` in ``snapshots_dir``, sorted by name, with its deploy definition.

    The definition is the caffemodel's stem with ``.prototxt``; snapshots without one use
    ``shared_prototxt`` (``--prototxt``), or have ``prototxt=None``.  Anything named
    ``X.prototxt`` counts as the snapshot's own (a broken link or a FIFO is then reported for
    what it is, not as missing).  A snapshot whose name cannot be a folder of its own in OUT_DIR
    (``.``, ``..``, one of ``reserved``, control characters) gets a ``problem``.
    """
    snapshots = []
    for caffemodel in sorted(snapshots_dir.iterdir(), key=lambda p: p.name):
        if caffemodel.suffix != ".caffemodel" or caffemodel.is_dir():
            continue
        own = caffemodel.with_suffix(".prototxt")
        prototxt = own if os.path.lexists(own) else shared_prototxt
        snapshots.append(Snapshot(caffemodel.stem, caffemodel, prototxt,
                                  name_problem(caffemodel.stem, reserved)))
    return snapshots


def name_problem(name: str, reserved=frozenset()) -> str | None:
    """Why a snapshot named ``name`` cannot have the folder OUT_DIR/name, or None."""
    if name in (".", ".."):
        return f"snapshot name {name!r} would write outside its own folder of OUT_DIR"
    if name in reserved:
        return f"snapshot name {name!r} is the name of one of the tool's own outputs in OUT_DIR"
    if any(not (c.isprintable() or c == " ") for c in name):
        return "snapshot name has control characters (it would break the printed rankings)"
    return None


def _by_stem(directory: Path, suffix: str, extensions=IMAGE_EXTENSIONS):
    """Files with one of ``extensions`` whose stem ends in ``suffix``, keyed by the part before
    it; and the other files."""
    matched: dict[str, list[Path]] = {}
    others = []
    for path in sorted(directory.iterdir(), key=lambda p: p.name):
        if path.name.startswith(".") or path.is_dir():
            continue
        if path.suffix.lower() in extensions and path.stem.endswith(suffix):
            matched.setdefault(path.stem[: -len(suffix)], []).append(path)
        else:
            others.append(path)
    return matched, others


def find_pairs(input_dir: Path, gt_dir: Path) -> PairSearch:
    """Pair ``<stem>_colors.<ext>`` in ``input_dir`` with ``<stem>_depth.<ext2>`` in ``gt_dir``.

    Pairs are sorted by input name.  Where several files share one stem (``a_colors.jpg`` and
    ``a_colors.png``), the first in name order is used and the others are reported.
    """
    inputs, not_inputs = _by_stem(input_dir, INPUT_SUFFIX)
    truths, _ = _by_stem(gt_dir, GROUND_TRUTH_SUFFIX, GROUND_TRUTH_EXTENSIONS)
    pairs, without_truth, duplicates = [], [], []
    for key in sorted(inputs):
        color, *extra_colors = inputs[key]
        duplicates.extend(p.name for p in extra_colors)
        if key not in truths:
            without_truth.append(color.name)
            continue
        depth, *extra_depths = truths[key]
        duplicates.extend(p.name for p in extra_depths)
        pairs.append(ImagePair(color.stem, color, depth))
    return PairSearch(pairs, without_truth, [p.name for p in not_inputs], duplicates)


def input_base(stem: str) -> str:
    """``X`` of an input stem ``X_colors``: outputs replace only the suffix."""
    return stem[: -len(INPUT_SUFFIX)] if stem.endswith(INPUT_SUFFIX) else stem


def snapshot_iteration(name: str) -> tuple[str, int] | None:
    """``(run, iteration)`` of a Caffe training snapshot name, else None.

    ``run`` is the name without its last ``_iter_<N>`` part (``a_iter_500`` -> ``('a', 500)``,
    ``b_iter_500_ft`` -> ``('b_ft', 500)``).
    """
    matches = list(ITERATION_PATTERN.finditer(name))
    if not matches:
        return None
    last = matches[-1]
    return name[:last.start()] + name[last.end():], int(last.group(1))


def training_runs(names) -> dict[str, list[tuple[int, str]]] | None:
    """Run -> [(iteration, snapshot name)] sorted by iteration, if every name has ``_iter_N``."""
    runs: dict[str, list[tuple[int, str]]] = {}
    for name in names:
        parsed = snapshot_iteration(name)
        if parsed is None:
            return None
        runs.setdefault(parsed[0], []).append((parsed[1], name))
    if not runs:
        return None
    return {run: sorted(points) for run, points in runs.items()}
