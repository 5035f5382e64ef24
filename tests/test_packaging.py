"""The project's packaging: every dependency pinned, alike in pyproject.toml and
environment.yml; the test tools in the dev extra only; `make test-fast`'s markers; CI running
the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib

from hw4lib import PROJECT_ROOT

DEV_TOOLS = {"pytest", "ruff", "playwright", "nbval"}


def _project() -> dict:
    return tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]


def _all_requirements() -> list[str]:
    """The runtime dependencies and the dev extra's, as written."""
    project = _project()
    return project["dependencies"] + project["optional-dependencies"]["dev"]


def _pins_from_pyproject() -> dict[str, str]:
    return dict(d.split("==") for d in _all_requirements())


def _pins_from_environment_yml() -> dict[str, str]:
    text = (PROJECT_ROOT / "environment.yml").read_text()
    pins = re.findall(r"^\s+- ([A-Za-z0-9_.-]+)==([^\s#]+)\s*$", text, re.M)
    return dict(pins)


def test_environment_yml_matches_pyproject():
    py, env = _pins_from_pyproject(), _pins_from_environment_yml()
    assert py, "pyproject.toml lists no pinned dependencies"
    assert py == env


def test_every_dependency_is_pinned():
    deps = _all_requirements()
    assert all("==" in d for d in deps), deps
    assert {"torch", "torchvision", "byol-pytorch", "lpips", "papermill", "nbval"} <= set(
        _pins_from_pyproject()
    )


def test_test_tools_are_the_dev_extra_only():
    project = _project()
    runtime = {d.split("==")[0] for d in project["dependencies"]}
    dev = {d.split("==")[0] for d in project["optional-dependencies"]["dev"]}
    assert dev == DEV_TOOLS and not runtime & DEV_TOOLS
    make = (PROJECT_ROOT / "Makefile").read_text()
    assert 'pip install -e ".[dev]"' in make


def test_the_fast_set_leaves_out_the_slow_kinds():
    """`make test-fast` deselects by markers pyproject registers (strictly: a misspelt one is an
    error), and notebook runs carry the slow one without a decorator."""
    from conftest import pytest_collection_modifyitems

    ini = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["pytest"]
    opts = ini["ini_options"]
    assert {m.split(":")[0] for m in opts["markers"]} == {"slow", "browser", "ddp"}
    assert "--strict-markers" in opts["addopts"].split()
    make = (PROJECT_ROOT / "Makefile").read_text()
    assert "FAST := not slow and not browser and not ddp" in make
    assert re.search(r'^test-fast: lint\n\t.*pytest -m "\$\(FAST\)"$', make, re.M)
    marked = {}

    class Item:
        def __init__(self, path: str):
            self.path = Path(path)

        def add_marker(self, mark):
            marked.setdefault(self.path.name, []).append(mark.name)

    items = [Item("notebooks/02_dvgo_training.ipynb"), Item("tests/test_runs.py")]
    pytest_collection_modifyitems(None, items)
    assert marked == {"02_dvgo_training.ipynb": ["slow"]}


def test_ci_runs_the_readme_test_command():
    readme = (PROJECT_ROOT / "README.md").read_text()
    ci = (PROJECT_ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make report" in readme
    assert re.search(r"^make test$", ci, re.M)
