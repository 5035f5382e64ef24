"""SSL run folders: atomic checkpoint files, read safely; reuse / resume / start afresh and
the finished run's record are :mod:`hw4lib.runs`' (one lifecycle for every command).

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

from pathlib import Path

from ..results import atomic_save, load_checkpoint  # noqa: F401 re-export
from ..runs import RunKind, RunPlan, begin_run

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
    """:func:`hw4lib.runs.begin_run` with the checkpoint read by :func:`load` (``keys``): the
    state to resume from, or None when the run starts afresh."""
    return begin_run(run_dir, kind, plan, settings, lambda path: load(path, keys))
