"""SSL run folders: atomic checkpoint files, read safely; reuse / resume / start afresh is
:func:`hw4lib.runs.plan_run`'s (one policy for every command).

A run folder holds ``settings.json`` (what the run was asked to do), ``last.pt`` (everything
needed to continue after a kill: model, optimiser, scheduler, epoch, history, RNG) and the
products (``backbone.pt`` for pre-training, ``best.pt`` for fine-tuning) plus ``run.json``
(the finished run's numbers). Every file is written to a temporary name and renamed, and read
with :func:`hw4lib.results.load_checkpoint`, which never runs code from it (runs get shared).
``last.pt`` (and a better ``best.pt``) is written at most every
``SSLConfig.checkpoint_every_s`` seconds (0: every epoch) and after the last epoch, so a
resume after a kill repeats at most that much work.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..results import atomic_save, atomic_write_text, load_checkpoint  # noqa: F401 re-export
from ..runs import RESUME, RunKind, RunPlan, start_fresh

#: what every ``last.pt`` holds (fine-tuning's also has ``best``)
LAST_KEYS = ("epoch", "model", "optimizer", "scheduler", "history", "rng", "order")


def _fix(path: Path) -> str:
    """How to go on from an unusable checkpoint: it depends on which file of a run it is."""
    if path.name == "last.pt":
        # plan_run starts a run afresh, with the same settings, once last.pt is gone
        return f"delete {path} and rerun (the run then starts afresh), or resume a run you trust"
    if path.name == "best.pt":
        return (
            "point --run at a fine-tuning run you trust, or train one with `hw4 ssl "
            "finetune --out NEW_RUN`"
        )
    return "use a run you trust, or train a new one into a new --out folder"


def load(path: str | Path, keys: tuple[str, ...] = ()) -> dict:
    """A run's checkpoint (``last.pt``, ``best.pt``), possibly someone else's: nothing in the
    file is run; a refused, torn or foreign file is a one-line :class:`UserError`."""
    path = Path(path)
    return load_checkpoint(path, keys=keys, fix=_fix(path))


def begin(
    run_dir: Path, kind: RunKind, plan: RunPlan, settings: dict, keys: tuple[str, ...] = LAST_KEYS
) -> dict | None:
    """Act on a :func:`hw4lib.runs.plan_run` verdict other than reuse, once the data has been
    read: the checkpoint to resume from, or None when the run starts afresh (the folder
    cleared of the earlier run, ``settings`` recorded)."""
    if plan.action == RESUME:
        return load(Path(run_dir) / kind.checkpoint, keys)
    start_fresh(run_dir, kind, settings)
    return None


def write_run(run_dir: Path, data: dict) -> None:
    atomic_write_text(Path(run_dir) / "run.json", json.dumps(data, indent=2, default=str))
