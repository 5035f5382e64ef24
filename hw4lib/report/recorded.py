"""Results recorded on other data or machines (real photos, 800 px), committed under
``figures/recorded/`` and shown by the notebooks as "recorded, not run now".

A recorded result ``NAME`` is two files: ``NAME.csv`` (the table) and ``NAME.json`` (its
provenance: :data:`PROVENANCE` keys). Nothing here runs anything.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from .. import PROJECT_ROOT
from ..errors import UserError

#: the committed folder of recorded results
RECORDED = PROJECT_ROOT / "figures" / "recorded"
#: what a recorded table must say about itself
PROVENANCE = ("data", "command", "commit", "date", "cpu", "minutes")


def provenance(data: str, command: str, minutes: float) -> dict[str, Any]:
    """:data:`PROVENANCE` for a result measured now, here: this checkout's commit, today's
    date, this machine's CPU model."""
    import datetime
    import platform

    from ..results import git_commit

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "data": data,
        "command": command,
        "commit": git_commit(),
        "date": datetime.date.today().isoformat(),
        "cpu": f"{cpu or 'unknown CPU'}, {os.cpu_count()} cores",
        "minutes": round(minutes, 1),
    }


def names(root: Path = RECORDED) -> list[str]:
    """Recorded results present (a csv with its provenance json)."""
    return sorted(p.stem for p in Path(root).glob("*.csv") if p.with_suffix(".json").is_file())


def load(name: str, root: Path = RECORDED) -> tuple[pd.DataFrame, dict[str, Any]] | None:
    """``(table, provenance)`` of the recorded result ``name``; None when it is not recorded.
    Refuses a provenance that lacks any of :data:`PROVENANCE` (a table must say where it came
    from)."""
    csv, meta = Path(root) / f"{name}.csv", Path(root) / f"{name}.json"
    if not csv.is_file():
        return None
    if not meta.is_file():
        raise UserError(f"{csv}: recorded table without its provenance {meta.name}")
    prov = json.loads(meta.read_text())
    missing = [k for k in PROVENANCE if prov.get(k) in (None, "")]
    if missing:
        raise UserError(f"{meta}: provenance lacks {', '.join(missing)}")
    return pd.read_csv(csv), prov


def save(name: str, table: pd.DataFrame, prov: dict[str, Any], root: Path = RECORDED) -> list[Path]:
    """Write the recorded result ``name``: ``NAME.csv`` (``table``) and ``NAME.json`` (``prov``,
    :data:`PROVENANCE` keys and any more), atomically; returns both paths."""
    from ..atomic import atomic_write_text

    csv, meta = Path(root) / f"{name}.csv", Path(root) / f"{name}.json"
    atomic_write_text(csv, table.to_csv(index=False))
    atomic_write_text(meta, json.dumps(prov, indent=1) + "\n")
    return [csv, meta]


def caption(name: str, prov: dict[str, Any]) -> str:
    """One line saying what the recorded table is and that it was not run now."""
    return (
        f"**{name}** — recorded, not run now: {prov['data']}; `{prov['command']}` at commit "
        f"{str(prov['commit'])[:10]} on {prov['date']}, {prov['cpu']}, {prov['minutes']} min"
    )


def display_objects(prefix: str, root: Path = RECORDED) -> list[list]:
    """For every recorded result whose name starts with ``prefix``, its IPython display
    objects: caption, table, and its figure ``NAME.png`` when there is one."""
    from IPython.display import Image, Markdown

    out = []
    for name in names(root):
        if name.startswith(prefix):
            table, prov = load(name, root)
            png = Path(root) / f"{name}.png"
            out.append(
                [Markdown(caption(name, prov)), table]
                + ([Image(str(png))] if png.is_file() else [])
            )
    return out
