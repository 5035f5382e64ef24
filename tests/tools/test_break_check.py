"""tools/break_check.py stays usable: each break's snippet occurs exactly once in its file, so a
refactor or a reformat that moves the code it breaks shows up here, not at the next break check."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _breaks():
    spec = importlib.util.spec_from_file_location("break_check", ROOT / "tools" / "break_check.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("break_check", mod)  # its dataclasses look themselves up there
    spec.loader.exec_module(mod)
    return mod.BREAKS


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
