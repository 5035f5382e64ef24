"""A DVGO run as asked: the request (built once by ``hw4 nerf train``, a notebook or the
sweep), the settings it records, :func:`train_run` (the run folder's lifecycle around the
training loop of :mod:`.train`), its val PSNR and a finished run's record for figures.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable

from ..config import get_profile, profile_name, resolve_device
from ..errors import UserError
from ..memory import keep_freed_memory
from ..runs import NERF_TRAIN, REUSE, begin_run, finish_run, plan_run
from . import render as R
from .images import load_run, render_split
from .raydata import ray_data
from .saved import load_resume_checkpoint
from .train import TRAINED, TrainSetup, train


@dataclasses.dataclass(frozen=True)
class TrainRequest:
    """One DVGO run as the user asked for it: train the scene ``data`` into the run folder
    ``out`` with a profile's settings, the fine stage's step size and voxel count (None: the
    profile's), the background and a training-image downscale; ``resume`` an interrupted run,
    ``force`` a fresh one over any run of this command; ``coarse_from``: a finished
    ``coarse.pt`` of identical coarse settings to reuse; ``replace_stale``: the folder is a
    cache (the notebooks'), see :func:`hw4lib.runs.plan_run`."""

    data: str | Path
    out: str | Path
    profile: str | None = None
    stepsize: float | None = None
    fine_voxels: int | str | None = None  # a count, or e.g. "180^3"
    device: str = "auto"
    background: str | None = None
    downscale: float = 1
    resume: bool = False
    force: bool = False
    coarse_from: str | Path | None = None
    replace_stale: bool = False


def parse_voxels(text: str | int | None) -> int | None:
    """``"180^3"``, ``"180**3"`` or ``"5832000"`` -> a voxel count."""
    if text is None or isinstance(text, int):
        return text
    s = str(text).strip().replace("**", "^")
    try:
        if "^" in s:
            b, e = s.split("^")
            n = int(b) ** int(e)
        else:
            n = int(float(s))
    except ValueError:
        raise UserError(f"--fine-voxels {text!r}: expected a count like 5832000 or 180^3") from None
    if n < 8:
        raise UserError(f"--fine-voxels {text!r}: need at least 8 voxels")
    return n


def run_settings(req: TrainRequest) -> dict[str, Any]:
    """What the run of ``req`` records as its ``settings.json``: the profile's whole
    :class:`~hw4lib.config.NerfConfig`, and the fine stage, background and downscale asked for
    (a bad voxel count or background is a one-line :class:`UserError`)."""
    profile = profile_name(req.profile)
    cfg = get_profile(profile).nerf
    fine_voxels = parse_voxels(req.fine_voxels)
    if req.background not in (None, "white", "black"):
        raise UserError(f"--background {req.background!r}: choose white or black")
    return {
        "profile": profile,
        "data": str(Path(req.data).resolve()),
        "stepsize": req.stepsize or cfg.fine.stepsize,
        "fine_voxels": fine_voxels or cfg.fine.num_voxels,
        "background": req.background or cfg.background,
        "downscale": req.downscale,
        "nerf": dataclasses.asdict(cfg),
    }


def train_setup(
    req: TrainRequest,
    settings: dict[str, Any],
    progress: bool = True,
    on_row: Callable[[dict], None] | None = None,
) -> TrainSetup:
    """The training loop's setup for ``req`` (its ``settings``): the training rays loaded, the
    profile's config with the fine stage asked for."""
    cfg = get_profile(settings["profile"]).nerf
    fine = dataclasses.replace(
        cfg.fine, stepsize=settings["stepsize"], num_voxels=settings["fine_voxels"]
    )
    cfg = dataclasses.replace(cfg, fine=fine)
    dev = resolve_device(req.device)
    if dev == "cpu":  # DVGO's large per-step temporaries: freed memory kept for the next step
        keep_freed_memory()
    data = ray_data(Path(req.data), cfg, settings["background"], req.downscale, dev)
    coarse = Path(req.coarse_from) if req.coarse_from is not None else None
    return TrainSetup(
        Path(req.out), data, cfg, settings["background"], dev, coarse, progress, on_row
    )


def train_run(
    req: TrainRequest, *, progress: bool = True, on_row: Callable[[dict], None] | None = None
) -> dict:
    """Train DVGO (coarse + fine) as ``req`` asks, or reuse a finished run with identical
    settings; ``on_row(row)`` after every iteration (live curves).

    Returns ``{"history": {"loss","psnr","seconds","points"} (coarse iterations first, then
    fine), "coarse_iters", "timings": {"coarse_s","fine_s"}, "rays_kept", "free_fraction",
    "fine_box", "settings", "val_psnr", "seconds", "reused"}``, all of it also in
    ``done.json``, written once, last (:mod:`hw4lib.runs`' lifecycle): a run killed in its val
    render is unfinished, and resumed it renders val without a training step. A run folder
    holding a run with other settings is refused unless ``req.force``; an interrupted one is
    continued with ``req.resume`` (or replaced / resumed with ``req.replace_stale``).
    """
    settings = run_settings(req)
    run = Path(req.out)
    # before anything is reused, deleted or written: only an empty folder or our own run
    plan = plan_run(
        run, NERF_TRAIN, settings, resume=req.resume, force=req.force, cache=req.replace_stale
    )
    if plan.action == REUSE:
        return {**plan.done, "reused": True}
    t0 = time.perf_counter()
    setup = train_setup(req, settings, progress, on_row)  # the data loads: then the folder changes
    ck = begin_run(run, NERF_TRAIN, plan, settings, load_resume_checkpoint)
    if ck is not None and ck["state"].get("stage") == TRAINED:  # only the val render was left
        result = ck["state"]["result"]
    else:
        result = train(setup, ck)
    v = val_psnr(req, progress=progress)
    record = {"settings": settings, "val_psnr": v, "seconds": time.perf_counter() - t0}
    return finish_run(run, NERF_TRAIN, {**result, **record, "reused": False})


def val_psnr(req: TrainRequest, progress: bool = False) -> float:
    """Mean PSNR of ``req``'s run over its profile's evaluation views of ``val``, at the
    training image size."""
    cfg = get_profile(req.profile).nerf
    views, gts, _ = render_split(
        req.out,
        req.data,
        "val",
        cfg.eval_views,
        cfg.max_train_size,
        device=req.device,
        progress=progress,
    )
    mses = [float(((rgb - g) ** 2).mean()) for (rgb, _), g in zip(views, gts)]
    return sum(R.psnr_from_mse(m) for m in mses) / len(mses)


def run_info(run_dir: str | Path) -> dict[str, Any]:
    """Fine box, free-space statistics and kept rays of a finished run."""
    run = Path(run_dir)
    try:
        done = json.loads((run / NERF_TRAIN.done).read_text())
    except (OSError, ValueError):
        done = {}
    model, meta = load_run(run)
    info = {
        "fine_box": done.get("fine_box"),
        "rays_kept": done.get("rays_kept"),
        "free_fraction": done.get("free_fraction"),
        "grid_shape": list(model.shape),
        "voxel_size": model.voxel_size,
        "step": model.step,
        "timings": done.get("timings"),
        "coarse_iters": done.get("coarse_iters"),
        "val_psnr": done.get("val_psnr"),
    }
    if model.mask is not None:
        info["mask_shape"] = list(model.mask.occupied.shape)
        info["mask"] = model.mask.occupied.cpu()
    return info
