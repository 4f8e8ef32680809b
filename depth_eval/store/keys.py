"""What a results-store unit's key is made of, and how its values are stored: pure functions.

A *unit* is one snapshot evaluated on one image pair; its key (:func:`unit_key`) is a sha256
over everything its numbers depend on (:mod:`depth_eval.store.database` keeps the units).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple

from depth_eval.inputs.discover import snapshot_iteration

# Bump whenever a change to depth_eval moves any number a unit records (metric formulas,
# preprocessing, resizing, engines, encodings ...): every stored unit then misses and is
# computed again.  It is part of every unit's key.  tests/test_numbers_fingerprint.py fails
# when the code that makes those numbers changes, so the bump is decided, not forgotten.
NUMBERS_VERSION = 3

_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


@dataclass(frozen=True)
class SnapshotRef:
    """A snapshot as the store records it: its name and the sha256 of its two files."""

    name: str
    caffemodel_sha256: str
    prototxt_sha256: str

    @property
    def iteration(self) -> int | None:
        return iteration_of(self.name)


class HistoryRow(NamedTuple):
    """One snapshot's summary value of one metric in one stored run."""

    snapshot: str
    iteration: int | None
    run: int
    value: float
    images: int


def iteration_of(name: str) -> int | None:
    """The training iteration in a Caffe snapshot name (``net_iter_500`` -> 500), else None."""
    found = snapshot_iteration(name)
    return found[1] if found else None


# --------------------------------------------------------------------------------------------
# Values and keys
# --------------------------------------------------------------------------------------------

def _finite_or_text(value: Any) -> Any:
    """``value`` with non-finite floats replaced by their names, recursively (JSON has none)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Mapping):
        return {key: _finite_or_text(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_text(item) for item in value]
    return value


def canonical_json(value: Any) -> str:
    """One text for one value: sorted keys, no spaces, non-finite floats as names.

    Accepts what JSON holds (dict, list, tuple, str, int, float, bool, None); anything else
    (a Path, a set, a numpy array) raises TypeError, so a caller cannot make a key from a
    value whose text is not stable.  ``1`` and ``1.0`` give different texts.
    """
    return json.dumps(_finite_or_text(value), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False)


def unit_key(task: str, caffemodel_sha256: str, prototxt_sha256: str, image_sha256: str,
             ground_truth_sha256: str | None, options: Mapping[str, Any],
             numbers_version: int = NUMBERS_VERSION) -> str:
    """The key of one (snapshot, image) unit: sha256 (hex) of everything its numbers depend on.

    Parameters
    ----------
    task : str
        The run's task (e.g. ``"evaluate"``, ``"nyu"``).
    caffemodel_sha256, prototxt_sha256 : str
        The snapshot's weights and deploy definition.
    image_sha256, ground_truth_sha256 : str
        Content hashes of the colour input and of its ground truth (None when the task has none).
    options : mapping
        Every option that changes a number (log encoding, metric sets, alignments, depth
        bounds, crop, ground-truth encoding, output blob, engine, ...): JSON values only.
    numbers_version : int
        :data:`NUMBERS_VERSION`; a parameter only so tests can show that bumping it misses.
    """
    for label, value in (("task", task), ("caffemodel_sha256", caffemodel_sha256),
                         ("prototxt_sha256", prototxt_sha256), ("image_sha256", image_sha256)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"unit_key: {label} must be a non-empty string, got {value!r}")
    text = canonical_json({
        "task": task, "caffemodel": caffemodel_sha256, "prototxt": prototxt_sha256,
        "image": image_sha256, "ground_truth": ground_truth_sha256, "options": dict(options),
        "numbers_version": int(numbers_version)})
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def encode_metrics(metrics: Mapping[str, float]) -> str:
    """A unit's metrics as standard JSON text; every value becomes a Python float."""
    values = {}
    for name, value in metrics.items():
        if not isinstance(name, str) or isinstance(value, bool):
            raise TypeError(f"metrics must map names to numbers, got {name!r}: {value!r}")
        values[name] = float(value)  # numpy float32/64 -> the same value as a double
    return canonical_json(values)


def decode_metrics(text: str) -> dict[str, float]:
    """The inverse of :func:`encode_metrics`: NaN and infinities come back as floats.

    Raises
    ------
    ValueError
        Saying what is wrong, for text that :func:`encode_metrics` cannot have written: not
        text, not JSON, not one flat object of names to numbers (or to the names of NaN and
        the infinities).
    """
    if not isinstance(text, str):
        raise ValueError(f"metrics are {type(text).__name__}, not JSON text")
    try:
        document = json.loads(text)
    except RecursionError:
        raise ValueError("metrics are JSON nested too deeply") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"metrics are not JSON ({error})") from None
    if not isinstance(document, dict):
        raise ValueError(f"metrics are a JSON {type(document).__name__}, not an object")
    values = {}
    for name, value in document.items():
        if isinstance(value, str) and value in _NON_FINITE:
            values[name] = _NON_FINITE[value]
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            values[name] = float(value)
        else:
            raise ValueError(f"metric {name!r} is {json.dumps(value)[:40]}, not a number")
    return values


def unit_checksum(key: str, metrics_text: str) -> str:
    """sha256 (hex) of a unit's key and its stored metrics text, written with the unit and
    checked before it is trusted (a row edited, cut or swapped for another key's fails)."""
    return hashlib.sha256(f"{key}\n{metrics_text}".encode("utf-8", "surrogatepass")).hexdigest()
