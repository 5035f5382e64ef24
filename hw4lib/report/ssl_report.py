"""Problem 2 as report tables and sentences, built from the SSL run summaries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from ..reference import AE_ACC


def ae_table(df: pd.DataFrame) -> pd.DataFrame:
    """The A-E accuracy table, ours beside the report's (``df`` from ``hw4lib.ssl.jobs.table``):
    the mean over seeds, their standard deviation only when some setting has two or more."""
    out = pd.DataFrame(
        {
            "setting": df["setting"],
            "pre-training": df["pre-training"],
            "fine-tuning": df["fine-tuning"],
            "val acc (ours)": df["val_acc"].astype(float),
        }
    )
    if (df["seeds"] >= 2).any():
        out["sd (seeds)"] = df["val_acc_std"].astype(float)
    out["seeds"] = df["seeds"].astype(int)
    out["val acc (report)"] = [AE_ACC[s] for s in df["setting"]]
    return out


def seed_runs(runs_root: str | Path) -> dict[str, dict[str, Any]]:
    """Fine-tuning summaries of seed 0 (``<runs_root>/finetune_<X>/run.json``), setting ->
    summary."""
    out = {}
    for f in sorted(Path(runs_root).glob("finetune_*/run.json")):
        d = json.loads(f.read_text())
        if d.get("kind") == "finetune":
            out[d["setting"]] = d
    return out


def findings(df: pd.DataFrame) -> list[str]:
    """The report's claims, each checked against ``df`` (columns ``setting``, ``val_acc``)."""
    acc = dict(zip(df["setting"], df["val_acc"].astype(float)))
    if not acc:
        return ["no fine-tuning results yet"]

    def claim(text: str, a: str, op: str, b: str) -> str:
        if a not in acc or b not in acc:
            return f"{text}: not measured"
        holds = acc[a] > acc[b] if op == ">" else acc[a] < acc[b]
        return (
            f"{text}: {'holds' if holds else 'does NOT hold'} "
            f"({a} {acc[a]:.3f} vs {b} {acc[b]:.3f})"
        )

    best = max(acc, key=acc.get)
    lines = [f"best setting: {best} ({acc[best]:.3f}); the report's best is C (0.585)"]
    lines.append(
        claim("SSL pre-training beats training from scratch, full model (C > A)", "C", ">", "A")
    )
    lines.append(
        claim(
            "SSL pre-training beats training from scratch, frozen backbone (E > A)", "E", ">", "A"
        )
    )
    lines.append(claim("SSL beats supervised pre-training, full model (C > B)", "C", ">", "B"))
    lines.append(claim("SSL beats supervised pre-training, frozen backbone (E > D)", "E", ">", "D"))
    return lines
