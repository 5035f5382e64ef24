"""The SSL budget curve as a figure and a table: settings A, C and E against BYOL's steps, one
panel per data set; ``tools/ssl_variants.py --record`` writes each curve, with its provenance,
as a recorded result (``figures/recorded/ssl_curve_<set>``)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import pandas as pd

from .recorded import RECORDED, names, provenance, save

#: what each setting is, in the legend
LABELS = {"A": "A: from scratch", "C": "C: BYOL, full fine-tuning", "E": "E: BYOL, frozen + linear"}


def record_curve(
    doc: Mapping[str, Any], data: str, command: str, minutes: float, root: Path = RECORDED
) -> Path:
    """``root/ssl_curve_<variant>.csv`` (its :func:`curve_table`) and ``.json`` (provenance,
    rows and summary): a measured curve, for the notebooks to show as recorded."""
    meta = {**doc, **provenance(data, command, minutes)}
    return save(f"ssl_curve_{doc['variant']}", curve_table([doc]), meta, root)[1]


def recorded_curves(root: Path = RECORDED) -> list[dict]:
    """The curve documents recorded in ``root`` (``ssl_curve_<data>.json``: provenance plus the
    curve's rows and summary)."""
    docs = [json.loads((Path(root) / f"{n}.json").read_text()) for n in names(root)]
    return [d for d in docs if "summary" in d and "variant" in d]


def budget_findings(docs: Sequence[Mapping[str, Any]]) -> list[str]:
    """For each data set, whether C > A and E > A hold in every seed at each budget, and the
    smallest budget from which both hold at every larger one (if any)."""
    out = []
    for d in docs:
        s = d["summary"]
        ok = [r["C>A"] == r["seeds"] and r["E>A"] == r["seeds"] for r in s]
        parts = [
            f"{r['byol_steps']} steps ({r['byol_minutes']:.1f} min): C>A {r['C>A']}/{r['seeds']}, "
            f"E>A {r['E>A']}/{r['seeds']}"
            for r in s
        ]
        first = next((i for i in range(len(s)) if all(ok[i:])), None)
        verdict = (
            f"both hold in every seed from {s[first]['byol_steps']} BYOL steps"
            if first is not None
            else "C > A and E > A do not both hold in every seed at the largest budget"
        )
        out.append(f"{d['variant']}: {verdict} ({'; '.join(parts)})")
    return out


def curve_table(docs: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per (data set, BYOL budget): mean ± sd of A, C, E over seeds, and in how many
    seeds C and E beat A."""
    rows = []
    for d in docs:
        for r in d["summary"]:
            row = {"data": d["variant"], "byol steps": r["byol_steps"]}
            if "finetune_lr" in d:
                row["fine-tuning lr"] = f"{d['finetune_lr']:g}"
            row["byol min"] = r["byol_minutes"]
            for x in ("A", "C", "E"):
                row[x] = f"{r[x]:.3f} ± {r[x + '_sd']:.3f}"
            row["C > A"] = f"{r['C>A']}/{r['seeds']}"
            row["E > A"] = f"{r['E>A']}/{r['seeds']}"
            rows.append(row)
    return pd.DataFrame(rows)


def _grid(docs: Sequence[Mapping[str, Any]]) -> list[list[Mapping[str, Any] | None]]:
    """The curves in rows of one fine-tuning lr, the highest first (a curve without one: the last
    row) and columns of one data set (``set``, else the curve's name), in the order they come."""
    lrs = sorted({d.get("finetune_lr") for d in docs}, key=lambda lr: -(lr or 0.0))
    sets = list(dict.fromkeys(d.get("set", d["variant"]) for d in docs))
    grid: list[list[Mapping[str, Any] | None]] = [[None] * len(sets) for _ in lrs]
    for d in docs:
        grid[lrs.index(d.get("finetune_lr"))][sets.index(d.get("set", d["variant"]))] = d
    return grid


def budget_curve_figure(docs: Sequence[Mapping[str, Any]], title: str):
    """One panel per curve: best val accuracy (mean ± sd over seeds) of A, C and E against
    BYOL's optimizer steps (exact, where minutes depend on the machine and its load: the table
    and the title say them); A does not pre-train, so it is one level across the panel. A row
    per fine-tuning lr, a column per data set, one y scale for all."""
    grid = _grid(docs)
    rows, cols = len(grid), len(grid[0])
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False, sharey=True
    )
    drawn = []
    for ax, d in zip(axes.flat, (d for row in grid for d in row)):
        if d is None:
            ax.set_axis_off()
            continue
        drawn.append(ax)
        s = d["summary"]
        x = [r["byol_steps"] for r in s]
        for key, style in (("A", "--"), ("C", "-o"), ("E", "-s")):
            y = [r[key] for r in s]
            sd = [r[key + "_sd"] for r in s]
            ax.errorbar(x, y, yerr=sd, fmt=style, capsize=3, label=LABELS[key])
        n = sorted({r["seeds"] for r in s})  # a merged curve may have fewer at some budgets
        head = (
            f"{d['variant']} ({n[0]} seeds)"
            if len(n) == 1
            else (f"{d['variant']} ({n[0]}–{n[-1]} seeds a budget)")
        )
        if d.get("data"):  # a recorded curve says what it was measured on
            head += "\n" + textwrap.fill(d["data"], 48)
        ax.set_title(head, fontsize=9)
        ax.set_xlabel("BYOL pre-training steps (batch 64)")
        ax.set_xscale("log")
        ax.set_xticks(x, [str(v) for v in x])  # the budgets themselves, not powers of ten
        ax.minorticks_off()
        ax.grid(alpha=0.3)
    for row in axes:
        row[0].set_ylabel("best val accuracy (mean ± sd)")
    drawn[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
