"""The budget curve: accuracy of settings A, C and E against BYOL's budget, over seeds.

One BYOL run per seed goes to the largest budget and saves its backbone at the smaller ones
(``snapshots``); C and E fine-tune from each. The report's schedule (StepLR) depends on the step
alone, not on the run's length, so the snapshot at step N is the backbone of an N-step run bit
for bit (same data order, same draws): one run gives every point.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import replace
from pathlib import Path

from ..config import SSLConfig, get_profile
from ..errors import UserError
from .finetune_run import finetune_run
from .pretrain import snapshot_path
from .pretrain_run import pretrain_run
from .request import FinetuneRequest, PretrainRequest

CURVE_SETTINGS = ("A", "C", "E")


def _curve_seed(
    data_root: Path,
    d: Path,
    budgets: list[int],
    seed: int,
    kw: dict,
    tag: str,
    pretrain: tuple[Path, Path],
    progress: bool,
    finetune: tuple[SSLConfig | None, str] = (None, ""),
) -> list[dict]:
    """One seed's rows: BYOL to the largest budget (on ``pretrain``'s data, in its runs folder),
    A once, C and E from every budget's backbone; ``kw``: what every request shares;
    ``finetune``: the fine-tunings' settings (None: the profile's) and their folders' suffix."""
    top = budgets[-1]
    pretrain_data, pretrain_runs = pretrain
    byol_dir = pretrain_runs / f"seed{seed}" / "pretrain_byol"
    s = pretrain_run(
        PretrainRequest(
            "byol",
            data=pretrain_data,
            out=byol_dir,
            steps=top,
            snapshots=tuple(budgets[:-1]),
            seed=seed,
            result=f"ssl/curve/{tag}/pretrain_byol_s{seed}",
            **kw,
        ),
        progress=progress,
    )

    cfg, suffix = finetune

    def run_setting(setting: str, out: Path, result: str, backbone: Path | None = None) -> dict:
        req = FinetuneRequest(
            setting,
            data=data_root,
            out=out.with_name(out.name + suffix),
            backbone=backbone,
            seed=seed,
            result=f"ssl/curve/{tag}/{result}{suffix}_s{seed}",
            **kw,
        )
        return finetune_run(req, cfg=cfg, progress=progress)

    a = run_setting("A", d / "finetune_A", "A")
    rows = []
    for b in budgets:
        backbone = byol_dir / "backbone.pt" if b == top else snapshot_path(byol_dir, b)
        row = {
            "seed": seed,
            "byol_steps": b,
            # steps cost the same: the time to step b is its share of the run's
            "byol_minutes": round(s["seconds"] * b / top / 60, 2),
            "A": a["best_val_acc"],
        }
        for x in ("C", "E"):
            r = run_setting(x, d / f"finetune_{x}_{b}", f"{x}_{b}", backbone)
            row[x] = r["best_val_acc"]
        rows.append(row)
    return rows


def budget_curve(
    data_root: str | Path,
    runs_root: str | Path,
    budgets: tuple[int, ...],
    seeds: tuple[int, ...] = (0, 1, 2),
    profile: str | None = None,
    device: str = "auto",
    progress: bool = True,
    pretrain_data: str | Path | None = None,
    pretrain_runs: str | Path | None = None,
    finetune_lr: float | None = None,
) -> list[dict]:
    """One row per (seed, BYOL budget): best val accuracy of A, C and E. Finished runs with
    the same settings are reused, so an interrupted curve continues where it stopped.

    ``pretrain_data``/``pretrain_runs``: BYOL on another root's ``mini`` in another runs folder
    (default: ``data_root`` and ``runs_root``): variants that differ only downstream share one
    pre-training (a finished one is reused). ``finetune_lr``: A, C and E fine-tune at this lr
    instead of the profile's, in folders named ``..._lr<lr>`` beside the profile's (BYOL's runs
    are shared)."""
    if not budgets or min(budgets) < 1:
        raise UserError(f"--budgets {budgets}: give positive step counts, e.g. 80,250,500")
    prof = get_profile(profile)
    kw = dict(profile=prof.name, device=device, replace_stale=True)
    tag = Path(data_root).resolve().name
    pretrain = (Path(pretrain_data or data_root), Path(pretrain_runs or runs_root))
    finetune = (None, "")
    if finetune_lr is not None:
        finetune = (with_finetune_lr(prof.ssl, finetune_lr), lr_suffix(finetune_lr))
    rows = []
    for seed in seeds:
        d = Path(runs_root) / f"seed{seed}"
        rows += _curve_seed(
            Path(data_root), d, sorted(set(budgets)), seed, kw, tag, pretrain, progress, finetune
        )
    return rows


def with_finetune_lr(cfg: SSLConfig, lr: float) -> SSLConfig:
    """``cfg`` fine-tuning A-E at ``lr`` (checked)."""
    if not lr > 0:
        raise UserError(f"--finetune-lr {lr}: give a positive learning rate, e.g. 0.003")
    return replace(cfg, finetune_lr=lr)


def lr_suffix(lr: float) -> str:
    """What a curve fine-tuned at ``lr`` adds to its folders' and files' names: ``_lr0.003``."""
    return f"_lr{lr:g}"


def merge_rows(rows: list[dict], earlier: list[dict]) -> list[dict]:
    """``rows`` with ``earlier``'s rows at the (seed, budget) points they lack, sorted: two runs
    of one curve (a snapshot at step N is the N-step run), so where both have a point, A, C and
    E must be equal, else the runs differ and are not merged (:class:`UserError`)."""
    have = {(r["seed"], r["byol_steps"]): r for r in rows}
    out = list(rows)
    for r in earlier:
        key = (r["seed"], r["byol_steps"])
        mine = have.get(key)
        if mine is None:
            out.append(r)
        elif any(mine[x] != r[x] for x in CURVE_SETTINGS):
            raise UserError(
                f"seed {key[0]} at {key[1]} BYOL steps: the earlier curve has "
                + ", ".join(f"{x} {r[x]:.4f}" for x in CURVE_SETTINGS)
                + ", this one "
                + ", ".join(f"{x} {mine[x]:.4f}" for x in CURVE_SETTINGS)
                + "; they are not one curve (other settings or data, or another number of "
                "threads: float sums differ with it), so they are not merged"
            )
    return sorted(out, key=lambda r: (r["seed"], r["byol_steps"]))


def summarize(rows: list[dict]) -> list[dict]:
    """Mean and sample sd over seeds at each budget, and in how many seeds C > A and E > A."""
    out = []
    for b in sorted({r["byol_steps"] for r in rows}):
        rs = [r for r in rows if r["byol_steps"] == b]
        row = {
            "byol_steps": b,
            "byol_minutes": round(statistics.mean(r["byol_minutes"] for r in rs), 2),
            "seeds": len(rs),
        }
        for x in CURVE_SETTINGS:
            v = [r[x] for r in rs]
            row[x] = statistics.mean(v)
            row[f"{x}_sd"] = statistics.stdev(v) if len(v) > 1 else math.nan
        row["C>A"] = sum(r["C"] > r["A"] for r in rs)
        row["E>A"] = sum(r["E"] > r["A"] for r in rs)
        out.append(row)
    return out
