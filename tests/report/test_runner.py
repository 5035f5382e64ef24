"""The skeleton: packaging, profiles, the CLI's error contract, the results store, the runner."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import tomllib

from hw4lib import PROJECT_ROOT
from hw4lib.config import PROFILES, get_profile, profile_name, resolve_device
from hw4lib.errors import UserError
from hw4lib.results import list_results, read_result, write_result

HW4 = [sys.executable, "-m", "hw4lib"]


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


def test_profiles_and_env(monkeypatch):
    monkeypatch.delenv("HW4_PROFILE", raising=False)
    assert profile_name() == "quick"
    monkeypatch.setenv("HW4_PROFILE", "full")
    assert profile_name() == "full" and get_profile().name == "full"
    assert profile_name("smoke") == "smoke"  # the flag wins over the variable
    for name in PROFILES:
        assert get_profile(name).name == name
    with pytest.raises(UserError, match="unknown profile 'fast'.*smoke, quick, cpu800, full"):
        get_profile("fast")


def test_full_profile_keeps_the_reports_settings():
    full = get_profile("full")
    c, f = full.nerf.coarse, full.nerf.fine
    assert (c.iters, c.num_voxels, c.alpha_init, c.fast_color_thres) == (5000, 1024000, 1e-6, 1e-7)
    assert (f.iters, f.alpha_init, f.fast_color_thres, f.stepsize) == (20000, 1e-2, 1e-4, 0.5)
    assert [s for s, _ in full.nerf.sweep] == [0.5, 2.0, 4.0, 0.5, 0.5]
    # 160^3, not the table's 180^3: the report's text and configs (reference.DVGO_TABLE)
    assert f.num_voxels == 160**3 and f.mask_refresh
    assert [v for _, v in full.nerf.sweep] == [160**3, 160**3, 160**3, 120**3, 80**3]
    s = full.ssl
    assert (s.backbone, s.image_size, s.pretrain_batch, s.pretrain_lr) == (
        "resnet50",
        128,
        64,
        0.05,
    )
    assert (s.finetune_lr, s.finetune_gamma, s.finetune_batch, s.finetune_epochs) == (
        3e-4,
        0.998,
        16,
        100,
    )


def test_cpu800_profile_is_the_reports_grids_at_800_px():
    p, full = get_profile("cpu800"), get_profile("full")
    assert p.nerf.max_train_size is None and p.scene.size == 800 and p.nerf.eval_views is None
    assert p.nerf.fine.num_voxels == 160**3 and p.nerf.coarse.num_voxels == 1024000
    assert p.nerf.fine.lr_decay_steps == p.nerf.fine.iters  # lr x0.1 over the run, as DVGO's
    assert p.nerf.sweep == full.nerf.sweep and p.nerf.fine.mask_refresh
    assert get_profile("quick").nerf.fine.mask_refresh is False  # quick's numbers unchanged


def test_keep_freed_memory_is_idempotent():
    import platform

    from hw4lib.memory import keep_freed_memory

    first = keep_freed_memory()
    assert keep_freed_memory() is first
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert first is True


def test_device_resolution(monkeypatch):
    import torch

    monkeypatch.delenv("HW4_DEVICE", raising=False)
    assert resolve_device("cpu") == "cpu"
    # this machine's answer: the GPU exactly when torch sees one
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(None) == resolve_device("auto")
    # both answers, whatever this machine has
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda" and resolve_device("cuda") == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    with pytest.raises(UserError, match="no CUDA GPU is visible"):
        resolve_device("cuda")
    monkeypatch.setenv("HW4_DEVICE", "cpu")
    assert resolve_device(None) == "cpu"
    with pytest.raises(UserError, match="unknown device"):
        resolve_device("tpu")


def test_results_store_roundtrip(tmp_path):
    p = write_result(
        "nerf/x",
        {"psnr": 31.5},
        profile="smoke",
        data_source="generated",
        device="cpu",
        seconds=1.234,
        root=tmp_path,
    )
    assert p == tmp_path / "smoke" / "nerf" / "x.json"
    doc = read_result("nerf/x", "smoke", root=tmp_path)
    assert doc["data"] == {"psnr": 31.5}
    m = doc["manifest"]
    assert set(m) >= {"profile", "data_source", "git_commit", "device", "seconds", "date"}
    assert m["seconds"] == 1.23 and m["profile"] == "smoke"
    assert list_results("smoke", "nerf/", root=tmp_path) == ["nerf/x"]
    assert read_result("nerf/missing", "smoke", root=tmp_path) is None
    assert not list(tmp_path.rglob("*.tmp"))


def _cli(*args, env=None):
    return subprocess.run(HW4 + list(args), capture_output=True, text=True, env=env)


@pytest.mark.slow
def test_cli_help_lists_every_group():
    r = _cli("--help")
    assert r.returncode == 0
    for g in ("data", "nerf", "ssl", "bench", "weights", "report"):
        assert g in r.stdout


@pytest.mark.slow
def test_cli_help_imports_no_heavy_library():
    """The commands import their libraries lazily (hw4lib/commands): every group's --help
    answers without torch, matplotlib, pandas or LPIPS."""
    code = (
        "import contextlib, io, sys\nfrom hw4lib.cli import main\n"
        "for g in ('data', 'nerf', 'ssl', 'bench', 'weights', 'report'):\n"
        "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "        main([g, '--help'])\n"
        "print(sorted(m for m in ('torch', 'matplotlib', 'pandas', 'lpips') "
        "if m in sys.modules))"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", r.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, pattern",
    [
        (
            ["report", "--profile", "fast"],
            r"unknown profile 'fast': choose one of smoke, quick, cpu800, full",
        ),
        (["report", "--only", "99"], r"unknown notebook id\(s\) 99: choose from"),
        (
            ["report", "--data", "/nonexistent/hw4_data"],
            r"/nonexistent/hw4_data: data directory not found",
        ),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(args, pattern):
    r = _cli(*args)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(pattern, lines[0]), r.stderr


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
def test_report_runs_in_order_and_reports_the_failing_cell(tiny_notebooks):
    out = tiny_notebooks / "reports" / "smoke"
    out.mkdir(parents=True)
    (out / "02_fails.ipynb").write_text("earlier good copy")
    r = _cli("report", "--profile", "smoke")
    assert r.returncode == 1
    assert re.search(r"02_fails\.ipynb: cell 3 failed: ValueError: broken on purpose", r.stderr)
    ok = nbformat.read(str(out / "01_ok.ipynb"), as_version=4)
    assert "profile smoke smoke" in json.dumps(ok.cells[-1].outputs)
    assert (out / "02_fails.ipynb").read_text() == "earlier good copy"  # not overwritten
    assert (out / "02_fails.failed.ipynb").exists()  # partial kept
    assert not (out / "03_after.ipynb").exists()  # stopped at the failure


@pytest.mark.slow
def test_report_keep_going_and_only(tiny_notebooks):
    out = tiny_notebooks / "reports" / "smoke"
    r = _cli("report", "--profile", "smoke", "--keep-going")
    assert r.returncode == 1 and (out / "03_after.ipynb").exists()
    (out / "03_after.ipynb").unlink()
    r = _cli("report", "--profile", "smoke", "--only", "3")
    assert r.returncode == 0, r.stderr
    assert (out / "03_after.ipynb").exists() and "executed notebooks" in r.stdout


def test_ci_runs_the_readme_test_command():
    readme = (PROJECT_ROOT / "README.md").read_text()
    ci = (PROJECT_ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make report" in readme
    assert re.search(r"^make test$", ci, re.M)


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
def test_report_runs_the_two_chains_side_by_side_then_the_rest(chained_notebooks):
    from hw4lib.parallel import Workers
    from hw4lib.report.runner import plan

    out = chained_notebooks / "reports" / "smoke"
    nbs = sorted((chained_notebooks / "notebooks").glob("*.ipynb"))
    chains, rest, w = plan(nbs, 2)
    assert [[p.name[:2] for p in c] for c in chains] == [["01", "02"], ["04", "05"]]
    assert [p.name[:2] for p in rest] == ["06"] and w.count == 2
    assert plan(nbs, 1) == ([], nbs, Workers(1))
    r = _cli("report", "--profile", "smoke", "--jobs", "2")
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
def test_a_failing_chain_stops_the_report_but_not_the_other_chain(chained_notebooks):
    nbs = chained_notebooks / "notebooks"
    _notebook(nbs / "02_b.ipynb", ["raise ValueError('broken on purpose')"])
    r = _cli("report", "--profile", "smoke", "--jobs", "2")
    out = chained_notebooks / "reports" / "smoke"
    assert r.returncode == 1 and "02_b.ipynb: cell 2 failed: ValueError" in r.stderr
    assert (out / "05_d.ipynb").exists() and not (out / "06_report.ipynb").exists()
    assert _cli("report", "--jobs", "0").returncode == 2


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
