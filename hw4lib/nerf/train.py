"""DVGO's training loop on loaded rays: the coarse stage, the fine stage, checkpoints,
resume and NaN handling (the run folder around it is :func:`hw4lib.nerf.run.train_run`'s).

The loop writes ``checkpoint.pt`` (the latest state, atomically every few hundred iterations),
``coarse.pt`` and ``fine.pt`` (finished stages). ``checkpoint.pt`` says how far the run got,
ending with the stage :data:`TRAINED` (``fine.pt`` on disk, the loop's record kept, only the
run's report and ``done.json`` left to do). The fine stage is the one asked for (step size,
voxels), so runs of the step-size/voxel sweep can share one coarse stage.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from ..config import DVGOStage, NerfConfig
from ..data.blender import BACKGROUNDS
from ..errors import check_finite
from ..results import atomic_save
from ..runs import CheckpointClock
from . import grid as G
from . import render as R
from .dvgo import FreeSpaceMask, VoxelModel, free_space_mask, refresh_free_space, tight_box
from .optim import MaskedAdam
from .raydata import RayData, rays_through_unknown, view_counts
from .rays import Bounds, scene_box
from .sampling import ErrorMap, draw_rays
from .saved import build_voxel_model, load_model, model_args, save_model

# how often checkpoint.pt is written (hw4lib.runs.CheckpointClock): I/O, not method, so not in
# NerfConfig, whose every field is part of a run's settings
# by time alone: a 160^3 checkpoint is 640 MB (2 s to write); a one-minute run is cheap to redo
CKPT_EVERY = 0  # iterations between checkpoints (0: by time only)
CKPT_SECONDS = 120.0  # seconds between checkpoints, at least
CKPT_SHARE = 0.02  # ... and no more of the run's time than this spent writing them


#: checkpoint.pt's stage once fine.pt is written: a resume only makes the report and done.json
TRAINED = "trained"


@dataclasses.dataclass(frozen=True)
class TrainSetup:
    """What the training loop is given: where it writes, its rays, its settings (the fine
    stage as asked), the background, a finished coarse stage to reuse, and who watches."""

    run: Path
    data: RayData
    cfg: NerfConfig
    background: str  # a key of BACKGROUNDS
    device: str
    coarse_from: Path | None = None  # a finished coarse.pt of identical coarse settings
    progress: bool = True
    on_row: Callable[[dict], None] | None = None  # live curves: after every iteration

    @property
    def bg(self) -> float:
        return BACKGROUNDS[self.background]

    @property
    def ck_path(self) -> Path:
        return self.run / "checkpoint.pt"

    def save(self, m: VoxelModel, state: dict) -> None:
        atomic_save({"state": state, "args": model_args(m), "model": m.state_dict()}, self.ck_path)


# -- one stage ---------------------------------------------------------------------------
def make_optimizer(m: VoxelModel, st: DVGOStage) -> torch.optim.Optimizer:
    """The stage's Adam over the grids and the colour MLP; with ``st.masked_adam``, DVGO v2's
    :class:`~hw4lib.nerf.optim.MaskedAdam` and sparse grid gradients where the kernel runs."""
    groups = [{"params": [m.density, m.color], "lr": st.lr_grid, "base_lr": st.lr_grid}]
    if m.rgbnet is not None:
        groups.append(
            {"params": list(m.rgbnet.parameters()), "lr": st.lr_mlp, "base_lr": st.lr_mlp}
        )
    m.sparse_grad = st.masked_adam and G.uses_extension(m.density)
    if st.masked_adam:
        for g in groups[1:]:  # the MLP's zero gradients are real ones (a dead ReLU)
            g["skip_zero_grad"] = False
        return MaskedAdam(groups, betas=(0.9, 0.99))
    try:
        return torch.optim.Adam(groups, betas=(0.9, 0.99), fused=True)
    except (RuntimeError, TypeError):  # fused unsupported here
        return torch.optim.Adam(groups, betas=(0.9, 0.99))


def stage_loss(out: dict, tgt: torch.Tensor, st: DVGOStage) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loss, mse)`` of a render ``out`` against ``tgt``: eq 3 plus DVGO's entropy and
    per-point rgb losses, weighted as the stage says."""
    mse = R.photometric_loss(out["rgb"], tgt)
    entropy = R.entropy_loss(out["T_last"])
    return mse + st.weight_entropy * entropy + st.weight_rgbper * out["rgbper"], mse


def optimise_step(
    m: VoxelModel,
    opt: torch.optim.Optimizer,
    st: DVGOStage,
    setup: TrainSetup,
    sel: torch.Tensor,
    pervoxel_lr: torch.Tensor | None,
    where: str,
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """One Adam step on the rays ``sel``: eq 3 plus DVGO's entropy and per-point rgb losses;
    with ``pervoxel_lr`` each voxel's update is scaled by its view count n_j / n_max."""
    ro, rd, tgt = setup.data.rays_o[sel], setup.data.rays_d[sel], setup.data.target[sel]
    out = m.render(ro, rd, setup.bg, setup.cfg.near, setup.cfg.far, target=tgt)
    loss, mse = stage_loss(out, tgt, st)
    check_finite(float(loss.detach()), setup.run, "DVGO training", where, setup.ck_path)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if pervoxel_lr is not None:
        before = [m.density.detach().clone(), m.color.detach().clone()]
    opt.step()
    if pervoxel_lr is not None:
        with torch.no_grad():
            for p, b in zip((m.density, m.color), before):
                p.copy_(b + (p - b) * pervoxel_lr[..., None])
    return loss, mse, out


def train_stage(
    setup: TrainSetup,
    m: VoxelModel,
    st: DVGOStage,
    name: str,
    state: dict,
    ray_ids: torch.Tensor | None = None,
    pervoxel_lr: torch.Tensor | None = None,
) -> None:
    """Train ``m`` for ``st.iters`` iterations from ``state['iter']`` on the rays ``ray_ids``
    (None: all), appending to ``state['history']``; a checkpoint every :data:`CKPT_SECONDS`
    (or :data:`CKPT_EVERY` iterations, when set)."""
    cfg = setup.cfg
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed * 1000 + (1 if name == "fine" else 0))
    if state.get("gen") is not None:  # a resume draws the rays the uninterrupted run would
        gen.set_state(state["gen"])
    opt = make_optimizer(m, st)
    if state.get("optim") is not None:
        opt.load_state_dict(state["optim"])
    n_all = setup.data.rays_o.shape[0] if ray_ids is None else ray_ids.numel()
    errors = None
    if st.error_rays > 0 and ray_ids is not None:
        errors = ErrorMap(ray_ids, setup.data.size)
        if state.get("errors") is not None:
            errors.load_state_dict(state["errors"])
    t_start = time.perf_counter() - (state["history"]["seconds"] or [0.0])[-1]
    clock = CheckpointClock(CKPT_SECONDS, CKPT_EVERY, CKPT_SHARE)
    bar = tqdm(
        range(state["iter"], st.iters),
        desc=f"dvgo {name}",
        disable=not setup.progress,
        initial=state["iter"],
        total=st.iters,
        mininterval=1.0,
    )
    for it in bar:
        if it in st.pg_scale:  # progressive scaling: double the voxels, fresh optimizer
            m.scale_volume(m.num_voxels * 2)
            if st.mask_refresh and m.mask is not None:
                m.mask = refresh_free_space(m, st.fast_color_thres)
            opt = make_optimizer(m, st)
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * 0.1 ** (it / st.lr_decay_steps)
        pos = draw_rays(n_all, st.n_rays, gen, errors, st.error_rays)
        sel = (pos if ray_ids is None else ray_ids[pos]).to(m.lo.device)
        t0 = time.perf_counter()
        loss, mse, out = optimise_step(
            m, opt, st, setup, sel, pervoxel_lr, f"{name} iteration {it}"
        )
        if errors is not None:
            errors.update(pos, (out["rgb"].detach() - setup.data.target[sel]).square().mean(-1))
        rays_s = sel.numel() / max(time.perf_counter() - t0, 1e-9)
        row = _record(setup, state, name, loss, mse, out, t_start)
        bar.set_postfix(
            loss=f"{row['loss']:.4f}",
            psnr=f"{row['psnr']:.2f}",
            rays_s=f"{rays_s:.0f}",
            refresh=False,
        )
        if clock.due(state["iter"]):
            # every generator's state too, so that a resume repeats the uninterrupted run
            state.update(optim=opt.state_dict(), gen=gen.get_state(), rng=torch.get_rng_state())
            state["errors"] = errors.state_dict() if errors is not None else None
            t_write = time.perf_counter()
            setup.save(m, state)
            clock.restart(time.perf_counter() - t_write)
    bar.close()
    state.update(optim=None, gen=None, errors=None)


def _record(
    setup: TrainSetup,
    state: dict,
    stage: str,
    loss: torch.Tensor,
    mse: torch.Tensor,
    out: dict,
    t_start: float,
) -> dict:
    """One iteration done: its row in ``state``'s history (and to ``setup.on_row``)."""
    state["iter"] += 1
    row = {
        "stage": stage,
        "iter": state["iter"],
        "loss": float(loss.item()),
        "psnr": R.psnr_from_mse(mse.item()),
        "seconds": time.perf_counter() - t_start,
    }
    hist = state["history"]
    for k in ("loss", "psnr", "seconds"):
        hist[k].append(row[k])
    hist["points"].append(out["n_points"])
    if setup.on_row is not None:
        setup.on_row(row)
    return row


# -- the two stages ----------------------------------------------------------------------
def stage_model(
    lo: torch.Tensor,
    hi: torch.Tensor,
    num_voxels: int,
    base_voxel: float,
    st: DVGOStage,
    mask: FreeSpaceMask | None = None,
) -> VoxelModel:
    """A fresh :class:`VoxelModel` with the stage's settings."""
    return VoxelModel(
        lo,
        hi,
        num_voxels,
        base_voxel,
        alpha_init=st.alpha_init,
        stepsize=st.stepsize,
        fast_color_thres=st.fast_color_thres,
        feat_dim=st.feat_dim,
        rgbnet_width=st.rgbnet_width,
        rgbnet_depth=st.rgbnet_depth,
        viewbase_pe=st.viewbase_pe,
        mask=mask,
    )


def _add_time(state: dict, key: str, seconds: float) -> None:
    state["timings"][key] = state["timings"].get(key, 0.0) + seconds


def coarse_stage(setup: TrainSetup, state: dict, model: VoxelModel | None) -> None:
    """The coarse stage (or a finished ``setup.coarse_from`` reused) into ``coarse.pt``; then
    ``state`` moves on to the fine stage."""
    cfg, dev, coarse_from = setup.cfg, setup.device, setup.coarse_from
    if coarse_from is not None and Path(coarse_from).is_file() and state["iter"] == 0:
        save_model(load_model(Path(coarse_from), dev), setup.run / "coarse.pt")
        state["timings"].update(coarse_s=0.0, coarse_reused=str(coarse_from))
    else:
        t0 = time.perf_counter()
        lo, hi = (t.to(dev) for t in scene_box(setup.data.cams, cfg.near, cfg.far))
        base = G.voxel_size(lo, hi, cfg.coarse.num_voxels)
        if model is None:
            model = stage_model(lo, hi, cfg.coarse.num_voxels, base, cfg.coarse).to(dev)
        counts = view_counts(setup.data.cams, model.lo, model.hi, model.shape, cfg.near, cfg.far)
        lr_scale = counts / counts.max().clamp_min(1)
        train_stage(setup, model, cfg.coarse, "coarse", state, pervoxel_lr=lr_scale)
        _add_time(state, "coarse_s", time.perf_counter() - t0)
        save_model(model, setup.run / "coarse.pt")
    state.update(
        stage="fine", iter=0, optim=None, gen=None, coarse_iters=len(state["history"]["loss"])
    )


def fine_stage(
    setup: TrainSetup, state: dict, model: VoxelModel | None, st: DVGOStage
) -> VoxelModel:
    """The fine stage inside the coarse stage's box, skipping its free space (``model``: the
    fine model of an interrupted run, or None to start one)."""
    cfg, t0 = setup.cfg, time.perf_counter()
    coarse = load_model(setup.run / "coarse.pt", setup.device)
    mask = free_space_mask(coarse, cfg.free_space_thres)
    if model is None:
        lo, hi = tight_box(coarse, cfg.box_thres)
        nv0 = max(1, st.num_voxels // (2 ** len(st.pg_scale)))
        model = stage_model(
            lo.to(setup.device), hi.to(setup.device), nv0, coarse.base_voxel, st, mask
        ).to(setup.device)
        state["fine_box"] = [lo.tolist(), hi.tolist()]
    step = coarse.voxel_size * 0.5
    bounds = Bounds(model.lo, model.hi, cfg.near, cfg.far)
    ids = rays_through_unknown(setup.data, mask, bounds, step)
    if ids.numel() == 0:  # the coarse stage found nothing: train on every ray, no skipping
        ids = torch.arange(setup.data.rays_o.shape[0])
        model.mask = None
    state["rays_kept"] = [int(ids.numel()), int(setup.data.rays_o.shape[0])]
    state["free_fraction"] = mask.fraction_free()
    t_prep = time.perf_counter() - t0
    t0 = time.perf_counter()
    train_stage(setup, model, st, "fine", state, ray_ids=ids.cpu())
    _add_time(state, "fine_s", t_prep + time.perf_counter() - t0)
    return model


# -- a run -------------------------------------------------------------------------------
def _new_history() -> dict[str, list]:
    return {"loss": [], "psnr": [], "seconds": [], "points": []}


def _start(ck: dict | None, device: str) -> tuple[dict[str, Any], VoxelModel | None]:
    """The state and model to go on from: a checkpoint's, or a fresh run's."""
    if ck is None:
        return {"stage": "coarse", "iter": 0, "history": _new_history(), "timings": {}}, None
    model = build_voxel_model(ck["args"], ck["model"], device)
    # after the build, whose layer init draws from torch's generator: the fine model's init
    # in the uninterrupted run drew from the state saved here
    if ck["state"].get("rng") is not None:
        torch.set_rng_state(ck["state"]["rng"])
    return ck["state"], model


def _finish(setup: TrainSetup, model: VoxelModel, state: dict) -> dict:
    """``fine.pt``, then the checkpoint marking the run :data:`TRAINED` with the loop's record
    (what :func:`train` returns)."""
    extra = {
        "orig_size": list(setup.data.orig_size),
        "train_size": list(setup.data.size),
        "near": setup.cfg.near,
        "far": setup.cfg.far,
        "background": setup.background,
    }
    save_model(model, setup.run / "fine.pt", extra)
    keys = ("rays_kept", "free_fraction", "fine_box")
    result = {
        "history": state["history"],
        "timings": state["timings"],
        "coarse_iters": state.get("coarse_iters", 0),
        **{k: state.get(k) for k in keys},
    }
    # the model is fine.pt: this checkpoint only says training is over and what it recorded
    atomic_save(
        {"state": {"stage": TRAINED, "result": result}, "args": {}, "model": {}}, setup.ck_path
    )
    return result


def train(setup: TrainSetup, ck: dict | None = None) -> dict:
    """Train coarse then fine DVGO on ``setup``'s rays, from the start or from the checkpoint
    ``ck`` of an interrupted run (:func:`hw4lib.nerf.saved.load_resume_checkpoint`; not one
    marked :data:`TRAINED`); returns the loop's record ``{"history", "timings", "coarse_iters",
    "rays_kept", "free_fraction", "fine_box"}``.

    A resume restores the ray sampler's and torch's random states, so a resumed run repeats
    the uninterrupted one bit for bit (timings aside). A NaN loss stops with
    :class:`~hw4lib.errors.UserError`, keeping the last good checkpoint. The run folder is the
    caller's (:func:`hw4lib.nerf.run.train_run`: checked, cleared or resumed, finished).
    """
    torch.manual_seed(setup.cfg.seed)
    state, model = _start(ck, setup.device)
    if state["stage"] == "coarse":
        coarse_stage(setup, state, model)
        model = None
    model = fine_stage(setup, state, model, setup.cfg.fine)
    return _finish(setup, model, state)
