"""The demo snapshots in examples/ really estimate depth.

``examples/snapshots`` holds two snapshots of one small refining network trained by
``tools/train_demo.py`` on synthetic scenes (an early and a late iteration); ``examples/colors``
and ``examples/depths`` hold 12 held-out scenes of ``tools/synth_scenes.py`` (seeds never used in
training).  Scored the thesis way (OpenCV forward, cubic zoom to 320 x 420, metres), the late
snapshot must beat a constant prediction and the early snapshot.
"""

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.ndimage import zoom

from depth_eval.inputs.ground_truth import load_ground_truth
from depth_eval.inputs.images import load_color_input, to_network_blob
from depth_eval.scoring.thesis_metrics import thesis_metrics

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SNAPSHOTS = EXAMPLES / "snapshots"
INPUT_HW = (218, 298)
OUTPUT_SHAPE = (1, 1, 54, 74)

# Mean ground-truth depth in metres over the 2500 training scenes (seeds 0..2499 of
# tools/synth_scenes.py, 8-bit thesis encoding) as tools/train_demo.py prints it ("training mean
# depth"); see tools/README.md.
TRAIN_MEAN_DEPTH_M = 3.7568


def _iteration(path: Path) -> int:
    match = re.search(r"_iter_(\d+)$", path.stem)
    assert match, f"{path.name}: snapshot name without _iter_N"
    return int(match.group(1))


def _snapshots() -> list[Path]:
    return sorted(SNAPSHOTS.glob("*.caffemodel"), key=_iteration)


@pytest.fixture(scope="module")
def examples():
    """(stem, 1 x 3 x 218 x 298 input blob, ground truth in metres 320 x 420) per example."""
    items = []
    for colors in sorted((EXAMPLES / "colors").glob("*_colors.png")):
        stem = colors.name[: -len("_colors.png")]
        blob = to_network_blob(load_color_input(colors, INPUT_HW))
        gt_unit, _ = load_ground_truth(EXAMPLES / "depths" / f"{stem}_depth.png").on_thesis_grid()
        gt_m = gt_unit.astype(np.float64) * 10
        items.append((stem, blob, gt_m))
    return items


def _score(predictions_unit, examples) -> dict:
    """Mean thesis metrics over the examples; predictions in depth / 10 units at any size."""
    per_image = []
    for pred, (_, _, gt_m) in zip(predictions_unit, examples):
        up = zoom(np.asarray(pred, np.float64), (gt_m.shape[0] / pred.shape[0],
                                                  gt_m.shape[1] / pred.shape[1]), order=3)
        per_image.append(thesis_metrics(up * 10.0, gt_m))
    return {title: float(np.mean([m[title] for m in per_image])) for title in per_image[0]}


@pytest.fixture(scope="module")
def scores(examples):
    """Snapshot stem -> mean metrics, through cv2.dnn.readNetFromCaffe."""
    result = {}
    for caffemodel in _snapshots():
        net = cv2.dnn.readNetFromCaffe(str(caffemodel.with_suffix(".prototxt")), str(caffemodel))
        preds = []
        for _, blob, _ in examples:
            net.setInput(blob)
            out = net.forward()
            assert out.shape == OUTPUT_SHAPE
            preds.append(np.array(out[0, 0], copy=True))
        result[caffemodel.stem] = _score(preds, examples)
    return result


def test_examples_layout(examples):
    assert len(examples) == 12
    snapshots = _snapshots()
    assert len(snapshots) == 2
    for caffemodel in snapshots:
        assert caffemodel.with_suffix(".prototxt").is_file()
    assert sum(p.stat().st_size for p in SNAPSHOTS.iterdir()) < 5_000_000


def test_late_snapshot_beats_constant_mean_depth(examples, scores):
    late = scores[_snapshots()[-1].stem]
    train_mean = _score([np.full(OUTPUT_SHAPE[2:], TRAIN_MEAN_DEPTH_M / 10)] * len(examples),
                        examples)
    # The mean of the shipped ground truths (a constant that has seen the test images).
    held_out_mean_m = float(np.mean([gt.mean() for _, _, gt in examples]))
    held_out = _score([np.full(OUTPUT_SHAPE[2:], held_out_mean_m / 10)] * len(examples), examples)
    assert late["RMSE"] < 0.8 * train_mean["RMSE"]
    assert late["RMSE"] < 0.8 * held_out["RMSE"]
    assert late["AbsRelDiff"] < train_mean["AbsRelDiff"]
    assert late["Threshold 1.25"] > train_mean["Threshold 1.25"]


def test_late_snapshot_beats_early_snapshot(scores):
    early, late = (scores[p.stem] for p in (_snapshots()[0], _snapshots()[-1]))
    assert late["RMSE"] < early["RMSE"]
    assert late["AbsRelDiff"] < early["AbsRelDiff"]
    assert late["Threshold 1.25"] > early["Threshold 1.25"]
