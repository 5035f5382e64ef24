"""The fine-tuning run folder: what defines a run of setting A-E (its settings), the
``office`` data it trains on, and :func:`finetune_run`, the entry that owns the folder (plan,
set up, train with :func:`.finetune.finetune`, record)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from ..config import SSLConfig, get_profile, resolve_device
from ..errors import UserError
from ..runs import REUSE, SSL_FINETUNE, RunPlan, plan_run
from . import loop
from .ae import AE_SETTINGS, setting_classifier
from .augment import LIGHT
from .datasets import ImageSet
from .distributed import refuse_many
from .finetune import _FinetuneSetup, _inputs, finetune
from .models import file_sha1, load_backbone_file
from .request import FinetuneRequest, record


def office_paths(data_root: Path) -> dict[str, Path]:
    """``office``'s csv files and image folders under a course-layout data folder (checked)."""
    root = Path(data_root) / "office"
    p = {
        "train_csv": root / "train.csv",
        "train_dir": root / "train",
        "val_csv": root / "val.csv",
        "val_dir": root / "val",
    }
    for k in ("train_csv", "val_csv"):
        if not p[k].is_file():
            raise UserError(
                f"{p[k]}: not found; --data must hold office/train.csv, office/train/, "
                "office/val.csv and office/val/ (make one with `hw4 data images`)"
            )
    return p


def resolve_backbone(backbone: str | Path | None) -> Path | None:
    """A pre-training run folder (its ``backbone.pt``) or a state-dict file."""
    if backbone is None:
        return None
    b = Path(backbone)
    if b.is_dir():
        f = b / "backbone.pt"
        if not f.is_file():
            raise UserError(
                f"{b}: no backbone.pt in this folder; finish its pre-training "
                "(`hw4 ssl pretrain --out ...`) or pass a state-dict file"
            )
        return f
    return b


def finetune_settings(
    setting: str,
    data_root: Path,
    backbone_file: Path | None,
    cfg: SSLConfig,
    profile: str,
    epochs: int | None = None,
    seed: int = 0,
) -> dict:
    if setting not in AE_SETTINGS:
        raise UserError(f"unknown setting {setting!r}: choose one of A, B, C, D, E")
    method, frozen = AE_SETTINGS[setting]
    if method is None and backbone_file is not None:
        raise UserError(f"setting A trains from scratch: drop --backbone {backbone_file}")
    if method is not None and backbone_file is None:
        raise UserError(
            f"setting {setting} needs --backbone: the {method} pre-training run "
            "folder (or a ResNet state-dict file)"
        )
    if epochs is not None and epochs < 1:
        raise UserError(f"--epochs {epochs}: must be at least 1")
    # a step budget (CPU profiles) becomes whole epochs once the data's size is known
    steps = cfg.finetune_steps if epochs is None else None
    ep = None if steps else (epochs or cfg.finetune_epochs)
    s = {
        "setting": setting,
        "data": str(Path(data_root).resolve()),
        "profile": profile,
        "frozen": frozen,
        "image_size": cfg.image_size,
        "epochs": ep,
        "steps": steps,
        "batch": cfg.finetune_batch,
        "gamma": cfg.finetune_gamma,
        "lr": cfg.finetune_head_lr if frozen and cfg.finetune_head_lr else cfg.finetune_lr,
        "momentum": cfg.momentum,
        "seed": seed,
        "augment": asdict(LIGHT) if cfg.finetune_augment else None,
        "backbone": None,
        "backbone_sha1": None,
        "arch": cfg.backbone,
        "head_norm": bool(frozen and cfg.probe_head_norm),
    }
    if frozen:  # recorded for D and E only: A-C's settings stay as they were
        s["bn_restats"] = cfg.probe_bn_restats
    if backbone_file is not None:
        arch, _ = load_backbone_file(backbone_file)
        s.update(
            backbone=str(Path(backbone_file).resolve()),
            backbone_sha1=file_sha1(Path(backbone_file)),
            arch=arch,
        )
    return s


def _office_sets(
    data_root: Path, size: int, cfg: SSLConfig, progress: bool
) -> tuple[ImageSet, ImageSet]:
    """``office``'s training and validation images, read (and so checked); val takes train's
    class names."""
    paths = office_paths(data_root)
    train = ImageSet(
        paths["train_csv"],
        paths["train_dir"],
        size,
        require_label=True,
        cache=cfg.cache_images,
        progress=progress,
    )
    val = ImageSet(
        paths["val_csv"],
        paths["val_dir"],
        size,
        classes=train.classes,
        require_label=True,
        cache=cfg.cache_images,
        progress=progress,
    )
    return train, val


def finetune_plan(req: FinetuneRequest, cfg: SSLConfig, profile: str) -> tuple[dict, RunPlan]:
    """The settings ``req`` asks for under ``cfg`` and what becomes of its run folder: reused,
    resumed or started afresh (:func:`hw4lib.runs.plan_run`). Reads, changes nothing; one-line
    errors."""
    bfile = resolve_backbone(req.backbone)
    settings = finetune_settings(
        req.setting, Path(req.data), bfile, cfg, profile, req.epochs, req.seed
    )
    plan = plan_run(
        req.out, SSL_FINETUNE, settings, resume=req.resume, force=req.force, cache=req.replace_stale
    )
    return settings, plan


def _setup(
    req: FinetuneRequest, cfg: SSLConfig, settings: dict, plan: RunPlan, dev: str, progress: bool
) -> tuple[_FinetuneSetup, dict | None]:
    """The data (read, and so checked, before the run folder is touched), the checkpoint to
    resume from (None: a fresh start) and the setting's model, seeded as ``req.seed`` says."""
    run_dir = Path(req.out)
    train, val = _office_sets(Path(req.data), settings["image_size"], cfg, progress)
    state = loop.resume_state(run_dir, SSL_FINETUNE, plan, settings)
    torch.manual_seed(req.seed)
    bfile = settings["backbone"]
    bstate = load_backbone_file(bfile)[1] if bfile is not None else None
    model = setting_classifier(
        req.setting, settings["arch"], len(train.classes), bstate, settings["head_norm"]
    ).to(dev)
    inputs = _inputs(model, train, val, settings, cfg, dev)
    setup = _FinetuneSetup(
        req.setting, settings, run_dir, train, val, model, inputs, dev, cfg.checkpoint_every_s
    )
    return setup, state


def finetune_run(
    req: FinetuneRequest, *, cfg: SSLConfig | None = None, progress: bool = True
) -> dict:
    """Fine-tune as ``req`` asks into ``req.out`` (``best.pt``, ``last.pt``, ``run.json``) and
    store the summary in the results store; returns it. A finished run with the same settings
    is reused (:func:`finetune_plan`). ``cfg``: the profile's SSL settings unless given (tests:
    smaller models). One process only: refused under torchrun."""
    refuse_many("hw4 ssl finetune")
    prof = get_profile(req.profile)
    cfg = prof.ssl if cfg is None else cfg
    dev = resolve_device(req.device)
    settings, plan = finetune_plan(req, cfg, prof.name)
    if plan.action == REUSE:
        summary = plan.done
    else:
        setup, state = _setup(req, cfg, settings, plan, dev, progress)
        summary = finetune(setup, state, progress)
    record(req, summary, prof.name, dev)
    return summary
