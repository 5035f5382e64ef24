"""High-level DVGO jobs for the notebooks and the CLI: train (or reuse) a run, render it,
evaluate it, sweep the report's five settings, and small accessors for figures.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from ..config import get_profile, profile_name, resolve_device
from ..data.blender import BACKGROUNDS, load_split, read_transforms
from ..errors import UserError
from ..results import write_result
from ..runs import FRESH, NERF_TRAIN, RESUME, REUSE, plan_run, start_fresh
from . import render as R
from .images import load_run, near_far, orbit_cameras, render_image, render_transforms
from .rays import frustum_corners, scene_box
from .train import train


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


def run_settings(
    data_dir: Path,
    profile: str,
    stepsize: float | None,
    fine_voxels: int | None,
    background: str | None,
    downscale: float,
) -> dict[str, Any]:
    cfg = get_profile(profile).nerf
    return {
        "profile": profile,
        "data": str(Path(data_dir).resolve()),
        "stepsize": stepsize or cfg.fine.stepsize,
        "fine_voxels": fine_voxels or cfg.fine.num_voxels,
        "background": background or cfg.background,
        "downscale": downscale,
        "nerf": dataclasses.asdict(cfg),
    }


def _json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def train_run(
    data_dir: str | Path,
    run_dir: str | Path,
    profile: str | None = None,
    stepsize: float | None = None,
    fine_voxels: int | str | None = None,
    device: str = "auto",
    force: bool = False,
    progress: bool = True,
    background: str | None = None,
    downscale: float = 1,
    resume: bool = False,
    coarse_from: str | Path | None = None,
    replace_stale: bool = False,
    on_row: Callable[[dict], None] | None = None,
) -> dict:
    """Train DVGO (coarse + fine) into ``run_dir``, or reuse a finished run with identical settings.

    Returns ``{"history": {"loss","psnr","seconds","points"} (coarse iterations first, then
    fine), "coarse_iters", "timings": {"coarse_s","fine_s"}, "val_psnr", "rays_kept",
    "free_fraction", "fine_box", "settings", "reused"}``. A run directory holding a run with
    other settings is refused unless ``force`` (which starts it over); an interrupted one is
    continued with ``resume``. With ``replace_stale`` (the notebooks, whose ``runs/<profile>/``
    folders are their cache) such a run is replaced, and an interrupted run with the same
    settings is resumed (:func:`hw4lib.runs.plan_run`).
    """
    profile = profile_name(profile)
    cfg = get_profile(profile).nerf
    dev = resolve_device(device)
    data_dir, run = Path(data_dir), Path(run_dir)
    fine_voxels = parse_voxels(fine_voxels)
    if background not in (None, "white", "black"):
        raise UserError(f"--background {background!r}: choose white or black")
    settings = run_settings(data_dir, profile, stepsize, fine_voxels, background, downscale)
    # before anything is reused, deleted or written: only an empty folder or our own run
    plan = plan_run(run, NERF_TRAIN, settings, resume=resume, force=force, cache=replace_stale)
    if plan.action == REUSE:
        return {**plan.done, "reused": True}
    if plan.action == FRESH:
        start_fresh(run, NERF_TRAIN)  # train() writes settings.json once the data has loaded
    t0 = time.perf_counter()

    def report() -> dict:  # into done.json with the rest: a run without it is unfinished
        v = val_psnr(run, data_dir, profile, device=dev, progress=progress)
        return {"val_psnr": v, "seconds": time.perf_counter() - t0, "reused": False}

    return train(
        data_dir,
        run,
        cfg,
        stepsize=stepsize,
        fine_voxels=fine_voxels,
        background=background,
        downscale=downscale,
        device=dev,
        resume=plan.action == RESUME,
        coarse_from=coarse_from,
        progress=progress,
        settings=settings,
        on_row=on_row,
        report=report,
    )


@torch.no_grad()
def render_split(
    run_dir: str | Path,
    data_dir: str | Path,
    split: str = "val",
    n_views: int | None = None,
    max_size: int | None = None,
    downscale: float = 1,
    device: str = "cpu",
    progress: bool = False,
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[str]]:
    """Render the first ``n_views`` views of a split: (predictions, ground truths, names)."""
    model, meta = load_run(run_dir, device)
    split_ = load_split(data_dir, split, downscale=downscale, max_size=max_size)
    bg_name = meta.get("background", "white")
    gts = split_.rgb(bg_name)
    cams = split_.cameras
    n = len(cams) if n_views is None else min(n_views, len(cams))
    bg = BACKGROUNDS[bg_name]
    preds = []
    for i in tqdm(range(n), desc=f"render {split}", disable=not progress):
        rgb, _ = render_image(model, cams, cams.poses[i], bg, *near_far(meta))
        preds.append(rgb)
    return preds, [gts[i] for i in range(n)], cams.names[:n]


def val_psnr(
    run_dir: str | Path,
    data_dir: str | Path,
    profile: str | None = None,
    device: str = "cpu",
    progress: bool = False,
) -> float:
    """Mean PSNR over the profile's evaluation views of ``val`` (at the training image size)."""
    cfg = get_profile(profile).nerf
    preds, gts, _ = render_split(
        run_dir,
        data_dir,
        "val",
        cfg.eval_views,
        cfg.max_train_size,
        device=device,
        progress=progress,
    )
    mses = [float(((p - g) ** 2).mean()) for p, g in zip(preds, gts)]
    return sum(R.psnr_from_mse(m) for m in mses) / len(mses)


def render_run(
    run_dir: str | Path,
    transforms_json: str | Path,
    out_dir: str | Path,
    size: int | None = None,
    depth: bool = False,
    video: bool = False,
    device: str = "auto",
    progress: bool = True,
) -> list[Path]:
    """Render every frame of ``transforms_json`` into ``out_dir`` (see
    :func:`render_transforms`)."""
    return render_transforms(
        run_dir,
        transforms_json,
        out_dir,
        size=size,
        depth=depth,
        video=video,
        device=resolve_device(device),
        progress=progress,
    )


def evaluate_run(
    run_dir: str | Path,
    data_dir: str | Path,
    profile: str | None = None,
    device: str = "auto",
    progress: bool = False,
) -> dict[str, Any]:
    """PSNR / SSIM / LPIPS(vgg) on the profile's val views, at the original image size."""
    from ..metrics import evaluate_images  # LPIPS(vgg) and torchvision: seconds to import

    cfg = get_profile(profile).nerf
    dev = resolve_device(device)
    preds, gts, names = render_split(
        run_dir, data_dir, "val", cfg.eval_views, None, device=dev, progress=progress
    )
    return evaluate_images([p.numpy() for p in preds], [g.numpy() for g in gts], names, device=dev)


def sweep(
    data_dir: str | Path,
    runs_root: str | Path,
    profile: str | None = None,
    device: str = "auto",
    force: bool = False,
    progress: bool = True,
    base_run: str | Path | None = None,
):
    """Train + evaluate the profile's five (stepsize, fine voxels) settings -> ``pandas.DataFrame``.

    The runs share one coarse stage (the settings only change the fine stage). ``base_run``, a
    run with the profile's default settings (notebook 02's), serves the setting it matches and
    lends its coarse stage to the others. Runs made with other settings are replaced. Each row
    is stored with ``write_result("nerf/sweep_s{S}_v{N}", ...)``.
    """
    import pandas as pd  # slow to import; only the sweep's table needs it

    profile = profile_name(profile)
    cfg = get_profile(profile).nerf
    dev = resolve_device(device)
    root = Path(runs_root)
    rows = []
    coarse_from = None
    default = (cfg.fine.stepsize, cfg.fine.num_voxels)
    if base_run is not None:  # train (or reuse) it first so its coarse stage can be shared
        train_run(
            data_dir,
            base_run,
            profile,
            device=dev,
            force=force,
            progress=progress,
            replace_stale=True,
        )
        coarse_from = Path(base_run) / "coarse.pt"
    for S, N in cfg.sweep:
        run = Path(base_run) if base_run is not None and (S, N) == default else root / f"s{S}_v{N}"
        t0 = time.perf_counter()
        res = train_run(
            data_dir,
            run,
            profile,
            stepsize=S,
            fine_voxels=N,
            device=dev,
            force=force and run != Path(base_run or ""),
            progress=progress,
            coarse_from=coarse_from,
            replace_stale=True,
        )
        coarse_from = coarse_from or run / "coarse.pt"
        ev = evaluate_run(run, data_dir, profile, dev)
        row = {
            "stepsize": S,
            "fine_voxels": N,
            "fine_side": round(N ** (1 / 3)),
            "psnr": ev["mean"]["psnr"],
            "ssim": ev["mean"]["ssim"],
            "lpips": ev["mean"]["lpips"],
            "train_s": sum(res["timings"].get(k, 0.0) for k in ("coarse_s", "fine_s")),
            "n_views": ev["n"],
        }
        write_result(
            f"nerf/sweep_s{S}_v{N}",
            {**row, "per_image": ev["images"], "val_psnr_train_size": res.get("val_psnr")},
            profile=profile,
            data_source=str(data_dir),
            device=dev,
            seconds=time.perf_counter() - t0,
            settings=res.get("settings"),
        )
        rows.append(row)
    return pd.DataFrame(rows)


# -- accessors for figures ---------------------------------------------------------------
def box_and_frustums(
    data_dir: str | Path,
    profile: str | None = None,
    near: float | None = None,
    far: float | None = None,
) -> dict[str, torch.Tensor]:
    """Scene box corners (8, 3) and camera frustum corners (N, 8, 3) of the training views."""
    cfg = get_profile(profile).nerf
    near, far = near or cfg.near, far or cfg.far
    cams = read_transforms(Path(data_dir) / "transforms_train.json")
    lo, hi = scene_box(cams, near, far)
    corners = torch.stack(
        [
            torch.where(torch.tensor([a, b, c]).bool(), hi, lo)
            for a in (0, 1)
            for b in (0, 1)
            for c in (0, 1)
        ]
    )
    return {
        "box": corners,
        "lo": lo,
        "hi": hi,
        "frustums": frustum_corners(cams, near, far),
        "centres": cams.poses[:, :3, 3],
    }


def run_info(run_dir: str | Path) -> dict[str, Any]:
    """Fine box, free-space statistics and kept rays of a finished run."""
    run = Path(run_dir)
    done = _json(run / "done.json") or {}
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


def depth_maps(
    run_dir: str | Path,
    data_dir: str | Path,
    n_views: int = 4,
    split: str = "val",
    device: str = "auto",
) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], list[torch.Tensor], list[str]]:
    """``(rgb, depth)`` of the first ``n_views`` views at the training size, with their ground
    truths and names: ``(views, ground truths, names)``."""
    dev = resolve_device(device)
    model, meta = load_run(run_dir, dev)
    s = load_split(data_dir, split, max_size=meta.get("train_size", [None])[0])
    bg_name = meta.get("background", "white")
    cams = s.cameras
    n = min(n_views, len(cams))
    views = [
        render_image(model, cams, cams.poses[i], BACKGROUNDS[bg_name], *near_far(meta))
        for i in range(n)
    ]
    gts = s.rgb(bg_name)
    return views, [gts[i] for i in range(n)], cams.names[:n]


def orbit(
    run_dir: str | Path, data_dir: str | Path, n: int = 8, device: str = "auto"
) -> list[torch.Tensor]:
    """RGB frames (H, W, 3) of an orbit around the scene at the training size."""
    dev = resolve_device(device)
    model, meta = load_run(run_dir, dev)
    cams = load_split(data_dir, "train", max_size=meta.get("train_size", [None])[0]).cameras
    bg = BACKGROUNDS[meta.get("background", "white")]
    return [render_image(model, cams, p, bg, *near_far(meta))[0] for p in orbit_cameras(cams, n)]
