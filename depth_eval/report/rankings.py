"""Rankings as the original printed them, a compact table, and the results.json / results.csv files."""

from __future__ import annotations

import csv
import io as _io
import json
import math
from typing import Mapping

import numpy as np

from depth_eval.console import one_line
from depth_eval.scoring.keys import NO_ALIGNMENT, MetricKey, ranked
from depth_eval.report.tables import render

# test_depth.py printed the best 10 snapshots per metric.
TOP_K = 10
# Bumped whenever a field of results.json changes meaning or disappears.  2: ALIGN/scale_std is
# monodepth2's relative spread std(scales / median(scales)) (1: std(scales)).
RESULTS_SCHEMA_VERSION = 2


def ranking(means: Mapping[str, Mapping[MetricKey, float]], key: MetricKey,
            lower_is_better: bool) -> list[tuple[str, float]]:
    """Snapshot names and values for one metric, best first (ties keep name order, NaN last)."""
    sign = 1.0 if lower_is_better else -1.0

    def order(item):
        value = item[1][key]
        return (math.isnan(value), 0.0 if math.isnan(value) else sign * value, item[0])

    return [(name, values[key]) for name, values in sorted(means.items(), key=order)]


def format_rankings(means: Mapping[str, Mapping[MetricKey, float]]) -> str:
    """``TOP k for TITLE`` blocks with ``i. SNAPSHOT: VALUE`` lines for every ranked metric.

    The thesis metrics come first in the original's order; other metrics follow in the order
    of the results.
    """
    keys = list(next(iter(means.values()))) if means else []
    lines = []
    for key, lower_is_better in ranked(keys).items():
        top = ranking(means, key, lower_is_better)[:TOP_K]
        lines.append(f"TOP {len(top)} for {key}")
        lines.extend(f"{i}. {one_line(name)}: {value}" for i, (name, value) in enumerate(top))
    return "\n".join(lines)


_SHORT_TITLES = {
    "AbsRelDiff": "AbsRel", "SqrRelDiff": "SqRel", "Threshold 1.25": "d<1.25",
    "Threshold 1.25^2": "d<1.25^2", "Threshold 1.25^3": "d<1.25^3",
}
# Narrowest metric column of the summary table (values print with 4 decimals).
METRIC_COLUMN_WIDTH = 8


def format_table(means: Mapping[str, Mapping[MetricKey, float]], images: Mapping[str, int],
                 markdown: bool = False, intervals: Mapping[str, Mapping[str, list]] | None = None,
                 ties: Mapping[MetricKey, tuple[str, set]] | None = None) -> str:
    """Every metric (4 decimals) and the number of images, one line per snapshot.

    One table per alignment, so each stays readable.  ``intervals`` (snapshot -> metric title
    -> ``[low, high]``, results.json's ``metrics_ci``) adds each mean's interval to its cell;
    ``ties`` (metric -> the best snapshot and those not distinguishable from it) marks the best
    ``*`` and the others not distinguishable from it ``~``.
    """
    keys = list(next(iter(means.values()))) if means else []
    groups: dict[str, list[MetricKey]] = {}
    for key in keys:
        groups.setdefault(key.align, []).append(key)
    tables = []
    for align, group in groups.items():
        headers = ["snapshot" if align == NO_ALIGNMENT else f"{align}:", "images"]
        headers += [_SHORT_TITLES.get(k.name, k.name) for k in group]
        rows = [[one_line(name), str(images[name])]
                + [_cell(name, k, means[name][k], intervals, ties) for k in group]
                for name in sorted(means)]
        numeric = [False] + [True] * (len(headers) - 1)
        widths = [0, 0] + [METRIC_COLUMN_WIDTH] * len(group)
        tables.append(render(headers, rows, numeric, markdown, min_widths=widths))
    return "\n\n".join(tables)


def _cell(name: str, key: MetricKey, value: float, intervals, ties) -> str:
    text = f"{value:.4f}"
    interval = (intervals or {}).get(name, {}).get(str(key))
    if interval is not None:
        text += f" [{interval[0]:.4f}, {interval[1]:.4f}]"
    if ties and key in ties:
        best, tied = ties[key]
        text += "*" if name == best else "~" if name in tied else " "
    return text


def interval_legend(confidence: Mapping | None) -> str:
    """The line under the table that says what its intervals and marks are."""
    if not confidence:
        return ""
    return (f"[low, high]: {confidence['level']:g} bootstrap interval of the mean over the images "
            f"({confidence['method']}, {confidence['resamples']} resamples); * best; "
            "~ not distinguishable from the best (paired interval of the difference contains 0)")


def plain(value):
    """``value`` with numpy scalars and arrays turned into Python numbers and lists, recursively
    through dicts, lists and tuples (what json and the CSV cells need)."""
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, (np.generic, np.ndarray)):
        return plain(value.tolist()) if isinstance(value, np.ndarray) else value.item()
    return value


def number_cell(value) -> str:
    """A number as CSV text: ``repr(float(x))``, the shortest decimal that reads back as the same
    float (``nan``, ``inf`` for those); integers as digits; ``""`` for None."""
    value = plain(value)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return str(value) if isinstance(value, int) else repr(float(value))


def results_json(document: Mapping) -> bytes:
    """results.json bytes (UTF-8, indented, trailing newline); numbers as plain JSON numbers."""
    return (json.dumps(plain(document), indent=2, sort_keys=False, allow_nan=True)
            + "\n").encode("utf-8")


# results.csv's interval columns: "RMSE ci_low", "RMSE ci_high" after the metrics.
CI_COLUMN_SUFFIXES = (" ci_low", " ci_high")
_CSV_FIRST = ("snapshot", "status", "images_evaluated", "images_skipped")
_CSV_LAST = ("output_blob", "engine", "prototxt", "caffemodel", "caffemodel_sha256", "error")


def _metric_keys(rows) -> list[str]:
    keys: list[str] = []
    for metrics in rows:
        keys.extend(k for k in metrics if k not in keys)
    return keys


def results_csv(snapshots: Mapping[str, Mapping]) -> bytes:
    """One row per snapshot: status, image counts, every metric, files and the error if any."""
    keys = _metric_keys(entry.get("metrics", {}) for entry in snapshots.values())
    bounded = _metric_keys(entry.get("metrics_ci", {}) for entry in snapshots.values())
    bounds = [f"{key}{suffix}" for key in bounded for suffix in CI_COLUMN_SUFFIXES]
    buffer = _io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*_CSV_FIRST, *keys, *bounds, *_CSV_LAST],
                            lineterminator="\n")
    writer.writeheader()
    for name, entry in snapshots.items():
        row = {"snapshot": name, "status": entry["status"],
               "images_evaluated": number_cell(entry.get("images_evaluated", 0)),
               "images_skipped": len(entry.get("images_skipped", {})),
               "output_blob": entry.get("output_blob", ""), "engine": entry.get("engine", ""),
               "prototxt": (entry.get("prototxt") or {}).get("path", ""),
               "caffemodel": entry["caffemodel"]["path"],
               "caffemodel_sha256": entry["caffemodel"].get("sha256", ""),
               "error": entry.get("error", "")}
        row.update({k: number_cell(v) for k, v in entry.get("metrics", {}).items()})
        for key, interval in entry.get("metrics_ci", {}).items():
            row.update({f"{key}{suffix}": number_cell(bound)
                        for suffix, bound in zip(CI_COLUMN_SUFFIXES, interval)})
        writer.writerow(row)
    return buffer.getvalue().encode("utf-8")


def per_image_csv(snapshots: Mapping[str, Mapping]) -> bytes:
    """One row per snapshot x image with every metric (``--per-image``), for finding outliers."""
    rows = [(name, image, values) for name, entry in snapshots.items()
            for image, values in entry.get("per_image", {}).items()]
    keys = _metric_keys(values for _, _, values in rows)
    buffer = _io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["snapshot", "image", *keys])
    for name, image, values in rows:
        writer.writerow([name, image, *(number_cell(values.get(k)) for k in keys)])
    return buffer.getvalue().encode("utf-8")
