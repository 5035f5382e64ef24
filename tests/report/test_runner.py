"""`hw4 report`'s runner: the notebooks in order, a failing cell reported, partial copies kept,
two chains side by side, generated data prepared only without the user's own."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import nbformat
import pytest


def _notebook(path: Path, cells: list[str]) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = ""\nmarker = "default"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, str(path))


@pytest.fixture
def tiny_notebooks(tmp_path, monkeypatch):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    _notebook(
        nbs / "01_ok.ipynb", ["import os\nprint('profile', profile, os.environ['HW4_PROFILE'])"]
    )
    _notebook(
        nbs / "02_fails.ipynb", ["x = 1", "raise ValueError('broken on purpose')", "print('never')"]
    )
    _notebook(nbs / "03_after.ipynb", ["print('third')"])
    monkeypatch.setenv("HW4_NOTEBOOKS", str(nbs))
    return tmp_path


@pytest.mark.slow
def test_report_runs_in_order_and_reports_the_failing_cell(tiny_notebooks, hw4_cli):
    out = tiny_notebooks / "reports" / "smoke"
    out.mkdir(parents=True)
    (out / "02_fails.ipynb").write_text("earlier good copy")
    r = hw4_cli("report", "--profile", "smoke")
    assert r.returncode == 1
    assert re.search(r"02_fails\.ipynb: cell 3 failed: ValueError: broken on purpose", r.stderr)
    ok = nbformat.read(str(out / "01_ok.ipynb"), as_version=4)
    assert "profile smoke smoke" in json.dumps(ok.cells[-1].outputs)
    assert (out / "02_fails.ipynb").read_text() == "earlier good copy"  # not overwritten
    assert (out / "02_fails.failed.ipynb").exists()  # partial kept
    assert not (out / "03_after.ipynb").exists()  # stopped at the failure


@pytest.mark.slow
def test_report_keep_going_and_only(tiny_notebooks, hw4_cli):
    out = tiny_notebooks / "reports" / "smoke"
    r = hw4_cli("report", "--profile", "smoke", "--keep-going")
    assert r.returncode == 1 and (out / "03_after.ipynb").exists()
    (out / "03_after.ipynb").unlink()
    r = hw4_cli("report", "--profile", "smoke", "--only", "3")
    assert r.returncode == 0, r.stderr
    assert (out / "03_after.ipynb").exists() and "executed notebooks" in r.stdout


@pytest.fixture
def chained_notebooks(tmp_path, monkeypatch):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    show = (
        "import os, time\nprint('threads', os.environ.get('OMP_NUM_THREADS'))\n"
        "print('t', time.time())"
    )
    for name in ("01_a", "02_b", "04_c", "05_d", "06_report"):
        _notebook(nbs / f"{name}.ipynb", [show])
    monkeypatch.setenv("HW4_NOTEBOOKS", str(nbs))
    return tmp_path


def _cell_text(path) -> str:
    return json.dumps(nbformat.read(str(path), as_version=4).cells[-1].outputs)


@pytest.mark.slow
def test_report_runs_the_two_chains_side_by_side_then_the_rest(chained_notebooks, hw4_cli):
    from hw4lib.parallel import Workers
    from hw4lib.report.runner import plan

    out = chained_notebooks / "reports" / "smoke"
    nbs = sorted((chained_notebooks / "notebooks").glob("*.ipynb"))
    chains, rest, w = plan(nbs, 2)
    assert [[p.name[:2] for p in c] for c in chains] == [["01", "02"], ["04", "05"]]
    assert [p.name[:2] for p in rest] == ["06"] and w.count == 2
    assert plan(nbs, 1) == ([], nbs, Workers(1))
    r = hw4_cli("report", "--profile", "smoke", "--jobs", "2")
    assert r.returncode == 0, r.stderr
    assert "2 chains side by side" in r.stderr
    threads = str(max(1, len(os.sched_getaffinity(0)) // 2))
    t = {}
    for p in nbs:
        text = _cell_text(out / p.name)
        assert f"threads {threads}" in text or p.name.startswith("06"), (p.name, text)
        t[p.name[:2]] = float(re.search(r"t (\d+\.\d+)", text).group(1))
    assert t["06"] > max(v for k, v in t.items() if k != "06")  # the report comes last
    assert t["01"] < t["02"] and t["04"] < t["05"]  # each chain in order


@pytest.mark.slow
def test_a_failing_chain_stops_the_report_but_not_the_other_chain(chained_notebooks, hw4_cli):
    nbs = chained_notebooks / "notebooks"
    _notebook(nbs / "02_b.ipynb", ["raise ValueError('broken on purpose')"])
    r = hw4_cli("report", "--profile", "smoke", "--jobs", "2")
    out = chained_notebooks / "reports" / "smoke"
    assert r.returncode == 1 and "02_b.ipynb: cell 2 failed: ValueError" in r.stderr
    assert (out / "05_d.ipynb").exists() and not (out / "06_report.ipynb").exists()
    assert hw4_cli("report", "--jobs", "0").returncode == 2


def test_report_prepares_generated_data_only_without_the_users_own(monkeypatch, tmp_path):
    from hw4lib.report import runner

    calls = []
    monkeypatch.setattr(
        "hw4lib.data.generated.prepare_generated",
        lambda profile, parts, extra=(): calls.append((profile, parts, extra)),
    )
    monkeypatch.setattr("hw4lib.config.data_root", lambda: tmp_path / "absent")
    runner._prepare_inputs("smoke", None)
    runner._prepare_inputs("smoke", str(tmp_path))
    (p1, parts1, extra1), (_, parts2, extra2) = calls
    assert p1 == "smoke" and parts1 == ("hotdog", "images") and parts2 == ()
    assert [f.__name__ for f in extra1 + extra2] == ["build_extension"] * 2
