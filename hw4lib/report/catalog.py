"""Every figure and table the report regenerates: file stem, source notebook, caption.

One list serves notebook 06 (which shows them in order) and ``figures/README.md`` (a test
checks that the README lists each entry).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError


@dataclass(frozen=True)
class Item:
    stem: str  # file name without extension, under figures/
    kind: str  # "figure" or "table"
    notebook: str
    caption: str
    formats: tuple[str, ...] = ("png",)


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
        "Report fig. (a): 2D image fit at (H/5)x(W/5) with pre-, in- and post-activation; "
        "second row the per-pixel absolute error.",
        ("png", "pdf"),
    ),
    Item(
        "nerf_scene_box",
        "figure",
        "02_dvgo_training",
        "Training cameras, their frusta and the coarse scene box; the fine stage's tight box.",
    ),
    Item(
        "nerf_training_curves",
        "figure",
        "02_dvgo_training",
        "Loss and PSNR against iteration and against seconds, coarse and fine stages.",
    ),
    Item(
        "nerf_val_renders",
        "figure",
        "02_dvgo_training",
        "Rendered validation views next to the ground truth, with depth.",
    ),
    Item(
        "nerf_orbit",
        "figure",
        "02_dvgo_training",
        "An orbit around the scene rendered by the trained model.",
        ("gif",),
    ),
    Item(
        "nerf_sweep_table",
        "table",
        "03_dvgo_metrics",
        "PSNR / SSIM / LPIPS(vgg) of the five settings, ours beside the report's.",
        ("csv", "md", "tex"),
    ),
    Item(
        "nerf_sweep_metrics",
        "figure",
        "03_dvgo_metrics",
        "Metrics against step size and against the number of voxels.",
        ("png", "pdf"),
    ),
    Item(
        "ssl_pretrain_curves",
        "figure",
        "04_ssl_pretraining",
        "BYOL and supervised pre-training: loss and kNN accuracy per epoch.",
    ),
    Item(
        "ssl_ae_table",
        "table",
        "05_downstream_AE",
        "Office-Home validation accuracy of settings A-E, ours beside the report's.",
        ("csv", "md", "tex"),
    ),
    Item(
        "ssl_ae_losses",
        "figure",
        "05_downstream_AE",
        "Report figure: train and validation loss per epoch for each of A-E.",
        ("png", "pdf"),
    ),
    Item("ssl_ae_accuracy", "figure", "05_downstream_AE", "Validation accuracy per epoch, A-E."),
)


def readme_text() -> str:
    """The body of ``figures/README.md``."""
    lines = [
        "# figures/",
        "",
        "The report's figures and tables from the quick profile, as committed. Every run "
        "writes them to `reports/<profile>/figures/`; `hw4 report --publish` (quick "
        "profile) copies them here. This list is `hw4lib.report.catalog.ITEMS`.",
        "",
        "| file | made by | what it shows |",
        "|---|---|---|",
    ]
    for it in ITEMS:
        files = ", ".join(f"`{it.stem}.{ext}`" for ext in it.formats)
        lines.append(f"| {files} | {it.notebook} | {it.caption} |")
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
    dest.mkdir(parents=True, exist_ok=True)
    for f in files:
        tmp = dest / f"{f.name}.tmp"
        shutil.copyfile(f, tmp)
        os.replace(tmp, dest / f.name)
    (dest / "README.md").write_text(readme_text())
    return [dest / f.name for f in files]
