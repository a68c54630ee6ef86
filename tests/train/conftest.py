"""The train tests keep their prepared data in their own temporary cache."""

import os

import pytest


@pytest.fixture(autouse=True)
def rrhf_cache(tmp_path):
    """RRHF_CACHE in the test's temporary folder (subprocesses inherit it), so no test reuses another's data. Set
    apart from `monkeypatch`, whose undo() in a test would otherwise send later runs to the user's cache."""
    path = tmp_path / "rrhf-cache"
    before = os.environ.get("RRHF_CACHE")
    os.environ["RRHF_CACHE"] = str(path)
    yield path
    if before is None:
        os.environ.pop("RRHF_CACHE", None)
    else:
        os.environ["RRHF_CACHE"] = before
