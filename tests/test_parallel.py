"""hw4lib.parallel: tasks run after what they need, in priority order; a failure skips only its
dependents; workers are separate processes with the asked thread count, one CUDA device each;
one rule says how many run side by side."""

from __future__ import annotations

import operator
import os
import subprocess
import sys
import time
from functools import partial

import pytest
import torch

from hw4lib import parallel
from hw4lib.errors import UserError
from hw4lib.parallel import Task, Workers, plan_workers, run_tasks

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
        Task("a", rec, {"name": "a", "value": 1}),
        Task("bad", partial(operator.truediv, 1, 0)),
        Task("b", rec, {"name": "b", "value": 2}, after=("a",)),
        Task("c", rec, {"name": "c"}, after=("bad",)),
        Task("d", rec, {"name": "d"}, after=("c",)),  # skipped through c
        Task("e", rec, {"name": "e", "value": 5}),
    ]
    with pytest.raises(ZeroDivisionError) as err:
        run_tasks(jobs, Workers(1), label="t")
    assert order == ["a", "b", "e"]
    assert "failed: bad; skipped: c, d" in "".join(err.value.__notes__)
    log = capsys.readouterr().err
    assert "FAILED bad" in log and "skip c (needs bad)" in log and "skip d (needs c)" in log
    ok = run_tasks([j for j in jobs if j.name in ("a", "b", "e")])
    assert ok == {"a": 1, "b": 2, "e": 5}


@pytest.mark.parametrize(
    "jobs",
    [[Task("a", print, after=("b",)), Task("b", print)], [Task("a", print), Task("a", print)]],
)
def test_bad_graphs_are_refused(jobs):
    with pytest.raises(ValueError):
        run_tasks(jobs)


@pytest.mark.slow
def test_workers_run_side_by_side_after_their_dependencies():
    jobs = [
        Task("slow", SLOW_CLOCK),
        Task("other", SLOW_CLOCK),
        Task("pid", os.getpid),
        Task("threads", torch.get_num_threads),
        Task("after_slow", time.time, after=("slow",)),
        Task("bad", partial(operator.truediv, 1, 0)),
        Task("needs_bad", time.time, after=("bad",)),
    ]
    with pytest.raises(ZeroDivisionError) as err:
        run_tasks(jobs, Workers(2, 1))
    assert "skipped: needs_bad" in "".join(err.value.__notes__)
    r = run_tasks(jobs[:5], Workers(2, 1))
    slow_end, other_end = float(r["slow"]), float(r["other"])
    assert r["after_slow"] >= slow_end  # waited for its dependency
    assert abs(slow_end - other_end) < 0.9  # the two 1 s jobs overlapped
    assert r["pid"] != os.getpid() and r["threads"] == 1


def test_side_by_side_only_where_the_measured_slowdown_pays(monkeypatch):
    monkeypatch.setattr(parallel, "cuda_devices", lambda: ())
    monkeypatch.setattr(parallel, "cpu_count", lambda: 2)
    assert parallel.SIDE_BY_SIDE_SLOWDOWN["ssl_study"] >= 2  # measured: one at a time is faster
    assert plan_workers("ssl_study", 2) == Workers(1)
    assert plan_workers("report_chains", 2) == Workers(2, 1)
    assert plan_workers("generators", 3) == Workers(2, 1)  # no more workers than cores
    assert plan_workers("report_chains", 1) == Workers(1)
    assert plan_workers("report_chains", 2, "cuda") == Workers(1)  # one GPU: one at a time
    assert plan_workers("ssl_study", 2, count=2) == Workers(2, 1)  # the user's --jobs wins
    with pytest.raises(UserError, match="--jobs 0"):
        plan_workers("ssl_study", 2, count=0)
    monkeypatch.setattr(parallel, "cpu_count", lambda: 16)
    monkeypatch.setattr(parallel, "cuda_devices", lambda: (0, 1, 2, 3))
    assert plan_workers("ssl_study", 2, "cuda") == Workers(2, 8, (0, 1))
    assert plan_workers("ssl_study", 7, "cuda") == Workers(4, 4, (0, 1, 2, 3))
    assert plan_workers("ssl_study", 7, "cpu") == Workers(7, 2)  # 2.31 < 7: side by side pays


def _visible_after(seconds: float) -> str:
    time.sleep(seconds)
    return os.environ.get("CUDA_VISIBLE_DEVICES", "")


@pytest.mark.slow
def test_one_task_per_cuda_device_with_faked_devices():
    """Each task sees one device (as cuda:0); tasks running at once see different ones, and a
    device is handed on when its task ends."""
    tasks = [Task(f"t{i}", _visible_after, {"seconds": 0.5}) for i in range(5)]
    seen = run_tasks(tasks, Workers(2, 1, (3, 5)))
    assert set(seen.values()) == {"3", "5"}
    assert seen["t0"] != seen["t1"]  # started together on two workers
