"""The A-E study measured on real photos, as a recorded result: ``tools/record_ssl_study.py``
turns a finished ``hw4 ssl study`` runs folder into ``figures/recorded/ssl_ae_<name>`` (the A-E
table over seeds, beside the report's) and ``ssl_ae_<name>.png`` (each setting's train and val
loss, seed 0), with the report's loss-curve claims checked in its provenance. Nothing here
trains: it reads the runs' ``run.json``."""

from __future__ import annotations

import json
from pathlib import Path

from .recorded import RECORDED, provenance, save
from .ssl_report import ae_table, curve_findings, seed_runs


def study_seconds(runs_root: Path) -> float:
    """Seconds every finished run under ``runs_root`` trained (pre-trainings included)."""
    total = 0.0
    for f in Path(runs_root).rglob("run.json"):
        total += float(json.loads(f.read_text()).get("seconds") or 0.0)
    return total


def record_study(
    name: str, runs_root: Path, rows, data: str, command: str, root: Path = RECORDED
) -> list[Path]:
    """Write the recorded result ``ssl_ae_<name>`` from the study's ``rows``
    (``hw4lib.ssl.study.table``) and its seed-0 runs; the figure is drawn before anything is
    written."""
    from .figures import finetune_losses
    from .tables import save_figure

    runs = seed_runs(runs_root)
    fig = finetune_losses(runs, f"{data}; seed 0")
    prov = {
        **provenance(data, command, study_seconds(runs_root) / 60),
        "curve_findings": curve_findings(runs),
    }
    out = save_figure(fig, f"ssl_ae_{name}", Path(root))
    return out + save(f"ssl_ae_{name}", ae_table(rows, data), prov, root)
