"""Rankings as the original printed them, tables and CSV files."""

import csv
import io
import json
import math

import numpy as np

from depth_eval.report import rankings as report
from depth_eval.scoring.keys import MetricKey


def keyed(means):
    """Snapshot -> {text key: value} as MetricKey-keyed means."""
    return {name: {MetricKey.parse(k): v for k, v in values.items()}
            for name, values in means.items()}


MEANS = {
    "snap_b": {"AbsRelDiff": 0.2, "RMSE": 1.0, "Threshold 1.25": 0.5, "median/rmse": 0.9,
               "median/scale_median": 1.2},
    "snap_a": {"AbsRelDiff": 0.3, "RMSE": 1.0, "Threshold 1.25": 0.7, "median/rmse": 0.8,
               "median/scale_median": 1.1},
    "snap_c": {"AbsRelDiff": math.nan, "RMSE": 2.0, "Threshold 1.25": 0.6, "median/rmse": 1.0,
               "median/scale_median": 1.0},
}


def test_rankings_lines_are_the_originals():
    lines = report.format_rankings(keyed(MEANS)).splitlines()
    assert lines[:4] == ["TOP 3 for AbsRelDiff", "0. snap_b: 0.2", "1. snap_a: 0.3",
                         "2. snap_c: nan"]
    # ties keep name order; higher is better for thresholds
    assert lines[4:8] == ["TOP 3 for RMSE", "0. snap_a: 1.0", "1. snap_b: 1.0", "2. snap_c: 2.0"]
    assert lines[8:12] == ["TOP 3 for Threshold 1.25", "0. snap_a: 0.7", "1. snap_c: 0.6",
                           "2. snap_b: 0.5"]
    assert lines[12] == "TOP 3 for median/rmse"
    assert not any("scale_median" in line for line in lines)  # a summary, not a ranking


def test_rankings_show_at_most_ten():
    means = {f"s{i:02d}": {"RMSE": float(i)} for i in range(12)}
    lines = report.format_rankings(keyed(means)).splitlines()
    assert lines[0] == "TOP 10 for RMSE" and lines[-1] == "9. s09: 9.0" and len(lines) == 11


def test_table_splits_alignments_and_markdown():
    text = report.format_table(keyed(MEANS), {"snap_a": 3, "snap_b": 3, "snap_c": 2})
    blocks = text.split("\n\n")
    assert blocks[0].splitlines()[0].split() == ["snapshot", "images", "AbsRel", "RMSE", "d<1.25"]
    assert blocks[1].splitlines()[0].split() == ["median:", "images", "rmse", "scale_median"]
    assert blocks[0].splitlines()[1].split() == ["snap_a", "3", "0.3000", "1.0000", "0.7000"]
    markdown = report.format_table(keyed(MEANS), {"snap_a": 3, "snap_b": 3, "snap_c": 2}, markdown=True)
    assert markdown.splitlines()[1] == "| --- | ---: | ---: | ---: | ---: |"


def test_results_csv_and_per_image_csv():
    entries = {"snap_a": {"status": "evaluated", "images_evaluated": 2, "images_skipped": {},
                          "caffemodel": {"path": "a.caffemodel", "sha256": "ab"},
                          "prototxt": {"path": "a.prototxt"}, "metrics": {"RMSE": 0.5},
                          "per_image": {"x_colors": {"RMSE": 0.4}, "y_colors": {"RMSE": 0.6}}},
               "snap_b": {"status": "skipped", "caffemodel": {"path": "b.caffemodel"},
                          "prototxt": None, "error": "corrupt"}}
    rows = list(csv.DictReader(io.StringIO(report.results_csv(entries).decode())))
    assert [(r["snapshot"], r["status"], r["RMSE"], r["error"]) for r in rows] == [
        ("snap_a", "evaluated", "0.5", ""), ("snap_b", "skipped", "", "corrupt")]
    per_image = list(csv.reader(io.StringIO(report.per_image_csv(entries).decode())))
    assert per_image == [["snapshot", "image", "RMSE"], ["snap_a", "x_colors", "0.4"],
                         ["snap_a", "y_colors", "0.6"]]


def test_every_numeric_cell_is_a_plain_round_trip_decimal():
    # Metrics arrive as numpy scalars; the writers once printed "np.float64(0.334...)".
    thesis = {"Threshold 1.25": np.float64(1 / 3), "RMSE": np.float32(0.1), "SIMSE": np.float64("nan")}
    entries = {"snap_a": {"status": "evaluated", "images_evaluated": np.int64(2),
                          "images_skipped": {}, "caffemodel": {"path": "a.caffemodel"},
                          "metrics": dict(thesis), "per_image": {"x_colors": dict(thesis),
                                                                 "y_colors": {"RMSE": 2.5}}}}
    per_image = list(csv.reader(io.StringIO(report.per_image_csv(entries).decode())))
    assert per_image[0] == ["snapshot", "image", "Threshold 1.25", "RMSE", "SIMSE"]
    values = [[float(cell) if cell else None for cell in row[2:]] for row in per_image[1:]]
    assert values[0][:2] == [1 / 3, float(np.float32(0.1))] and math.isnan(values[0][2])
    assert values[1] == [None, 2.5, None]
    assert per_image[1][2:4] == [repr(1 / 3), repr(float(np.float32(0.1)))]
    row = next(csv.DictReader(io.StringIO(report.results_csv(entries).decode())))
    assert row["images_evaluated"] == "2"
    assert [float(row[k]) for k in ("Threshold 1.25", "RMSE")] == [1 / 3, float(np.float32(0.1))]
    document = json.loads(report.results_json({"snapshots": entries}))
    metrics = document["snapshots"]["snap_a"]["metrics"]
    assert metrics["Threshold 1.25"] == 1 / 3 and metrics["RMSE"] == float(np.float32(0.1))
    assert document["snapshots"]["snap_a"]["images_evaluated"] == 2
