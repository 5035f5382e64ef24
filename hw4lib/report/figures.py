"""Figures of the report, drawn from stored results (run summaries / results-store data).

Each function takes plain data (dicts, DataFrames, arrays) and returns a matplotlib figure;
the notebooks save them with :func:`hw4lib.report.tables.save_figure`.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from ..reference import DVGO_DATA


def _series(history: Sequence[Mapping[str, Any]], key: str) -> tuple[list, list]:
    xs = [h["epoch"] for h in history if h.get(key) is not None]
    ys = [h[key] for h in history if h.get(key) is not None]
    return xs, ys


#: how the report's own numbers are labelled beside ours (reference.py: its Problem 1.3 table)
REPORT_NERF_DATA = f"report: {DVGO_DATA}"


def _named(fig, data: str, what: str):
    """Title the figure with what it shows and the data it shows it on."""
    if not data:
        raise ValueError(f"{what}: name the data the figure shows (data=...)")
    fig.suptitle(f"{what} — {data}", fontsize=10)
    return fig


def pretrain_curves(byol: Mapping[str, Any], supervised: Mapping[str, Any], data: str):
    """BYOL's loss, the supervised cross-entropy (each on its own axis: different losses) and
    the kNN accuracy of both backbones per epoch."""
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(13, 3.6), layout="constrained")
    a.plot(*_series(byol["history"], "loss"), color="tab:blue")
    a.set(xlabel="epoch", ylabel="BYOL loss (2 - 2 cos)", title="BYOL (no labels)")
    b.plot(*_series(supervised["history"], "loss"), color="tab:orange")
    b.set(xlabel="epoch", ylabel="cross-entropy", title="supervised (labels)")
    c.plot(*_series(byol["history"], "knn"), "o-", label="BYOL (no labels)")
    c.plot(*_series(supervised["history"], "knn"), "o-", label="supervised (labels)")
    c.set(xlabel="epoch", ylabel="kNN accuracy (labeled split)", title="feature quality")
    c.legend()
    for ax in (a, b, c):
        ax.grid(alpha=0.3)
    return _named(fig, data, "pre-training")


def finetune_losses(runs: Mapping[str, Mapping[str, Any]], data: str):
    """The report's five loss-epoch plots: train and val loss per epoch for each of A-E."""
    settings = sorted(runs)
    fig, axes = plt.subplots(
        1,
        len(settings),
        figsize=(3.4 * len(settings), 3.4),
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    for ax, s in zip(axes[0], settings):
        h = runs[s]["history"]
        ax.plot(*_series(h, "train_loss"), label="train")
        ax.plot(*_series(h, "val_loss"), label="val")
        ax.set(title=f"setting {s}", xlabel="epoch")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("cross-entropy loss")
    axes[0][0].legend()
    return _named(fig, data, "fine-tuning loss, settings A-E")


def finetune_accuracy(runs: Mapping[str, Mapping[str, Any]], data: str):
    """Validation accuracy per epoch for A-E on one axis."""
    fig, ax = plt.subplots(figsize=(6, 3.8), layout="constrained")
    for s in sorted(runs):
        ax.plot(*_series(runs[s]["history"], "val_acc"), label=s)
    ax.set(xlabel="epoch", ylabel="val accuracy")
    ax.grid(alpha=0.3)
    ax.legend()
    return _named(fig, data, "val accuracy")


def image_grid(
    images: Sequence[np.ndarray],
    titles: Sequence[str],
    ncols: int,
    data: str,
    cmap: str | None = None,
    size: float = 2.6,
):
    """A grid of images (HxW or HxWx3 in [0, 1]) with titles, headed by the data they show."""
    n = len(images)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, im, t in zip(axes.ravel(), images, titles):
        ax.imshow(np.clip(np.asarray(im), 0, 1) if cmap is None else np.asarray(im), cmap=cmap)
        ax.set_title(t, fontsize=9)
    fig.tight_layout()
    return _named(fig, data, "images")


def scene_box(
    geom: Mapping[str, Any],
    data: str,
    fine_box: Sequence[Sequence[float]] | None = None,
    max_cams: int = 50,
):
    """3D view of the training cameras' frusta, the coarse box and (optionally) the fine box.

    ``geom`` is :func:`hw4lib.nerf.raydata.box_and_frustums` output.
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
    ax.set(xlabel="x", ylabel="y", zlabel="z")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return _named(fig, data, "cameras, frusta (near..far) and boxes")


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


def training_curves(history: Mapping[str, Sequence[float]], coarse_iters: int, data: str):
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
    return _named(fig, data, "DVGO training")


def sweep_metrics(df, data: str, reference: Sequence[Mapping[str, Any]] | None = None):
    """PSNR / SSIM / LPIPS against step size (largest grid, top) and against voxels (smallest
    step, bottom): one axis per metric, ours and the report's on the same scale, a legend."""
    metrics = [("psnr", "PSNR (dB) ↑"), ("ssim", "SSIM ↑"), ("lpips", "LPIPS(vgg) ↓")]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7), layout="constrained")
    big = df["fine_voxels"].max()
    by_step = df[df["fine_voxels"] == big].sort_values("stepsize")
    s0 = df["stepsize"].min()
    by_vox = df[df["stepsize"] == s0].sort_values("fine_voxels")
    rs = rv = []
    if reference is not None:
        rs = sorted((r for r in reference if r["fine_voxels"] == "180^3"), key=_step)
        rv = sorted((r for r in reference if r["stepsize"] == 0.5), key=_side)
    # voxel counts differ (ours scaled to the image size): plot by rank, both named on the axis
    ticks = [f"{v}³" for v in by_vox["fine_side"]]
    if len(rv) == len(ticks):
        ticks = [f"{t}\n(report {r['as_run'].replace('^3', '³')})" for t, r in zip(ticks, rv)]
    for j, (m, label) in enumerate(metrics):
        a, b = axes[0][j], axes[1][j]
        a.plot(by_step["stepsize"], by_step[m].astype(float), "o-", label=f"ours ({data})")
        b.plot(range(len(by_vox)), by_vox[m].astype(float), "o-", label=f"ours ({data})")
        if rs:
            a.plot([_step(r) for r in rs], [r[m] for r in rs], "s--", label=REPORT_NERF_DATA)
        if len(rv) == len(by_vox):
            b.plot(range(len(rv)), [r[m] for r in rv], "s--", label=REPORT_NERF_DATA)
        a.set(xlabel="step size (voxels)", ylabel=label, xticks=list(by_step["stepsize"]))
        b.set(xlabel=f"fine voxels (step {s0})", ylabel=label)
        b.set_xticks(range(len(ticks)), ticks, fontsize=8)
        for ax in (a, b):
            ax.grid(alpha=0.3)
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside lower center", ncols=2)
    return _named(fig, data, "metrics against step size and voxel count")


def _step(r: Mapping[str, Any]) -> float:
    return float(r["stepsize"])


def _side(r: Mapping[str, Any]) -> int:
    return int(str(r["as_run"]).split("^")[0])


def _error_maps(fig, axes, errors: Sequence[np.ndarray], titles: Sequence[str]) -> None:
    """Per-pixel error maps on one colour scale, with its colour bar."""
    errs = [np.asarray(e, float) for e in errors]
    errs = [e.mean(-1) if e.ndim == 3 else e for e in errs]
    vmax = max(max(float(e.max()) for e in errs), 1e-6)
    im = None
    for ax, e, t in zip(axes, errs, titles):
        im = ax.imshow(e, cmap="inferno", vmin=0.0, vmax=vmax)
        ax.set_title(t, fontsize=9)
        ax.axis("off")
    fig.colorbar(im, ax=list(axes), shrink=0.8, label="|error| (mean over RGB)")


def activation_fits(target: np.ndarray, fits: Mapping[str, Mapping[str, Any]], data: str):
    """Report fig. (a): the target, its fits under pre-, in- and post-activation, and each
    fit's absolute error on one colour scale (with a colour bar)."""
    modes = [m for m in ("pre", "in", "post") if m in fits]
    fig, axes = plt.subplots(
        2, len(modes) + 1, figsize=(2.8 * (len(modes) + 1), 5.6), layout="constrained"
    )
    axes[0][0].imshow(np.clip(np.asarray(target), 0, 1))
    axes[0][0].set_title("target", fontsize=9)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, m in zip(axes[0][1:], modes):
        ax.imshow(np.clip(np.asarray(fits[m]["image"]), 0, 1))
        ax.set_title(f"{m}-activation (PSNR {float(fits[m]['psnr']):.1f} dB)", fontsize=9)
    _error_maps(
        fig, axes[1][1:], [fits[m]["abs_error"] for m in modes], [f"|error| {m}" for m in modes]
    )
    return _named(fig, data, "2D fit at (H/5)x(W/5) cells")


def val_renders(
    gts: Sequence[np.ndarray],
    preds: Sequence[np.ndarray],
    depths: Sequence[np.ndarray] | None,
    names: Sequence[str],
    data: str,
):
    """Ground truth, render, its error map (one colour scale, a colour bar) and depth (when
    given), one column per validation view."""
    n, rows = len(names), 3 if depths is None else 4
    fig, axes = plt.subplots(
        rows, n, figsize=(2.6 * n + 1, 2.6 * rows), squeeze=False, layout="constrained"
    )
    for ax in axes.ravel():
        ax.axis("off")
    for j, (g, p, name) in enumerate(zip(gts, preds, names)):
        g, p = np.asarray(g, float), np.asarray(p, float)
        axes[0][j].imshow(np.clip(g, 0, 1))
        axes[0][j].set_title(f"ground truth {name}", fontsize=9)
        axes[1][j].imshow(np.clip(p, 0, 1))
        mse = float(((p - g) ** 2).mean())
        axes[1][j].set_title(f"DVGO ({10 * np.log10(1 / max(mse, 1e-12)):.1f} dB)", fontsize=9)
    for j, d in enumerate(depths or []):
        d = np.asarray(d, float)
        axes[3][j].imshow(d / max(float(d.max()), 1e-6), cmap="gray")
        axes[3][j].set_title("expected depth", fontsize=9)
    errs = [np.abs(np.asarray(p, float) - np.asarray(g, float)) for p, g in zip(preds, gts)]
    _error_maps(fig, axes[2], errs, [f"|error| {n_}" for n_ in names])
    return _named(fig, data, "validation views")


def sweep_strip(renders: Sequence[Mapping[str, Any]], gt: np.ndarray, name: str, data: str):
    """One validation view rendered by each sweep setting (``{"label", "image", "seconds",
    "psnr"}``), the ground truth first; each titled with its training time."""
    fig, axes = plt.subplots(
        1, len(renders) + 1, figsize=(2.6 * (len(renders) + 1), 3.2), layout="constrained"
    )
    axes[0].imshow(np.clip(np.asarray(gt, float), 0, 1))
    axes[0].set_title(f"ground truth {name}", fontsize=9)
    for ax, r in zip(axes[1:], renders):
        ax.imshow(np.clip(np.asarray(r["image"], float), 0, 1))
        ax.set_title(
            f"{r['label']}\n{float(r['psnr']):.2f} dB, fine stage {float(r['seconds']):.0f} s",
            fontsize=9,
        )
    for ax in axes:
        ax.axis("off")
    return _named(fig, data, "one val view per sweep setting")


def _ray_2d(lo: float, hi: float, step: float):
    """A ray across the square [lo, hi]^2 (z = 0 slice) and its samples every ``step``,
    placed by the project's own sampler (hw4lib.nerf.rays.sample_along)."""
    import torch

    from ..nerf.rays import Bounds, sample_along

    o = torch.tensor([[lo - 0.3, lo + 0.15 * (hi - lo), 0.0]])
    d = torch.tensor([[1.0, 0.55, 0.0]])
    d = d / d.norm()
    box = (torch.tensor([lo, lo, -1.0]), torch.tensor([hi, hi, 1.0]))
    pts, _, valid = sample_along(o, d, Bounds(*box, 0.0, 10.0), step)
    return o[0].numpy(), d[0].numpy(), pts[0][valid[0]].numpy()


def _draw_cells(ax, lo: float, hi: float, cells: int) -> None:
    for k in np.linspace(lo, hi, cells + 1):
        ax.plot([k, k], [lo, hi], color="0.8", lw=0.6)
        ax.plot([lo, hi], [k, k], color="0.8", lw=0.6)


def sampling_sketches(steps: Sequence[float] = (0.5, 2.0, 4.0), cells: Sequence[int] = (8, 4)):
    """Report figs. (a) and (b) of Problem 1, drawn with the project's grid and ray code on a
    2D slice of a unit box: (a) sample points along one ray for each step size (in voxels) on
    the same grid; (b) the same box at two voxel counts, sampled every half voxel."""
    import torch

    from ..nerf.grid import grid_shape, voxel_size

    lo, hi = torch.zeros(3), torch.ones(3)
    fig, axes = plt.subplots(
        1,
        len(steps) + len(cells),
        figsize=(3 * (len(steps) + len(cells)), 3.4),
        layout="constrained",
    )
    n0 = cells[0] ** 3
    for ax, s in zip(axes, steps):
        side = grid_shape(lo, hi, n0)[0]
        step = s * voxel_size(lo, hi, n0)
        _draw_cells(ax, 0.0, 1.0, side)
        o, d, pts = _ray_2d(0.0, 1.0, step)
        ax.plot(*zip(o[:2], (o + 2 * d)[:2]), color="tab:blue", lw=1)
        ax.plot(pts[:, 0], pts[:, 1], "o", color="tab:red", ms=4)
        ax.set_title(f"(a) step {s:g} voxel: {len(pts)} samples", fontsize=9)
    for ax, c in zip(axes[len(steps) :], cells):
        n = c**3
        side = grid_shape(lo, hi, n)[0]
        _draw_cells(ax, 0.0, 1.0, side)
        o, d, pts = _ray_2d(0.0, 1.0, 0.5 * voxel_size(lo, hi, n))
        ax.plot(*zip(o[:2], (o + 2 * d)[:2]), color="tab:blue", lw=1)
        ax.plot(pts[:, 0], pts[:, 1], "o", color="tab:red", ms=3)
        ax.set_title(f"(b) {side}³ voxels, step 0.5: {len(pts)} samples", fontsize=9)
    for ax in axes:
        ax.set(xlim=(-0.05, 1.05), ylim=(-0.05, 1.05), aspect="equal", xticks=[], yticks=[])
    fig.suptitle("sketch: step size and voxel count (2D slice of a unit box)", fontsize=10)
    return fig


def save_gif(frames: Sequence[np.ndarray], path, fps: int = 8):
    """Write RGB frames (H, W, 3) in [0, 1] as an animated GIF; returns the path."""
    import imageio.v2 as imageio

    imgs = [(np.clip(np.asarray(f), 0, 1) * 255 + 0.5).astype(np.uint8) for f in frames]
    imageio.mimsave(path, imgs, duration=1.0 / fps, loop=0)
    return path
