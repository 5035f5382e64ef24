"""Run folders used as a cache by the notebooks: stale runs replaced, interrupted ones resumed."""
from __future__ import annotations

import json

from hw4lib.ssl.checkpoint import stale_policy


def test_stale_policy(tmp_path):
    run = tmp_path / "run"
    assert stale_policy(run, {"lr": 0.1}) == (False, False)          # fresh
    run.mkdir()
    (run / "settings.json").write_text(json.dumps({"lr": 0.1}))
    assert stale_policy(run, {"lr": 0.2}) == (True, False)           # other settings: start over
    (run / "last.pt").write_bytes(b"x")
    assert stale_policy(run, {"lr": 0.1}) == (False, True)           # interrupted: resume
    (run / "run.json").write_text("{}")
    assert stale_policy(run, {"lr": 0.1}) == (False, False)          # finished: reuse
    (run / "settings.json").write_text("{not json")
    assert stale_policy(run, {"lr": 0.1}) == (True, False)
