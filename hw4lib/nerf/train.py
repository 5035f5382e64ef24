"""DVGO training: the coarse stage, the fine stage, checkpoints, resume and NaN handling.

A run directory holds ``settings.json``, ``checkpoint.pt`` (the latest state, written
atomically every few hundred iterations), ``coarse.pt`` and ``fine.pt`` (finished stages) and
``done.json`` (history, timings and the caller's report, e.g. the val PSNR). ``done.json`` is
written once, last, with everything in it: until then ``checkpoint.pt`` says how far the run
got, ending with the stage :data:`TRAINED` (``fine.pt`` on disk, only the report left to do).
``--stepsize`` and ``--fine-voxels`` set the fine stage, so runs of the step-size/voxel sweep
can share one coarse stage.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from ..config import DVGOStage, NerfConfig
from ..data.blender import BACKGROUNDS
from ..errors import UserError, check_finite
from ..memory import keep_freed_memory
from ..results import atomic_save, atomic_write_text
from . import grid as G
from . import render as R
from .dvgo import FreeSpaceMask, VoxelModel, free_space_mask, refresh_free_space, tight_box
from .raydata import RayData, ray_data, rays_through_unknown, view_counts
from .rays import scene_box
from .saved import build_voxel_model, load_model, load_resume_checkpoint, model_args, save_model

# how often checkpoint.pt is written: I/O, not method, so not in NerfConfig, whose every field
# is part of a run's settings (a different cadence must not make a finished run stale)
CKPT_EVERY = 500  # iterations between checkpoints
CKPT_SECONDS = 120.0  # ... or seconds, whichever comes first


#: checkpoint.pt's stage once fine.pt is written: a resume only makes the report and done.json
TRAINED = "trained"


@dataclasses.dataclass(frozen=True)
class Job:
    """One training run: where it writes, its rays and settings, and who watches it."""

    run: Path
    data: RayData
    cfg: NerfConfig
    bg: float
    device: str
    progress: bool = True
    on_row: Callable[[dict], None] | None = None  # live curves: after every iteration

    @property
    def ck_path(self) -> Path:
        return self.run / "checkpoint.pt"

    def save(self, m: VoxelModel, state: dict) -> None:
        atomic_save({"state": state, "args": model_args(m), "model": m.state_dict()}, self.ck_path)


# -- one stage ---------------------------------------------------------------------------
def make_optimizer(m: VoxelModel, st: DVGOStage) -> torch.optim.Optimizer:
    groups = [{"params": [m.density, m.color], "lr": st.lr_grid, "base_lr": st.lr_grid}]
    if m.rgbnet is not None:
        groups.append(
            {"params": list(m.rgbnet.parameters()), "lr": st.lr_mlp, "base_lr": st.lr_mlp}
        )
    try:
        return torch.optim.Adam(groups, betas=(0.9, 0.99), fused=True)
    except (RuntimeError, TypeError):  # fused unsupported here
        return torch.optim.Adam(groups, betas=(0.9, 0.99))


def optimise_step(
    m: VoxelModel,
    opt: torch.optim.Optimizer,
    st: DVGOStage,
    job: Job,
    sel: torch.Tensor,
    pervoxel_lr: torch.Tensor | None,
    where: str,
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """One Adam step on the rays ``sel``: eq 3 plus DVGO's entropy and per-point rgb losses;
    with ``pervoxel_lr`` each voxel's update is scaled by its view count n_j / n_max."""
    ro, rd, tgt = job.data.rays_o[sel], job.data.rays_d[sel], job.data.target[sel]
    out = m.render(ro, rd, job.bg, job.cfg.near, job.cfg.far, target=tgt)
    mse = R.photometric_loss(out["rgb"], tgt)
    entropy = R.entropy_loss(out["T_last"])
    loss = mse + st.weight_entropy * entropy + st.weight_rgbper * out["rgbper"]
    check_finite(float(loss.detach()), job.run, "DVGO training", where, job.ck_path)
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
    job: Job,
    m: VoxelModel,
    st: DVGOStage,
    name: str,
    state: dict,
    ray_ids: torch.Tensor | None = None,
    pervoxel_lr: torch.Tensor | None = None,
) -> None:
    """Train ``m`` for ``st.iters`` iterations from ``state['iter']`` on the rays ``ray_ids``
    (None: all), appending to ``state['history']``; a checkpoint every :data:`CKPT_EVERY`
    iterations or :data:`CKPT_SECONDS`, whichever comes first."""
    cfg, hist = job.cfg, state["history"]
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed * 1000 + (1 if name == "fine" else 0))
    if state.get("gen") is not None:  # a resume draws the rays the uninterrupted run would
        gen.set_state(state["gen"])
    opt = make_optimizer(m, st)
    if state.get("optim") is not None:
        opt.load_state_dict(state["optim"])
    n_all = job.data.rays_o.shape[0] if ray_ids is None else ray_ids.numel()
    t_start = time.perf_counter() - (hist["seconds"][-1] if hist["seconds"] else 0.0)
    last_save = time.perf_counter()
    bar = tqdm(
        range(state["iter"], st.iters),
        desc=f"dvgo {name}",
        disable=not job.progress,
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
        sel = torch.randint(0, n_all, (min(st.n_rays, n_all),), generator=gen)
        sel = (sel if ray_ids is None else ray_ids[sel]).to(m.lo.device)
        t0 = time.perf_counter()
        loss, mse, out = optimise_step(m, opt, st, job, sel, pervoxel_lr, f"{name} iteration {it}")
        dt = time.perf_counter() - t0
        row = {
            "stage": name,
            "iter": it + 1,
            "loss": float(loss.item()),
            "psnr": R.psnr_from_mse(mse.item()),
            "seconds": time.perf_counter() - t_start,
        }
        for k in ("loss", "psnr", "seconds"):
            hist[k].append(row[k])
        hist["points"].append(out["n_points"])
        state["iter"] = it + 1
        if job.on_row is not None:
            job.on_row(row)
        bar.set_postfix(
            loss=f"{row['loss']:.4f}",
            psnr=f"{row['psnr']:.2f}",
            rays_s=f"{sel.numel() / max(dt, 1e-9):.0f}",
            refresh=False,
        )
        if state["iter"] % CKPT_EVERY == 0 or time.perf_counter() - last_save > CKPT_SECONDS:
            # every generator's state too, so that a resume repeats the uninterrupted run
            state.update(optim=opt.state_dict(), gen=gen.get_state(), rng=torch.get_rng_state())
            job.save(m, state)
            last_save = time.perf_counter()
    bar.close()
    state.update(optim=None, gen=None)


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


def coarse_stage(job: Job, state: dict, model: VoxelModel | None, coarse_from: Path | None) -> None:
    """The coarse stage (or a finished ``coarse_from`` reused) into ``coarse.pt``; then
    ``state`` moves on to the fine stage."""
    cfg, dev = job.cfg, job.device
    if coarse_from is not None and Path(coarse_from).is_file() and state["iter"] == 0:
        save_model(load_model(Path(coarse_from), dev), job.run / "coarse.pt")
        state["timings"].update(coarse_s=0.0, coarse_reused=str(coarse_from))
    else:
        t0 = time.perf_counter()
        lo, hi = (t.to(dev) for t in scene_box(job.data.cams, cfg.near, cfg.far))
        base = G.voxel_size(lo, hi, cfg.coarse.num_voxels)
        if model is None:
            model = stage_model(lo, hi, cfg.coarse.num_voxels, base, cfg.coarse).to(dev)
        counts = view_counts(job.data.cams, model.lo, model.hi, model.shape, cfg.near, cfg.far)
        lr_scale = counts / counts.max().clamp_min(1)
        train_stage(job, model, cfg.coarse, "coarse", state, pervoxel_lr=lr_scale)
        _add_time(state, "coarse_s", time.perf_counter() - t0)
        save_model(model, job.run / "coarse.pt")
    state.update(
        stage="fine", iter=0, optim=None, gen=None, coarse_iters=len(state["history"]["loss"])
    )


def fine_stage(job: Job, state: dict, model: VoxelModel | None, st: DVGOStage) -> VoxelModel:
    """The fine stage inside the coarse stage's box, skipping its free space (``model``: the
    fine model of an interrupted run, or None to start one)."""
    cfg, t0 = job.cfg, time.perf_counter()
    coarse = load_model(job.run / "coarse.pt", job.device)
    mask = free_space_mask(coarse, cfg.free_space_thres)
    if model is None:
        lo, hi = tight_box(coarse, cfg.box_thres)
        nv0 = max(1, st.num_voxels // (2 ** len(st.pg_scale)))
        model = stage_model(
            lo.to(job.device), hi.to(job.device), nv0, coarse.base_voxel, st, mask
        ).to(job.device)
        state["fine_box"] = [lo.tolist(), hi.tolist()]
    step = coarse.voxel_size * 0.5
    ids = rays_through_unknown(job.data, mask, model.lo, model.hi, cfg.near, cfg.far, step)
    if ids.numel() == 0:  # the coarse stage found nothing: train on every ray, no skipping
        ids = torch.arange(job.data.rays_o.shape[0])
        model.mask = None
    state["rays_kept"] = [int(ids.numel()), int(job.data.rays_o.shape[0])]
    state["free_fraction"] = mask.fraction_free()
    t_prep = time.perf_counter() - t0
    t0 = time.perf_counter()
    train_stage(job, model, st, "fine", state, ray_ids=ids.cpu())
    _add_time(state, "fine_s", t_prep + time.perf_counter() - t0)
    return model


# -- a run -------------------------------------------------------------------------------
def _new_history() -> dict[str, list]:
    return {"loss": [], "psnr": [], "seconds": [], "points": []}


def _nvox(st: DVGOStage, fine_voxels: int | None) -> int:
    return int(fine_voxels) if fine_voxels else st.num_voxels


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


def _finish(job: Job, model: VoxelModel, state: dict, bg_name: str, settings: dict) -> dict:
    """``fine.pt``, then the checkpoint marking the run :data:`TRAINED` with its record."""
    extra = {
        "orig_size": list(job.data.orig_size),
        "train_size": list(job.data.size),
        "near": job.cfg.near,
        "far": job.cfg.far,
        "background": bg_name,
    }
    save_model(model, job.run / "fine.pt", extra)
    keys = ("rays_kept", "free_fraction", "fine_box")
    result = {
        "history": state["history"],
        "timings": state["timings"],
        "coarse_iters": state.get("coarse_iters", 0),
        **{k: state.get(k) for k in keys},
        "settings": settings,
    }
    # the model is fine.pt: this checkpoint only says training is over and what it recorded
    atomic_save(
        {"state": {"stage": TRAINED, "result": result}, "args": {}, "model": {}}, job.ck_path
    )
    return result


def _done(run: Path, result: dict, report: Callable[[], dict] | None) -> dict:
    """The caller's report added, ``done.json`` written (once, whole), the checkpoint removed."""
    result = {**result, **(report() if report is not None else {})}
    atomic_write_text(run / "done.json", json.dumps(result))
    (run / "checkpoint.pt").unlink(missing_ok=True)
    return result


def train(
    data_dir: str | Path,
    run_dir: str | Path,
    cfg: NerfConfig,
    *,
    stepsize: float | None = None,
    fine_voxels: int | None = None,
    background: str | None = None,
    downscale: float = 1,
    device: str = "cpu",
    resume: bool = False,
    coarse_from: str | Path | None = None,
    progress: bool = True,
    settings: dict | None = None,
    on_row: Callable[[dict], None] | None = None,
    report: Callable[[], dict] | None = None,
) -> dict:
    """Train coarse then fine DVGO on ``data_dir``; returns ``{"history", "timings", ...}``.

    Resumes from ``run_dir/checkpoint.pt`` when present (``resume=True`` demands one), with
    the ray sampler's and torch's random states, so a resumed run repeats the uninterrupted one
    bit for bit (timings aside). A NaN loss stops with :class:`UserError`, keeping the last good
    checkpoint. ``coarse_from``: a finished ``coarse.pt`` of identical coarse settings to reuse.
    The caller checks that ``run_dir`` may be written (:func:`hw4lib.nerf.jobs.train_run` does).
    ``report()``, called once ``fine.pt`` is written, adds its keys (the val PSNR) to the result
    before ``done.json`` is written; a run interrupted in it resumes with ``report()`` alone.
    """
    run = Path(run_dir)
    if device == "cpu":
        keep_freed_memory()
    bg_name = background or cfg.background
    ck_path = run / "checkpoint.pt"
    if resume and not ck_path.is_file() and not (run / "done.json").is_file():
        raise UserError(f"{run}: no checkpoint.pt to resume from; drop --resume to start a new run")
    # read the checkpoint before anything is written: a refused or torn one leaves the folder
    # exactly as it was
    ck = load_resume_checkpoint(ck_path) if ck_path.is_file() else None
    if ck is not None and ck["state"].get("stage") == TRAINED:  # only the report was left
        return _done(run, ck["state"]["result"], report)
    torch.manual_seed(cfg.seed)
    data = ray_data(Path(data_dir), cfg, bg_name, downscale, device)
    fine_st = dataclasses.replace(
        cfg.fine, stepsize=stepsize or cfg.fine.stepsize, num_voxels=_nvox(cfg.fine, fine_voxels)
    )
    settings = dict(settings or {})
    atomic_write_text(run / "settings.json", json.dumps(settings, indent=2, default=str))
    job = Job(run, data, cfg, BACKGROUNDS[bg_name], device, progress, on_row)
    state, model = _start(ck, device)
    if state["stage"] == "coarse":
        coarse_stage(job, state, model, coarse_from)
        model = None
    model = fine_stage(job, state, model, fine_st)
    return _done(run, _finish(job, model, state, bg_name, settings), report)
