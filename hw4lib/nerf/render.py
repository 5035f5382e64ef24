"""Volume rendering as pure functions: density activation, alpha, compositing, losses.

Equation numbers are the report's (Problem 1). Densities are measured per *base voxel*
(DVGO's convention): a sample spacing of ``step`` world units is an ``interval`` of
``step / base_voxel_size``, so the raw grid values keep one scale across stages and step sizes.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def low_density_shift(alpha_init: float, interval: float) -> float:
    """Eq 9: ``b = log((1 - alpha_init)^(-1/s) - 1)`` so a zero raw density gives ``alpha_init``.

    ``s`` is the sampling interval in base-voxel units; ``softplus(b) * s = -log(1 - alpha_init)``.
    """
    return math.log(math.expm1(-math.log1p(-alpha_init) / interval))


def density(raw: torch.Tensor, shift: float) -> torch.Tensor:
    """Eq 5: ``sigma = softplus(raw + b)``."""
    return F.softplus(raw + shift)


def alpha(sigma: torch.Tensor, interval: float) -> torch.Tensor:
    """Eq 2b: ``alpha = 1 - exp(-sigma * delta)``."""
    return -torch.expm1(-sigma * interval)


def alpha_post(raw_interp: torch.Tensor, shift: float, interval: float) -> torch.Tensor:
    """Eq 6c (post-activation): interpolate the raw grid first, then softplus, then alpha."""
    return alpha(density(raw_interp, shift), interval)


def transmittance(sigma_delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq 2c: ``T_i = prod_{j<i}(1 - alpha_j)`` along the last axis, and ``T_{K+1}``.

    Computed as ``exp(-cumsum(sigma * delta))`` (``1 - alpha_j = exp(-sigma_j delta)``): exact,
    and cheaper to differentiate than a cumulative product.
    """
    acc = torch.cumsum(sigma_delta, -1)
    T_last = torch.exp(-acc[..., -1])
    T = torch.exp(-(acc - sigma_delta))  # exclusive: before sample i
    return T, T_last


def composite(sigma_delta: torch.Tensor, rgb: torch.Tensor, background: float | torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq 2a: ``C = sum_i T_i alpha_i c_i + T_{K+1} c_bg`` for rays of samples (R, S).

    ``sigma_delta`` (R, S) is ``sigma * delta`` per sample (0 for padding), ``rgb`` (R, S, 3).
    Returns ``(colour (R, 3), weights (R, S), T_{K+1} (R,))``.
    """
    T, T_last = transmittance(sigma_delta)
    w = T * -torch.expm1(-sigma_delta)
    c = (w[..., None] * rgb).sum(-2) + T_last[:, None] * background
    return c, w, T_last


def segment_transmittance(sigma_delta: torch.Tensor, ray: torch.Tensor, n_rays: int
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq 2c on packed samples: ``T_i`` per sample and ``T_{K+1}`` per ray.

    ``sigma_delta`` (M,) holds the kept samples of all rays, ray by ray in order along each
    ray; ``ray`` (M,) says whose (non-decreasing). Skipped samples simply are not there (their
    alpha is 0). A float64 running sum keeps the per-ray differences exact.
    """
    cs = torch.cumsum(sigma_delta.double(), 0)
    excl = cs - sigma_delta.double()
    counts = torch.bincount(ray, minlength=n_rays)
    first = torch.cumsum(counts, 0) - counts  # index of each ray's first sample
    base = excl[first.clamp_max(max(sigma_delta.numel() - 1, 0))] if sigma_delta.numel() else excl
    T = torch.exp(-(excl - base[ray])).to(sigma_delta.dtype)
    total = sigma_delta.new_zeros(n_rays).index_add(0, ray, sigma_delta)
    return T, torch.exp(-total)


def weights_from_alpha(alpha_: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights ``T_i alpha_i`` and ``T_{K+1}`` from alphas (R, S) by the plain product (eq 2c)."""
    one_minus = 1 - alpha_
    T = torch.cumprod(torch.cat([torch.ones_like(alpha_[:, :1]), one_minus], -1), -1)
    return T[:, :-1] * alpha_, T[:, -1]


def photometric_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq 3 as DVGO trains it: mean squared error over rays and channels (eq 3 divided by 3)."""
    return F.mse_loss(pred, target)


def entropy_loss(T_last: torch.Tensor) -> torch.Tensor:
    """Binary entropy of the background weight: pushes each ray to hit or miss cleanly."""
    p = T_last.clamp(1e-6, 1 - 1e-6)
    return -(p * torch.log(p) + (1 - p) * torch.log(1 - p)).mean()


def rgbper_loss(weights: torch.Tensor, rgb: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-point colour loss ``sum_i w_i |c_i - C_gt|^2`` (weights detached), mean over rays."""
    err = ((rgb - target[:, None, :]) ** 2).sum(-1)
    return (weights.detach() * err).sum(-1).mean()


def psnr(mse: float | torch.Tensor) -> float:
    """``-10 log10(mse)`` for images in [0, 1]."""
    return float(-10.0 * math.log10(max(float(mse), 1e-12)))
