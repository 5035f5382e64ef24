"""Problem 2 as report tables and sentences, built from the SSL run summaries.

The one builder of the A-E table: ``hw4 ssl table``, ``hw4 ssl study``, notebook 05 and the
published ``ssl_ae_table`` all go through :func:`ae_table` (the report's numbers are added
here, once, from :mod:`hw4lib.reference`).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from ..reference import AE_ACC, AE_DATA

OURS = "val acc (ours)"
REPORT = "val acc (report)"


def ae_table(rows: pd.DataFrame, data: str) -> pd.DataFrame:
    """The A-E accuracy table, ours beside the report's (``rows`` from
    ``hw4lib.ssl.study.table``): the mean over seeds, their standard deviation only when some
    setting has two or more. ``data`` names what ours were measured on (kept in
    ``.attrs["data"]``, which :func:`hw4lib.report.tables.save_table` writes)."""
    out = pd.DataFrame(
        {
            "setting": rows["setting"],
            "pre-training": rows["pre-training"],
            "fine-tuning": rows["fine-tuning"],
            OURS: rows["val_acc"].astype(float),
        }
    )
    if (rows["seeds"] >= 2).any():
        out["sd (seeds)"] = rows["val_acc_std"].astype(float)
    out["seeds"] = rows["seeds"].astype(int)
    out[REPORT] = [AE_ACC[s] for s in rows["setting"]]
    out.attrs["data"] = f"ours: {data}; report: {AE_DATA}"
    return out


def format_table(table: pd.DataFrame) -> str:
    """Plain text of :func:`ae_table`'s table (the CLI's): a header, then one line per
    setting beginning with its letter."""
    lines = [
        f"{'setting':<8}{'pre-training':<24}{'fine-tuning':<36}{'val acc':>14}"
        f"{'seeds':>7}{'report':>8}"
    ]
    for _, r in table.iterrows():
        sd = r.get("sd (seeds)")
        acc = f"{r[OURS]:.3f}" + (f"±{sd:.3f}" if r["seeds"] > 1 and pd.notna(sd) else "")
        lines.append(
            f"{r['setting']:<8}{r['pre-training']:<24}{r['fine-tuning']:<36}"
            f"{acc:>14}{int(r['seeds']):>7}{r[REPORT]:>8.3f}"
        )
    return "\n".join(lines)


def seed_runs(runs_root: str | Path) -> dict[str, dict[str, Any]]:
    """Fine-tuning summaries of seed 0 (``<runs_root>/finetune_<X>/run.json``), setting ->
    summary."""
    out = {}
    for f in sorted(Path(runs_root).glob("finetune_*/run.json")):
        d = json.loads(f.read_text())
        if d.get("kind") == "finetune":
            out[d["setting"]] = d
    return out


def _verdict(ok: bool) -> str:
    return "holds" if ok else "does NOT hold"


# means over seeds of the same correct counts differ in the last bit with the order of the sum
_TIE = 1e-9


def _beats(a: float, b: float) -> bool:
    """``a > b`` by more than float noise: a tie is no win."""
    return a - b > _TIE


def findings(table: pd.DataFrame, runs: Mapping[str, Mapping[str, Any]] | None = None) -> list[str]:
    """Each of the report's claims, checked on ``table`` (:func:`ae_table`) and, for the
    loss-curve claims, on the seed-0 ``runs`` (:func:`seed_runs`): holds or not, with numbers.
    The report's own numbers come from :data:`hw4lib.reference.AE_ACC`."""
    acc = dict(zip(table["setting"], table[OURS].astype(float)))
    if not acc:
        return ["no fine-tuning results yet"]

    def claim(text: str, a: str, b: str) -> str:
        if a not in acc or b not in acc:
            return f"{text}: not measured"
        return (
            f"{text}: {_verdict(_beats(acc[a], acc[b]))} ({a} {acc[a]:.3f} vs {b} {acc[b]:.3f}; "
            f"the report: {a} {AE_ACC[a]:.3f} vs {b} {AE_ACC[b]:.3f})"
        )

    top = max(acc.values())
    best = " = ".join(s for s in acc if not _beats(top, acc[s]))  # ties share first place
    rbest = max(AE_ACC, key=AE_ACC.get)
    lines = [
        f"best setting: {best} ({top:.3f}); the report's best is {rbest} ({AE_ACC[rbest]:.3f})",
        claim("SSL pre-training beats training from scratch, full model (C > A)", "C", "A"),
        claim("SSL pre-training beats training from scratch, frozen backbone (E > A)", "E", "A"),
        claim("SSL beats supervised pre-training, full model (C > B)", "C", "B"),
        claim("SSL beats supervised pre-training, frozen backbone (E > D)", "E", "D"),
    ]
    if runs:
        lines += curve_findings(runs)
    return lines


def _history(run: Mapping[str, Any], key: str) -> list[tuple[int, float]]:
    return [(h["epoch"], float(h[key])) for h in run["history"] if h.get(key) is not None]


def overfits_early(run: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether validation loss bottoms out in the first half of training and is higher at the
    end (the report's "overfit early"), and the numbers that say so."""
    vl = _history(run, "val_loss")
    e_min, v_min = min(vl, key=lambda x: x[1])
    e_last, v_last = vl[-1]
    ok = e_min <= e_last / 2 and v_last > v_min
    return ok, (
        f"lowest val loss {v_min:.3f} at epoch {e_min} of {e_last}; {v_last:.3f} at the last"
    )


def acc_sd(run: Mapping[str, Any]) -> float:
    """Standard deviation of the validation accuracy across epochs (instability)."""
    accs = [v for _, v in _history(run, "val_acc")]
    return statistics.stdev(accs) if len(accs) > 1 else 0.0


def curve_findings(runs: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The report's loss-curve claims on the seed-0 runs: A, B and D overfit early; D is the
    unstable one (its explanation, that the supervised backbone's classes differ from the
    fine-tuning set's, applies to B as much as to D, so B is the comparison)."""
    lines = []
    for s in ("A", "B", "D"):
        if s not in runs:
            lines.append(f"{s} overfits early: not measured")
            continue
        ok, why = overfits_early(runs[s])
        lines.append(f"{s} overfits early (seed 0): {_verdict(ok)} ({why})")
    if "D" in runs:
        sd = {s: acc_sd(r) for s, r in sorted(runs.items())}
        others = ", ".join(f"{s} {v:.3f}" for s, v in sd.items() if s != "D")
        lines.append(
            "D's val accuracy is the least stable across epochs (seed 0): "
            f"{_verdict(all(sd['D'] > v for s, v in sd.items() if s != 'D'))} "
            f"(sd D {sd['D']:.3f}; {others})"
        )
        if "B" in sd:
            lines.append(
                "D less stable than B, same supervised backbone and class counts: "
                f"{_verdict(sd['D'] > sd['B'])} (sd D {sd['D']:.3f} vs B {sd['B']:.3f})"
            )
    return lines


def recorded_findings(root: Path | None = None) -> list[str]:
    """The report's accuracy claims checked on each recorded A-E table (``figures/recorded/
    ssl_ae*.csv``, the columns of ``ssl_ae_table.csv``), each headed by its data set."""
    from . import recorded

    lines = []
    for name in recorded.names(root or recorded.RECORDED):
        if name.startswith("ssl_ae"):
            table, prov = recorded.load(name, root or recorded.RECORDED)
            lines.append(f"{name} (recorded, not run now: {prov['data']}):")
            lines += [f"  {line}" for line in findings(table) + prov.get("curve_findings", [])]
    return lines
