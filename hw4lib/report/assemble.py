"""Notebook 06: the whole report from stored files -- figures, tables and their provenance."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pandas as pd

from .. import PROJECT_ROOT
from ..data.generated import describe_source
from ..results import list_results, read_result
from .catalog import ITEMS, Item


def shown_path(p: str | Path | None) -> str | None:
    """A path as the report may print it: never this machine's absolute path.

    Generated data -> ``generated:<profile>/<part>``; inside the project -> relative to it;
    elsewhere -> ``…/<name>``. Non-paths (``generated:smoke``, None) pass unchanged."""
    if p is None:
        return None
    if not os.path.isabs(str(p)):
        return str(p)
    path = Path(p).resolve()
    shown = describe_source(path)
    if shown.startswith("generated:"):
        return shown
    try:
        return path.relative_to(PROJECT_ROOT.resolve()).as_posix()
    except ValueError:
        return f"…/{path.name}"


def embedded_image(path: str | Path):
    """An IPython display object for a PNG or GIF, embedded so exported HTML stands alone.

    A GIF goes in as an ``<img>`` data URI: nbconvert's HTML has no slot for ``image/gif``
    output and would print ``<IPython.core.display.Image object>`` instead."""
    from IPython.display import HTML, Image

    path = Path(path)
    if path.suffix.lower() != ".gif":
        return Image(filename=str(path))
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return HTML(f'<img src="data:image/gif;base64,{data}" alt="{path.name}" />')


def provenance(profile: str) -> pd.DataFrame:
    """One row per stored result: where its numbers came from."""
    rows = []
    for name in list_results(profile):
        m = (read_result(name, profile) or {}).get("manifest", {})
        rows.append(
            {
                "result": name,
                "profile": m.get("profile"),
                "data": shown_path(m.get("data_source")),
                "device": m.get("device"),
                "seconds": m.get("seconds"),
                "commit": m.get("git_commit"),
                "date": m.get("date"),
            }
        )
    return pd.DataFrame(
        rows, columns=["result", "profile", "data", "device", "seconds", "commit", "date"]
    )


def item_files(item: Item, fig_dir: Path) -> list[Path]:
    return [
        fig_dir / f"{item.stem}.{ext}"
        for ext in item.formats
        if (fig_dir / f"{item.stem}.{ext}").exists()
    ]


def missing(fig_dir: Path) -> list[str]:
    """Catalogue entries with no file in ``fig_dir``."""
    return [it.stem for it in ITEMS if not item_files(it, fig_dir)]


def display_items(fig_dir: Path, notebooks: tuple[str, ...] | None = None) -> list:
    """IPython display objects (heading, image or table) for each catalogued item present.

    Images are embedded, so the exported HTML is self-contained.
    """
    from IPython.display import Markdown

    out = []
    for it in ITEMS:
        if notebooks is not None and not any(it.notebook.startswith(n) for n in notebooks):
            continue
        files = item_files(it, fig_dir)
        if not files:
            out.append(Markdown(f"**{it.stem}** — not produced in this run ({it.notebook})."))
            continue
        out.append(Markdown(f"**{it.caption}** — `{files[0].name}`, from {it.notebook}"))
        f = files[0]
        if f.suffix in (".png", ".gif"):
            out.append(embedded_image(f))
        elif f.suffix in (".md", ".csv"):
            md = fig_dir / f"{it.stem}.md"
            out.append(Markdown(md.read_text()) if md.exists() else pd.read_csv(f))
    return out
