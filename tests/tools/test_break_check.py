"""tools/break_check.py stays usable: each break's snippet occurs exactly once in its file, so a
refactor or a reformat that moves the code it breaks shows up here, not at the next break check."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _module():
    spec = importlib.util.spec_from_file_location("break_check", ROOT / "tools" / "break_check.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("break_check", mod)  # its dataclasses look themselves up there
    spec.loader.exec_module(mod)
    return mod


def _breaks():
    return _module().BREAKS


def test_every_break_patches_exactly_one_snippet():
    breaks = _breaks()
    assert len(breaks) >= 10 and len({b.name for b in breaks}) == len(breaks)
    counts = {b.name: (ROOT / b.file).read_text().count(b.old) for b in breaks}
    wrong = {name: n for name, n in counts.items() if n != 1}
    assert wrong == {}, "break snippets not found exactly once (name: count)"


def test_every_break_names_tests_that_exist():
    for b in _breaks():
        files = [t.split("::")[0] for t in b.tests if t.startswith("tests/")]
        assert files and all((ROOT / f).is_file() for f in files), b.name


def test_a_file_put_back_is_newer_than_what_was_built_from_the_patch(tmp_path):
    """The original bytes, and a modification time after any output the patched file produced,
    so that ninja rebuilds the C++ kernels (a restored old time left a broken kernel in use)."""
    src, backup, built = tmp_path / "adam.cpp", tmp_path / "backup.cpp", tmp_path / "adam.o"
    src.write_text("original\n")
    os.utime(src, (1_000_000, 1_000_000))  # an original older than the build
    shutil.copy2(src, backup)
    src.write_text("patched\n")
    built.write_text("object of the patched source")
    os.utime(built, (2_000_000, 2_000_000))
    _module().put_back(backup, src)
    assert src.read_text() == "original\n"
    assert src.stat().st_mtime_ns > built.stat().st_mtime_ns
