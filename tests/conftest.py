"""Shared fixtures: keep every test's outputs out of the repository; LPIPS weights missing
is a skip on a user's machine and a failure where ``HW4_REQUIRE_LPIPS=1`` (CI)."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest


@pytest.hookimpl(tryfirst=True)  # before -m deselects: the mark must be there to be seen
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Notebook runs (nbval's cells of notebooks/*.ipynb) are slow: `-m "not slow"` skips them."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _isolated_outputs(tmp_path, monkeypatch):
    """Point the results store, reports and generated data at a temporary folder."""
    monkeypatch.setenv("HW4_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("HW4_REPORTS", str(tmp_path / "reports"))
    monkeypatch.setenv("HW4_GENERATED", str(tmp_path / "generated"))
    monkeypatch.setenv("HW4_PROFILE", "smoke")
    yield


@pytest.fixture(scope="session")
def lpips_unavailable() -> Callable[[str], None]:
    """Call with why the LPIPS(vgg) weights cannot be had: skips the test, or fails it when
    ``HW4_REQUIRE_LPIPS=1`` (set by ``.ci/run``: CI must not go green without LPIPS)."""

    def unavailable(reason: str) -> None:
        if os.environ.get("HW4_REQUIRE_LPIPS") == "1":
            pytest.fail(
                f"LPIPS(vgg) weights are required here (HW4_REQUIRE_LPIPS=1) but cannot "
                f"be obtained: {reason}; run `hw4 weights lpips`",
                pytrace=False,
            )
        pytest.skip(f"LPIPS(vgg) weights cannot be obtained here: {reason}")

    return unavailable
