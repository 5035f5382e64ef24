"""Every figure and table the report regenerates: file stem, source notebook, caption.

One list serves notebook 06 (which shows them in order) and ``figures/README.md`` (a test
checks that the README lists each entry).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ..errors import UserError
from .datadesc import DATA_FILE, recorded

#: an item drawn from figures/recorded/ (results measured elsewhere), not from this run's data
RECORDED_DATA = "recorded"


@dataclass(frozen=True)
class Item:
    stem: str  # file name without extension, under figures/
    kind: str  # "figure" or "table"
    notebook: str
    caption: str
    formats: tuple[str, ...] = ("png",)
    # whose data it shows: "nerf" / "ssl" (as recorded in data.json by the notebooks) or
    # "" for the generated-data previews, whose caption names their data
    data: str = ""


ITEMS: tuple[Item, ...] = (
    Item(
        "scene_hotdog",
        "figure",
        "hw4 data (previews made by hw4 report)",
        "The generated `hotdog` scene: four training views (100 px).",
    ),
    Item(
        "scene_ficus",
        "figure",
        "hw4 data (hw4lib.data.scene.preview)",
        "The generated `ficus` scene (thin stems, checkered texture).",
    ),
    Item(
        "corpus_samples",
        "figure",
        "hw4 data (previews made by hw4 report)",
        "Samples of the generated image corpora (mini and office classes).",
    ),
    Item(
        "activation_2d",
        "figure",
        "01_nerf_theory",
        "Report fig. (a): the target view and its 2D fit at (H/5)x(W/5) cells with pre-, in- "
        "and post-activation; second row the per-pixel absolute error, one colour bar.",
        ("png", "pdf"),
        "nerf",
    ),
    Item(
        "nerf_scene_box",
        "figure",
        "02_dvgo_training",
        "Training cameras, their frusta and the coarse scene box; the fine stage's tight box.",
        data="nerf",
    ),
    Item(
        "nerf_training_curves",
        "figure",
        "02_dvgo_training",
        "Loss and PSNR against iteration and against seconds, coarse and fine stages.",
        data="nerf",
    ),
    Item(
        "nerf_val_renders",
        "figure",
        "02_dvgo_training",
        "Validation views: ground truth, render, its error map (colour bar) and depth.",
        data="nerf",
    ),
    Item(
        "nerf_orbit",
        "figure",
        "02_dvgo_training",
        "An orbit around the scene rendered by the trained model.",
        ("gif",),
        "nerf",
    ),
    Item(
        "nerf_sweep_table",
        "table",
        "03_dvgo_metrics",
        "PSNR / SSIM / LPIPS(vgg) of the five settings, ours beside the report's (Blender "
        "hotdog, 800 px, 50 val views).",
        ("csv", "md", "tex"),
        "nerf",
    ),
    Item(
        "nerf_sweep_metrics",
        "figure",
        "03_dvgo_metrics",
        "Metrics against step size and against the number of voxels: one axis per metric, "
        "ours and the report's on the same scale.",
        ("png", "pdf"),
        "nerf",
    ),
    Item(
        "nerf_per_view",
        "table",
        "03_dvgo_metrics",
        "PSNR / SSIM / LPIPS(vgg) of each val view at the default setting, worst PSNR first.",
        ("csv", "md", "tex"),
        "nerf",
    ),
    Item(
        "nerf_worst_views",
        "figure",
        "03_dvgo_metrics",
        "The three worst val views of that table rendered: ground truth, render, error map (one "
        "colour bar) and depth.",
        data="nerf",
    ),
    Item(
        "nerf_sweep_strip",
        "figure",
        "03_dvgo_metrics",
        "One val view rendered by each of the five settings, with its PSNR and the seconds "
        "its fine stage trained (the coarse stage is shared).",
        data="nerf",
    ),
    Item(
        "nerf_sampling_sketch",
        "figure",
        "03_dvgo_metrics",
        "Report figs. (a), (b) of Problem 1: samples along a ray for step 0.5 / 2 / 4 voxels, "
        "and a grid at two voxel counts (a schematic 2D slice, drawn by the project's code).",
    ),
    Item(
        "ssl_pretrain_curves",
        "figure",
        "04_ssl_pretraining",
        "BYOL's loss and the supervised cross-entropy (separate axes), and the kNN accuracy "
        "of both backbones per epoch.",
        data="ssl",
    ),
    Item(
        "ssl_ae_table",
        "table",
        "05_downstream_AE",
        "Validation accuracy of settings A-E: ours, on the data named here, beside the report's "
        "on Office-Home.",
        ("csv", "md", "tex"),
        "ssl",
    ),
    Item(
        "ssl_ae_losses",
        "figure",
        "05_downstream_AE",
        "Report figure: train and validation loss per epoch for each of A-E.",
        ("png", "pdf"),
        "ssl",
    ),
    Item(
        "ssl_ae_accuracy",
        "figure",
        "05_downstream_AE",
        "Validation accuracy per epoch, A-E.",
        data="ssl",
    ),
    Item(
        "ssl_budget_curve",
        "figure",
        "05_downstream_AE",
        "Recorded, not run by make report: best val accuracy of A, C and E against BYOL's "
        "steps, mean ± sd over seeds (each panel's title says how many), one column per real "
        "data set and one row per fine-tuning lr (each title names its set and lr; "
        "figures/recorded/ssl_curve_*.json says how, where and in how many minutes).",
        data=RECORDED_DATA,
    ),
)


def data_of(item: Item, data: Mapping[str, str]) -> str:
    """What ``item`` shows, from the notebooks' record (``data.json``)."""
    if not item.data:
        return "generated (see caption)"
    if item.data == RECORDED_DATA:
        return "recorded elsewhere: real data sets named in each panel (figures/recorded/)"
    return data.get(item.data, "not recorded (made before data.json)")


def readme_text(data: Mapping[str, str]) -> str:
    """The body of ``figures/README.md``; ``data`` is the figures folder's ``data.json``
    (:func:`hw4lib.report.datadesc.recorded`)."""
    lines = [
        "# figures/",
        "",
        "The report's figures and tables from the quick profile, as committed. Every run "
        "writes them to `reports/<profile>/figures/`; `hw4 report --publish` (quick "
        "profile) copies them here. This list is `hw4lib.report.catalog.ITEMS`.",
        "",
        "The executed notebooks are in `notebooks/` (outputs kept) and the whole report is "
        "`report.html` here.",
        "",
        "| file | made by | data | what it shows |",
        "|---|---|---|---|",
    ]
    for it in ITEMS:
        files = ", ".join(f"`{it.stem}.{ext}`" for ext in it.formats)
        lines.append(f"| {files} | {it.notebook} | {data_of(it, data)} | {it.caption} |")
    return "\n".join(lines) + "\n"


def publish(src: Path, dest: Path) -> list[Path]:
    """Copy the catalogued figures and tables found in ``src`` (a run's figures folder) into
    ``dest`` (the committed ``figures/``), each replaced atomically, and rewrite its README;
    files ``src`` lacks stay as they are. Returns the copies."""
    files = [
        src / f"{it.stem}.{ext}"
        for it in ITEMS
        for ext in it.formats
        if (src / f"{it.stem}.{ext}").is_file()
    ]
    if not files:
        raise UserError(f"{src}: no figures or tables to publish; run `hw4 report` first")
    if (src / DATA_FILE).is_file():  # what the items show travels with them
        files.append(src / DATA_FILE)
    dest.mkdir(parents=True, exist_ok=True)
    for f in files:
        tmp = dest / f"{f.name}.tmp"
        shutil.copyfile(f, tmp)
        os.replace(tmp, dest / f.name)
    (dest / "README.md").write_text(readme_text(recorded(dest)))
    return [dest / f.name for f in files]
