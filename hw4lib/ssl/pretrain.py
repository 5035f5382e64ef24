"""Pre-training a ResNet backbone on ``mini``: BYOL (no labels) or supervised (labels).

One process, or N data-parallel ones under ``torchrun --nproc_per_node N -m hw4lib ssl pretrain
...`` or ``accelerate launch --multi_gpu --num_processes N -m hw4lib ssl pretrain ...`` (DDP,
each process a slice of every batch, SyncBatchNorm where nccl runs it; only rank 0 writes
files): see :mod:`.distributed`.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
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
from ..runs import REUSE, SSL_PRETRAIN, RunPlan, plan_run
from . import checkpoint as ckpt
from . import distributed, loop
from .augment import LIGHT, BatchAugment, byol_views, spec_from_dict, to_float
from .datasets import ImageSet, make_loader
from .knn import extract_features, knn_loo_accuracy, monitor_subset
from .models import (
    PooledFeatures,
    backbone_state,
    file_sha1,
    load_backbone_file,
    make_backbone,
    make_byol,
    make_classifier,
)

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


def snapshot_path(run_dir: Path, step: int) -> Path:
    """The backbone a pre-training run saved at ``step`` (its ``snapshots`` setting)."""
    return Path(run_dir) / f"backbone_step{step}.pt"


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


def imagenet_weights(arch: str) -> Path:
    """torchvision's cached ImageNet file for ``arch`` (never downloaded here): the weights
    ``models.resnet50(pretrained=True)`` loads, as the report's code did (IMAGENET1K_V1)."""
    import torchvision  # slow to import: only --init imagenet needs its weight registry

    try:
        w = torchvision.models.get_model_weights(arch).IMAGENET1K_V1
    except ValueError:
        raise UserError(
            f"--init imagenet: torchvision has no ImageNet weights for {arch} (this "
            "profile's backbone); use --profile full (resnet50) or --init PATH"
        ) from None
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(w.url).name
    if not path.is_file():
        raise UserError(
            f"{path}: not found; --init imagenet reads torchvision's cached {arch} "
            f"weights: download {w.url} on a machine with internet and put the "
            f"file there (or set $TORCH_HOME)"
        )
    return path


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


#: tests only: checkpoint at this step, then wait (every process) to be killed
PAUSE_ENV = "HW4_TEST_PAUSE_AT_STEP"


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


def run_pretrain(
    method: str,
    data_root: Path,
    run_dir: Path,
    cfg: SSLConfig,
    *,
    profile: str,
    device: str = "cpu",
    epochs: int | None = None,
    steps: int | None = None,
    init: str | Path | None = None,
    resume: bool = False,
    force: bool = False,
    seed: int = 0,
    progress: bool = True,
    replace_stale: bool = False,
    on_row: Callable[[dict], None] | None = None,
    snapshots: tuple[int, ...] = (),
) -> dict:
    """Pre-train and write ``run_dir/backbone.pt``; returns the run's summary (``run.json``).

    The budget is ``steps`` optimizer steps or ``epochs`` passes (:func:`pretrain_budget`).
    History rows come every ``log_every`` steps (at least one an epoch, about 20 in all), kNN
    monitor points ``cfg.knn_evals`` times; a resume continues from the last row checkpointed,
    with the data order and random state it had, so it repeats the uninterrupted run.
    A finished run with the same settings is reused unless ``force``; ``replace_stale``: the
    folder is a cache (:func:`hw4lib.runs.plan_run`). ``on_row(row)``, if given,
    sees each new history row (live curves; in the main process only).

    Under torchrun / accelerate launch (:mod:`.distributed`) each of the N processes trains on
    its slice of every batch, gradients are averaged (DDP), rank 0 alone evaluates the kNN
    monitor and writes files; the run resumes on N processes only.
    """
    run_dir = Path(run_dir)
    d = distributed.from_env(device)
    settings = pretrain_settings(
        method, data_root, cfg, profile, epochs, seed, steps, init, d.world, snapshots
    )
    if resume:
        _check_resume_processes(run_dir, d.world)
    plan = plan_run(
        run_dir, SSL_PRETRAIN, settings, resume=resume, force=force, cache=replace_stale
    )
    if plan.action == REUSE:
        return plan.done
    # read (and so validate) the data before the run folder is touched
    ds, batch = _mini_data(method, data_root, settings, cfg, d.world, progress and d.main)
    torch.manual_seed(seed)
    loader = _loader(ds, batch, cfg, d, seed)
    total = settings["steps"] or settings["epochs"] * len(loader)
    model, net = _build(method, settings, len(ds.classes), d.device)
    if d.rank:  # the same initial weights everywhere; each process its own augmentation draws
        torch.manual_seed(seed * 1_000_003 + d.rank)
    d.start()
    try:
        return _train(
            _Job(method, settings, run_dir, cfg, plan, ds, loader, batch, total, model, net),
            d,
            progress and d.main,
            on_row,
        )
    finally:
        d.close()


@dataclass(frozen=True)
class _Job:
    """One pre-training run as :func:`run_pretrain` set it up: its data, budget and model."""

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


def _knn_monitor(job: _Job, model: nn.Module, d: distributed.Dist) -> Callable[[], float | None]:
    """kNN accuracy of the backbone now, on a fixed labeled subset of mini (labels are read
    only for monitoring): computed once, on rank 0, and the others take its number."""
    ds, cfg = job.ds, job.cfg
    probe = monitor_subset(ds.labels, cfg.knn_per_class) if (ds.labels >= 0).all() else None
    probe_imgs = torch.stack([ds[int(i)][0] for i in probe]) if probe is not None else None

    def knn() -> float | None:
        acc = None
        if probe is not None and d.main:
            trunk = model.net if job.method == "byol" else PooledFeatures(job.net)
            f = extract_features(trunk, probe_imgs, str(d.device))
            acc = knn_loo_accuracy(f, ds.labels[probe], cfg.knn_k)
        return d.broadcast(acc)

    return knn


def _resume(job: _Job, d: distributed.Dist) -> tuple[nn.Module, loop.RunLoop, dict | None]:
    """The model as it trains (SyncBatchNorm where nccl runs it), its optimiser and schedule,
    and the checkpoint they were restored from (None: a fresh start)."""
    state = loop.resume_state(
        job.run_dir, SSL_PRETRAIN, job.plan, job.settings, ckpt.LAST_KEYS + ("step",), d
    )
    model = job.model
    if d.sync_batchnorm:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # converts net in place too
    run = loop.RunLoop(
        job.run_dir,
        model,
        job.settings,
        job.settings["step_size"],
        state,
        job.cfg.checkpoint_every_s,
    )
    return model, run, state


def _position(
    job: _Job, state: dict | None, d: distributed.Dist
) -> tuple[int, list[dict], torch.Tensor]:
    """``(steps done, history, shuffle state of the current epoch)``: the checkpoint's, with
    this process's random state restored, or a fresh start's."""
    if state is None:
        return 0, [], job.loader.generator.get_state()
    torch.set_rng_state(_rank_rng(state, d, job.run_dir))
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
    job: _Job,
    run: loop.RunLoop,
    knn: Callable[[], float | None],
    step: int,
    loss: float | None,
    seconds: float,
) -> dict:
    """The history row at ``step``: the mean ``loss`` since the last row, the learning rate,
    the kNN monitor's accuracy where it is due."""
    due = job.knn_every and (step % job.knn_every == 0 or step == job.total)
    return {
        "step": step,
        "epoch": round(step / job.per_epoch, 3),
        "loss": loss,
        "lr": run.lr,
        "knn": knn() if due else None,
        "seconds": round(seconds, 3),
    }


def _checkpoint(
    job: _Job,
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
                "epoch": step / job.per_epoch,
                "history": history,
                "rng": rngs[0],
                "order": epoch_order,
                **({"rng_ranks": rngs} if d.world > 1 else {}),
            },
            write=d.main,
        )


def _train(
    job: _Job, d: distributed.Dist, progress: bool, on_row: Callable[[dict], None] | None = None
) -> dict:
    """:func:`run_pretrain`'s loop, once the process group (if any) is up."""
    method, total, per_epoch, dev = job.method, job.total, job.per_epoch, d.device
    model, run, state = _resume(job, d)
    step, history, epoch_order = _position(job, state, d)
    fwd = d.wrap(model)  # DDP: every process ends each step with the same weights
    aug = BatchAugment(LIGHT)
    knn = _knn_monitor(job, model, d)
    pause_at = int(env.get(PAUSE_ENV) or 0)
    if step == 0 and job.cfg.knn_evals:
        history.append(_row(job, run, knn, step, None, 0.0))
    t_all = t0 = run.start_clock()
    n_imgs, tot, cnt = 0, torch.zeros((), device=dev), 0
    bar = tqdm(total=total, initial=step, desc=f"{method} pre-training", disable=not progress)
    try:  # closed on an error too, so that the one-line error starts a line of its own
        while step < total:
            batches, epoch_order = _epoch_batches(job.loader, step, epoch_order)
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
                if step in job.settings.get("snapshots", ()) and d.main:
                    _save_backbone(job, model, snapshot_path(job.run_dir, step))
                if step % job.log_every and step % per_epoch and step != total:
                    continue
                mean_loss = run.check_finite(
                    d.mean(tot / cnt), f"{method} pre-training", f"step {step}"
                )
                history.append(_row(job, run, knn, step, mean_loss, time.perf_counter() - t0))
                if on_row is not None and d.main:
                    on_row(history[-1])
                tot, cnt, t0 = torch.zeros((), device=dev), 0, time.perf_counter()
                bar.set_postfix(
                    loss=f"{mean_loss:.3f}",
                    knn=f"{history[-1]['knn']:.3f}" if history[-1]["knn"] is not None else "-",
                )
                _checkpoint(job, run, d, step, history, epoch_order, step in (total, pause_at))
                d.barrier()
                while step == pause_at:  # the test kills the launcher here
                    time.sleep(1.0)
                if step == total:
                    break
    finally:
        bar.close()
    return _finish(job, d, model, history, time.perf_counter() - t_all, n_imgs)


def _finish(
    job: _Job,
    d: distributed.Dist,
    model: nn.Module,
    history: list[dict],
    seconds: float,
    n_imgs: int,
) -> dict:
    """The run's summary; rank 0 writes ``backbone.pt`` and ``run.json``."""
    d.broadcast_buffers(model)  # per-process BatchNorm statistics: rank 0's everywhere
    method, settings, run_dir = job.method, job.settings, job.run_dir
    knns = [h["knn"] for h in history if h["knn"] is not None]
    summary = {
        "kind": "pretrain",
        "method": method,
        "run_dir": str(run_dir),
        "backbone": str(run_dir / "backbone.pt"),
        "arch": settings["arch"],
        "steps": job.total,
        "epochs": round(job.total / job.per_epoch, 3),
        "history": history,
        "knn_initial": knns[0] if knns else None,
        "knn_final": knns[-1] if knns else None,
        "classes": job.ds.classes,
        "seconds": round(seconds, 2),
        "images_per_s": round(n_imgs / seconds, 1) if seconds > 0 and n_imgs else None,
        "device": d.device.type,
        "processes": d.world,
        "backend": d.backend,
        "batchnorm": d.batchnorm,
        "batch_per_process": job.batch // d.world,
        "settings": settings,
    }
    if d.world > 1:  # each process's final weights, to show they are one model
        summary["rank_weights_sha1"] = d.gather(distributed.state_sha1(model))
    if d.main:
        _save_backbone(job, model, run_dir / "backbone.pt")
        ckpt.write_run(run_dir, summary)
    d.barrier()
    return summary


def _save_backbone(job: _Job, model: nn.Module, path: Path) -> None:
    """The backbone alone (what fine-tuning loads): BYOL's online network, or the classifier's."""
    net = model.net if job.method == "byol" else job.net
    state = {"arch": job.settings["arch"], "method": job.method, "backbone": backbone_state(net)}
    ckpt.atomic_save(state, path)
