"""Run a small graph of jobs on worker processes, each job once the jobs it needs have finished.

The A-E study is such a graph: BYOL -> C, E and supervised -> B, D, with A needing nothing.
On a CPU its two pre-trainings take most of the time and share nothing, so two one-thread
workers finish sooner than one two-thread process (small convolutions do not keep two cores
busy: one thread instead of two makes BYOL only ~1.5x slower).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Job:
    """``fn(**kwargs)`` once every job named in ``after`` has finished. ``fn`` must be a
    module-level function (workers are spawned processes)."""

    name: str
    fn: Callable[..., Any]
    kwargs: dict = field(default_factory=dict)
    after: tuple[str, ...] = ()


def _check(jobs: list[Job]) -> None:
    seen: set[str] = set()
    for j in jobs:
        if j.name in seen:
            raise ValueError(f"job {j.name!r} appears twice")
        if unknown := [a for a in j.after if a not in seen]:
            raise ValueError(f"job {j.name!r} runs after {unknown}, which are not earlier jobs")
        seen.add(j.name)


def _init_worker(threads: int) -> None:
    # before the job's modules import torch, so its thread pools start at this size
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)


def _call(fn: Callable[..., Any], kwargs: dict, threads: int | None) -> Any:
    if threads:
        import torch  # in the worker only: the parent schedules jobs without torch

        torch.set_num_threads(threads)
    return fn(**kwargs)


def run_jobs(
    jobs: list[Job], workers: int = 1, threads: int | None = None, label: str = "jobs"
) -> dict[str, Any]:
    """Run ``jobs`` and return each one's result by name.

    The list order is the priority: whenever a worker is free it takes the first job whose
    ``after`` jobs have all finished (a job may only name earlier jobs). ``workers`` <= 1 runs
    them here, in order; otherwise in ``workers`` spawned processes with ``threads`` CPU threads
    each. A failed job skips the jobs that need it, directly or not; the others still run, and
    then the first failure (in job order) is raised as it was, so a ``UserError`` keeps its
    one-line message; a note on it names every failed and skipped job.
    """
    _check(jobs)
    t0 = time.time()

    def log(msg: str) -> None:
        print(f"[{label}] {time.time() - t0:6.0f} s  {msg}", file=sys.stderr, flush=True)

    results: dict[str, Any] = {}
    errors: dict[str, BaseException] = {}
    skipped: list[str] = []
    pending = list(jobs)

    def drop_blocked() -> None:
        for j in list(pending):
            if blocked := [a for a in j.after if a in errors or a in skipped]:
                pending.remove(j)
                skipped.append(j.name)
                log(f"skip {j.name} (needs {', '.join(blocked)})")

    def finish(j: Job, get: Callable[[], Any]) -> None:
        try:
            results[j.name] = get()
            log(f"done {j.name}")
        except Exception as e:  # noqa: BLE001 -- reported below; KeyboardInterrupt still stops
            errors[j.name] = e
            log(f"FAILED {j.name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")

    if workers <= 1:
        while pending:
            drop_blocked()
            if not pending:
                break
            j = pending.pop(0)
            log(f"start {j.name}")
            finish(j, lambda j=j: j.fn(**j.kwargs))
    else:
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
        from multiprocessing import get_context

        running: dict = {}
        # spawn, not fork: the parent may hold torch's thread pools, which do not survive a fork
        with ProcessPoolExecutor(
            workers,
            mp_context=get_context("spawn"),
            initializer=_init_worker if threads else None,
            initargs=(threads,) if threads else (),
        ) as pool:
            while pending or running:
                drop_blocked()
                for j in list(pending):
                    if len(running) >= workers:
                        break
                    if all(a in results for a in j.after):
                        pending.remove(j)
                        log(f"start {j.name}")
                        running[pool.submit(_call, j.fn, j.kwargs, threads)] = j
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for f in done:
                    finish(running.pop(f), f.result)
    if errors:
        first = next(errors[j.name] for j in jobs if j.name in errors)
        first.add_note(
            f"{label}: failed: {', '.join(errors)}"
            + (f"; skipped: {', '.join(skipped)}" if skipped else "")
        )
        raise first
    return results
