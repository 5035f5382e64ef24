"""DVGO training: the coarse stage, the fine stage, checkpoints, resume and NaN handling.

A run directory holds ``settings.json``, ``checkpoint.pt`` (the latest state, written
atomically every few hundred iterations), ``coarse.pt`` and ``fine.pt`` (finished stages) and
``done.json`` (history and timings). ``--stepsize`` and ``--fine-voxels`` set the fine stage,
so runs of the step-size/voxel sweep can share one coarse stage.
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
from ..data.blender import BACKGROUNDS, load_split
from ..errors import UserError
from ..memory import keep_freed_memory
from ..results import atomic_save, atomic_write_text, load_checkpoint
from . import grid as G
from . import render as R
from .dvgo import FreeSpaceMask, VoxelModel, free_space_mask, refresh_free_space, tight_box
from .rays import camera_rays, march, scene_box

CKPT_EVERY = 500  # iterations between checkpoints
CKPT_SECONDS = 120.0  # ... or seconds, whichever comes first


# -- checkpoints -------------------------------------------------------------------------
def model_args(m: VoxelModel) -> dict[str, Any]:
    return dict(
        lo=m.lo.cpu().tolist(),
        hi=m.hi.cpu().tolist(),
        num_voxels=m.num_voxels,
        base_voxel=m.base_voxel,
        alpha_init=m.alpha_init,
        stepsize=m.stepsize,
        fast_color_thres=m.fast_color_thres,
        feat_dim=m.feat_dim,
        rgbnet_width=m.rgbnet[0].out_features if m.rgbnet is not None else 0,
        rgbnet_depth=(len(m.rgbnet) - 1) // 2 if m.rgbnet is not None else 0,
        viewbase_pe=m.viewbase_pe,
        shift=m.shift,
        mask_shape=list(m.mask.occupied.shape) if m.mask is not None else None,
    )


def build_voxel_model(
    args: dict[str, Any], state: dict[str, torch.Tensor] | None = None, device: str = "cpu"
) -> VoxelModel:
    """Rebuild a :class:`VoxelModel` from :func:`model_args` (and load ``state``)."""
    mask = None
    if args.get("mask_shape"):
        mask = FreeSpaceMask(
            torch.zeros(args["mask_shape"], dtype=torch.bool), torch.zeros(3), torch.ones(3)
        )
    m = VoxelModel(
        torch.tensor(args["lo"]),
        torch.tensor(args["hi"]),
        args["num_voxels"],
        args["base_voxel"],
        args["alpha_init"],
        args["stepsize"],
        args["fast_color_thres"],
        args["feat_dim"],
        args["rgbnet_width"] or 128,
        args["rgbnet_depth"] or 2,
        args["viewbase_pe"],
        mask,
    )
    m.shift = args["shift"]
    if state is not None:
        m.load_state_dict(state)
    return m.to(device)


def save_model(m: VoxelModel, path: Path, extra: dict | None = None) -> None:
    atomic_save({"args": model_args(m), "state": m.state_dict(), **(extra or {})}, path)


#: every saved model (coarse.pt, fine.pt) holds these; checkpoint.pt holds CHECKPOINT_KEYS
MODEL_KEYS = ("args", "state")
CHECKPOINT_KEYS = ("state", "args", "model")


def load_model(path: Path, device: str = "cpu") -> VoxelModel:
    """A saved stage (``coarse.pt``, ``fine.pt``), loaded without running code from the file."""
    ck = load_checkpoint(
        path,
        keys=MODEL_KEYS,
        fix=(
            f"delete {Path(path).parent} and train it again (`hw4 nerf train --data DIR --out "
            f"{Path(path).parent}`), or use a run you trust"
        ),
    )
    return build_voxel_model(ck["args"], ck["state"], device)


def load_resume_checkpoint(ck_path: Path) -> dict[str, Any]:
    """``checkpoint.pt`` of an interrupted run, or a one-line error saying how to go on."""
    # without checkpoint.pt, the same command minus --resume trains the run again from the start
    return load_checkpoint(
        ck_path,
        keys=CHECKPOINT_KEYS,
        fix=(
            f"delete {ck_path} and rerun without --resume to train the run afresh, or resume a run "
            "you trust"
        ),
    )


# -- training data -----------------------------------------------------------------------
@dataclasses.dataclass
class RayData:
    """Every training pixel as a ray: origins, unit directions and target colours, (P, 3) each."""

    rays_o: torch.Tensor
    rays_d: torch.Tensor
    target: torch.Tensor
    cams: Any
    size: tuple[int, int]  # training image size (H, W)
    orig_size: tuple[int, int]  # size of the images on disk


def ray_data(
    data_dir: Path, cfg: NerfConfig, background: str, downscale: float, device: str
) -> RayData:
    split = load_split(data_dir, "train", downscale=downscale, max_size=cfg.max_train_size)
    from ..data.blender import read_transforms

    orig = read_transforms(Path(data_dir) / "transforms_train.json")
    o, d = camera_rays(split.cameras, device)
    tgt = split.rgb(background).to(device)
    return RayData(
        o.reshape(-1, 3),
        d.reshape(-1, 3),
        tgt.reshape(-1, 3),
        split.cameras,
        (split.cameras.H, split.cameras.W),
        (orig.H, orig.W),
    )


def view_counts(
    cams, lo: torch.Tensor, hi: torch.Tensor, shape: tuple[int, int, int], near: float, far: float
) -> torch.Tensor:
    """How many training views see each voxel: (X, Y, Z) counts.

    A voxel is seen by a view when some ray of the view passes it between near and far, i.e.
    when its centre projects inside the image (widened by one voxel) at a depth in [near, far].
    """
    from .dvgo import voxel_centres

    xyz = voxel_centres(lo.cpu(), hi.cpu(), shape).reshape(-1, 3)
    vox = float(((hi - lo).cpu() / (torch.tensor(shape) - 1)).max())
    count = torch.zeros(xyz.shape[0])
    for c2w in cams.poses:
        rot, o = c2w[:3, :3], c2w[:3, 3]
        pc = (xyz - o) @ rot  # camera coordinates (OpenGL: looking down -z)
        z = -pc[:, 2]
        dist = (xyz - o).norm(dim=-1)
        zc = z.clamp_min(1e-6)
        u = cams.fx * pc[:, 0] / zc + cams.cx
        v = -cams.fy * pc[:, 1] / zc + cams.cy
        m = cams.fx * vox / zc  # one voxel in pixels: voxels straddling the border count
        seen = (
            (z > 0)
            & (dist >= near - vox)
            & (dist <= far + vox)
            & (u > -m)
            & (u < cams.W + m)
            & (v > -m)
            & (v < cams.H + m)
        )
        count += seen
    return count.view(shape).to(lo.device)


def rays_through_unknown(
    data: RayData,
    mask: FreeSpaceMask,
    lo: torch.Tensor,
    hi: torch.Tensor,
    near: float,
    far: float,
    step: float,
    chunk: int = 65536,
) -> torch.Tensor:
    """Indices of the training rays that pass some not-known-free space (the others are dropped)."""
    keep = []
    for s in range(0, data.rays_o.shape[0], chunk):
        *_, count = march(
            data.rays_o[s : s + chunk],
            data.rays_d[s : s + chunk],
            lo,
            hi,
            near,
            far,
            step,
            mask.occupied,
            mask.lo,
            mask.hi,
            count_only=True,
        )
        keep.append((count > 0).nonzero()[:, 0] + s)
    return torch.cat(keep)


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


def _nvox(st: DVGOStage, fine_voxels: int | None) -> int:
    return int(fine_voxels) if fine_voxels else st.num_voxels


class NanLoss(Exception):
    pass


def train_stage(
    m: VoxelModel,
    st: DVGOStage,
    data: RayData,
    ray_ids: torch.Tensor | None,
    cfg: NerfConfig,
    bg: float,
    state: dict,
    save: Callable[[dict], None],
    name: str,
    pervoxel_lr: torch.Tensor | None = None,
    progress: bool = True,
    on_row: Callable[[dict], None] | None = None,
) -> None:
    """Train ``m`` for ``st.iters`` iterations from ``state['iter']``; appends to
    ``state['history']``.

    ``save(state)`` is called every :data:`CKPT_EVERY` iterations / :data:`CKPT_SECONDS`;
    ``on_row`` (live curves) after every iteration with ``{stage, iter, loss, psnr, seconds}``.
    """
    dev = m.lo.device
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed * 1000 + (1 if name == "fine" else 0))
    if state.get("gen") is not None:  # a resume draws the rays the uninterrupted run would
        gen.set_state(state["gen"])
    pg = sorted(st.pg_scale)
    opt = make_optimizer(m, st)
    if state.get("optim") is not None:
        opt.load_state_dict(state["optim"])
    hist = state["history"]
    n_all = data.rays_o.shape[0] if ray_ids is None else ray_ids.numel()
    t_start = time.perf_counter() - (hist["seconds"][-1] if hist["seconds"] else 0.0)
    last_save = time.perf_counter()
    bar = tqdm(
        range(state["iter"], st.iters),
        desc=f"dvgo {name}",
        disable=not progress,
        initial=state["iter"],
        total=st.iters,
        mininterval=1.0,
    )
    for it in bar:
        if it in pg:  # progressive scaling: double the voxels, fresh optimizer
            m.scale_volume(m.num_voxels * 2)
            if st.mask_refresh and m.mask is not None:
                m.mask = refresh_free_space(m, st.fast_color_thres)
            opt = make_optimizer(m, st)
        decay = 0.1 ** (it / st.lr_decay_steps)
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * decay
        sel = torch.randint(0, n_all, (min(st.n_rays, n_all),), generator=gen)
        if ray_ids is not None:
            sel = ray_ids[sel]
        sel = sel.to(dev)
        ro, rd, tgt = data.rays_o[sel], data.rays_d[sel], data.target[sel]
        t0 = time.perf_counter()
        out = m.render(ro, rd, bg, cfg.near, cfg.far, target=tgt)
        mse = R.photometric_loss(out["rgb"], tgt)
        loss = (
            mse
            + st.weight_entropy * R.entropy_loss(out["T_last"])
            + st.weight_rgbper * out["rgbper"]
        )
        if not torch.isfinite(loss):
            raise NanLoss(f"{name} iteration {it}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if pervoxel_lr is not None:
            before = [m.density.detach().clone(), m.color.detach().clone()]
        opt.step()
        if pervoxel_lr is not None:  # scale each voxel's update by n_j / n_max
            with torch.no_grad():
                for p, b in zip((m.density, m.color), before):
                    p.copy_(b + (p - b) * pervoxel_lr[..., None])
        dt = time.perf_counter() - t0
        p = R.psnr_from_mse(mse.item())
        hist["loss"].append(float(loss.item()))
        hist["psnr"].append(p)
        hist["seconds"].append(time.perf_counter() - t_start)
        hist["points"].append(out["n_points"])
        state["iter"] = it + 1
        if on_row is not None:
            on_row(
                {
                    "stage": name,
                    "iter": it + 1,
                    "loss": hist["loss"][-1],
                    "psnr": p,
                    "seconds": hist["seconds"][-1],
                }
            )
        bar.set_postfix(
            loss=f"{loss.item():.4f}",
            psnr=f"{p:.2f}",
            rays_s=f"{sel.numel() / max(dt, 1e-9):.0f}",
            refresh=False,
        )
        if state["iter"] % CKPT_EVERY == 0 or time.perf_counter() - last_save > CKPT_SECONDS:
            # every generator's state too, so that a resume repeats the uninterrupted run
            state.update(optim=opt.state_dict(), gen=gen.get_state(), rng=torch.get_rng_state())
            save(state)
            last_save = time.perf_counter()
    bar.close()
    state.update(optim=None, gen=None)


def _new_history() -> dict[str, list]:
    return {"loss": [], "psnr": [], "seconds": [], "points": []}


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
) -> dict:
    """Train coarse then fine DVGO on ``data_dir``; returns ``{"history", "timings", ...}``.

    Resumes from ``run_dir/checkpoint.pt`` when present (``resume=True`` demands one), with
    the ray sampler's and torch's random states, so a resumed run repeats the uninterrupted one
    bit for bit (timings aside). A NaN
    loss stops with :class:`UserError`, keeping the last good checkpoint. ``coarse_from``: a
    finished ``coarse.pt`` of identical coarse settings to reuse. The caller checks that
    ``run_dir`` may be written (:func:`hw4lib.nerf.jobs.train_run` does).
    """
    data_dir, run = Path(data_dir), Path(run_dir)
    if device == "cpu":
        keep_freed_memory()
    bg_name = background or cfg.background
    bg = BACKGROUNDS[bg_name]
    ck_path = run / "checkpoint.pt"
    if resume and not ck_path.is_file() and not (run / "done.json").is_file():
        raise UserError(f"{run}: no checkpoint.pt to resume from; drop --resume to start a new run")
    # read the checkpoint before anything is written: a refused or torn one leaves the folder
    # exactly as it was
    ck = load_resume_checkpoint(ck_path) if ck_path.is_file() else None
    torch.manual_seed(cfg.seed)
    data = ray_data(data_dir, cfg, bg_name, downscale, device)
    fine_st = dataclasses.replace(
        cfg.fine, stepsize=stepsize or cfg.fine.stepsize, num_voxels=_nvox(cfg.fine, fine_voxels)
    )
    settings = dict(settings or {})
    atomic_write_text(run / "settings.json", json.dumps(settings, indent=2, default=str))

    state: dict[str, Any] = {
        "stage": "coarse",
        "iter": 0,
        "history": _new_history(),
        "optim": None,
        "timings": {},
    }
    model: VoxelModel | None = None
    if ck is not None:
        state = ck["state"]
        model = build_voxel_model(ck["args"], ck["model"], device)
        if state.get("rng") is not None:  # the fine model's init draws from it
            torch.set_rng_state(state["rng"])

    def save(st: dict) -> None:
        atomic_save({"state": st, "args": model_args(model), "model": model.state_dict()}, ck_path)

    try:
        # ---- coarse
        if state["stage"] == "coarse":
            if coarse_from is not None and Path(coarse_from).is_file() and state["iter"] == 0:
                model = load_model(Path(coarse_from), device)
                save_model(model, run / "coarse.pt")
                state["timings"]["coarse_s"] = 0.0
                state["timings"]["coarse_reused"] = str(coarse_from)
            else:
                t0 = time.perf_counter()
                lo, hi = scene_box(data.cams, cfg.near, cfg.far)
                lo, hi = lo.to(device), hi.to(device)
                base = G.voxel_size(lo, hi, cfg.coarse.num_voxels)
                if model is None:
                    model = VoxelModel(
                        lo,
                        hi,
                        cfg.coarse.num_voxels,
                        base,
                        cfg.coarse.alpha_init,
                        cfg.coarse.stepsize,
                        cfg.coarse.fast_color_thres,
                    ).to(device)
                counts = view_counts(data.cams, model.lo, model.hi, model.shape, cfg.near, cfg.far)
                lr_scale = counts / counts.max().clamp_min(1)
                train_stage(
                    model,
                    cfg.coarse,
                    data,
                    None,
                    cfg,
                    bg,
                    state,
                    save,
                    "coarse",
                    pervoxel_lr=lr_scale,
                    progress=progress,
                    on_row=on_row,
                )
                state["timings"]["coarse_s"] = (
                    state["timings"].get("coarse_s", 0.0) + time.perf_counter() - t0
                )
                save_model(model, run / "coarse.pt")
            state.update(
                stage="fine",
                iter=0,
                optim=None,
                gen=None,
                coarse_iters=len(state["history"]["loss"]),
            )
            model = None
        # ---- fine
        t0 = time.perf_counter()
        coarse = load_model(run / "coarse.pt", device)
        mask = free_space_mask(coarse, cfg.free_space_thres)
        if model is None:
            lo, hi = tight_box(coarse, cfg.box_thres)
            nv0 = max(1, fine_st.num_voxels // (2 ** len(fine_st.pg_scale)))
            model = VoxelModel(
                lo.to(device),
                hi.to(device),
                nv0,
                coarse.base_voxel,
                fine_st.alpha_init,
                fine_st.stepsize,
                fine_st.fast_color_thres,
                fine_st.feat_dim,
                fine_st.rgbnet_width,
                fine_st.rgbnet_depth,
                fine_st.viewbase_pe,
                mask,
            ).to(device)
            state["fine_box"] = [lo.tolist(), hi.tolist()]
        ids = rays_through_unknown(
            data, mask, model.lo, model.hi, cfg.near, cfg.far, coarse.voxel_size * 0.5
        )
        if ids.numel() == 0:  # the coarse stage found nothing: train on every ray, no skipping
            ids = torch.arange(data.rays_o.shape[0])
            model.mask = None
        state["rays_kept"] = [int(ids.numel()), int(data.rays_o.shape[0])]
        state["free_fraction"] = mask.fraction_free()
        t_prep = time.perf_counter() - t0
        t0 = time.perf_counter()
        train_stage(
            model,
            fine_st,
            data,
            ids.cpu(),
            cfg,
            bg,
            state,
            save,
            "fine",
            progress=progress,
            on_row=on_row,
        )
        state["timings"]["fine_s"] = (
            state["timings"].get("fine_s", 0.0) + t_prep + time.perf_counter() - t0
        )
    except NanLoss as e:
        where = ck_path if ck_path.is_file() else "none yet"
        raise UserError(
            f"{run}: the loss became NaN at {e}; training stopped, the last good "
            f"checkpoint is kept ({where}); rerun with --resume or lower the "
            "learning rate"
        ) from None
    save_model(
        model,
        run / "fine.pt",
        {
            "orig_size": list(data.orig_size),
            "train_size": list(data.size),
            "near": cfg.near,
            "far": cfg.far,
            "background": bg_name,
        },
    )
    result = {
        "history": state["history"],
        "timings": state["timings"],
        "coarse_iters": state.get("coarse_iters", 0),
        "rays_kept": state.get("rays_kept"),
        "free_fraction": state.get("free_fraction"),
        "fine_box": state.get("fine_box"),
        "settings": settings,
    }
    atomic_write_text(run / "done.json", json.dumps(result))
    if ck_path.is_file():
        ck_path.unlink()
    return result
