"""Missing LPIPS weights: a skip on a user's machine, a failure where HW4_REQUIRE_LPIPS=1
(``.ci/run`` sets it, so an offline CI cannot go green without testing LPIPS)."""

from __future__ import annotations

import pytest


def test_missing_weights_fail_when_required_and_skip_otherwise(lpips_unavailable, monkeypatch):
    # skip and fail both raise BaseExceptions: catch either, then ask which it was
    def outcome() -> pytest.ExceptionInfo:
        with pytest.raises(BaseException) as e:
            lpips_unavailable("no source reachable (offline)")
        return e

    monkeypatch.setenv("HW4_REQUIRE_LPIPS", "1")
    e = outcome()
    assert e.type is pytest.fail.Exception and "HW4_REQUIRE_LPIPS=1" in str(e.value)
    assert "offline" in str(e.value)
    for value in (None, "0"):
        if value is None:
            monkeypatch.delenv("HW4_REQUIRE_LPIPS")
        else:
            monkeypatch.setenv("HW4_REQUIRE_LPIPS", value)
        e = outcome()
        assert e.type is pytest.skip.Exception and "offline" in str(e.value)


def test_ci_requires_lpips():
    from hw4lib import PROJECT_ROOT

    lines = [ln.strip() for ln in (PROJECT_ROOT / ".ci" / "run").read_text().splitlines()]
    assert lines.index("export HW4_REQUIRE_LPIPS=1") < lines.index("make test")
