"""The pre-training loop: :func:`pretrain` trains BYOL (no labels) or a supervised classifier
(labels) on ``mini`` as :func:`.pretrain_run.pretrain_run` set it up (:class:`_PretrainSetup`),
and writes ``backbone.pt`` and ``run.json``.

History rows come every ``log_every`` steps (at least one an epoch, about 20 in all), kNN
monitor points ``cfg.knn_evals`` times; a resume continues from the last row checkpointed,
with the data order and random state it had, so it repeats the uninterrupted run.

One process, or N data-parallel ones under ``torchrun --nproc_per_node N -m hw4lib ssl pretrain
...`` or ``accelerate launch --multi_gpu --num_processes N -m hw4lib ssl pretrain ...`` (DDP,
each process a slice of every batch, gradients averaged, SyncBatchNorm where nccl runs it; rank
0 alone evaluates the kNN monitor and writes files; a run resumes on N processes only): see
:mod:`.distributed`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .. import env
from ..config import SSLConfig
from ..errors import UserError
from ..runs import SSL_PRETRAIN, RunPlan, finish_run
from . import checkpoint as ckpt
from . import distributed, loop
from .augment import LIGHT, BatchAugment, to_float
from .datasets import ImageSet
from .knn import extract_features, knn_loo_accuracy, monitor_subset
from .models import PooledFeatures, backbone_state


def snapshot_path(run_dir: Path, step: int) -> Path:
    """The backbone a pre-training run saved at ``step`` (its ``snapshots`` setting)."""
    return Path(run_dir) / f"backbone_step{step}.pt"


#: tests only: checkpoint at this step, then wait (every process) to be killed
PAUSE_ENV = "HW4_TEST_PAUSE_AT_STEP"


@dataclass(frozen=True)
class _PretrainSetup:
    """What :func:`pretrain` is given: one run's settings, data, budget and model, as
    :func:`.pretrain_run.pretrain_run` set them up."""

    method: str
    settings: dict
    run_dir: Path
    cfg: SSLConfig
    plan: RunPlan
    ds: ImageSet
    loader: DataLoader
    batch: int
    total: int  # optimizer steps
    model: nn.Module  # what trains (BYOL's online + target networks, or the classifier)
    net: nn.Module  # the backbone inside it

    @property
    def per_epoch(self) -> int:
        return len(self.loader)

    @property
    def log_every(self) -> int:
        """Steps between history rows: about 20 in all, at least one an epoch."""
        return max(1, min(self.per_epoch, math.ceil(self.total / 20)))

    @property
    def knn_every(self) -> int:
        return math.ceil(self.total / self.cfg.knn_evals) if self.cfg.knn_evals else 0


def _rank_rng(state: dict, d: distributed.Dist, run_dir: Path) -> torch.Tensor:
    """This process's random state in a checkpoint, which holds one for each process."""
    rngs = state.get("rng_ranks", [state["rng"]])
    if len(rngs) != d.world:
        raise UserError(
            f"{run_dir / 'last.pt'}: holds the random state of {len(rngs)} "
            f"process(es), this resume has {d.world}; resume it on "
            f"{len(rngs)}, or start afresh in a new --out folder"
        )
    return rngs[d.rank]


def _knn_monitor(
    setup: _PretrainSetup, model: nn.Module, d: distributed.Dist
) -> Callable[[], float | None]:
    """kNN accuracy of the backbone now, on a fixed labeled subset of mini (labels are read
    only for monitoring): computed once, on rank 0, and the others take its number."""
    ds, cfg = setup.ds, setup.cfg
    probe = monitor_subset(ds.labels, cfg.knn_per_class) if (ds.labels >= 0).all() else None
    probe_imgs = torch.stack([ds[int(i)][0] for i in probe]) if probe is not None else None

    def knn() -> float | None:
        acc = None
        if probe is not None and d.main:
            trunk = model.net if setup.method == "byol" else PooledFeatures(setup.net)
            f = extract_features(trunk, probe_imgs, str(d.device))
            acc = knn_loo_accuracy(f, ds.labels[probe], cfg.knn_k)
        return d.broadcast(acc)

    return knn


def _resume(
    setup: _PretrainSetup, d: distributed.Dist
) -> tuple[nn.Module, loop.RunLoop, dict | None]:
    """The model as it trains (SyncBatchNorm where nccl runs it), its optimiser and schedule,
    and the checkpoint they were restored from (None: a fresh start)."""
    state = loop.resume_state(
        setup.run_dir, SSL_PRETRAIN, setup.plan, setup.settings, ckpt.LAST_KEYS + ("step",), d
    )
    model = setup.model
    if d.sync_batchnorm:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # converts net in place too
    run = loop.RunLoop(
        setup.run_dir,
        model,
        setup.settings,
        setup.settings["step_size"],
        state,
        setup.cfg.checkpoint_every_s,
    )
    return model, run, state


def _position(
    setup: _PretrainSetup, state: dict | None, d: distributed.Dist
) -> tuple[int, list[dict], torch.Tensor]:
    """``(steps done, history, shuffle state of the current epoch)``: the checkpoint's, with
    this process's random state restored, or a fresh start's."""
    if state is None:
        return 0, [], setup.loader.generator.get_state()
    torch.set_rng_state(_rank_rng(state, d, setup.run_dir))
    return state["step"], state["history"], state["order"]


def _epoch_batches(
    loader: DataLoader, step: int, epoch_order: torch.Tensor
) -> tuple[Iterator, torch.Tensor]:
    """The batches left in ``step``'s epoch, and the shuffle state they are drawn from (a new
    one at an epoch's start; a resume replays the checkpoint's and skips what it trained)."""
    order = loader.generator  # draws each epoch's shuffle (the same in every process)
    if step % len(loader) == 0:
        epoch_order = order.get_state()
    order.set_state(epoch_order)
    batches = iter(loader)
    for _ in range(step % len(loader)):
        next(batches)
    return batches, epoch_order


def _row(
    setup: _PretrainSetup,
    run: loop.RunLoop,
    knn: Callable[[], float | None],
    step: int,
    loss: float | None,
    seconds: float,
) -> dict:
    """The history row at ``step``: the mean ``loss`` since the last row, the learning rate,
    the kNN monitor's accuracy where it is due."""
    due = setup.knn_every and (step % setup.knn_every == 0 or step == setup.total)
    return {
        "step": step,
        "epoch": round(step / setup.per_epoch, 3),
        "loss": loss,
        "lr": run.lr,
        "knn": knn() if due else None,
        "seconds": round(seconds, 3),
    }


def _checkpoint(
    setup: _PretrainSetup,
    run: loop.RunLoop,
    d: distributed.Dist,
    step: int,
    history: list[dict],
    epoch_order: torch.Tensor,
    final: bool,
) -> None:
    """``last.pt`` when it is due (online + target network + optimiser, ~3x the backbone):
    every process takes part in deciding and gathering (each one's random state goes in)."""
    if d.any(run.due(final)):
        rngs = d.gather(torch.get_rng_state())
        run.save(
            {
                "step": step,
                "epoch": step / setup.per_epoch,
                "history": history,
                "rng": rngs[0],
                "order": epoch_order,
                **({"rng_ranks": rngs} if d.world > 1 else {}),
            },
            write=d.main,
        )


def pretrain(
    setup: _PretrainSetup,
    d: distributed.Dist,
    progress: bool,
    on_row: Callable[[dict], None] | None = None,
) -> dict:
    """Train as ``setup`` says, once the process group (if any) is up, from the start or on
    from ``last.pt``; returns the run's summary (``run.json``). ``on_row(row)``, if given, sees
    each new history row (live curves; in the main process only)."""
    method, total, per_epoch, dev = setup.method, setup.total, setup.per_epoch, d.device
    model, run, state = _resume(setup, d)
    step, history, epoch_order = _position(setup, state, d)
    fwd = d.wrap(model)  # DDP: every process ends each step with the same weights
    aug = BatchAugment(LIGHT)
    knn = _knn_monitor(setup, model, d)
    pause_at = int(env.get(PAUSE_ENV) or 0)
    if step == 0 and setup.cfg.knn_evals:
        history.append(_row(setup, run, knn, step, None, 0.0))
    t_all = t0 = run.start_clock()
    n_imgs, tot, cnt = 0, torch.zeros((), device=dev), 0
    bar = tqdm(total=total, initial=step, desc=f"{method} pre-training", disable=not progress)
    try:  # closed on an error too, so that the one-line error starts a line of its own
        while step < total:
            batches, epoch_order = _epoch_batches(setup.loader, step, epoch_order)
            model.train()
            for x, y in batches:
                x, y = to_float(x.to(dev, non_blocking=True)), y.to(dev, non_blocking=True)
                loss = fwd(x) if method == "byol" else F.cross_entropy(fwd(aug(x)), y)
                run.step(loss)
                run.sched.step()
                if method == "byol":
                    model.update_moving_average()
                tot, cnt, step = tot + loss.detach(), cnt + 1, step + 1
                n_imgs += x.shape[0] * d.world
                bar.update(1)
                if step in setup.settings.get("snapshots", ()) and d.main:
                    _save_backbone(setup, model, snapshot_path(setup.run_dir, step))
                if step % setup.log_every and step % per_epoch and step != total:
                    continue
                mean_loss = run.check_finite(
                    d.mean(tot / cnt), f"{method} pre-training", f"step {step}"
                )
                history.append(_row(setup, run, knn, step, mean_loss, time.perf_counter() - t0))
                if on_row is not None and d.main:
                    on_row(history[-1])
                tot, cnt, t0 = torch.zeros((), device=dev), 0, time.perf_counter()
                bar.set_postfix(
                    loss=f"{mean_loss:.3f}",
                    knn=f"{history[-1]['knn']:.3f}" if history[-1]["knn"] is not None else "-",
                )
                _checkpoint(setup, run, d, step, history, epoch_order, step in (total, pause_at))
                d.barrier()
                while step == pause_at:  # the test kills the launcher here
                    time.sleep(1.0)
                if step == total:
                    break
    finally:
        bar.close()
    return _finish(setup, d, model, history, time.perf_counter() - t_all, n_imgs)


def _finish(
    setup: _PretrainSetup,
    d: distributed.Dist,
    model: nn.Module,
    history: list[dict],
    seconds: float,
    n_imgs: int,
) -> dict:
    """The run's summary; rank 0 writes ``backbone.pt`` and ``run.json``."""
    d.broadcast_buffers(model)  # per-process BatchNorm statistics: rank 0's everywhere
    method, settings, run_dir = setup.method, setup.settings, setup.run_dir
    knns = [h["knn"] for h in history if h["knn"] is not None]
    summary = {
        "kind": "pretrain",
        "method": method,
        "run_dir": str(run_dir),
        "backbone": str(run_dir / "backbone.pt"),
        "arch": settings["arch"],
        "steps": setup.total,
        "epochs": round(setup.total / setup.per_epoch, 3),
        "history": history,
        "knn_initial": knns[0] if knns else None,
        "knn_final": knns[-1] if knns else None,
        "classes": setup.ds.classes,
        "seconds": round(seconds, 2),
        "images_per_s": round(n_imgs / seconds, 1) if seconds > 0 and n_imgs else None,
        "device": d.device.type,
        "processes": d.world,
        "backend": d.backend,
        "batchnorm": d.batchnorm,
        "batch_per_process": setup.batch // d.world,
        "settings": settings,
    }
    if d.world > 1:  # each process's final weights, to show they are one model
        summary["rank_weights_sha1"] = d.gather(distributed.state_sha1(model))
    if d.main:
        _save_backbone(setup, model, run_dir / "backbone.pt")
        finish_run(run_dir, SSL_PRETRAIN, summary)
    d.barrier()
    return summary


def _save_backbone(setup: _PretrainSetup, model: nn.Module, path: Path) -> None:
    """The backbone alone (what fine-tuning loads): BYOL's online network, or the classifier's."""
    net = model.net if setup.method == "byol" else setup.net
    state = {
        "arch": setup.settings["arch"],
        "method": setup.method,
        "backbone": backbone_state(net),
    }
    ckpt.atomic_save(state, path)
