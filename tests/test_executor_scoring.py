"""The overlapped prepare -> forward -> finish loop, and per-image scoring keys."""

import threading
import time

import numpy as np
import pytest

from scipy.ndimage import zoom

from depth_eval.errors import ImageError, SnapshotError
from depth_eval.execution.local import stream
from depth_eval.scoring.keys import MetricKey
from depth_eval.scoring.thesis_metrics import THESIS_METRIC_TITLES
from depth_eval.scoring.score import ScoringSettings, score_image
from depth_eval.scoring.upsample import upsample


def run(items, batch_size=1, forward_workers=1, jobs=3, fail=(), forward_error=None):
    batches = []
    lock = threading.Lock()

    def prepare(item):
        time.sleep(0.001 * (item % 3))  # finish out of order on the pool
        if item in fail:
            raise ImageError(f"bad {item}")
        return item * 10

    def forward(prepared):
        if forward_error is not None:
            raise forward_error
        with lock:
            batches.append(list(prepared))
        return [p + 1 for p in prepared]

    def finish(prepared, output):
        time.sleep(0.001 * (prepared % 4))
        return (prepared, output)

    results = list(stream(items, prepare, forward, finish, jobs, batch_size, forward_workers))
    return results, batches


@pytest.mark.parametrize("batch_size,forward_workers", [(1, 1), (3, 1), (1, 2), (4, 2)])
def test_results_come_back_in_order_with_failures_in_place(batch_size, forward_workers):
    results, batches = run(range(20), batch_size, forward_workers, fail={4, 5, 13})
    assert [item for item, _ in results] == list(range(20))
    for item, result in results:
        if item in (4, 5, 13):
            assert isinstance(result, ImageError) and str(result) == f"bad {item}"
        else:
            assert result == (item * 10, item * 10 + 1)
    assert all(len(b) <= batch_size for b in batches)
    assert sorted(p for b in batches for p in b) == [i * 10 for i in range(20) if i not in (4, 5, 13)]


def test_batches_are_full_except_around_failures_and_at_the_end():
    _, batches = run(range(10), batch_size=4, jobs=1)
    assert [len(b) for b in batches] == [4, 4, 2]


def test_a_network_failure_stops_the_snapshot():
    with pytest.raises(SnapshotError, match="broken"):
        run(range(5), forward_error=SnapshotError("broken"))


def test_score_keys_per_metric_set_and_alignment():
    gt = np.linspace(1.0, 9.0, 400).reshape(20, 20)
    prediction = gt * 1.5
    plain = score_image(prediction, gt)
    assert [str(key) for key in plain] == list(THESIS_METRIC_TITLES)
    settings = ScoringSettings(("thesis", "standard"), ("none", "median", "mvn"))
    scores = {str(key): value for key, value in score_image(prediction, gt, settings).items()}
    assert list(scores) == [str(key) for key in settings.metric_keys()]
    assert scores["median/scale"] == pytest.approx(1 / 1.5)
    assert scores["median/rmse"] == pytest.approx(0.0, abs=1e-9)  # scale recovered exactly
    assert scores["mvn/RMSE"] == pytest.approx(0.0, abs=1e-9)
    assert scores["RMSE"] == plain[MetricKey("none", "RMSE")] and scores["rmse"] > 0


def test_metric_key_text_round_trip():
    for text in ("RMSE", "Threshold 1.25^2", "median/rmse", "mvn/Threshold 1.25", "lsq/scale"):
        assert str(MetricKey.parse(text)) == text
    assert MetricKey.parse("median/rmse") == MetricKey("median", "rmse")


@pytest.mark.parametrize("shape", [(54, 74), (27, 37), (25, 35)])
def test_upsample_is_scipys_cubic_zoom(shape):
    rng = np.random.default_rng(sum(shape))
    for _ in range(5):
        depth = (rng.random(shape) * rng.uniform(0.05, 2.0)).astype(np.float32)
        ours = upsample(depth)
        theirs = zoom(depth, (320 / shape[0], 420 / shape[1]), order=3)
        assert ours.shape == theirs.shape == (320, 420) and ours.dtype == np.float32
        ulps = np.abs(ours.view(np.int32).astype(np.int64) - theirs.view(np.int32)).max()
        assert ulps <= 4
