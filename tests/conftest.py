"""Shared paths and helpers for the tests."""

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "golden"
GOLDEN_E2E = GOLDEN / "e2e"
GOLDEN_NETS = GOLDEN / "nets"


def relative_range_error(actual, expected) -> float:
    """Max absolute difference divided by the reference blob's value range."""
    import numpy as np

    value_range = float(np.max(expected) - np.min(expected)) or 1.0
    return float(np.max(np.abs(np.asarray(actual, np.float64) - expected))) / value_range


@pytest.fixture
def golden_inputs(tmp_path):
    """A writable copy of the golden colour / depth folders (tests may add bad files)."""
    import shutil

    colors, depths = tmp_path / "colors", tmp_path / "depths"
    shutil.copytree(GOLDEN_E2E / "colors", colors)
    shutil.copytree(GOLDEN_E2E / "depths", depths)
    for path in list(colors.iterdir()) + list(depths.iterdir()):
        path.chmod(0o644)
    return colors, depths
