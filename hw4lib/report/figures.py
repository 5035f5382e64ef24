"""Figures of the report, drawn from stored results (run summaries / results-store data).

Each function takes plain data (dicts, DataFrames, arrays) and returns a matplotlib figure;
the notebooks save them with :func:`hw4lib.report.tables.save_figure`.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np


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
    fig, axes = plt.subplots(
        1, len(settings), figsize=(3.4 * len(settings), 3.2), sharey=True, squeeze=False
    )
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


def image_grid(
    images: Sequence[np.ndarray],
    titles: Sequence[str],
    ncols: int,
    cmap: str | None = None,
    size: float = 2.6,
):
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


def scene_box(
    geom: Mapping[str, Any], fine_box: Sequence[Sequence[float]] | None = None, max_cams: int = 50
):
    """3D view of the training cameras' frusta, the coarse box and (optionally) the fine box.

    ``geom`` is :func:`hw4lib.nerf.jobs.box_and_frustums` output.
    """
    fig = plt.figure(figsize=(6, 5.5))
    ax = fig.add_subplot(projection="3d")
    fr = np.asarray(geom["frustums"])[:max_cams]
    for f in fr:  # corners: 4 near then 4 far
        for a, b in ((0, 4), (1, 5), (2, 6), (3, 7)):
            ax.plot(*zip(f[a], f[b]), color="0.6", lw=0.4)
        for ring in (f[:4], f[4:]):
            r = np.vstack([ring, ring[:1]])
            ax.plot(r[:, 0], r[:, 1], r[:, 2], color="0.6", lw=0.4)
    c = np.asarray(geom["centres"])
    ax.scatter(c[:, 0], c[:, 1], c[:, 2], s=6, color="tab:blue", label="cameras")
    _box(ax, np.asarray(geom["lo"]), np.asarray(geom["hi"]), "tab:red", "coarse box (frusta)")
    if fine_box is not None:
        _box(
            ax,
            np.asarray(fine_box[0]),
            np.asarray(fine_box[1]),
            "tab:green",
            "fine box (coarse alpha)",
        )
    ax.set(xlabel="x", ylabel="y", zlabel="z", title="cameras, frusta (near..far) and boxes")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def _box(ax, lo: np.ndarray, hi: np.ndarray, color: str, label: str) -> None:
    edges = []  # corner bit patterns differing in exactly one axis
    for i in range(8):
        for j in range(i + 1, 8):
            a = [(i >> k) & 1 for k in range(3)]
            b = [(j >> k) & 1 for k in range(3)]
            if sum(x != y for x, y in zip(a, b)) == 1:
                edges.append((a, b))
    for n, (a, b) in enumerate(edges):
        p = [np.where(np.array(v, bool), hi, lo) for v in (a, b)]
        ax.plot(*zip(p[0], p[1]), color=color, lw=1.2, label=label if n == 0 else None)


def training_curves(history: Mapping[str, Sequence[float]], coarse_iters: int):
    """Loss and PSNR against iteration and against seconds; the stage boundary marked."""
    loss = np.asarray(history["loss"], float)
    psnr = np.asarray(history["psnr"], float)
    secs = np.asarray(history["seconds"], float)
    it = np.arange(1, len(loss) + 1)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    axes[0].semilogy(it, loss)
    axes[0].set(xlabel="iteration", ylabel="training loss")
    axes[1].plot(it, psnr)
    axes[1].set(xlabel="iteration", ylabel="training-batch PSNR (dB)")
    axes[2].plot(secs, psnr)
    axes[2].set(xlabel="seconds", ylabel="training-batch PSNR (dB)")
    for ax in axes[:2]:
        ax.axvline(coarse_iters + 0.5, color="k", ls="--", lw=0.8)
        ax.text(coarse_iters, ax.get_ylim()[1], " fine →", va="top", fontsize=8)
    if 0 < coarse_iters <= len(secs):
        axes[2].axvline(secs[coarse_iters - 1], color="k", ls="--", lw=0.8)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def sweep_metrics(df, reference: Sequence[Mapping[str, Any]] | None = None):
    """PSNR / SSIM / LPIPS against step size (largest grid) and against voxels (step 0.5)."""
    metrics = [("psnr", "PSNR (dB) ↑"), ("ssim", "SSIM ↑"), ("lpips", "LPIPS(vgg) ↓")]
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.2))
    big = df["fine_voxels"].max()
    by_step = df[df["fine_voxels"] == big].sort_values("stepsize")
    s0 = df["stepsize"].min()
    by_vox = df[df["stepsize"] == s0].sort_values("fine_voxels")
    for j, (m, label) in enumerate(metrics):
        a, b = axes[0][j], axes[1][j]
        a.plot(by_step["stepsize"], by_step[m], "o-", label="ours")
        b.plot(by_vox["fine_side"].astype(str) + "³", by_vox[m], "o-", label="ours")
        if reference is not None:
            rs = [r for r in reference if r["fine_voxels"] == "180^3"]
            rv = [r for r in reference if r["stepsize"] == 0.5][::-1]
            a2, b2 = a.twinx(), b.twinx()
            a2.plot([r["stepsize"] for r in rs], [r[m] for r in rs], "s--", color="tab:orange")
            b2.plot(range(len(rv)), [r[m] for r in rv], "s--", color="tab:orange")
            for ax2 in (a2, b2):
                ax2.set_ylabel("report (800 px hotdog)", color="tab:orange", fontsize=8)
                ax2.tick_params(axis="y", colors="tab:orange", labelsize=8)
        a.set(xlabel="step size (voxels)", ylabel=label)
        b.set(xlabel=f"fine voxels (step {s0})", ylabel=label)
        for ax in (a, b):
            ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def save_gif(frames: Sequence[np.ndarray], path, fps: int = 8):
    """Write RGB frames (H, W, 3) in [0, 1] as an animated GIF; returns the path."""
    import imageio.v2 as imageio

    imgs = [(np.clip(np.asarray(f), 0, 1) * 255 + 0.5).astype(np.uint8) for f in frames]
    imageio.mimsave(path, imgs, duration=1.0 / fps, loop=0)
    return path
