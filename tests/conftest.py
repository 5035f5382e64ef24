"""Shared fixtures: keep every test's outputs out of the repository; LPIPS weights missing
is a skip on a user's machine and a failure where ``HW4_REQUIRE_LPIPS=1`` (CI); the CLI run in
a subprocess. The test folders mirror ``hw4lib`` and have no ``__init__.py`` (``tests/ssl``
would shadow the standard library's ``ssl``), so every test file's name is unique."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import pytest


@pytest.hookimpl(tryfirst=True)  # before -m deselects: the mark must be there to be seen
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Notebook runs (nbval's cells of notebooks/*.ipynb) are slow: `-m "not slow"` skips them."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)


def _isolate(mp: pytest.MonkeyPatch, root) -> None:
    """Point the results store, reports and generated data under ``root``; the smoke profile."""
    for var in ("RESULTS", "REPORTS", "GENERATED"):
        mp.setenv(f"HW4_{var}", str(root / var.lower()))
    mp.setenv("HW4_PROFILE", "smoke")


@pytest.fixture(scope="session", autouse=True)
def _isolated_session(tmp_path_factory):
    """The same for module and session fixtures, which run before any test's isolation (and
    for a test whose ``monkeypatch.undo()`` drops its own)."""
    with pytest.MonkeyPatch.context() as mp:
        _isolate(mp, tmp_path_factory.mktemp("isolated"))
        yield


@pytest.fixture(autouse=True)
def _isolated_outputs(tmp_path, monkeypatch):
    """Each test's outputs in its own temporary folder."""
    _isolate(monkeypatch, tmp_path)
    yield


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Problem 2 corpora in the course layout, one 16 px image a class (64 mini, 65 office
    classes), made afresh for each test module (a test may change them); a module that needs
    more images defines its own ``data``."""
    from hw4lib.config import CorpusGen
    from hw4lib.data.corpus import generate_corpora

    return generate_corpora(
        tmp_path_factory.mktemp("corpora") / "data",
        CorpusGen(mini_per_class=1, office_train_per_class=1, office_val_per_class=1, mini_size=16),
        progress=False,
    )


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


@pytest.fixture(scope="session")
def hw4_cli() -> Callable[..., subprocess.CompletedProcess]:
    """Run ``python -m hw4lib ARGS`` in a subprocess (this interpreter; the environment as the
    test has set it at the call), capturing its output as text."""

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "hw4lib", *args], capture_output=True, text=True
        )

    return run
