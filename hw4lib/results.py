"""The results store: every job writes its numbers as JSON under ``results/<profile>/``.

Each file carries a manifest (profile, data source, git commit, device, seconds, date) so a
table or figure built from it can state its provenance. Tables and figures are built from
these files, never from numbers typed into a notebook. Writes are atomic.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from . import PROJECT_ROOT


def results_root() -> Path:
    """``$HW4_RESULTS`` or ``<project>/results``."""
    return Path(os.environ.get("HW4_RESULTS") or PROJECT_ROOT / "results")


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT,
                             capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5)
        if out.returncode == 0:
            return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write via a temporary file in the same folder and rename: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` through a temporary file and ``os.replace``: never a torn checkpoint."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def manifest(profile: str, data_source: str, device: str, seconds: float,
             settings: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "profile": profile,
        "data_source": str(data_source),
        "git_commit": git_commit(),
        "device": device,
        "seconds": round(float(seconds), 2),
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "settings": settings or {},
    }


def write_result(name: str, data: dict[str, Any], *, profile: str, data_source: str,
                 device: str, seconds: float, settings: dict[str, Any] | None = None,
                 root: str | Path | None = None) -> Path:
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
    return sorted(str(p.relative_to(base).with_suffix("")) for p in base.rglob("*.json")
                  if str(p.relative_to(base)).startswith(prefix))


def _jsonable(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
