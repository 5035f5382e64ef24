"""The report's step-size / voxel-count sweep: the profile's five fine-stage settings trained
(sharing one coarse stage) and each scored with PSNR / SSIM / LPIPS(vgg) on val.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from ..config import get_profile, profile_name, resolve_device
from ..results import write_result
from .images import render_split
from .run import TrainRequest, train_run


def setting_run(
    stepsize: float, voxels: int, runs_root: str | Path, base_run: str | Path, profile: str
) -> Path:
    """The run folder of one sweep setting: ``base_run`` (notebook 02's run) for the
    profile's default settings, ``runs_root/s<S>_v<N>`` for the others."""
    fine = get_profile(profile).nerf.fine
    if (float(stepsize), int(voxels)) == (fine.stepsize, fine.num_voxels):
        return Path(base_run)
    return Path(runs_root) / f"s{float(stepsize)}_v{int(voxels)}"


def evaluate_run(req: TrainRequest, progress: bool = False) -> dict[str, Any]:
    """PSNR / SSIM / LPIPS(vgg) of ``req``'s run on its profile's val views, at the original
    image size."""
    from ..metrics import evaluate_images  # LPIPS(vgg) and torchvision: seconds to import

    cfg = get_profile(req.profile).nerf
    dev = resolve_device(req.device)
    views, gts, names = render_split(
        req.out, req.data, "val", cfg.eval_views, None, device=dev, progress=progress
    )
    preds = [rgb.numpy() for rgb, _ in views]
    return evaluate_images(preds, [g.numpy() for g in gts], names, device=dev)


def sweep(base: TrainRequest, runs_root: str | Path, *, progress: bool = True):
    """Train + evaluate the profile's five (stepsize, fine voxels) settings -> ``pandas.DataFrame``.

    ``base`` asks for a run with the profile's default settings (notebook 02's): it is trained
    (or reused) first, serves the setting it matches and lends its coarse stage to the others
    (the settings only change the fine stage), which go to ``runs_root/s<S>_v<N>``
    (:func:`setting_run`). Runs made with other settings are replaced; ``base.force`` trains
    each afresh. Each row is stored with ``write_result("nerf/sweep_s{S}_v{N}", ...)``.
    """
    import pandas as pd  # slow to import; only the sweep's table needs it

    profile = profile_name(base.profile)
    base = dataclasses.replace(
        base, profile=profile, device=resolve_device(base.device), replace_stale=True
    )
    train_run(base, progress=progress)
    rows = []
    for S, N in get_profile(profile).nerf.sweep:
        run = setting_run(S, N, runs_root, base.out, profile)
        if run == Path(base.out):  # trained above: reused
            req = dataclasses.replace(base, force=False)
        else:
            coarse = Path(base.out) / "coarse.pt"
            req = dataclasses.replace(base, out=run, stepsize=S, fine_voxels=N, coarse_from=coarse)
        t0 = time.perf_counter()
        res = train_run(req, progress=progress)
        rows.append(_score(req, res, S, N, t0))
    return pd.DataFrame(rows)


def _score(req: TrainRequest, res: dict, stepsize: float, voxels: int, t0: float) -> dict:
    """One sweep setting's row (its run ``res`` evaluated), stored as a result."""
    ev = evaluate_run(req)
    row = {
        "stepsize": stepsize,
        "fine_voxels": voxels,
        "fine_side": round(voxels ** (1 / 3)),
        "psnr": ev["mean"]["psnr"],
        "ssim": ev["mean"]["ssim"],
        "lpips": ev["mean"]["lpips"],
        "train_s": sum(res["timings"].get(k, 0.0) for k in ("coarse_s", "fine_s")),
        "n_views": ev["n"],
    }
    write_result(
        f"nerf/sweep_s{stepsize}_v{voxels}",
        {**row, "per_image": ev["images"], "val_psnr_train_size": res.get("val_psnr")},
        profile=req.profile,
        data_source=str(req.data),
        device=req.device,
        seconds=time.perf_counter() - t0,
        settings=res.get("settings"),
    )
    return row
