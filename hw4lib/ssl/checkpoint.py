"""Run folders: atomic checkpoint files and the settings a run was started with.

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

from ..errors import UserError
from ..results import atomic_save, atomic_write_text, load_checkpoint  # noqa: F401 re-export
from ..runs import check_run_dir, kind_of_settings

#: what every ``last.pt`` holds (fine-tuning's also has ``best``)
LAST_KEYS = ("epoch", "model", "optimizer", "scheduler", "history", "rng", "order")


def _fix(path: Path) -> str:
    """How to go on from an unusable checkpoint: it depends on which file of a run it is."""
    if path.name == "last.pt":
        # prepare_run starts a run afresh, with the same settings, once last.pt is gone
        return f"delete {path} and rerun (the run then starts afresh), or resume a run you " \
            "trust"
    if path.name == "best.pt":
        return "point --run at a fine-tuning run you trust, or train one with `hw4 ssl " \
            "finetune --out NEW_RUN`"
    return "use a run you trust, or train a new one into a new --out folder"


def load(path: str | Path, keys: tuple[str, ...] = ()) -> dict:
    """A run's checkpoint (``last.pt``, ``best.pt``), possibly someone else's: nothing in the
    file is run; a refused, torn or foreign file is a one-line :class:`UserError`."""
    path = Path(path)
    return load_checkpoint(path, keys=keys, fix=_fix(path))


def _diff(a: dict, b: dict) -> list[str]:
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k)]


def _normal(settings: dict) -> dict:
    return json.loads(json.dumps(settings, default=str))


def prepare_run(run_dir: Path, settings: dict, resume: bool, force: bool = False,
                keys: tuple[str, ...] = LAST_KEYS) -> dict | None:
    """Check ``run_dir`` against ``settings``; return the checkpoint to resume from, or None.

    * fresh folder: records the settings;
    * ``resume``: the folder's settings must equal ``settings`` (else a one-line error, nothing
      touched) and ``last.pt`` is returned;
    * a folder holding another run, without ``resume`` or ``force``: a one-line error;
    * a folder holding files this command did not write, or another command's run: a
      one-line error, even with ``force`` (:func:`hw4lib.runs.check_run_dir`).
    """
    run_dir = Path(run_dir)
    settings = _normal(settings)
    kind = kind_of_settings(settings)
    if kind is not None:  # a stranger's files or another command's run: refused, untouched
        check_run_dir(run_dir, kind)
    sfile = run_dir / "settings.json"
    if sfile.is_file():
        try:
            old = json.loads(sfile.read_text())
        except json.JSONDecodeError:
            raise UserError(f"{sfile}: not valid JSON; delete the run folder or pick another "
                            "--out") from None
        if resume:
            d = _diff(old, settings)
            if d:
                raise UserError(f"{sfile}: cannot resume with different settings "
                                f"({'; '.join(d[:3])}); "
                                "rerun with the original settings or use a new --out folder")
            last = run_dir / "last.pt"
            return load(last, keys) if last.is_file() else None
        if not force and (run_dir / "last.pt").is_file():
            raise UserError(f"{run_dir}: already holds a run; add --resume to continue it, or "
                            "choose another --out (or delete the folder)")
    elif resume and (run_dir / "last.pt").is_file():
        raise UserError(f"{sfile}: missing, so the run cannot be checked; start afresh "
                        "in a new --out folder")
    atomic_write_text(sfile, json.dumps(settings, indent=2, sort_keys=True))
    return None


def finished(run_dir: Path, settings: dict) -> dict | None:
    """The ``run.json`` of a finished run with exactly these settings, else None."""
    run_dir = Path(run_dir)
    sfile, rfile = run_dir / "settings.json", run_dir / "run.json"
    if not (sfile.is_file() and rfile.is_file()):
        return None
    try:
        if json.loads(sfile.read_text()) != _normal(settings):
            return None
        return json.loads(rfile.read_text())
    except json.JSONDecodeError:
        return None


def write_run(run_dir: Path, data: dict) -> None:
    atomic_write_text(Path(run_dir) / "run.json", json.dumps(data, indent=2, default=str))


def stale_policy(run_dir: Path, settings: dict) -> tuple[bool, bool]:
    """``(force, resume)`` for a run folder used as a cache (the notebooks' ``runs/``).

    A run made with other settings is started over; an interrupted run with the same settings
    is resumed; a finished one is left for :func:`finished` to reuse.
    """
    sfile = Path(run_dir) / "settings.json"
    if not sfile.is_file():
        return False, False
    try:
        same = json.loads(sfile.read_text()) == _normal(settings)
    except json.JSONDecodeError:
        return True, False
    if not same:
        return True, False
    unfinished = ((Path(run_dir) / "last.pt").is_file()
                  and not (Path(run_dir) / "run.json").is_file())
    return False, unfinished
