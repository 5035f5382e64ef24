"""The A-E study: both pre-trainings and the five fine-tunings for each seed, as a job graph
(:func:`run_study`), the report "as done" (:func:`as_done`), and the raw rows of the finished
runs (:func:`table`; the report's table is built from them by
``hw4lib.report.ssl_report.ae_table``).

Run folders (default ``runs/<profile>/ssl``)::

    <runs>/pretrain_byol  <runs>/pretrain_supervised  <runs>/finetune_{A..E}     (seed 0)
    <runs>/seed<k>/...                                                           (seed k > 0)
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from .. import PROJECT_ROOT
from ..config import get_profile, resolve_device
from ..errors import UserError
from ..parallel import Task, plan_workers, run_tasks
from ..runs import REUSE
from ..weights.imagenet import imagenet_weights
from .ae import AE_SETTINGS, DESCRIPTIONS
from .distributed import refuse_many
from .finetune_run import finetune_plan, finetune_run
from .pretrain_run import pretrain_plan, pretrain_run
from .request import FinetuneRequest, PretrainRequest


def default_runs_root(profile: str) -> Path:
    """Where the study keeps its runs unless told: ``runs/<profile>/ssl``."""
    return PROJECT_ROOT / "runs" / profile / "ssl"


def seed_dir(runs_root: Path, seed: int) -> Path:
    """One seed's runs: ``runs_root`` itself for seed 0, ``runs_root/seed<k>`` otherwise."""
    return Path(runs_root) if seed == 0 else Path(runs_root) / f"seed{seed}"


def study_tasks(
    data_root: str | Path,
    runs_root: Path,
    profile: str,
    seeds: tuple[int, ...],
    device: str = "auto",
    force: bool = False,
    progress: bool = True,
    replace_stale: bool = True,
) -> list[Task]:
    """The study as a job graph, in priority order: each seed's BYOL first (with C after it, the
    longest chain), then the supervised backbone, then the fine-tunings that wait on nothing
    or on it."""
    out = []
    for seed in seeds:
        d = seed_dir(runs_root, seed)
        kw = dict(
            data=data_root,
            profile=profile,
            device=device,
            force=force,
            seed=seed,
            replace_stale=replace_stale,
        )
        runs = {m: d / f"pretrain_{m}" for m in ("byol", "supervised")}
        tag = f" (seed {seed})" if len(seeds) > 1 else ""
        for m in ("byol", "supervised"):
            req = PretrainRequest(m, out=runs[m], **kw)
            out.append(Task(f"pretrain {m}{tag}", pretrain_run, dict(req=req, progress=progress)))
        for setting in ("C", "A", "B", "E", "D"):
            method = AE_SETTINGS[setting][0]
            req = FinetuneRequest(
                setting,
                out=d / f"finetune_{setting}",
                backbone=runs[method] if method else None,
                **kw,
            )
            out.append(
                Task(
                    f"finetune {setting}{tag}",
                    finetune_run,
                    dict(req=req, progress=progress),
                    after=(f"pretrain {method}{tag}",) if method else (),
                )
            )
    return out


def _reused(task: Task, prof) -> bool:
    """Whether ``task`` would reuse a finished run (same settings) instead of training."""
    req = task.kwargs["req"]
    plan = pretrain_plan if isinstance(req, PretrainRequest) else finetune_plan
    try:
        return plan(req, prof.ssl, prof.name)[1].action == REUSE
    except UserError:
        return False


def run_study(
    data_root: str | Path,
    runs_root: str | Path | None = None,
    profile: str | None = None,
    seeds: tuple[int, ...] | None = None,
    device: str = "auto",
    force: bool = False,
    progress: bool = True,
    replace_stale: bool = True,
    workers: int | None = None,
):
    """Both pre-trainings and A-E for each seed (finished runs are reused, runs made with other
    settings replaced); returns :func:`table`.

    ``workers`` processes run independent runs side by side (default:
    :func:`hw4lib.parallel.plan_workers`'s rule: one at a time on a CPU). A failed run skips
    only the runs that need it; the first failure is raised after the others finish."""
    refuse_many("hw4 ssl study")
    prof = get_profile(profile)
    runs_root = Path(runs_root) if runs_root else default_runs_root(prof.name)
    seeds = tuple(seeds if seeds is not None else prof.ssl.seeds)
    tasks = study_tasks(
        data_root, runs_root, prof.name, seeds, device, force, progress, replace_stale
    )
    w = plan_workers("ssl_study", 2, resolve_device(device), count=workers)
    if w.count > 1 and all(_reused(t, prof) for t in tasks):
        w = plan_workers("ssl_study", 1)  # nothing to train: workers would cost more than reading
    if w.count > 1:  # one progress bar per worker would interleave: log lines instead
        tasks = [replace(t, kwargs={**t.kwargs, "progress": False}) for t in tasks]
    run_tasks(tasks, w, label="hw4 ssl study")
    return table(runs_root)


def as_done(
    data_root: str | Path,
    runs_root: str | Path | None = None,
    profile: str | None = None,
    device: str = "auto",
    force: bool = False,
    progress: bool = True,
):
    """The report "as done": BYOL started from torchvision's ImageNet-supervised weights (what
    its code did, ``models.resnet50(pretrained=True)``), then C and E. Returns their table, or,
    when the weights are not on this machine, the one line saying which file is missing."""
    prof = get_profile(profile)
    try:
        imagenet_weights(prof.ssl.backbone)
    except UserError as e:
        return str(e)
    runs_root = Path(runs_root or default_runs_root(prof.name).with_name("ssl_as_done"))
    byol = runs_root / "pretrain_byol"
    kw = dict(data=data_root, profile=prof.name, device=device, force=force, replace_stale=True)
    req = PretrainRequest(
        "byol", out=byol, init="imagenet", result="ssl/as_done/pretrain_byol", **kw
    )
    pretrain_run(req, progress=progress)
    for setting in ("C", "E"):
        req = FinetuneRequest(
            setting,
            out=runs_root / f"finetune_{setting}",
            backbone=byol,
            result=f"ssl/as_done/finetune_{setting}",
            **kw,
        )
        finetune_run(req, progress=progress)
    return table(runs_root)


def finetune_runs(runs_root: str | Path) -> list[dict]:
    """Every finished fine-tuning ``run.json`` under ``runs_root``."""
    out = []
    for f in sorted(Path(runs_root).rglob("run.json")):
        try:
            d = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if d.get("kind") == "finetune":
            out.append(d)
    return out


def table(runs_root: str | Path):
    """The A-E study's raw rows: one per setting (mean and sample sd over seeds of the best
    val accuracy, and how many seeds). The report's table (ours beside the report's numbers)
    is built from these by ``hw4lib.report.ssl_report.ae_table``."""
    import pandas as pd  # slow to import; only the table needs it

    runs = finetune_runs(runs_root)
    rows = []
    for setting in AE_SETTINGS:
        rs = [r for r in runs if r["setting"] == setting]
        if not rs:
            continue
        acc = pd.Series([r["best_val_acc"] for r in rs], dtype=float)
        rows.append(
            {
                "setting": setting,
                "pre-training": DESCRIPTIONS[setting][0],
                "fine-tuning": DESCRIPTIONS[setting][1],
                "val_acc": acc.mean(),
                # sample sd over seeds; undefined for one
                "val_acc_std": acc.std(ddof=1) if len(rs) > 1 else float("nan"),
                "final_val_acc": float(pd.Series([r["final_val_acc"] for r in rs]).mean()),
                "seeds": len(rs),
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "setting",
            "pre-training",
            "fine-tuning",
            "val_acc",
            "val_acc_std",
            "final_val_acc",
            "seeds",
        ],
    )
