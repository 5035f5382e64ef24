"""The pre-training run folder: what defines a run (its settings), the data and model it
starts from, and :func:`pretrain_run`, the entry that owns the folder (plan, set up, train with
:func:`.pretrain.pretrain`, record). One process, or N data-parallel ones under torchrun /
accelerate launch (:mod:`.distributed`; only rank 0 writes files).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..config import SSLConfig, get_profile, resolve_device
from ..errors import UserError
from ..runs import REUSE, SSL_PRETRAIN, RunPlan, plan_run
from ..weights.imagenet import imagenet_weights
from . import distributed
from .augment import LIGHT, BatchAugment, byol_views, spec_from_dict
from .datasets import ImageSet, make_loader
from .models import file_sha1, load_backbone_file, make_backbone, make_byol, make_classifier
from .pretrain import _PretrainSetup, pretrain
from .request import PretrainRequest, record

METHODS = ("byol", "supervised")


def mini_paths(data_root: Path) -> tuple[Path, Path]:
    """``mini/train.csv`` and ``mini/train/`` under a course-layout data folder (checked)."""
    data_root = Path(data_root)
    csv_path, img_dir = data_root / "mini" / "train.csv", data_root / "mini" / "train"
    if not csv_path.is_file():
        raise UserError(
            f"{csv_path}: not found; --data must hold mini/train.csv and mini/train/ "
            "(make one with `hw4 data images --out DIR`)"
        )
    return csv_path, img_dir


def pretrain_budget(
    method: str, cfg: SSLConfig, epochs: int | None = None, steps: int | None = None
) -> tuple[int | None, int | None]:
    """``(epochs, steps)``, exactly one of them set: an explicit ``steps`` or ``epochs``, else the
    profile's step budget (CPU profiles: the corpus size then sets variety, not time), else its
    epochs (the report's)."""
    if epochs is not None and steps is not None:
        raise UserError("--epochs and --steps both given: choose one budget")
    for name, v in (("--epochs", epochs), ("--steps", steps)):
        if v is not None and v < 1:
            raise UserError(f"{name} {v}: must be at least 1")
    if epochs is None and steps is None:
        steps = cfg.pretrain_steps if method == "byol" else cfg.supervised_steps
        if steps is None:
            epochs = cfg.pretrain_epochs if method == "byol" else cfg.supervised_epochs
    return epochs, steps


def pretrain_settings(
    method: str,
    data_root: Path,
    cfg: SSLConfig,
    profile: str,
    epochs: int | None = None,
    seed: int = 0,
    steps: int | None = None,
    init: str | Path | None = None,
    processes: int | None = None,
    snapshots: tuple[int, ...] = (),
) -> dict:
    """Everything that defines a pre-training run (a resume must match it exactly).

    ``snapshots``: steps at which the backbone is also saved (``backbone_step<N>.pt``), recorded
    only when given: points of a budget curve from one run.

    ``processes`` (default: what the launcher started, :func:`.distributed.world_from_env`)
    is recorded only when above 1, so one-process runs keep the settings they always had."""
    if method not in METHODS:
        raise UserError(f"unknown pre-training method {method!r}: choose byol or supervised")
    ep, st = pretrain_budget(method, cfg, epochs, steps)
    s = {
        "method": method,
        "data": str(Path(data_root).resolve()),
        "profile": profile,
        "arch": cfg.backbone,
        "image_size": cfg.image_size,
        "epochs": ep,
        "steps": st,
        "batch": cfg.pretrain_batch,
        "momentum": cfg.momentum,
        "lr": cfg.pretrain_lr if method == "byol" else cfg.supervised_lr,
        "step_size": cfg.pretrain_step_size,
        "gamma": cfg.pretrain_gamma,
        "seed": seed,
        "init": init_record(init, cfg.backbone),
    }
    if method == "byol":
        s.update(
            byol_hidden=cfg.byol_hidden,
            byol_projection=cfg.byol_projection,
            byol_ema=cfg.byol_ema,
            augment=[asdict(v) for v in byol_views(cfg)],
        )
    else:
        s.update(augment=asdict(LIGHT))
    processes = distributed.world_from_env() if processes is None else processes
    if processes > 1:
        s["processes"] = processes
    if snapshots:
        s["snapshots"] = snapshot_steps(snapshots, st)
    return s


def snapshot_steps(steps: tuple[int, ...], total: int | None) -> list[int]:
    """The sorted snapshot steps, each inside a step budget of ``total``."""
    if total is None:
        raise UserError("backbone snapshots need a budget in steps (--steps), not epochs")
    bad = [n for n in steps if not 0 < n < total]
    if bad:
        raise UserError(f"snapshot steps {bad}: each must lie between 1 and {total - 1}")
    return sorted(set(steps))


def init_record(init: str | Path | None, arch: str) -> dict | None:
    """``{"path", "sha1"}`` of the state dict a run starts from (``--init``), checked to be a
    ``arch`` ResNet; None for a random start. One-line errors, before anything is written."""
    if init is None:
        return None
    path = imagenet_weights(arch) if str(init) == "imagenet" else Path(init)
    got, _ = load_backbone_file(path)
    if got != arch:
        raise UserError(
            f"{path}: a {got} state dict, but this profile pre-trains a {arch}; "
            f"pass {arch} weights (or a profile whose backbone is {got})"
        )
    return {"path": str(path.resolve()), "sha1": file_sha1(path)}


def _build(
    method: str, s: dict, n_classes: int, device: torch.device
) -> tuple[nn.Module, nn.Module]:
    """(trainable model, backbone inside it), started from ``s["init"]`` when given, with plain
    BatchNorm: built before any process group exists, as byol-pytorch's predictor would
    otherwise pick SyncBatchNorm on its own (which has no CPU kernels)."""
    init = load_backbone_file(s["init"]["path"])[1] if s["init"] else None
    if method == "byol":
        net = make_backbone(s["arch"])
        if init is not None:
            net.load_state_dict(init)
        net.to(device)
        views = tuple(BatchAugment(spec_from_dict(v)) for v in s["augment"])
        model = make_byol(
            net, s["image_size"], s["byol_hidden"], s["byol_projection"], s["byol_ema"], views
        )
        return model, net
    model = make_classifier(s["arch"], n_classes, init)
    return model.to(device), model


def _check_resume_processes(run_dir: Path, world: int) -> None:
    """A run resumes on the number of processes it was trained on: each process's share of a
    batch, its random draws and (on CPUs) its BatchNorm statistics depend on it."""
    sfile = run_dir / "settings.json"
    if not (sfile.is_file() and (run_dir / "last.pt").is_file()):
        return
    try:
        was = json.loads(sfile.read_text()).get("processes", 1)
    except (json.JSONDecodeError, AttributeError):
        return  # check_run_dir names the broken file
    if was != world:
        how = (
            "`hw4 ssl pretrain ... --resume`"
            if was == 1
            else f"`torchrun --nproc_per_node {was} -m hw4lib ssl pretrain ... --resume`"
        )
        raise UserError(
            f"{sfile}: this run was trained on {was} process(es), this resume has "
            f"{world}; resume it with {how}, or start afresh in a new --out folder"
        )


def _mini_data(
    method: str, data_root: Path, settings: dict, cfg: SSLConfig, world: int, progress: bool
) -> tuple[ImageSet, int]:
    """``mini``'s training images, read (and so checked; supervised needs every label), and
    the batch they train in: the settings', at most the corpus, in ``world`` shares that
    BatchNorm can train on."""
    csv_path, img_dir = mini_paths(data_root)
    ds = ImageSet(
        csv_path,
        img_dir,
        settings["image_size"],
        require_label=method == "supervised",
        cache=cfg.cache_images,
        progress=progress,
    )
    batch = min(settings["batch"], len(ds))
    if batch < 2:
        raise UserError(
            f"{csv_path}: {len(ds)} image(s); pre-training needs at least 2 "
            "(BatchNorm cannot train on a batch of one)"
        )
    if batch % world or batch // world < 2:
        raise UserError(
            f"batch {batch} does not split into {world} shares of 2 or more "
            f"images; use a number of processes that divides {batch} into such "
            "shares"
        )
    return ds, batch


def _loader(ds: ImageSet, batch: int, cfg: SSLConfig, d: distributed.Dist, seed: int) -> DataLoader:
    """Shuffled whole batches, this process's share of each, in an order ``seed`` fixes."""
    return make_loader(
        ds,
        batch,
        shuffle=True,
        drop_last=True,
        workers=cfg.workers,
        device=d.device.type,
        seed=seed,
        shard=(d.rank, d.world),
    )


def pretrain_plan(
    req: PretrainRequest, cfg: SSLConfig, profile: str, world: int | None = None
) -> tuple[dict, RunPlan]:
    """The settings ``req`` asks for under ``cfg`` (on ``world`` processes, default: what the
    launcher started) and what becomes of its run folder: reused, resumed or started afresh
    (:func:`hw4lib.runs.plan_run`). Reads, changes nothing; one-line errors."""
    out = Path(req.out)
    world = distributed.world_from_env() if world is None else world
    settings = pretrain_settings(
        req.method,
        Path(req.data),
        cfg,
        profile,
        req.epochs,
        req.seed,
        req.steps,
        req.init,
        world,
        req.snapshots,
    )
    if req.resume:
        _check_resume_processes(out, world)
    plan = plan_run(
        out, SSL_PRETRAIN, settings, resume=req.resume, force=req.force, cache=req.replace_stale
    )
    return settings, plan


def _setup(
    req: PretrainRequest,
    cfg: SSLConfig,
    settings: dict,
    plan: RunPlan,
    d: distributed.Dist,
    progress: bool,
) -> _PretrainSetup:
    """The data (read, and so checked, before the run folder is touched), its loader and the
    model, seeded as ``req.seed`` says."""
    ds, batch = _mini_data(req.method, Path(req.data), settings, cfg, d.world, progress)
    torch.manual_seed(req.seed)
    loader = _loader(ds, batch, cfg, d, req.seed)
    total = settings["steps"] or settings["epochs"] * len(loader)
    model, net = _build(req.method, settings, len(ds.classes), d.device)
    if d.rank:  # the same initial weights everywhere; each process its own augmentation draws
        torch.manual_seed(req.seed * 1_000_003 + d.rank)
    return _PretrainSetup(
        req.method, settings, Path(req.out), cfg, plan, ds, loader, batch, total, model, net
    )


def pretrain_run(
    req: PretrainRequest,
    *,
    cfg: SSLConfig | None = None,
    progress: bool = True,
    on_row: Callable[[dict], None] | None = None,
) -> dict:
    """Pre-train as ``req`` asks into ``req.out`` (``backbone.pt``, ``run.json``) and store the
    summary in the results store; returns the summary (history, kNN accuracy, backbone path).
    A finished run with the same settings is reused (:func:`pretrain_plan`).

    ``cfg``: the profile's SSL settings unless given (tests: smaller models). ``on_row(row)``
    sees each history row as it is made (live curves). Under torchrun / accelerate launch the
    run resumes on the number of processes it began with, and rank 0 alone writes files."""
    prof = get_profile(req.profile)
    cfg = prof.ssl if cfg is None else cfg
    dev = resolve_device(req.device)
    d = distributed.from_env(dev)
    settings, plan = pretrain_plan(req, cfg, prof.name, d.world)
    if plan.action == REUSE:
        summary = plan.done
    else:
        setup = _setup(req, cfg, settings, plan, d, progress and d.main)
        d.start()
        try:
            summary = pretrain(setup, d, progress and d.main, on_row)
        finally:
            d.close()
    if d.main:  # under torchrun, one result file (rank 0's)
        record(req, summary, prof.name, dev)
    return summary
