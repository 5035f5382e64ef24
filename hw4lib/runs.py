"""Run folders: a command writes its run only into an empty folder or one holding its own run,
and one policy says whether that run is reused, resumed or started afresh.

``hw4 nerf train``, ``hw4 ssl pretrain`` and ``hw4 ssl finetune`` each write a known set of
files into ``--out``. :func:`check_run_dir` refuses, before anything is written or deleted, a
folder holding any other file (a user's notes, someone else's ``settings.json``) or another
command's run; a folder the same command wrote stays reusable and resumable. Runs made before
this check existed are recognised by their file names and the keys of their ``settings.json``.

Every run goes through the same lifecycle, whatever it trains:

1. :func:`plan_run` decides, from the folder's ``settings.json``, checkpoint and record of a
   finished run, what the command does with it (reuse, resume, start afresh), changing nothing;
2. the command reads its data (a run that cannot leaves its folder as it was);
3. :func:`begin_run` acts on the plan: the checkpoint to resume from, or the folder cleared of
   the earlier run (:func:`start_fresh`) and the new settings recorded;
4. the training loop writes its checkpoint when a :class:`CheckpointClock` says it is due;
5. :func:`finish_run` writes the finished run's record, once, whole and last.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .errors import UserError
from .results import atomic_write_text

SETTINGS_FILE = "settings.json"  # what every run was asked to do, written when it starts


@dataclass(frozen=True)
class RunKind:
    command: str  # how the user calls it, for the messages
    files: frozenset[str]  # every name the command writes in its run folder
    owns: Callable[[dict], bool]  # whether a settings.json (a dict) is this command's
    checkpoint: str  # the state an interrupted run resumes from
    done: str  # the finished run's record (JSON), written last
    product: str  # what a finished run is for
    restart: str  # how the user starts a run over, for the messages
    numbered: str = ""  # a regex for further names it writes (backbone snapshots); "" = none
    # a finished run keeps its checkpoint (--resume then trains nothing more); False: the
    # checkpoint goes once the record is written (it only says how far an unfinished run got)
    keeps_checkpoint: bool = True

    def writes(self, name: str) -> bool:
        """Whether ``name`` is a file this command writes in its run folder."""
        return name in self.files or bool(self.numbered and re.fullmatch(self.numbered, name))

    def extra(self, run: Path) -> list[Path]:
        """The numbered files (:attr:`numbered`) in ``run``."""
        if not self.numbered or not run.is_dir():
            return []
        return sorted(p for p in run.iterdir() if re.fullmatch(self.numbered, p.name))


NERF_TRAIN = RunKind(
    "hw4 nerf train",
    frozenset({SETTINGS_FILE, "checkpoint.pt", "coarse.pt", "fine.pt", "done.json"}),
    lambda s: "nerf" in s and "stepsize" in s and "fine_voxels" in s,
    "checkpoint.pt",
    "done.json",
    "fine.pt",
    "delete the folder to train it afresh",
    keeps_checkpoint=False,
)
SSL_PRETRAIN = RunKind(
    "hw4 ssl pretrain",
    frozenset({SETTINGS_FILE, "last.pt", "backbone.pt", "run.json"}),
    lambda s: s.get("method") in ("byol", "supervised") and "setting" not in s,
    "last.pt",
    "run.json",
    "backbone.pt",
    "add --force to start it afresh",
    r"backbone_step\d+\.pt",  # budget-curve snapshots (hw4lib.ssl.curve)
)
SSL_FINETUNE = RunKind(
    "hw4 ssl finetune",
    frozenset({SETTINGS_FILE, "last.pt", "best.pt", "run.json"}),
    lambda s: s.get("setting") in tuple("ABCDE") and "frozen" in s,
    "last.pt",
    "run.json",
    "best.pt",
    "add --force to start it afresh",
)
KINDS = (NERF_TRAIN, SSL_PRETRAIN, SSL_FINETUNE)

# what atomic_write_text / atomic_save leave behind when killed mid-write: .<name>.<random>.tmp
_TMP = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]+\.tmp$")


def kind_of_settings(settings: dict) -> RunKind | None:
    """The command whose run ``settings`` (a settings.json's content) describes, if any."""
    return next((k for k in KINDS if isinstance(settings, dict) and k.owns(settings)), None)


def _others_with(name: str, kind: RunKind) -> list[str]:
    return [k.command for k in KINDS if k is not kind and k.writes(name)]


def check_run_dir(run_dir: str | Path, kind: RunKind) -> None:
    """Raise :class:`UserError` (one line naming the offending file) unless ``run_dir`` is
    missing, empty, or holds only files ``kind``'s command writes, with its own settings."""
    run = Path(run_dir)
    if not run.exists():
        return
    if not run.is_dir():
        raise UserError(f"{run}: exists and is not a folder; choose a new --out folder")
    fix = "choose an empty or new --out folder (nothing was changed)"
    for p in sorted(run.iterdir()):
        m = _TMP.match(p.name)
        name = m.group("name") if m and p.is_file() else p.name
        if p.is_file() and kind.writes(name):
            continue
        others = _others_with(name, kind) if p.is_file() else []
        what = (
            "a file of a " + " or ".join(f"`{c}`" for c in others) + " run"
            if others
            else f"not written by `{kind.command}`"
        )
        raise UserError(
            f"{p}: {what}; `{kind.command}` writes only into an empty folder or its own run; {fix}"
        )
    sfile = run / SETTINGS_FILE
    if sfile.is_file():
        try:
            settings = json.loads(sfile.read_text())
        except (OSError, ValueError):
            settings = None
        owner = kind_of_settings(settings) if settings is not None else None
        if owner is not kind:
            what = (
                f"the settings of a `{owner.command}` run"
                if owner
                else f"not a `{kind.command}` run's settings"
            )
            raise UserError(f"{sfile}: {what}; {fix}")


# -- reuse, resume or start afresh ------------------------------------------------------------
REUSE, RESUME, FRESH = "reuse", "resume", "fresh"


@dataclass(frozen=True)
class RunPlan:
    """What a command does with its run folder: ``action`` is :data:`REUSE` (``done`` holds the
    finished run's record), :data:`RESUME` (from ``kind.checkpoint``) or :data:`FRESH` (train
    from the start, once :func:`begin_run` has cleared the folder)."""

    action: str
    done: dict | None = None


def normal(settings: Any) -> Any:
    """``settings`` as they read back from ``settings.json`` (paths and tuples as JSON has them)."""
    return json.loads(json.dumps(settings, default=str))


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


_MISSING = object()  # a key one side of a settings diff lacks


def _short(v: Any) -> str:
    r = "(none)" if v is _MISSING else repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


def settings_diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """``"key: old -> new"`` for each setting that differs (nested keys dotted), sorted."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return [] if old == new else [f"{prefix or 'settings'}: {_short(old)} -> {_short(new)}"]
    out = []
    for k in sorted(set(old) | set(new), key=str):
        a, b = old.get(k, _MISSING), new.get(k, _MISSING)
        if isinstance(a, dict) and isinstance(b, dict):
            out += settings_diff(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {_short(a)} -> {_short(b)}")
    return out


def plan_run(
    run_dir: str | Path,
    kind: RunKind,
    settings: dict,
    *,
    resume: bool = False,
    force: bool = False,
    cache: bool = False,
) -> RunPlan:
    """Whether ``kind``'s command reuses, resumes or starts afresh the run in ``run_dir``, asked
    for with ``settings``; reads the folder, changes nothing. In this order:

    * a stranger's files or another command's run: refused (:func:`check_run_dir`), even with
      ``force``;
    * ``force``: start afresh;
    * finished with these settings (record and product on disk): reuse it, unless ``resume``
      finds its checkpoint (which then trains nothing more);
    * ``cache`` (a folder the notebooks own) without ``resume``: a run with other settings is
      started afresh, an interrupted one with these settings resumed;
    * ``resume``: the checkpoint, made with these settings; else a one-line error;
    * anything else a run left: an interrupted run with these settings or any run with other
      settings is refused (one line saying how to go on); leftovers of an unfinished run with
      these settings and no checkpoint are started afresh; an empty folder starts afresh.
    """
    run = Path(run_dir)
    check_run_dir(run, kind)
    if force:
        return RunPlan(FRESH)
    want = normal(settings)
    old = _json(run / SETTINGS_FILE)  # None when missing (check_run_dir refused an unreadable one)
    same = old == want
    has_ckpt = (run / kind.checkpoint).is_file()
    done = _json(run / kind.done) if same and (run / kind.product).is_file() else None
    if isinstance(done, dict) and not (resume and has_ckpt):
        return RunPlan(REUSE, done)
    left = any((run / f).is_file() for f in kind.files - {SETTINGS_FILE})
    if cache and not resume:
        if left and not same:
            return RunPlan(FRESH)
        resume = has_ckpt
    if resume:
        _check_resumable(run, kind, old, want, has_ckpt)
        return RunPlan(RESUME)
    if left:
        _check_replaceable(run, kind, old, want, has_ckpt)
    return RunPlan(FRESH)


def _check_resumable(run: Path, kind: RunKind, old: Any, want: Any, has_ckpt: bool) -> None:
    """Refuse (one line) a resume without a checkpoint, or of a run with other settings."""
    sfile = run / SETTINGS_FILE
    if not has_ckpt:
        raise UserError(
            f"{run}: no {kind.checkpoint} to resume from; drop --resume to start a new run"
        )
    if old is None:
        raise UserError(
            f"{sfile}: missing, so the run cannot be checked; start afresh in a new --out folder"
        )
    if old != want:
        d = "; ".join(settings_diff(old, want)[:3])
        raise UserError(
            f"{sfile}: cannot resume with different settings ({d}); rerun "
            "with the original settings or use a new --out folder"
        )


def _check_replaceable(run: Path, kind: RunKind, old: Any, want: Any, has_ckpt: bool) -> None:
    """Refuse (one line) to start afresh over what a run left: an interrupted run with these
    settings (it can be resumed) or any run with other settings. Leftovers of an unfinished
    run with these settings and no checkpoint may go."""
    if old == want and has_ckpt:
        raise UserError(
            f"{run}: already holds an unfinished run with these settings; add "
            "--resume to continue it, or choose another --out"
        )
    if old != want:
        d = "; ".join(settings_diff(old, want)[:3]) if old is not None else f"no {SETTINGS_FILE}"
        raise UserError(
            f"{run}: already holds a run with other settings ({d}); choose "
            f"another --out, or {kind.restart}"
        )


def start_fresh(run_dir: str | Path, kind: RunKind, settings: dict | None = None) -> None:
    """Clear what an earlier run of ``kind`` left in ``run_dir`` (a checkpoint, products, its
    record: nothing else, :func:`check_run_dir` having passed) and, given ``settings``, record
    them as the new run's ``settings.json``."""
    run = Path(run_dir)
    for name in sorted(kind.files - {SETTINGS_FILE}):
        (run / name).unlink(missing_ok=True)
    for p in kind.extra(run):
        p.unlink()
    if settings is not None:
        atomic_write_text(
            run / SETTINGS_FILE, json.dumps(normal(settings), indent=2, sort_keys=True)
        )


_Checkpoint = TypeVar("_Checkpoint")


def begin_run(
    run_dir: str | Path,
    kind: RunKind,
    plan: RunPlan,
    settings: dict,
    load: Callable[[Path], _Checkpoint],
) -> _Checkpoint | None:
    """Act on a :func:`plan_run` verdict other than reuse, once the run's data has been read
    (so that a run which cannot read it leaves its folder as it was): the checkpoint to resume
    from, read by ``load(path)`` (each command checks its own), or None when the run starts
    afresh, the folder cleared of the earlier run and ``settings`` recorded."""
    if plan.action == RESUME:
        return load(Path(run_dir) / kind.checkpoint)
    start_fresh(run_dir, kind, settings)
    return None


def finish_run(run_dir: str | Path, kind: RunKind, record: dict) -> dict:
    """Write ``record`` (everything the finished run reports) as ``kind.done``: once, whole
    (atomically) and last, so that a run without it is unfinished; then drop the checkpoint of
    a kind that does not keep it (:attr:`RunKind.keeps_checkpoint`). Returns ``record``."""
    run = Path(run_dir)
    atomic_write_text(run / kind.done, json.dumps(record, indent=2, default=str))
    if not kind.keeps_checkpoint:
        (run / kind.checkpoint).unlink(missing_ok=True)
    return record


class CheckpointClock:
    """When a training loop writes its checkpoint: every ``every_iters`` iterations (0: not by
    count) or once ``every_s`` seconds have passed since the last write (0: whenever asked),
    whichever comes first, and at the run's end. With ``max_share``, the seconds between writes
    grow so that writing takes at most that share of the run (a 256^3 DVGO checkpoint is 2.6 GB:
    seconds a write). The cadence is I/O, not method, so no run's settings hold it (another
    cadence must not make a finished run stale)."""

    def __init__(self, every_s: float, every_iters: int = 0, max_share: float = 0.0):
        self.every_s, self.every_iters, self.max_share = every_s, every_iters, max_share
        self.wait = every_s
        self.restart()

    def restart(self, write_s: float = 0.0) -> float:
        """Count from now, as after a write that took ``write_s`` seconds (a loop's start
        counts as one); returns now."""
        self.last = time.perf_counter()
        if self.max_share > 0:
            self.wait = max(self.every_s, write_s / self.max_share)
        return self.last

    def due(self, it: int | None = None, final: bool = False) -> bool:
        """Whether the checkpoint is to be written now: ``final`` (the run's end), ``it``
        (iterations done) a multiple of ``every_iters``, or the seconds since the last write
        (``every_s``, or more under ``max_share``)."""
        by_count = self.every_iters > 0 and it is not None and it % self.every_iters == 0
        return final or by_count or time.perf_counter() - self.last >= self.wait
