"""The HW4_* variables: read only through hw4lib.env, every one named there, defaults honoured."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hw4lib import PROJECT_ROOT, env
from hw4lib.cli import main

ROOT = Path(__file__).resolve().parent.parent
# a read of os.environ for an HW4_ name (an assignment, which passes a value on, is not a read)
_READ = re.compile(
    r"environ\.get\(\s*[\"']HW4_|environ\[\s*[\"']HW4_[A-Z_]*[\"']\s*\](?!\s*=[^=])"
    r"|getenv\(\s*[\"']HW4_"
)


def _sources() -> list[Path]:
    files = [
        *ROOT.glob("hw4lib/**/*.py"),
        *ROOT.glob("tests/**/*.py"),
        *ROOT.glob("*.sh"),
        ROOT / ".ci" / "run",
        ROOT / "Makefile",
        ROOT / "README.md",
    ]
    return [f for f in files if f.is_file() and f.name != "test_env.py"]


def test_only_env_reads_hw4_variables_in_the_library():
    readers = [
        str(f.relative_to(ROOT))
        for f in ROOT.glob("hw4lib/**/*.py")
        if f.name != "env.py" and _READ.search(f.read_text())
    ]
    assert readers == []


def test_the_read_pattern_sees_reads_and_not_writes():
    assert _READ.search('os.environ.get("HW4_DATA")') and _READ.search("os.environ['HW4_X']")
    assert not _READ.search('os.environ["HW4_PROFILE"] = profile')


def test_every_hw4_name_used_anywhere_is_in_the_table():
    used = set()
    for f in _sources():
        used |= set(re.findall(r"\bHW4_[A-Z][A-Z_]*[A-Z]\b", f.read_text()))
    assert used - set(env.VARIABLES) == set()
    assert set(env.VARIABLES) - used == set(), "a variable in the table nobody uses"


def test_readme_names_every_variable():
    readme = (ROOT / "README.md").read_text()
    assert [k for k in env.VARIABLES if k not in readme] == []


def test_path_default_set_empty_and_home(monkeypatch, tmp_path):
    monkeypatch.delenv("HW4_RESULTS", raising=False)
    assert env.path("HW4_RESULTS") == PROJECT_ROOT / "results"
    monkeypatch.setenv("HW4_RESULTS", "")  # empty is unset
    assert env.path("HW4_RESULTS") == PROJECT_ROOT / "results" and not env.given("HW4_RESULTS")
    monkeypatch.setenv("HW4_RESULTS", "rel/dir")  # as given: relative to the working directory
    assert env.path("HW4_RESULTS") == Path("rel/dir") and env.given("HW4_RESULTS")
    monkeypatch.setenv("HW4_RESULTS", "~/r")
    assert env.path("HW4_RESULTS") == Path.home() / "r"
    monkeypatch.delenv("HW4_CACHE", raising=False)
    assert env.path("HW4_CACHE") == Path.home() / ".cache" / "hw4"
    monkeypatch.delenv("HW4_FIGURES", raising=False)
    assert env.path("HW4_FIGURES") is None and env.get("HW4_FIGURES") is None
    with pytest.raises(KeyError):
        env.get("HW4_NOT_A_VARIABLE")


def test_the_library_follows_the_variables(monkeypatch, tmp_path):
    from hw4lib.config import data_root, profile_name
    from hw4lib.data.generated import generated_root
    from hw4lib.report.tables import figures_dir
    from hw4lib.results import results_root
    from hw4lib.weights import cache_dir

    for var, fn in [
        ("HW4_DATA", data_root),
        ("HW4_GENERATED", generated_root),
        ("HW4_RESULTS", results_root),
        ("HW4_CACHE", cache_dir),
    ]:
        monkeypatch.setenv(var, str(tmp_path / var))
        assert fn() == tmp_path / var, var
    monkeypatch.delenv("HW4_FIGURES", raising=False)
    monkeypatch.setenv("HW4_REPORTS", str(tmp_path / "rep"))
    assert figures_dir("smoke") == tmp_path / "rep" / "smoke" / "figures"
    monkeypatch.setenv("HW4_FIGURES", str(tmp_path / "figs"))
    assert figures_dir("smoke") == tmp_path / "figs"
    monkeypatch.setenv("HW4_PROFILE", "smoke")
    assert profile_name() == "smoke" and profile_name("full") == "full"


def test_hw4_env_lists_values_and_defaults(monkeypatch, capsys):
    monkeypatch.setenv("HW4_DATA", "/somewhere/data")
    monkeypatch.delenv("HW4_PROFILE", raising=False)
    assert main(["env"]) == 0
    out = capsys.readouterr().out
    assert "HW4_DATA" in out and "= /somewhere/data" in out
    assert re.search(r"HW4_PROFILE\s+\(unset; default quick\)", out)
    assert all(k in out for k in env.VARIABLES)
