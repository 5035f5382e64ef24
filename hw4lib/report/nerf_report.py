"""Problem 1 as report tables and sentences, built from the DVGO sweep results."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from ..reference import DVGO_DATA, DVGO_TABLE


def sweep_table(df: pd.DataFrame, data: str) -> pd.DataFrame:
    """Ours beside the report's, row by row in the report's order of settings; ``data`` names
    what ours were measured on (``.attrs["data"]``, written by ``save_table``)."""
    out = pd.DataFrame(
        {
            "stepsize": df["stepsize"].astype(float),
            "fine voxels (ours)": [f"{s}^3" for s in df["fine_side"]],
            "PSNR": df["psnr"].astype(float),
            "SSIM": df["ssim"].astype(float),
            "LPIPS": pd.to_numeric(df["lpips"], errors="coerce").astype(float),
        }
    )
    if len(out) == len(DVGO_TABLE):
        # the table's label, and what the report's configs ran where the two differ
        out["fine voxels (report)"] = [
            r["fine_voxels"]
            if r["as_run"] == r["fine_voxels"]
            else f"{r['fine_voxels']} (ran {r['as_run']})"
            for r in DVGO_TABLE
        ]
        out["PSNR (report)"] = [r["psnr"] for r in DVGO_TABLE]
        out["SSIM (report)"] = [r["ssim"] for r in DVGO_TABLE]
        out["LPIPS (report)"] = [r["lpips"] for r in DVGO_TABLE]
    out.attrs["data"] = f"ours: {data}; report: {DVGO_DATA}" if "PSNR (report)" in out else data
    return out


def findings(df: pd.DataFrame) -> list[str]:
    """The report's trends (finer steps and more voxels are better), checked on ``df``."""
    lines = []
    big = df["fine_voxels"].max()
    by_step = df[df["fine_voxels"] == big].sort_values("stepsize")
    by_vox = df[df["stepsize"] == df["stepsize"].min()].sort_values("fine_voxels")

    def trend(name: str, col: pd.Series, decreasing: bool) -> str:
        vals = col.astype(float).tolist()
        pairs = list(zip(vals, vals[1:]))
        ok = all((a >= b) if decreasing else (a <= b) for a, b in pairs)
        arrow = " > " if decreasing else " < "
        return (
            f"{name}: {'holds' if ok else 'does NOT hold'} ({arrow.join(f'{v:.3f}' for v in vals)})"
        )

    lines.append(trend("PSNR falls as the step size grows (largest grid)", by_step["psnr"], True))
    lines.append(trend("SSIM falls as the step size grows", by_step["ssim"], True))
    if by_step["lpips"].notna().all():
        lines.append(trend("LPIPS rises as the step size grows", by_step["lpips"], False))
    lines.append(trend("PSNR rises with the number of voxels (step 0.5)", by_vox["psnr"], False))
    lines.append(trend("SSIM rises with the number of voxels", by_vox["ssim"], False))
    return lines


def per_view_table(per_image: list[dict], data: str) -> pd.DataFrame:
    """PSNR / SSIM / LPIPS of each val view (``per_image`` as ``nerf.sweep`` stores it), the
    worst PSNR first, so the views a model fails on are at the top."""
    out = pd.DataFrame(
        {
            "view": [r["name"] for r in per_image],
            "PSNR": [float(r["psnr"]) for r in per_image],
            "SSIM": [float(r["ssim"]) for r in per_image],
            "LPIPS": pd.to_numeric(pd.Series([r.get("lpips") for r in per_image]), errors="coerce"),
        }
    )
    out = out.sort_values("PSNR", kind="stable").reset_index(drop=True)
    out.attrs["data"] = data
    return out


def per_view(profile: str, stepsize: float, voxels: int, data: str) -> pd.DataFrame:
    """:func:`per_view_table` of the stored sweep result of one setting."""
    from ..results import read_result

    doc = read_result(f"nerf/sweep_s{stepsize}_v{voxels}", profile)
    if doc is None:
        raise FileNotFoundError(f"no stored sweep result for step {stepsize}, {voxels} voxels")
    return per_view_table(doc["data"]["per_image"], data)


def sweep_renders(
    df: pd.DataFrame,
    scene: str | Path,
    runs_root: str | Path,
    base_run: str | Path,
    profile: str,
    device: str = "cpu",
) -> tuple[list[dict[str, Any]], Any, str]:
    """The first val view rendered by each sweep setting (``df`` from ``nerf.sweep.sweep``):
    ``([{"label", "image", "psnr", "seconds"}...], ground truth, view name)``, for
    :func:`hw4lib.report.figures.sweep_strip`; ``seconds`` is the fine stage's (the settings
    share one coarse stage, which only the base run paid for)."""
    from ..config import resolve_device
    from ..nerf.images import render_split
    from ..nerf.sweep import setting_run

    device = resolve_device(device)
    out, gt, name = [], None, ""
    for r in df.itertuples(index=False):
        S, N = float(r.stepsize), int(r.fine_voxels)
        run = setting_run(S, N, runs_root, base_run, profile)
        views, gts, names = render_split(run, scene, "val", 1, None, device=device)
        img, gt, name = views[0][0].numpy(), gts[0].numpy(), names[0]
        mse = float(((img - gt) ** 2).mean())
        out.append(
            {
                "label": f"step {S:g}, {r.fine_side}³",
                "image": img,
                "psnr": 10 * math.log10(1 / max(mse, 1e-12)),
                "seconds": fine_seconds(run),
            }
        )
    return out, gt, name


def worst_views(
    per_view: pd.DataFrame, run_dir: str | Path, scene: str | Path, k: int = 3, device: str = "cpu"
) -> tuple[list, list, list, list[str]]:
    """The ``k`` views at the top of ``per_view`` (:func:`per_view_table`: worst PSNR first)
    rendered by ``run_dir`` at its training size: ``(ground truths, renders, depths, names)``
    for :func:`hw4lib.report.figures.val_renders`."""
    from ..nerf.images import TRAIN_SIZE, render_split

    names = list(per_view["view"])[:k]
    views, gts, names = render_split(run_dir, scene, "val", names, TRAIN_SIZE, device=device)
    preds, depths = [rgb.numpy() for rgb, _ in views], [d.numpy() for _, d in views]
    return [g.numpy() for g in gts], preds, depths, names


def fine_seconds(run_dir: str | Path) -> float:
    """Seconds the fine stage of a finished run took (its ``done.json``)."""
    done = json.loads((Path(run_dir) / "done.json").read_text())
    return float(done["timings"]["fine_s"])
