"""Missing LPIPS weights: a skip on a user's machine, a failure where HW4_REQUIRE_LPIPS=1
(``.ci/run`` sets it, so an offline CI cannot go green without testing LPIPS)."""
from __future__ import annotations

import pytest


def test_missing_weights_fail_when_required_and_skip_otherwise(lpips_unavailable, monkeypatch):
    monkeypatch.setenv("HW4_REQUIRE_LPIPS", "1")
    with pytest.raises(pytest.fail.Exception, match="HW4_REQUIRE_LPIPS=1.*offline"):
        lpips_unavailable("no source reachable (offline)")
    for value in (None, "0"):
        if value is None:
            monkeypatch.delenv("HW4_REQUIRE_LPIPS")
        else:
            monkeypatch.setenv("HW4_REQUIRE_LPIPS", value)
        with pytest.raises(pytest.skip.Exception, match="offline"):
            lpips_unavailable("no source reachable (offline)")


def test_ci_requires_lpips():
    from hw4lib import PROJECT_ROOT

    lines = [ln.strip() for ln in (PROJECT_ROOT / ".ci" / "run").read_text().splitlines()]
    assert lines.index("export HW4_REQUIRE_LPIPS=1") < lines.index("make test")
