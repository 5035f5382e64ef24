"""Fine-tuning on ``office``: the report's settings A-E, and prediction (the hw4_2 contract).

| setting | backbone from | trained |
|---|---|---|
| A | nothing (random init) | full model |
| B | supervised pre-training | full model |
| C | BYOL pre-training | full model |
| D | supervised pre-training | classifier only (backbone frozen, BatchNorm statistics too) |
| E | BYOL pre-training | classifier only |
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from ..config import SSLConfig
from ..errors import UserError
from ..results import atomic_write_text
from ..runs import REUSE, SSL_FINETUNE, plan_run
from . import checkpoint as ckpt
from . import loop
from .augment import LIGHT, BatchAugment, image_input, spec_from_dict, to_float
from .datasets import ImageSet, make_loader
from .models import (
    PooledFeatures,
    file_sha1,
    load_backbone_file,
    make_classifier,
    restat_batchnorm,
)

#: setting -> (pre-training method of its backbone or None, backbone frozen?)
AE_SETTINGS: dict[str, tuple[str | None, bool]] = {
    "A": (None, False),
    "B": ("supervised", False),
    "C": ("byol", False),
    "D": ("supervised", True),
    "E": ("byol", True),
}
DESCRIPTIONS = {
    "A": ("-", "full model (backbone + classifier)"),
    "B": ("supervised (labels)", "full model (backbone + classifier)"),
    "C": ("SSL (BYOL, no labels)", "full model (backbone + classifier)"),
    "D": ("supervised (labels)", "classifier only, backbone frozen"),
    "E": ("SSL (BYOL, no labels)", "classifier only, backbone frozen"),
}


def office_paths(data_root: Path) -> dict[str, Path]:
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


def set_train_mode(model: nn.Module, frozen: bool) -> None:
    """Train mode, except a frozen backbone stays in eval mode (BatchNorm statistics fixed)."""
    model.train()
    if frozen:
        for name, m in model.named_children():
            if name != "fc":
                m.eval()


def setting_classifier(
    setting: str, arch: str, n_classes: int, backbone_state: dict | None, head_norm: bool = False
) -> nn.Module:
    """The setting's classifier with ``requires_grad`` set as the table says; ``head_norm``
    (frozen settings only) standardises the features before the linear head."""
    method, frozen = AE_SETTINGS[setting]
    if (method is None) != (backbone_state is None):
        raise ValueError(
            f"setting {setting} {'takes no' if method is None else 'needs a'} backbone"
        )
    if head_norm and not frozen:
        raise ValueError(f"setting {setting} trains its backbone: head_norm is for D and E")
    model = make_classifier(arch, n_classes, backbone_state, head_norm)
    for name, p in model.named_parameters():
        p.requires_grad = not frozen or name.startswith("fc.")
    return model


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


@torch.no_grad()
def evaluate(model: nn.Module, loader, device: str, prepare=image_input) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) over a labeled loader; ``prepare`` makes a batch the
    model's input."""
    model.eval()
    tot, correct, n = 0.0, 0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        logits = model(prepare(x))
        tot += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
        n += len(y)
    return tot / max(n, 1), correct / max(n, 1)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


@torch.no_grad()
def frozen_features(model: nn.Module, ds: ImageSet, device: str) -> TensorDataset:
    """``(pooled feature, label)`` of every image through ``model``'s frozen backbone in eval
    mode: without augmentation they are the same every epoch, so settings D/E compute them once
    and train only the head on them."""
    trunk = PooledFeatures(model).eval()
    loader = make_loader(ds, 256, shuffle=False, drop_last=False, workers=0, device=device)
    feats = torch.cat([trunk(image_input(x.to(device))).cpu() for x, _ in loader])
    return TensorDataset(feats, ds.labels)


@dataclass(frozen=True)
class _Inputs:
    """What trains and on what (:func:`_inputs`)."""

    net: nn.Module  # the whole model, or only its head
    prepare: Callable  # a training batch -> the net's input
    prepare_val: Callable  # a validation batch -> the net's input
    train_loader: DataLoader
    val_loader: DataLoader


def _plain_batches(ds: ImageSet, size: int = 64) -> Iterator[torch.Tensor]:
    """``ds``'s images in order, in batches of ``size``; a last batch of one joins the one
    before (BatchNorm in training mode needs two values a channel)."""
    chunks = [list(range(i, min(i + size, len(ds)))) for i in range(0, len(ds), size)]
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        last = chunks.pop()
        chunks[-1] += last
    for c in chunks:
        yield torch.stack([ds[i][0] for i in c])


def _inputs(
    model: nn.Module, train: ImageSet, val: ImageSet, settings: dict, cfg: SSLConfig, device: str
) -> _Inputs:
    """The whole model on images, or, frozen without augmentation, only its head on the
    backbone's features (computed once: without augmentation they never change)."""
    augment = BatchAugment(spec_from_dict(settings["augment"])) if settings["augment"] else None
    if settings.get("bn_restats") and len(train) > 1:  # one image has no variance
        batches = (image_input(x.to(device)) for x in _plain_batches(train))
        restat_batchnorm(PooledFeatures(model), batches)
    on_features = settings["frozen"] and augment is None
    net, prepare, prepare_val = (
        (model.fc, _identity, _identity)
        if on_features
        else (model, (lambda x: augment(to_float(x))) if augment else image_input, image_input)
    )
    train_set, val_set = (
        (frozen_features(model, train, device), frozen_features(model, val, device))
        if on_features
        else (train, val)
    )
    batch, workers = settings["batch"], 0 if on_features else cfg.workers
    train_loader = make_loader(
        train_set,
        batch,
        shuffle=True,
        drop_last=len(train) > batch,
        workers=workers,
        device=device,
        seed=settings["seed"],
    )
    val_loader = make_loader(
        val_set, 4 * batch, shuffle=False, drop_last=False, workers=workers, device=device
    )
    return _Inputs(net, prepare, prepare_val, train_loader, val_loader)


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


@dataclass(frozen=True)
class _Job:
    """One fine-tuning run as :func:`run_finetune` set it up: its settings, data and model."""

    setting: str
    settings: dict
    run_dir: Path
    train: ImageSet
    val: ImageSet
    model: nn.Module
    inputs: _Inputs
    device: str

    @property
    def n_epochs(self) -> int:
        """The settings' epochs, or as many whole epochs as a step budget takes."""
        s = self.settings
        return s["epochs"] or math.ceil(s["steps"] / len(self.inputs.train_loader))


def _train_epoch(
    run: loop.RunLoop, net: nn.Module, loader: DataLoader, prepare: Callable, device: str
) -> float:
    """One pass over ``loader``, one optimizer step a batch; the mean training loss."""
    tot, n = 0.0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        loss = F.cross_entropy(net(prepare(x)), y)
        run.step(loss)
        tot += float(loss.detach()) * len(y)
        n += len(y)
    return tot / max(n, 1)


def _epoch(job: _Job, run: loop.RunLoop, e: int) -> dict:
    """Epoch ``e`` (from 1): trained, the schedule stepped, validated; its history row."""
    inp = job.inputs
    set_train_mode(job.model, job.settings["frozen"])
    train_loss = _train_epoch(run, inp.net, inp.train_loader, inp.prepare, job.device)
    run.sched.step()
    run.check_finite(train_loss, f"setting {job.setting}", f"epoch {e}")
    val_loss, val_acc = evaluate(inp.net, inp.val_loader, job.device, inp.prepare_val)
    return {
        "epoch": e,
        "train_loss": train_loss,
        "val_loss": val_loss,
        "val_acc": val_acc,
        "lr": run.lr,
    }


def _position(state: dict | None, order: torch.Generator) -> tuple[int, list[dict], dict]:
    """``(epochs done, history, best)``: the checkpoint's, with its random state and shuffle
    order restored, or a fresh start's."""
    if state is None:
        return 0, [], {"val_acc": -1.0, "epoch": 0}
    torch.set_rng_state(state["rng"])
    order.set_state(state["order"])
    return state["epoch"], state["history"], state["best"]


def _save_best(job: _Job, model_state: dict, best: dict) -> None:
    """``best.pt``: the best model so far, with what :func:`predict` needs to rebuild it."""
    s = job.settings
    ckpt.atomic_save(
        {
            "setting": job.setting,
            "arch": s["arch"],
            "head_norm": s["head_norm"],
            "image_size": s["image_size"],
            "classes": job.train.classes,
            "model": model_state,
            "epoch": best["epoch"],
            "val_acc": best["val_acc"],
        },
        job.run_dir / "best.pt",
    )


def _fit(
    job: _Job, run: loop.RunLoop, start: int, history: list[dict], best: dict, progress: bool
) -> tuple[list[dict], dict]:
    """The epochs after ``start``, each a history row; ``best.pt`` and ``last.pt`` when due.
    Returns the history and the best epoch."""
    n_epochs, order = job.n_epochs, job.inputs.train_loader.generator
    best_state = None  # a better model not yet on disk
    bar = tqdm(
        range(start, n_epochs),
        desc=f"setting {job.setting}",
        disable=not progress,
        initial=start,
        total=n_epochs,
    )
    for epoch in bar:
        e = epoch + 1
        history.append(_epoch(job, run, e))
        val_acc = history[-1]["val_acc"]
        if val_acc > best["val_acc"]:
            best = {"val_acc": val_acc, "epoch": e}
            best_state = {
                k: v.detach().to("cpu", copy=True) for k, v in job.model.state_dict().items()
            }
        if run.due(e == n_epochs):  # best.pt then last.pt: last.pt's "best" is on disk
            if best_state is not None:
                _save_best(job, best_state, best)
                best_state = None
            run.save(
                {
                    "epoch": e,
                    "history": history,
                    "best": best,
                    "rng": torch.get_rng_state(),
                    "order": order.get_state(),
                }
            )
        bar.set_postfix(val_acc=f"{val_acc:.3f}", best=f"{best['val_acc']:.3f}")
    return history, best


def _finish(job: _Job, run: loop.RunLoop, history: list[dict], best: dict, seconds: float) -> dict:
    """The run's summary, written to ``run.json``."""
    n_train = sum(p.numel() for p in run.params)
    summary = {
        "kind": "finetune",
        "setting": job.setting,
        "run_dir": str(job.run_dir),
        "pretraining": DESCRIPTIONS[job.setting][0],
        "finetuning": DESCRIPTIONS[job.setting][1],
        "arch": job.settings["arch"],
        "best_val_acc": best["val_acc"],
        "best_epoch": best["epoch"],
        "final_val_acc": history[-1]["val_acc"],
        "epochs": job.n_epochs,
        "history": history,
        "trainable_params": n_train,
        "frozen_params": sum(p.numel() for p in job.model.parameters()) - n_train,
        "n_train": len(job.train),
        "n_val": len(job.val),
        "n_classes": len(job.train.classes),
        "seconds": round(seconds, 2),
        "device": job.device,
        "settings": job.settings,
    }
    ckpt.write_run(job.run_dir, summary)
    return summary


def run_finetune(
    setting: str,
    data_root: Path,
    run_dir: Path,
    cfg: SSLConfig,
    *,
    profile: str,
    backbone: str | Path | None = None,
    device: str = "cpu",
    epochs: int | None = None,
    resume: bool = False,
    force: bool = False,
    seed: int = 0,
    progress: bool = True,
    replace_stale: bool = False,
) -> dict:
    """Fine-tune one setting; writes ``best.pt`` (best val accuracy, with the class names),
    ``last.pt`` and ``run.json``; returns the summary with the per-epoch history. A finished
    run with the same settings is reused unless ``force``; ``replace_stale``: the folder is a
    cache (:func:`hw4lib.runs.plan_run`)."""
    run_dir = Path(run_dir)
    bfile = resolve_backbone(backbone)
    settings = finetune_settings(setting, data_root, bfile, cfg, profile, epochs, seed)
    plan = plan_run(
        run_dir, SSL_FINETUNE, settings, resume=resume, force=force, cache=replace_stale
    )
    if plan.action == REUSE:
        return plan.done
    # read (and so validate) the data before the run folder is touched
    train, val = _office_sets(data_root, settings["image_size"], cfg, progress)
    state = loop.resume_state(run_dir, SSL_FINETUNE, plan, settings)
    torch.manual_seed(seed)
    bstate = load_backbone_file(bfile)[1] if bfile is not None else None
    model = setting_classifier(
        setting, settings["arch"], len(train.classes), bstate, settings["head_norm"]
    ).to(device)
    inputs = _inputs(model, train, val, settings, cfg, device)
    job = _Job(setting, settings, run_dir, train, val, model, inputs, device)
    run = loop.RunLoop(run_dir, model, settings, 1, state, cfg.checkpoint_every_s)
    start, history, best = _position(state, inputs.train_loader.generator)
    t_all = run.start_clock()
    history, best = _fit(job, run, start, history, best, progress)
    return _finish(job, run, history, best, time.perf_counter() - t_all)


def predict(
    run: str | Path,
    csv_path: str | Path,
    image_dir: str | Path,
    out_csv: str | Path,
    device: str = "cpu",
    workers: int = 0,
) -> dict:
    """Classify every row of ``csv_path`` with a fine-tuned run's best model; write
    ``id,filename,label`` (class names) in the input's row order. Returns counts (and the
    accuracy when the csv has labels)."""
    run = Path(run)
    best = run / "best.pt" if run.is_dir() else run
    if not best.is_file():
        raise UserError(
            f"{best}: no fine-tuned model here; run `hw4 ssl finetune --out {run}` "
            "first or point --run (or $HW4_SSL_RUN) at a fine-tuning run folder"
        )
    state = ckpt.load(best)
    if not {"model", "classes", "arch", "image_size"} <= set(state):
        raise UserError(f"{best}: not a fine-tuned model checkpoint (from `hw4 ssl finetune`)")
    ds = ImageSet(csv_path, image_dir, state["image_size"], classes=state["classes"])
    model = make_classifier(
        state["arch"], len(state["classes"]), head_norm=state.get("head_norm", False)
    )
    model.load_state_dict(state["model"])
    model.to(device).eval()
    # decode everything first so a broken image fails before anything is written
    loader = make_loader(ds, 64, shuffle=False, drop_last=False, workers=workers, device=device)
    preds = []
    with torch.no_grad():
        for x, _ in loader:
            preds.append(model(image_input(x.to(device))).argmax(1).cpu())
    pred = torch.cat(preds)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id", "filename", "label"])
    for r, p in zip(ds.rows, pred.tolist()):
        w.writerow([r.id, r.filename, state["classes"][p]])
    atomic_write_text(out_csv, buf.getvalue())
    out = {"rows": len(ds), "out": str(out_csv)}
    if (ds.labels >= 0).all():
        out["accuracy"] = float((pred == ds.labels).float().mean())
    return out
