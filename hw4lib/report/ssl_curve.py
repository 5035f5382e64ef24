"""The SSL budget curve as a figure and a table: settings A, C and E against BYOL's minutes, one
panel per data set (``tools/ssl_variants.py`` writes one JSON document per data set)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import pandas as pd

#: what each setting is, in the legend
LABELS = {"A": "A: from scratch", "C": "C: BYOL, full fine-tuning", "E": "E: BYOL, frozen + linear"}


def load_curves(folder: str | Path) -> list[dict]:
    """Every curve document (``<variant>.json``) in ``folder``, by variant name."""
    docs = [json.loads(p.read_text()) for p in sorted(Path(folder).glob("*.json"))]
    return [d for d in docs if "summary" in d and "variant" in d]


def curve_table(docs: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per (data set, BYOL budget): mean ± sd of A, C, E over seeds, and in how many
    seeds C and E beat A."""
    rows = []
    for d in docs:
        for r in d["summary"]:
            row = {"data": d["variant"], "byol steps": r["byol_steps"]}
            row["byol min"] = r["byol_minutes"]
            for x in ("A", "C", "E"):
                row[x] = f"{r[x]:.3f} ± {r[x + '_sd']:.3f}"
            row["C > A"] = f"{r['C>A']}/{r['seeds']}"
            row["E > A"] = f"{r['E>A']}/{r['seeds']}"
            rows.append(row)
    return pd.DataFrame(rows)


def budget_curve_figure(docs: Sequence[Mapping[str, Any]], title: str):
    """One panel per data set: best val accuracy (mean ± sd over seeds) of A, C and E against
    BYOL's CPU minutes; A does not pre-train, so it is one level across the panel."""
    fig, axes = plt.subplots(
        1, len(docs), figsize=(4.2 * len(docs), 3.6), squeeze=False, sharey=True
    )
    for ax, d in zip(axes[0], docs):
        s = d["summary"]
        x = [r["byol_minutes"] for r in s]
        for key, style in (("A", "--"), ("C", "-o"), ("E", "-s")):
            y = [r[key] for r in s]
            sd = [r[key + "_sd"] for r in s]
            ax.errorbar(x, y, yerr=sd, fmt=style, capsize=3, label=LABELS[key])
        n = s[0]["seeds"]
        ax.set(title=f"{d['variant']} ({n} seeds)", xlabel="BYOL pre-training, CPU minutes")
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("best val accuracy (mean ± sd)")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
