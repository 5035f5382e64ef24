"""The A-E study measured on real photos, as a recorded result: ``tools/record_ssl_study.py``
turns a finished ``hw4 ssl study`` runs folder into ``figures/recorded/ssl_ae_<name>`` (the A-E
table over seeds, beside the report's) and ``ssl_ae_<name>.png`` (each setting's train and val
loss, seed 0), with the report's loss-curve claims checked in its provenance. Nothing here
trains: it reads the runs' ``run.json``."""

from __future__ import annotations

import json
from glob import glob
from pathlib import Path
from typing import Any

from ..errors import UserError
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


#: what every fine-tuning of one seed of an assembled study must share (its run.json settings)
SHARED_SETTINGS = (
    "profile",
    "arch",
    "image_size",
    "steps",
    "epochs",
    "batch",
    "lr",
    "gamma",
    "momentum",
)


def assemble_study(takes: dict[str, str], seeds: tuple[int, ...], dest: Path) -> Path:
    """A study folder in ``hw4 ssl study --runs`` layout (``run.json`` copies only) at ``dest``
    from finished fine-tunings made elsewhere, e.g. A, C and E of a budget curve and B and D of
    a supervised control. ``takes`` maps a setting to a folder pattern with ``{seed}`` (and glob
    wildcards), which must name exactly one finished run of that setting and seed; every run of
    a seed must share :data:`SHARED_SETTINGS`, so the five are one study. Everything is checked
    before anything is written."""
    from ..ssl.study import seed_dir  # torch: only when assembling

    copies: list[tuple[Path, Path]] = []
    for seed in seeds:
        shared: dict[str, tuple[str, Any]] = {}
        for setting, pattern in takes.items():
            hits = sorted(glob(pattern.format(seed=seed)))
            if len(hits) != 1:
                raise UserError(
                    f"--take {setting}={pattern}: {len(hits)} folders for seed {seed} "
                    f"({', '.join(hits[:3]) or 'none'}); give a pattern naming exactly one run"
                )
            f = Path(hits[0]) / "run.json"
            try:
                doc = json.loads(f.read_text())
            except (OSError, ValueError):  # missing or half-written: said below
                doc = {}
            got = (doc.get("kind"), doc.get("setting"), doc.get("settings", {}).get("seed"))
            if got != ("finetune", setting, seed):
                raise UserError(
                    f"{f}: not a finished fine-tuning of setting {setting}, seed {seed} "
                    f"(kind, setting, seed: {got}); point --take {setting} at one"
                )
            for k in SHARED_SETTINGS:
                v = doc["settings"].get(k)
                first = shared.setdefault(k, (setting, v))
                if first[1] != v:
                    raise UserError(
                        f"{f}: {k} = {v!r}, but setting {first[0]}'s run of seed {seed} has "
                        f"{first[1]!r}; the five settings of a study must be trained alike"
                    )
            copies.append((f, seed_dir(dest, seed) / f"finetune_{setting}" / "run.json"))
    for src, out in copies:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(src.read_text())
    return dest
