"""Shared fixtures: keep every test's outputs out of the repository."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_outputs(tmp_path, monkeypatch):
    """Point the results store, reports and generated data at a temporary folder."""
    monkeypatch.setenv("HW4_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("HW4_REPORTS", str(tmp_path / "reports"))
    monkeypatch.setenv("HW4_GENERATED", str(tmp_path / "generated"))
    monkeypatch.setenv("HW4_PROFILE", "smoke")
    yield
