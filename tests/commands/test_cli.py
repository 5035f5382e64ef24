"""The command line's contract: every group in --help, no heavy import for it, bad input one
line and exit code 2."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from hw4lib import PROJECT_ROOT


@pytest.mark.slow
def test_cli_help_lists_every_group(hw4_cli):
    r = hw4_cli("--help")
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
            r"unknown profile 'fast': choose one of smoke, quick, cpu800, byol2000, full",
        ),
        (["report", "--only", "99"], r"unknown notebook id\(s\) 99: choose from"),
        (
            ["report", "--data", "/nonexistent/hw4_data"],
            r"/nonexistent/hw4_data: data directory not found",
        ),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(args, pattern, hw4_cli):
    r = hw4_cli(*args)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(pattern, lines[0]), r.stderr
