"""The results store reuses a unit only while the code that made its numbers is unchanged.

Every stored unit's key holds ``NUMBERS_VERSION``.  This test fingerprints the code that
produces a unit's numbers (its syntax tree, without docstrings and comments) and compares it
with the fingerprint recorded for the current ``NUMBERS_VERSION``: a change to that code fails
here until its author decides whether the numbers may move (bump ``NUMBERS_VERSION``) or not
(a refactoring), and records the new fingerprint:

    python tests/test_numbers_fingerprint.py --record
"""

from __future__ import annotations

import ast
import hashlib
import json
import sys
from pathlib import Path

from depth_eval.store.keys import NUMBERS_VERSION

PACKAGE = Path(__file__).resolve().parents[1] / "depth_eval"
RECORD = Path(__file__).parent / "data" / "numbers_fingerprint.json"
# The code between a snapshot's files and a unit's numbers: reading and preprocessing inputs,
# the Caffe definitions and their translations, the engines, the tasks' per-image work and
# every metric and alignment; with the thesis' constants and the options' choices.
NUMBER_CODE = ("thesis.py", "choices.py", "inputs/images.py", "inputs/conventions.py",
               "inputs/ground_truth.py", "inputs/gt_encodings.py", "caffe", "engines",
               "scoring", "tasks")


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            body[0] = ast.Pass()
    return tree


def number_modules(package: Path):
    """The modules of :data:`NUMBER_CODE` under ``package``, in path order."""
    for entry in NUMBER_CODE:
        path = package / entry
        yield from sorted(path.rglob("*.py")) if path.is_dir() else [path]


def numbers_fingerprint() -> str:
    """sha256 of the syntax trees of :data:`NUMBER_CODE`, in path order."""
    digest = hashlib.sha256()
    for module in number_modules(PACKAGE):
        tree = _without_docstrings(ast.parse(module.read_text(), str(module)))
        digest.update(module.relative_to(PACKAGE).as_posix().encode() + b"\0")
        digest.update(ast.dump(tree).encode() + b"\0")
    return digest.hexdigest()


def test_number_code_is_the_code_recorded_for_this_numbers_version():
    recorded = json.loads(RECORD.read_text())
    assert recorded["numbers_version"] == NUMBERS_VERSION, (
        f"NUMBERS_VERSION is {NUMBERS_VERSION}, the fingerprint was recorded for "
        f"{recorded['numbers_version']}: record it again (see this module's docstring)")
    assert numbers_fingerprint() == recorded["fingerprint"], (
        "the code that makes a unit's numbers changed: bump NUMBERS_VERSION in "
        "depth_eval/store/keys.py if any number may move, then record the fingerprint "
        "(see this module's docstring)")


def test_the_fingerprint_sees_a_changed_formula_but_not_a_changed_docstring(monkeypatch,
                                                                            tmp_path):
    copy = tmp_path / "depth_eval"
    for module in number_modules(PACKAGE):
        target = copy / module.relative_to(PACKAGE)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(module.read_text())
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", copy)
    original = numbers_fingerprint()
    metrics = copy / "scoring" / "thesis_metrics.py"
    text = metrics.read_text()
    metrics.write_text(text.replace('"""', '"""Reworded. ', 1) + "\n# a comment\n")
    assert numbers_fingerprint() == original
    metrics.write_text(text.replace("THRESHOLDS = (1.25,", "THRESHOLDS = (1.26,"))
    assert numbers_fingerprint() != original


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    RECORD.write_text(json.dumps({"numbers_version": NUMBERS_VERSION,
                                  "fingerprint": numbers_fingerprint()}, indent=1) + "\n")
    print(f"recorded {RECORD}")
