"""The results store: every job writes its numbers as JSON under ``results/<profile>/``.

Each file carries a manifest (profile, data source, git commit, device, seconds, date) so a
table or figure built from it can state its provenance. Tables and figures are built from
these files, never from numbers typed into a notebook. Writes are atomic (``hw4lib.atomic``).

Checkpoints go through here too, for nerf and ssl alike (which never import each other):
:func:`atomic_save` writes them and :func:`load_checkpoint` reads them without ever running
code from the file.
"""

from __future__ import annotations

import datetime as _dt
import json
import pickle
import re
import subprocess
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import PROJECT_ROOT, env
from .atomic import atomic_save, atomic_write_text  # noqa: F401 re-export: the one writer
from .errors import UserError


def results_root() -> Path:
    """``$HW4_RESULTS`` or ``<project>/results``."""
    return env.path("HW4_RESULTS")


def _git(*args: str) -> subprocess.CompletedProcess:
    """``git *args`` in the project, its output as text (raises OSError without git)."""
    return subprocess.run(
        ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5
    )


def git_commit() -> str:
    """The project's short commit, ``+dirty`` with uncommitted changes to tracked files;
    ``unknown`` outside a git checkout."""
    try:
        out = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
        if out.returncode == 0:
            return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


#: what :func:`load_checkpoint` says a file it refuses is not
OUR_CHECKPOINT = "a checkpoint this project wrote"


def load_checkpoint(
    path: str | Path, *, fix: str, keys: Iterable[str] = (), what: str = OUR_CHECKPOINT
) -> Any:
    """``torch.load`` a file that may come from someone else, without ever running its code.

    The one place a run's files are loaded (``hw4lib.weights`` reads third-party VGG files,
    also weights-only, with fallbacks of its own): always ``weights_only=True`` (torch's
    restricted unpickler: tensors, dicts, lists, tuples, numbers, strings, None), onto the
    CPU. A run folder gets shared (a grader's, a classmate's, a download), and a full unpickle
    of a crafted ``fine.pt`` or ``best.pt`` would run whatever it asks for; what this project
    stores needs nothing more. A file refused, truncated or corrupt, or (given ``keys``) not a
    dict holding them, raises :class:`UserError` naming ``path``, saying it is not ``what`` or
    is damaged, and ending with ``fix``. Nothing is deleted: the caller's user decides.
    """
    import torch

    path = Path(path)
    try:
        with warnings.catch_warnings():
            # a bare pickle (not torch.save's zip) makes torch warn about its protocol first:
            # noise on stderr in front of our one-line error
            warnings.filterwarnings(
                "ignore", category=UserWarning, module=r"torch\._weights_only_unpickler"
            )
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # weights_only refused an object (a function to call, a class, a numpy array): name
        # it, not torch's paragraph on how to load the file unsafely
        m = re.search(r"GLOBAL ([\w.]+)", str(e))
        asks = f"asks for {m.group(1)}" if m else "holds more than tensors and plain values"
        raise UserError(
            f"{path}: not {what}, or damaged: it {asks}, which was refused, not "
            f"run (unpickling it could execute code); {fix}"
        ) from None
    except OSError as e:  # unreadable, not damaged: say so (a permission, a folder ...)
        raise UserError(
            f"{path}: cannot be read ({e.strerror or type(e).__name__}); {fix}"
        ) from None
    except Exception as e:  # noqa: BLE001 -- torn zip (RuntimeError), empty (EOFError), junk ...
        raise UserError(
            f"{path}: damaged (truncated or corrupt) or not {what}: torch cannot "
            f"read it ({type(e).__name__}); {fix}"
        ) from None
    need = list(keys)
    if need and not (isinstance(obj, dict) and set(need) <= set(obj)):
        missing = [k for k in need if not isinstance(obj, dict) or k not in obj]
        raise UserError(f"{path}: not {what}: it lacks {', '.join(missing[:3])}; {fix}")
    return obj


def manifest(
    profile: str,
    data_source: str,
    device: str,
    seconds: float,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "profile": profile,
        "data_source": str(data_source),
        "git_commit": git_commit(),
        "device": device,
        "seconds": round(float(seconds), 2),
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "settings": settings or {},
    }


def write_result(
    name: str,
    data: dict[str, Any],
    *,
    profile: str,
    data_source: str,
    device: str,
    seconds: float,
    settings: dict[str, Any] | None = None,
    root: str | Path | None = None,
) -> Path:
    """Store ``data`` as ``<root>/<profile>/<name>.json`` with its manifest; returns the path.

    ``name`` may contain ``/`` (e.g. ``nerf/sweep_s0.5_v96``).
    """
    path = Path(root or results_root()) / profile / f"{name}.json"
    doc = {"manifest": manifest(profile, data_source, device, seconds, settings), "data": data}
    atomic_write_text(path, json.dumps(doc, indent=2, default=_jsonable))
    return path


def read_result(name: str, profile: str, root: str | Path | None = None) -> dict[str, Any] | None:
    """The stored document ``{"manifest": ..., "data": ...}``, or None if absent."""
    path = Path(root or results_root()) / profile / f"{name}.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def list_results(profile: str, prefix: str = "", root: str | Path | None = None) -> list[str]:
    """Names of the stored results of ``profile`` that start with ``prefix``."""
    base = Path(root or results_root()) / profile
    if not base.is_dir():
        return []
    return sorted(
        str(p.relative_to(base).with_suffix(""))
        for p in base.rglob("*.json")
        if str(p.relative_to(base)).startswith(prefix)
    )


def _jsonable(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
