"""The fine-tuning loop: :func:`finetune` trains one of settings A-E (:mod:`.ae`) on
``office`` as :func:`.finetune_run.finetune_run` set it up (:class:`_FinetuneSetup`), keeping
the best epoch's model (``best.pt``, what ``hw4 ssl predict`` uses) and writing ``run.json``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from ..config import SSLConfig
from ..runs import SSL_FINETUNE, finish_run
from . import checkpoint as ckpt
from . import loop
from .ae import DESCRIPTIONS, set_train_mode
from .augment import BatchAugment, image_input, spec_from_dict, to_float
from .datasets import ImageSet, make_loader
from .models import PooledFeatures, restat_batchnorm


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


@dataclass(frozen=True)
class _FinetuneSetup:
    """What :func:`finetune` trains, as :func:`.finetune_run.finetune_run` builds it: the
    setting and its settings, ``office``'s images, the model and what trains on what."""

    setting: str
    settings: dict
    run_dir: Path
    train: ImageSet
    val: ImageSet
    model: nn.Module
    inputs: _Inputs
    device: str
    checkpoint_every_s: float  # the profile's: not a run setting

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


def _epoch(setup: _FinetuneSetup, run: loop.RunLoop, e: int) -> dict:
    """Epoch ``e`` (from 1): trained, the schedule stepped, validated; its history row."""
    inp = setup.inputs
    set_train_mode(setup.model, setup.settings["frozen"])
    train_loss = _train_epoch(run, inp.net, inp.train_loader, inp.prepare, setup.device)
    run.sched.step()
    run.check_finite(train_loss, f"setting {setup.setting}", f"epoch {e}")
    val_loss, val_acc = evaluate(inp.net, inp.val_loader, setup.device, inp.prepare_val)
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


def _save_best(setup: _FinetuneSetup, model_state: dict, best: dict) -> None:
    """``best.pt``: the best model so far, with what :func:`predict` needs to rebuild it."""
    s = setup.settings
    ckpt.atomic_save(
        {
            "setting": setup.setting,
            "arch": s["arch"],
            "head_norm": s["head_norm"],
            "image_size": s["image_size"],
            "classes": setup.train.classes,
            "model": model_state,
            "epoch": best["epoch"],
            "val_acc": best["val_acc"],
        },
        setup.run_dir / "best.pt",
    )


def _fit(
    setup: _FinetuneSetup,
    run: loop.RunLoop,
    start: int,
    history: list[dict],
    best: dict,
    progress: bool,
) -> tuple[list[dict], dict]:
    """The epochs after ``start``, each a history row; ``best.pt`` and ``last.pt`` when due.
    Returns the history and the best epoch."""
    n_epochs, order = setup.n_epochs, setup.inputs.train_loader.generator
    best_state = None  # a better model not yet on disk
    bar = tqdm(
        range(start, n_epochs),
        desc=f"setting {setup.setting}",
        disable=not progress,
        initial=start,
        total=n_epochs,
    )
    for epoch in bar:
        e = epoch + 1
        history.append(_epoch(setup, run, e))
        val_acc = history[-1]["val_acc"]
        if val_acc > best["val_acc"]:
            best = {"val_acc": val_acc, "epoch": e}
            best_state = {
                k: v.detach().to("cpu", copy=True) for k, v in setup.model.state_dict().items()
            }
        if run.due(e == n_epochs):  # best.pt then last.pt: last.pt's "best" is on disk
            if best_state is not None:
                _save_best(setup, best_state, best)
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


def _finish(
    setup: _FinetuneSetup, run: loop.RunLoop, history: list[dict], best: dict, seconds: float
) -> dict:
    """The run's summary, written to ``run.json``."""
    n_train = sum(p.numel() for p in run.params)
    summary = {
        "kind": "finetune",
        "setting": setup.setting,
        "run_dir": str(setup.run_dir),
        "pretraining": DESCRIPTIONS[setup.setting][0],
        "finetuning": DESCRIPTIONS[setup.setting][1],
        "arch": setup.settings["arch"],
        "best_val_acc": best["val_acc"],
        "best_epoch": best["epoch"],
        "final_val_acc": history[-1]["val_acc"],
        "epochs": setup.n_epochs,
        "history": history,
        "trainable_params": n_train,
        "frozen_params": sum(p.numel() for p in setup.model.parameters()) - n_train,
        "n_train": len(setup.train),
        "n_val": len(setup.val),
        "n_classes": len(setup.train.classes),
        "seconds": round(seconds, 2),
        "device": setup.device,
        "settings": setup.settings,
    }
    finish_run(setup.run_dir, SSL_FINETUNE, summary)
    return summary


def finetune(setup: _FinetuneSetup, state: dict | None, progress: bool = True) -> dict:
    """Train as ``setup`` says, from the start or from the checkpoint ``state`` (with its random
    state and shuffle order, so a resume repeats the uninterrupted run); writes ``best.pt``
    (best val accuracy, with the class names), ``last.pt`` and ``run.json``; returns the
    summary with the per-epoch history."""
    run = loop.RunLoop(
        setup.run_dir, setup.model, setup.settings, 1, state, setup.checkpoint_every_s
    )
    start, history, best = _position(state, setup.inputs.train_loader.generator)
    t_all = run.start_clock()
    history, best = _fit(setup, run, start, history, best, progress)
    return _finish(setup, run, history, best, time.perf_counter() - t_all)
