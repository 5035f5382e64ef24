"""Figures of the report, drawn from stored results (run summaries / results-store data).

Each function takes plain data (dicts, DataFrames, arrays) and returns a matplotlib figure;
the notebooks save them with :func:`hw4lib.report.tables.save_figure`.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg") if matplotlib.get_backend().lower() == "agg" else None
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _series(history: Sequence[Mapping[str, Any]], key: str) -> tuple[list, list]:
    xs = [h["epoch"] for h in history if h.get(key) is not None]
    ys = [h[key] for h in history if h.get(key) is not None]
    return xs, ys


def pretrain_curves(summaries: Mapping[str, Mapping[str, Any]]):
    """Pre-training loss and kNN accuracy per epoch, one line per method."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    for method, s in summaries.items():
        a.plot(*_series(s["history"], "loss"), label=method)
        b.plot(*_series(s["history"], "knn"), marker="o", label=method)
    a.set(xlabel="epoch", ylabel="training loss", title="pre-training loss")
    b.set(xlabel="epoch", ylabel="kNN accuracy (labeled split)", title="feature quality")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def finetune_losses(runs: Mapping[str, Mapping[str, Any]]):
    """The report's five loss-epoch plots: train and val loss per epoch for each of A-E."""
    settings = sorted(runs)
    fig, axes = plt.subplots(1, len(settings), figsize=(3.4 * len(settings), 3.2),
                             sharey=True, squeeze=False)
    for ax, s in zip(axes[0], settings):
        h = runs[s]["history"]
        ax.plot(*_series(h, "train_loss"), label="train")
        ax.plot(*_series(h, "val_loss"), label="val")
        ax.set(title=f"setting {s}", xlabel="epoch")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("cross-entropy loss")
    axes[0][0].legend()
    fig.tight_layout()
    return fig


def finetune_accuracy(runs: Mapping[str, Mapping[str, Any]]):
    """Validation accuracy per epoch for A-E on one axis."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for s in sorted(runs):
        ax.plot(*_series(runs[s]["history"], "val_acc"), label=s)
    ax.set(xlabel="epoch", ylabel="val accuracy", title="Office-Home val accuracy")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def image_grid(images: Sequence[np.ndarray], titles: Sequence[str], ncols: int,
               cmap: str | None = None, size: float = 2.6):
    """A grid of images (HxW or HxWx3 in [0, 1]) with titles."""
    n = len(images)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, im, t in zip(axes.ravel(), images, titles):
        ax.imshow(np.clip(np.asarray(im), 0, 1) if cmap is None else np.asarray(im), cmap=cmap)
        ax.set_title(t, fontsize=9)
    fig.tight_layout()
    return fig
