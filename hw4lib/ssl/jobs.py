"""The high-level API the notebooks and the CLI call: pre-train, fine-tune, the A-E study, the
table.

Run folders (default ``runs/<profile>/ssl``)::

    <runs>/pretrain_byol  <runs>/pretrain_supervised  <runs>/finetune_{A..E}     (seed 0)
    <runs>/seed<k>/...                                                           (seed k > 0)

Every finished job also lands in the results store as ``ssl/pretrain_<method>[_s<k>]`` and
``ssl/finetune_<X>[_s<k>]``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Callable

from .. import PROJECT_ROOT
from ..config import get_profile, resolve_device
from ..errors import UserError
from ..parallel import Task, plan_workers, run_tasks
from ..results import write_result
from ..runs import REUSE, SSL_FINETUNE, SSL_PRETRAIN, plan_run
from .distributed import is_main_process, refuse_many
from .finetune import AE_SETTINGS, DESCRIPTIONS, finetune_settings, resolve_backbone, run_finetune
from .pretrain import imagenet_weights, pretrain_settings, run_pretrain


def default_runs_root(profile: str) -> Path:
    return PROJECT_ROOT / "runs" / profile / "ssl"


def seed_dir(runs_root: Path, seed: int) -> Path:
    return Path(runs_root) if seed == 0 else Path(runs_root) / f"seed{seed}"


def _suffix(seed: int) -> str:
    return "" if seed == 0 else f"_s{seed}"


def _store(name: str, summary: dict, profile: str, data_root: Path, device: str) -> None:
    write_result(
        name,
        summary,
        profile=profile,
        data_source=str(data_root),
        device=device,
        seconds=summary.get("seconds") or 0.0,
        settings=summary.get("settings"),
    )


def _pretrain_want(
    prof,
    method: str,
    data_root,
    epochs: int | None = None,
    seed: int = 0,
    steps: int | None = None,
    init=None,
) -> dict:
    return pretrain_settings(
        method, Path(data_root), prof.ssl, prof.name, epochs, seed, steps, init
    )


def _finetune_want(
    prof, setting: str, data_root, backbone_run=None, epochs: int | None = None, seed: int = 0
) -> dict:
    return finetune_settings(
        setting, Path(data_root), resolve_backbone(backbone_run), prof.ssl, prof.name, epochs, seed
    )


def pretrain(
    method: str,
    data_root: str | Path,
    run_dir: str | Path,
    profile: str | None = None,
    device: str = "auto",
    force: bool = False,
    progress: bool = True,
    epochs: int | None = None,
    resume: bool = False,
    seed: int = 0,
    replace_stale: bool = False,
    steps: int | None = None,
    init=None,
    result: str | None = None,
    on_row: Callable[[dict], None] | None = None,
    snapshots: tuple[int, ...] = (),
) -> dict:
    """BYOL or supervised pre-training on ``data_root/mini``; reuses a finished run with the same
    settings unless ``force``. Returns the run summary (history, kNN accuracy, backbone path);
    ``on_row`` sees each history row as it is made (live curves).
    ``steps``/``epochs`` override the profile's budget; ``init`` (a ResNet state-dict file or
    ``"imagenet"``) starts from those weights instead of a random init.

    ``replace_stale`` treats ``run_dir`` as a cache (the notebooks): a run made with other
    settings is started over and an interrupted one with the same settings resumed."""
    prof = get_profile(profile)
    dev = resolve_device(device)
    s = run_pretrain(
        method,
        Path(data_root),
        Path(run_dir),
        prof.ssl,
        profile=prof.name,
        device=dev,
        epochs=epochs,
        steps=steps,
        init=init,
        resume=resume,
        force=force,
        seed=seed,
        progress=progress,
        replace_stale=replace_stale,
        on_row=on_row,
        snapshots=snapshots,
    )
    if is_main_process():  # under torchrun, one result file (rank 0's)
        _store(
            result or f"ssl/pretrain_{method}{_suffix(seed)}", s, prof.name, Path(data_root), dev
        )
    return s


def finetune(
    setting: str,
    data_root: str | Path,
    run_dir: str | Path,
    backbone_run: str | Path | None = None,
    profile: str | None = None,
    device: str = "auto",
    force: bool = False,
    progress: bool = True,
    epochs: int | None = None,
    resume: bool = False,
    seed: int = 0,
    replace_stale: bool = False,
    result: str | None = None,
) -> dict:
    """Fine-tune setting A-E on ``data_root/office``; ``backbone_run`` is a pre-training run
    folder or a ResNet state-dict file (none for A). ``replace_stale`` as in :func:`pretrain`."""
    refuse_many("hw4 ssl finetune")
    prof = get_profile(profile)
    dev = resolve_device(device)
    s = run_finetune(
        setting,
        Path(data_root),
        Path(run_dir),
        prof.ssl,
        profile=prof.name,
        backbone=backbone_run,
        device=dev,
        epochs=epochs,
        resume=resume,
        force=force,
        seed=seed,
        progress=progress,
        replace_stale=replace_stale,
    )
    _store(result or f"ssl/finetune_{setting}{_suffix(seed)}", s, prof.name, Path(data_root), dev)
    return s


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
            profile=profile,
            device=device,
            force=force,
            progress=progress,
            seed=seed,
            replace_stale=replace_stale,
        )
        runs = {m: d / f"pretrain_{m}" for m in ("byol", "supervised")}
        tag = f" (seed {seed})" if len(seeds) > 1 else ""
        for m in ("byol", "supervised"):
            out.append(
                Task(
                    f"pretrain {m}{tag}",
                    pretrain,
                    dict(method=m, data_root=data_root, run_dir=runs[m], **kw),
                )
            )
        for setting in ("C", "A", "B", "E", "D"):
            method = AE_SETTINGS[setting][0]
            out.append(
                Task(
                    f"finetune {setting}{tag}",
                    finetune,
                    dict(
                        setting=setting,
                        data_root=data_root,
                        run_dir=d / f"finetune_{setting}",
                        backbone_run=runs[method] if method else None,
                        **kw,
                    ),
                    after=(f"pretrain {method}{tag}",) if method else (),
                )
            )
    return out


def _reused(job: Task, prof) -> bool:
    """Whether ``job`` would reuse a finished run (same settings) instead of training."""
    kw = job.kwargs
    if kw["force"]:
        return False
    want, args, kind = (
        (_pretrain_want, ("method", "data_root", "seed"), SSL_PRETRAIN)
        if job.fn is pretrain
        else (_finetune_want, ("setting", "data_root", "backbone_run", "seed"), SSL_FINETUNE)
    )
    try:
        return plan_run(kw["run_dir"], kind, want(prof, **{k: kw[k] for k in args})).action == REUSE
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

    ``workers`` processes run independent jobs side by side (default:
    :func:`hw4lib.parallel.plan_workers`'s rule: one at a time on a CPU). A failed job skips
    only the jobs that need it; the first failure is raised after the others finish."""
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
    kw = dict(profile=prof.name, device=device, force=force, progress=progress, replace_stale=True)
    pretrain(
        "byol",
        data_root,
        runs_root / "pretrain_byol",
        init="imagenet",
        result="ssl/as_done/pretrain_byol",
        **kw,
    )
    for setting in ("C", "E"):
        finetune(
            setting,
            data_root,
            runs_root / f"finetune_{setting}",
            backbone_run=runs_root / "pretrain_byol",
            result=f"ssl/as_done/finetune_{setting}",
            **kw,
        )
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
