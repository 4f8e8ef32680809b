"""Fixtures for the tests; shared paths and helpers are in helpers.py."""

import shutil

import pytest

from helpers import GOLDEN_E2E, GOOD, make_workspace


def pytest_configure(config):
    config.addinivalue_line("markers", "snapshots(*names): the golden snapshots the workspace "
                                       "fixture copies (default: the refining net only)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds (real services, "
                                       "whole runs in subprocesses)")


@pytest.fixture(autouse=True)
def user_cache(tmp_path_factory, monkeypatch):
    """The user cache (onnxruntime translations) in a folder of its own per test (beside, not
    in, tmp_path, so a workspace holds only what the test made): tests never touch ~/.cache."""
    home = tmp_path_factory.mktemp("xdg-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    return home / "depth_eval"


@pytest.fixture
def workspace(tmp_path, request):
    """Two golden image pairs (colour and grey input), golden snapshots, room for outputs."""
    marker = request.node.get_closest_marker("snapshots")
    return make_workspace(tmp_path, snapshots=marker.args if marker else (GOOD,))


@pytest.fixture
def golden_inputs(tmp_path):
    """A writable copy of the golden colour / depth folders (tests may add bad files)."""
    colors, depths = tmp_path / "colors", tmp_path / "depths"
    shutil.copytree(GOLDEN_E2E / "colors", colors)
    shutil.copytree(GOLDEN_E2E / "depths", depths)
    for path in list(colors.iterdir()) + list(depths.iterdir()):
        path.chmod(0o644)
    return colors, depths
