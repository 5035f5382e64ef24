"""The committed notebooks and report page: written back by ``hw4 report --publish`` with their
outputs, cleaned of widget state and machine paths, and checked (:func:`problems`).

A reader who opens ``notebooks/NN_*.ipynb`` on GitHub sees the quick profile's outputs; nbval
(smoke profile, ``--nbval-lax``) compares only the cells marked ``# NBVAL_CHECK_OUTPUT``, which
print nothing that differs between profiles.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .. import PROJECT_ROOT
from ..atomic import atomic_write_text
from ..errors import UserError

#: the profile whose outputs the committed notebooks carry
PUBLISHED_PROFILE = "quick"
#: outputs of widgets: without the kernel they render as "Loading widget..."
WIDGET_MIMES = (
    "application/vnd.jupyter.widget-view+json",
    "application/vnd.jupyter.widget-state+json",
)
#: output types that hold text (image data is base64 and never scanned)
TEXT_MIMES = ("text/plain", "text/html", "text/markdown", "text/latex")
#: where machine paths usually start (the project's own folder is added wherever it lives)
MACHINE_PREFIXES = (
    "/work",
    "/root",
    "/home",
    "/tmp",
    "/Users",
    "/private",
    "/var/folders",
    "/mnt",
    "/opt",
)


def machine_path(root: Path = PROJECT_ROOT) -> re.Pattern[str]:
    """An absolute path on some machine: under a usual prefix or the project's folder ``root``
    (a clone may live anywhere), not inside base64 (no letter, digit, +, / or = before it)."""
    starts = sorted({*MACHINE_PREFIXES, str(root.resolve())}, key=len, reverse=True)
    return re.compile(
        r"(?<![\w+/=.~-])(?:" + "|".join(map(re.escape, starts)) + r")(?:/[^\s'\"<>()\[\],;:`]*)?"
    )


#: what only a smoke-profile run prints (its stage table, sweep grid and profile name)
SMOKE_MARKS = (
    re.compile(r"profile: smoke\b"),
    re.compile(r"'32\^3'"),
    re.compile(r"^iters\s+80\s+50\s*$", re.M),
)


def shown(path_text: str, root: Path = PROJECT_ROOT) -> str:
    """A machine path as a published notebook may show it: relative to the project when inside
    it, else ``…/<last part>``."""
    p = path_text.rstrip("/.")
    r = str(root.resolve())
    if p == r:
        return "."
    if p.startswith(r + "/"):
        return p[len(r) + 1 :]
    return "…/" + p.rsplit("/", 1)[-1]


def scrub(text: str, root: Path = PROJECT_ROOT) -> str:
    """``text`` with every machine path replaced by :func:`shown`."""
    return machine_path(root).sub(lambda m: shown(m.group(0), root), text)


def _join(v: Any) -> str:
    return "".join(v) if isinstance(v, list) else str(v)


def clean(nb: dict[str, Any], profile: str = PUBLISHED_PROFILE) -> dict[str, Any]:
    """An executed notebook (nbformat JSON) as it is committed: papermill's injected
    parameters cell, its metadata and every cell's execution timestamps removed; widget
    outputs and state dropped; machine paths in text outputs made project-relative; the
    profile noted in ``metadata.hw4``."""
    meta = {k: v for k, v in nb.get("metadata", {}).items() if k not in ("widgets", "papermill")}
    meta["hw4"] = {"profile": profile}
    cells = []
    for c in nb["cells"]:
        tags = c.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags:
            continue  # the source's own parameters cell stays: it reads $HW4_PROFILE
        c = dict(c)
        c["metadata"] = {
            k: v for k, v in c.get("metadata", {}).items() if k not in ("execution", "papermill")
        }
        if c["cell_type"] == "code":
            c["outputs"] = [o for o in map(_clean_output, c.get("outputs", [])) if o]
        cells.append(c)
    return {**nb, "metadata": meta, "cells": cells}


def _clean_output(o: dict[str, Any]) -> dict[str, Any] | None:
    o = dict(o)
    if o["output_type"] == "stream":
        o["text"] = scrub(_join(o["text"]))
    elif o["output_type"] == "error":
        o["traceback"] = [scrub(t) for t in o.get("traceback", [])]
        o["evalue"] = scrub(o.get("evalue", ""))
    elif "data" in o:
        if set(WIDGET_MIMES) & set(o["data"]):
            return None  # a progress bar: its text form is the bar's first frame (0%)
        data = dict(o["data"])
        for k in TEXT_MIMES:
            if k in data:
                data[k] = scrub(_join(data[k]))
        o["data"] = data
    return o


def output_texts(nb: dict[str, Any]) -> list[str]:
    """Every text a reader sees in the outputs (image data left out)."""
    out = []
    for c in nb["cells"]:
        for o in c.get("outputs", []):
            if o["output_type"] == "stream":
                out.append(_join(o["text"]))
            elif o["output_type"] == "error":
                out.append(o.get("evalue", "") + "\n".join(o.get("traceback", [])))
            for k in TEXT_MIMES:
                if k in o.get("data", {}):
                    out.append(_join(o["data"][k]))
    return out


def problems(nb: dict[str, Any], profile: str = PUBLISHED_PROFILE) -> list[str]:
    """Why a committed notebook is not the published report (empty when it is): no outputs,
    another profile's outputs, smoke-profile leftovers, widget state, papermill's injected
    parameters or execution metadata, or a machine path."""
    found = []
    texts = output_texts(nb)
    if not texts:
        found.append("no outputs")
    shown_profile = nb.get("metadata", {}).get("hw4", {}).get("profile")
    if shown_profile != profile:
        found.append(f"outputs of profile {shown_profile!r}, not {profile!r}")
    if texts and not any(f"profile: {profile}" in t for t in texts):
        found.append(f"no output shows 'profile: {profile}'")
    for t in texts:
        for mark in SMOKE_MARKS:
            if m := mark.search(t):
                found.append(f"smoke-profile output: {m.group(0)!r}")
        for m in machine_path().finditer(t):
            found.append(f"machine path in an output: {m.group(0)!r}")
    if "widgets" in nb.get("metadata", {}):
        found.append("widget state in the metadata")
    if "papermill" in nb.get("metadata", {}):
        found.append("papermill metadata (its input and output paths)")
    for c in nb["cells"]:
        if "injected-parameters" in c.get("metadata", {}).get("tags", []):
            found.append("papermill's injected parameters cell")
        if {"execution", "papermill"} & set(c.get("metadata", {})):
            found.append("execution metadata in a cell")
        if any(set(WIDGET_MIMES) & set(o.get("data", {})) for o in c.get("outputs", [])):
            found.append("a widget output (renders as 'Loading widget...')")
    return list(dict.fromkeys(found))


def publish_notebooks(executed: Path, dest: Path, profile: str = PUBLISHED_PROFILE) -> list[Path]:
    """Write each executed notebook of ``executed`` (``reports/<profile>``) that ``dest``
    (``notebooks/``) holds back into ``dest``, cleaned (:func:`clean`); returns those written.
    Refuses (UserError) one whose cleaned copy still has :func:`problems`."""
    written = []
    for src in sorted(Path(executed).glob("[0-9][0-9]_*.ipynb")):
        target = Path(dest) / src.name
        if not target.is_file() or src.stem.endswith((".running", ".failed")):
            continue
        nb = clean(json.loads(src.read_text()), profile)
        if bad := problems(nb, profile):
            raise UserError(f"{src}: not published: {'; '.join(bad)}")
        atomic_write_text(target, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        written.append(target)
    return written


def publish_report_page(executed: Path, dest: Path) -> list[Path]:
    """``report.html`` (and ``report.pdf`` when made) exported from the cleaned notebook 06 of
    ``executed`` into ``dest`` (the committed ``figures/``); returns the files written."""
    from .pdf import report_pdf
    from .runner import export_html

    nbs = sorted(Path(executed).glob("06_*.ipynb"))
    nbs = [p for p in nbs if not p.stem.endswith((".running", ".failed"))]
    if not nbs:
        return []
    dest.mkdir(parents=True, exist_ok=True)
    clean_nb = dest / f".{nbs[0].name}.clean"
    clean_nb.write_text(json.dumps(clean(json.loads(nbs[0].read_text()))))
    try:
        html = export_html(clean_nb, dest / "report.html")
    finally:
        clean_nb.unlink(missing_ok=True)
    pdf, _ = report_pdf(html)
    return [html] + ([pdf] if pdf else [])


def committed_notebooks(nb_dir: Path = PROJECT_ROOT / "notebooks") -> list[Path]:
    return sorted(Path(nb_dir).glob("[0-9][0-9]_*.ipynb"))
