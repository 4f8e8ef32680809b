"""Reading a results.json for the CI gate: the file read (a regular file only), its layout and
JSON types checked with one line naming the file and the field, older schema versions brought
to the current one.  Used by :mod:`depth_eval.report.gate`, which re-exports :func:`load_results`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

from depth_eval.inputs import limits

# The results.json layout this module reads (report.RESULTS_SCHEMA_VERSION when written).
SUPPORTED_SCHEMA_VERSION = 2
# Older layouts load_results converts: 1 stored ALIGN/scale_std as std(scales), not relative.
READABLE_SCHEMA_VERSIONS = (1, SUPPORTED_SCHEMA_VERSION)
# Per-image scale summaries (pipeline: "median/scale" -> "median/scale_median", ".._std").
_SCALE_STD_SUFFIX = "/scale_std"
_SCALE_MEDIAN_SUFFIX = "/scale_median"


def load_results(path: str | Path) -> dict:
    """Read a results.json, check its layout and bring it to the current schema version.

    A version-1 document (ALIGN/scale_std then held ``std(scales)``) is returned as version 2
    (see :func:`upgrade_results`), so a baseline from an older run compares like with like.

    Raises
    ------
    ValueError
        One line naming the file: unreadable or not a regular file, not JSON, no ``snapshots``
        object, a ``schema_version`` this gate cannot read, or a field of the wrong JSON type
        (a snapshot that is not an object, metrics that are not numbers or null...).
    """
    path = Path(path)
    try:
        document = limits.load_json(limits.read_regular(path).decode("utf-8"))
    except OSError as error:
        raise ValueError(f"{path}: cannot read file ({error.strerror})") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"{path}: not a JSON file ({error})") from None
    check_results(document, str(path))
    check_types(document["snapshots"], str(path))
    return upgrade_results(document)


def check_types(snapshots: Mapping, name: str) -> None:
    """ValueError naming the file, the snapshot and the field whose JSON type is wrong."""
    for snapshot, entry in snapshots.items():
        where = f"{name}: snapshot {snapshot!r}"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where} is {_json_type(entry)}, not an object")
        if not isinstance(entry.get("status", ""), str):
            raise ValueError(f"{where}: 'status' is {_json_type(entry['status'])}, not a string")
        metrics = entry.get("metrics")
        if metrics is None:
            continue
        if not isinstance(metrics, Mapping):
            raise ValueError(f"{where}: 'metrics' is {_json_type(metrics)}, not an object")
        for metric, value in metrics.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ValueError(f"{where}: metric {metric!r} is {_json_type(value)}, not a number")
            # NaN is how a run writes an undefined metric; no run writes an infinity.
            if isinstance(value, float) and math.isinf(value):
                raise ValueError(f"{where}: metric {metric!r} is {value}, not a finite number")


def _json_type(value) -> str:
    for kind, name in ((bool, "true/false"), (str, "a string"), (Mapping, "an object"),
                       (list, "a list"), (type(None), "null"), ((int, float), "a number")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def upgrade_results(document: Mapping) -> dict:
    """A version-1 results.json document as version 2; other versions unchanged.

    Version 1 stored ``ALIGN/scale_std = std(scales)``; version 2 stores monodepth2's
    ``std(scales / median(scales))``, which is the old value over ``abs(ALIGN/scale_median)``
    (NaN where that median is 0 or missing).
    """
    if document.get("schema_version", 1) != 1:
        return dict(document)
    snapshots = {}
    for name, entry in document["snapshots"].items():
        metrics = (entry or {}).get("metrics")
        if isinstance(metrics, Mapping):
            entry = dict(entry, metrics={key: _relative_scale_std(metrics, key, value)
                                         for key, value in metrics.items()})
        snapshots[name] = entry
    return dict(document, schema_version=SUPPORTED_SCHEMA_VERSION, snapshots=snapshots)


def _relative_scale_std(metrics: Mapping, key: str, value):
    if not key.endswith(_SCALE_STD_SUFFIX):
        return value
    median = metrics.get(key[: -len(_SCALE_STD_SUFFIX)] + _SCALE_MEDIAN_SUFFIX)
    try:
        median, value = abs(float(median)), float(value)
    except (TypeError, ValueError):
        return math.nan
    return value / median if median > 0 else math.nan


def check_results(document, name: str) -> Mapping[str, Mapping]:
    if not isinstance(document, Mapping) or not isinstance(document.get("snapshots"), Mapping):
        raise ValueError(f"{name}: not a depth_eval results.json (no 'snapshots' object)")
    version = document.get("schema_version", 1)
    # true == 1 in Python: a boolean is refused as a version, not read as one.
    if isinstance(version, bool) or version not in READABLE_SCHEMA_VERSIONS:
        raise ValueError(f"{name}: results.json schema_version {version!r}; this gate reads "
                         f"versions {', '.join(map(str, READABLE_SCHEMA_VERSIONS))}")
    return document["snapshots"]
