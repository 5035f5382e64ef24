"""DVGO measured on real data, as a recorded result: ``tools/record_nerf.py`` turns a finished
run, its rendered val views and ``hw4 nerf eval``'s JSON into ``figures/recorded/nerf_<name>``
(the summary against the course's pass marks), ``nerf_<name>_views`` (PSNR / SSIM / LPIPS of
every view, worst first) and ``nerf_<name>_views.png`` (the worst views, their error maps).
Nothing here trains or renders: it reads what the user's commands wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from ..metrics.evaluate import image_on_background, read_image
from ..reference import PASS_MARKS
from .nerf_report import per_view_table
from .recorded import RECORDED, provenance, save


def summary_table(
    evaluation: Mapping[str, Any], done: Mapping[str, Any], render_s: float
) -> pd.DataFrame:
    """One row: the val views' mean metrics, the course's pass marks, and where the time went
    (``done``: the run's ``done.json``; ``render_s``: ``hw4 nerf render`` of every view)."""
    m, t, n = evaluation["mean"], done.get("timings", {}), int(evaluation["n"])
    row = {
        "views": n,
        "PSNR": m["psnr"],
        "SSIM": m["ssim"],
        "LPIPS": m.get("lpips"),
        **{f"{k.upper()} >= {v:g}": bool(m[k] >= v) for k, v in PASS_MARKS.items()},
        "coarse min": t.get("coarse_s", float("nan")) / 60,
        "fine min": t.get("fine_s", float("nan")) / 60,
        "train min (all)": done.get("seconds", float("nan")) / 60,
        "render s/view": render_s / max(n, 1),
    }
    return pd.DataFrame([row]).round(4)


def worst_from_files(per_view: pd.DataFrame, pred_dir: Path, gt_dir: Path, background: str, k: int):
    """The ``k`` views at the top of ``per_view`` read back from the rendered and ground-truth
    files: ``(ground truths, renders, names)`` for :func:`hw4lib.report.figures.val_renders`."""
    names = list(per_view["view"])[:k]
    gts, preds = (
        [image_on_background(read_image(Path(d) / n), background).numpy() for n in names]
        for d in (gt_dir, pred_dir)
    )
    return gts, preds, [Path(n).stem for n in names]


def record_nerf(
    name: str,
    evaluation: Mapping[str, Any],
    done: Mapping[str, Any],
    render_s: float,
    data: str,
    command: str,
    root: Path = RECORDED,
    k: int = 3,
    commit: str | None = None,
) -> list[Path]:
    """Write the recorded result ``nerf_<name>`` (module docstring); returns the files. Every
    image is read and the figure drawn before anything is written (a bad input writes nothing).
    ``commit``: the code that trained the run (default: this checkout's)."""
    from .figures import val_renders
    from .tables import save_figure

    minutes = (done.get("seconds", 0.0) + render_s) / 60
    prov = {**provenance(data, command, minutes), "render_s": round(render_s, 1)}
    if commit:
        prov["commit"] = commit
    views = per_view_table(evaluation["images"], data)
    gts, preds, names = worst_from_files(
        views, Path(evaluation["pred_dir"]), Path(evaluation["gt_dir"]), evaluation["background"], k
    )
    fig = val_renders(gts, preds, None, names, f"{data}; the {k} worst val views by PSNR")
    stem = f"nerf_{name}"
    out = save_figure(fig, f"{stem}_views", Path(root))
    out += save(stem, summary_table(evaluation, done, render_s), prov, root)
    return out + save(f"{stem}_views", views, prov, root)
