"""The one scheduler: a small graph of tasks on worker processes, each task once the tasks it
needs have finished; and the one rule for how many run side by side.

Its users: the A-E study (BYOL -> C, E and supervised -> B, D, with A needing nothing), the
report's notebook chains (01 -> 02 -> 03 beside 04 -> 05) and the generated data (scenes and
corpora, independent). Workers are processes from the standard library's
:class:`~concurrent.futures.ProcessPoolExecutor`; this module only adds the dependencies, the
priority order, the threads each worker gets, and one CUDA device per worker.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import UserError

#: Slow-down of one task of each kind when two run side by side, one thread each, against the
#: same task alone on both threads of a 2-core machine (docs/experiments.md). Side by side pays
#: when it is under 2 (two tasks then finish before one-after-the-other would).
SIDE_BY_SIDE_SLOWDOWN: Mapping[str, float] = {
    # the A-E study at 64 px: one seed took 427 s side by side, 370 s one task at a time
    # (2 x 427 / 370; 2026-12-01)
    "ssl_study": 2.31,
    # the quick report's chains (DVGO notebooks beside SSL ones): 13.7 min side by side, 18.5
    # one notebook at a time (2 x 13.7 / 18.5; 2026-11-26)
    "report_chains": 1.48,
    # the data generators are single-threaded numpy: a second thread does not help them
    "generators": 1.0,
}


@dataclass(frozen=True)
class Task:
    """``fn(**kwargs)`` once every task named in ``after`` has finished. ``fn`` must be a
    module-level function (workers are spawned processes)."""

    name: str
    fn: Callable[..., Any]
    kwargs: dict = field(default_factory=dict)
    after: tuple[str, ...] = ()


@dataclass(frozen=True)
class Workers:
    """How tasks run: ``count`` processes (1: here, in order) with ``threads`` CPU threads each
    (None: unchanged), and the CUDA devices to spread them over (one per worker), if any."""

    count: int = 1
    threads: int | None = None
    devices: tuple[int, ...] = ()


def cuda_devices() -> tuple[int, ...]:
    """The CUDA devices visible here (none without torch's CUDA)."""
    import torch

    return tuple(range(torch.cuda.device_count())) if torch.cuda.is_available() else ()


def cpu_count() -> int:
    """CPU cores this process may use (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def plan_workers(
    kind: str, side_by_side: int, device: str = "cpu", count: int | None = None
) -> Workers:
    """The workers for ``side_by_side`` independent tasks of ``kind``: on several CUDA devices
    one task per device; on one device one task at a time; on a CPU that many workers sharing
    its cores when :data:`SIDE_BY_SIDE_SLOWDOWN` says it pays, else one. ``count`` (a user's
    ``--jobs``) overrides the rule."""
    if count is not None and count < 1:
        raise UserError(f"--jobs {count}: must be at least 1")
    devs = cuda_devices() if device != "cpu" else ()
    if len(devs) > 1:
        n = min(count or side_by_side, len(devs))
        return Workers(n, max(1, cpu_count() // n), devs[:n])
    if count is None:
        n = min(side_by_side, cpu_count())
        count = 1 if device != "cpu" or n < 2 or SIDE_BY_SIDE_SLOWDOWN[kind] >= n else n
    return Workers(count, max(1, cpu_count() // count)) if count > 1 else Workers(1)


def _check(tasks: list[Task]) -> None:
    seen: set[str] = set()
    for t in tasks:
        if t.name in seen:
            raise ValueError(f"task {t.name!r} appears twice")
        if unknown := [a for a in t.after if a not in seen]:
            raise ValueError(f"task {t.name!r} runs after {unknown}, which are not earlier tasks")
        seen.add(t.name)


_free_devices = None  # in a worker: the queue of CUDA devices not taken


def _init_worker(threads: int | None, devices: Any) -> None:
    # before the task's modules import torch: its thread pools and CUDA context start here
    global _free_devices
    if threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(threads)
    if devices is not None:
        _free_devices = devices
        os.environ["CUDA_VISIBLE_DEVICES"] = str(devices.get(timeout=60))  # never hang


def _call(fn: Callable[..., Any], kwargs: dict) -> Any:
    try:
        return fn(**kwargs)
    finally:
        if _free_devices is not None:  # this process ends after one task: its device is free
            _free_devices.put(os.environ["CUDA_VISIBLE_DEVICES"])


class _Graph:
    """The bookkeeping of one :func:`run_tasks` call: what is pending, done, failed, skipped."""

    def __init__(self, tasks: list[Task], label: str) -> None:
        self.tasks, self.label, self.t0 = tasks, label, time.time()
        self.pending = list(tasks)
        self.results: dict[str, Any] = {}
        self.errors: dict[str, BaseException] = {}
        self.skipped: list[str] = []

    def log(self, msg: str) -> None:
        print(f"[{self.label}] {time.time() - self.t0:6.0f} s  {msg}", file=sys.stderr, flush=True)

    def ready(self) -> list[Task]:
        """Pending tasks whose dependencies have finished (those behind a failure are dropped)."""
        for t in list(self.pending):
            if blocked := [a for a in t.after if a in self.errors or a in self.skipped]:
                self.pending.remove(t)
                self.skipped.append(t.name)
                self.log(f"skip {t.name} (needs {', '.join(blocked)})")
        return [t for t in self.pending if all(a in self.results for a in t.after)]

    def start(self, t: Task) -> None:
        self.pending.remove(t)
        self.log(f"start {t.name}")

    def finish(self, t: Task, get: Callable[[], Any]) -> None:
        try:
            self.results[t.name] = get()
            self.log(f"done {t.name}")
        except Exception as e:  # noqa: BLE001 -- reported below; KeyboardInterrupt still stops
            self.errors[t.name] = e
            first = str(e).splitlines()[0] if str(e) else ""
            self.log(f"FAILED {t.name}: {type(e).__name__}: {first}")

    def outcome(self) -> dict[str, Any]:
        if self.errors:
            first = next(self.errors[t.name] for t in self.tasks if t.name in self.errors)
            first.add_note(
                f"{self.label}: failed: {', '.join(self.errors)}"
                + (f"; skipped: {', '.join(self.skipped)}" if self.skipped else "")
            )
            raise first
        return self.results


def _run_here(g: _Graph) -> None:
    while ready := g.ready():
        g.start(ready[0])
        g.finish(ready[0], lambda t=ready[0]: t.fn(**t.kwargs))


def _run_in_pool(g: _Graph, w: Workers) -> None:
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from multiprocessing import get_context

    ctx = get_context("spawn")  # not fork: the parent may hold torch's thread pools
    devices = None
    if w.devices:
        devices = ctx.Queue()
        for d in w.devices:
            devices.put(d)
    running: dict = {}
    with ProcessPoolExecutor(
        w.count,
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(w.threads, devices),
        # a fresh process per task on GPUs: CUDA_VISIBLE_DEVICES holds only before CUDA starts
        max_tasks_per_child=1 if w.devices else None,
    ) as pool:
        while g.pending or running:
            for t in g.ready()[: w.count - len(running)]:
                g.start(t)
                running[pool.submit(_call, t.fn, t.kwargs)] = t
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in done:
                g.finish(running.pop(f), f.result)


def run_tasks(tasks: list[Task], workers: Workers = Workers(), label: str = "tasks") -> dict:
    """Run ``tasks`` and return each one's result by name.

    The list order is the priority: whenever a worker is free it takes the first task whose
    ``after`` tasks have all finished (a task may only name earlier tasks). One worker runs
    them here, in order; more run in spawned processes (:class:`Workers`). A failed task skips
    the tasks that need it, directly or not; the others still run, and then the first failure
    (in task order) is raised as it was, so a ``UserError`` keeps its one-line message; a note
    on it names every failed and skipped task.
    """
    _check(tasks)
    g = _Graph(tasks, label)
    if workers.count <= 1:
        _run_here(g)
    else:
        _run_in_pool(g, workers)
    return g.outcome()
