"""The report's 2D experiment: fit an image with a coarse grid of (H/5) x (W/5) values under
pre-, in- and post-activation (eqs 6a-c) and compare the sharpness of the fits.

Each channel of the target is read as an alpha in [0, 1]. The grid holds raw densities ``V``;
with a unit interval ``alpha(softplus(v)) = sigmoid(v)``, and the three placements differ only
in where the bilinear interpolation sits relative to the non-linearities.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import render as R


def interp(grid: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear interpolation of a (C, h, w) grid to (C, H, W), grid values at the corners."""
    return F.interpolate(grid[None], size=size, mode="bilinear", align_corners=True)[0]


def alpha_pre(V: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Eq 6a: ``interp(x, alpha(softplus(V)))``."""
    return interp(R.alpha(R.density(V, 0.0), 1.0), size)


def alpha_in(V: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Eq 6b: ``alpha(interp(x, softplus(V)))``."""
    return R.alpha(interp(R.density(V, 0.0), size), 1.0)


def alpha_post_2d(V: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Eq 6c: ``alpha(softplus(interp(x, V)))``, the function DVGO trains with."""
    return R.alpha_post(interp(V, size), 0.0, 1.0)


MODES = {"pre": alpha_pre, "in": alpha_in, "post": alpha_post_2d}


def fit_image(
    target: torch.Tensor,
    mode: str,
    grid: tuple[int, int] | None = None,
    iters: int = 1000,
    lr: float = 0.1,
    seed: int = 0,
) -> torch.Tensor:
    """Fit ``target`` (H, W, 3) in [0, 1] with a grid under activation ``mode``; returns
    (H, W, 3)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {sorted(MODES)}, got {mode!r}")
    target = torch.as_tensor(target, dtype=torch.float32)
    if target.max() > 1.0:
        target = target / 255.0
    H, W = target.shape[:2]
    gh, gw = grid or (max(2, H // 5), max(2, W // 5))
    g = torch.Generator().manual_seed(seed)
    V = (0.1 * torch.randn(target.shape[2], gh, gw, generator=g)).requires_grad_()
    opt = torch.optim.Adam([V], lr=lr)
    tgt = target.permute(2, 0, 1)
    f = MODES[mode]
    for _ in range(iters):
        opt.zero_grad()
        loss = F.mse_loss(f(V, (H, W)), tgt)
        loss.backward()
        opt.step()
    with torch.no_grad():
        return f(V, (H, W)).permute(1, 2, 0).clamp(0, 1)


def compare_activations(
    target: torch.Tensor, grid: tuple[int, int] | None = None, iters: int = 1000
) -> dict[str, dict[str, torch.Tensor | float]]:
    """All three fits: ``{mode: {"image": (H,W,3), "abs_error": (H,W), "psnr": float}}``."""
    target = torch.as_tensor(target, dtype=torch.float32)
    if target.max() > 1.0:
        target = target / 255.0
    out = {}
    for mode in MODES:
        img = fit_image(target, mode, grid, iters)
        err = (img - target).abs().mean(-1)
        out[mode] = {
            "image": img,
            "abs_error": err,
            "psnr": R.psnr_from_mse(float(((img - target) ** 2).mean())),
        }
    return out
