"""hw4lib.parallel: jobs run after what they need, in priority order; a failure skips only its
dependents; workers are separate processes with the asked thread count."""

from __future__ import annotations

import operator
import os
import subprocess
import sys
import time
from functools import partial

import pytest
import torch

from hw4lib.parallel import Job, run_jobs

# picklable jobs for spawned workers: a child process that sleeps, then prints the time
SLOW_CLOCK = partial(
    subprocess.check_output,
    [sys.executable, "-c", "import time; time.sleep(1.0); print(time.time())"],
)


def test_sequential_order_results_and_failure_skips_only_dependents(capsys):
    order = []

    def rec(name, value=None):
        order.append(name)
        return value

    jobs = [
        Job("a", rec, {"name": "a", "value": 1}),
        Job("bad", partial(operator.truediv, 1, 0)),
        Job("b", rec, {"name": "b", "value": 2}, after=("a",)),
        Job("c", rec, {"name": "c"}, after=("bad",)),
        Job("d", rec, {"name": "d"}, after=("c",)),  # skipped through c
        Job("e", rec, {"name": "e", "value": 5}),
    ]
    with pytest.raises(ZeroDivisionError) as err:
        run_jobs(jobs, workers=1, label="t")
    assert order == ["a", "b", "e"]
    assert "failed: bad; skipped: c, d" in "".join(err.value.__notes__)
    log = capsys.readouterr().err
    assert "FAILED bad" in log and "skip c (needs bad)" in log and "skip d (needs c)" in log
    ok = run_jobs([j for j in jobs if j.name in ("a", "b", "e")], workers=1)
    assert ok == {"a": 1, "b": 2, "e": 5}


@pytest.mark.parametrize(
    "jobs", [[Job("a", print, after=("b",)), Job("b", print)], [Job("a", print), Job("a", print)]]
)
def test_bad_graphs_are_refused(jobs):
    with pytest.raises(ValueError):
        run_jobs(jobs)


@pytest.mark.slow
def test_workers_run_side_by_side_after_their_dependencies():
    jobs = [
        Job("slow", SLOW_CLOCK),
        Job("other", SLOW_CLOCK),
        Job("pid", os.getpid),
        Job("threads", torch.get_num_threads),
        Job("after_slow", time.time, after=("slow",)),
        Job("bad", partial(operator.truediv, 1, 0)),
        Job("needs_bad", time.time, after=("bad",)),
    ]
    with pytest.raises(ZeroDivisionError) as err:
        run_jobs(jobs, workers=2, threads=1)
    assert "skipped: needs_bad" in "".join(err.value.__notes__)
    r = run_jobs(jobs[:5], workers=2, threads=1)
    slow_end, other_end = float(r["slow"]), float(r["other"])
    assert r["after_slow"] >= slow_end  # waited for its dependency
    assert abs(slow_end - other_end) < 0.9  # the two 1 s jobs overlapped
    assert r["pid"] != os.getpid() and r["threads"] == 1
