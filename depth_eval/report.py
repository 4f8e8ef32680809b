"""Rankings as the original printed them, a compact table, and the results.json / results.csv files."""

from __future__ import annotations

import csv
import io as _io
import json
import math
from typing import Mapping

from .metrics import THESIS_METRICS, THESIS_METRIC_TITLES

# test_depth.py printed the best 10 snapshots per metric.
TOP_K = 10
# Bumped whenever a field of results.json changes meaning or disappears.
RESULTS_SCHEMA_VERSION = 1


def ranking(means: Mapping[str, Mapping[str, float]], title: str, lower_is_better: bool):
    """Snapshot names and values for one metric, best first (ties keep name order, NaN last)."""
    sign = 1.0 if lower_is_better else -1.0
    rows = sorted(means.items(), key=lambda item: (math.isnan(item[1][title]),
                                                   sign * item[1][title] if not math.isnan(item[1][title]) else 0.0,
                                                   item[0]))
    return [(name, values[title]) for name, values in rows]


def format_rankings(means: Mapping[str, Mapping[str, float]]) -> str:
    """``TOP k for TITLE`` blocks with ``i. SNAPSHOT: VALUE`` lines, in the thesis metric order."""
    lines = []
    for metric in THESIS_METRICS:
        ranked = ranking(means, metric.title, metric.lower_is_better)[:TOP_K]
        lines.append(f"TOP {len(ranked)} for {metric.title}")
        lines.extend(f"{i}. {name}: {value}" for i, (name, value) in enumerate(ranked))
    return "\n".join(lines)


_SHORT_TITLES = {
    "AbsRelDiff": "AbsRel", "SqrRelDiff": "SqRel", "RMSE": "RMSE", "RMSELog": "RMSELog",
    "SIMSE": "SIMSE", "Log10": "Log10", "MVN": "MVN", "Threshold 1.25": "d<1.25",
    "Threshold 1.25^2": "d<1.25^2", "Threshold 1.25^3": "d<1.25^3",
}


def format_table(means: Mapping[str, Mapping[str, float]], images: Mapping[str, int]) -> str:
    """One line per snapshot with every metric (4 decimals) and the number of images."""
    name_width = max([len("snapshot")] + [len(n) for n in means])
    headers = [_SHORT_TITLES[t] for t in THESIS_METRIC_TITLES]
    widths = [max(8, len(h)) for h in headers]
    lines = [" ".join(["snapshot".ljust(name_width), "images".rjust(6)]
                      + [h.rjust(w) for h, w in zip(headers, widths)])]
    for name in sorted(means):
        cells = [f"{means[name][t]:.4f}".rjust(w) for t, w in zip(THESIS_METRIC_TITLES, widths)]
        lines.append(" ".join([name.ljust(name_width), str(images[name]).rjust(6)] + cells))
    return "\n".join(lines)


def results_json(document: Mapping) -> bytes:
    """results.json bytes (UTF-8, indented, trailing newline)."""
    return (json.dumps(document, indent=2, sort_keys=False, allow_nan=True) + "\n").encode("utf-8")


CSV_FIELDS = ("snapshot", "status", "images_evaluated", "images_skipped", *THESIS_METRIC_TITLES,
              "output_blob", "engine", "prototxt", "caffemodel", "caffemodel_sha256", "error")


def results_csv(snapshots: Mapping[str, Mapping]) -> bytes:
    """One row per snapshot: status, image counts, every metric, files and the error if any."""
    buffer = _io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for name, entry in snapshots.items():
        row = {"snapshot": name, "status": entry["status"],
               "images_evaluated": entry.get("images_evaluated", 0),
               "images_skipped": len(entry.get("images_skipped", {})),
               "output_blob": entry.get("output_blob", ""), "engine": entry.get("engine", ""),
               "prototxt": (entry.get("prototxt") or {}).get("path", ""),
               "caffemodel": entry["caffemodel"]["path"],
               "caffemodel_sha256": entry["caffemodel"].get("sha256", ""),
               "error": entry.get("error", "")}
        row.update({t: repr(v) for t, v in entry.get("metrics", {}).items()})
        writer.writerow(row)
    return buffer.getvalue().encode("utf-8")
