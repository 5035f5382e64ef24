"""Run folders: a command writes its run only into an empty folder or one holding its own run.

``hw4 nerf train``, ``hw4 ssl pretrain`` and ``hw4 ssl finetune`` each write a known set of
files into ``--out``. :func:`check_run_dir` refuses, before anything is written or deleted, a
folder holding any other file (a user's notes, someone else's ``settings.json``) or another
command's run; a folder the same command wrote stays reusable and resumable. Runs made before
this check existed are recognised by their file names and the keys of their ``settings.json``.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError


@dataclass(frozen=True)
class RunKind:
    command: str                       # how the user calls it, for the messages
    files: frozenset[str]              # every name the command writes in its run folder
    owns: Callable[[dict], bool]       # whether a settings.json (a dict) is this command's


NERF_TRAIN = RunKind("hw4 nerf train",
                     frozenset({"settings.json", "checkpoint.pt", "coarse.pt", "fine.pt",
                                "done.json"}),
                     lambda s: "nerf" in s and "stepsize" in s and "fine_voxels" in s)
SSL_PRETRAIN = RunKind("hw4 ssl pretrain",
                       frozenset({"settings.json", "last.pt", "backbone.pt", "run.json"}),
                       lambda s: s.get("method") in ("byol", "supervised") and "setting" not in s)
SSL_FINETUNE = RunKind("hw4 ssl finetune",
                       frozenset({"settings.json", "last.pt", "best.pt", "run.json"}),
                       lambda s: s.get("setting") in tuple("ABCDE") and "frozen" in s)
KINDS = (NERF_TRAIN, SSL_PRETRAIN, SSL_FINETUNE)

# what atomic_write_text / atomic_save leave behind when killed mid-write: .<name>.<random>.tmp
_TMP = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]+\.tmp$")


def kind_of_settings(settings: dict) -> RunKind | None:
    """The command whose run ``settings`` (a settings.json's content) describes, if any."""
    return next((k for k in KINDS if isinstance(settings, dict) and k.owns(settings)), None)


def _others_with(name: str, kind: RunKind) -> list[str]:
    return [k.command for k in KINDS if k is not kind and name in k.files]


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
        if p.is_file() and name in kind.files:
            continue
        others = _others_with(name, kind) if p.is_file() else []
        what = ("a file of a " + " or ".join(f"`{c}`" for c in others) + " run" if others
                else f"not written by `{kind.command}`")
        raise UserError(f"{p}: {what}; `{kind.command}` writes only into an empty folder or "
                        f"its own run; {fix}")
    sfile = run / "settings.json"
    if sfile.is_file():
        try:
            settings = json.loads(sfile.read_text())
        except (OSError, ValueError):
            settings = None
        owner = kind_of_settings(settings) if settings is not None else None
        if owner is not kind:
            what = f"the settings of a `{owner.command}` run" if owner else \
                f"not a `{kind.command}` run's settings"
            raise UserError(f"{sfile}: {what}; {fix}")
