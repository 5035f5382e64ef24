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
    """Eq 6c (post-activation): ``alpha(softplus(interp(x, V)))`` of already interpolated raw
    values. The trainer takes the same path in two calls (:func:`density`, then :func:`weights`),
    because eq 2c needs the density itself."""
    return alpha(density(raw_interp, shift), interval)


def _packed(
    x: torch.Tensor, ray: torch.Tensor | None, n_rays: int | None
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Samples (R, S, ...) as packed (R*S, ...) with their ray ids; packed input passes through."""
    if ray is not None:
        return x, ray, int(n_rays)
    R_, S = x.shape[:2]
    return (
        x.reshape(R_ * S, *x.shape[2:]),
        torch.arange(R_, device=x.device).repeat_interleave(S),
        R_,
    )


def transmittance(
    sigma_delta: torch.Tensor, ray: torch.Tensor | None = None, n_rays: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq 2c: ``T_i = prod_{j<i}(1 - alpha_j)`` per sample, and ``T_{K+1}`` per ray.

    Computed as ``exp(-sum_{j<i} sigma_j delta_j)`` (as ``1 - alpha_j = exp(-sigma_j delta_j)``):
    exact, and cheaper to differentiate than a cumulative product. ``sigma_delta`` is either
    dense (R, S), or packed (M,) with ``ray`` (M,) naming each sample's ray (non-decreasing,
    samples in order along each ray; skipped samples are simply absent, their alpha is 0). A
    float64 running sum keeps the per-ray differences exact.
    """
    sd, ray_, n = _packed(sigma_delta, ray, n_rays)
    cs = torch.cumsum(sd.double(), 0)
    excl = cs - sd.double()
    counts = torch.bincount(ray_, minlength=n)
    first = torch.cumsum(counts, 0) - counts  # index of each ray's first sample
    base = excl[first.clamp_max(max(sd.numel() - 1, 0))] if sd.numel() else excl
    T = torch.exp(-(excl - base[ray_])).to(sd.dtype)
    T_last = torch.exp(-sd.new_zeros(n).index_add(0, ray_, sd))
    return T.view(sigma_delta.shape), T_last


def weights(
    sigma_delta: torch.Tensor, ray: torch.Tensor | None = None, n_rays: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The weight ``w_i = T_i alpha_i`` of each sample in eq 2a (eqs 2b and 2c, from
    ``sigma_i delta_i``), and ``T_{K+1}``; samples dense (R, S) or packed (M,) with ``ray``, as
    in :func:`transmittance`."""
    T, T_last = transmittance(sigma_delta, ray, n_rays)
    return T * alpha(sigma_delta, 1.0), T_last


def composite(
    w: torch.Tensor,
    values: torch.Tensor,
    T_last: torch.Tensor,
    background: float | torch.Tensor,
    ray: torch.Tensor | None = None,
    n_rays: int | None = None,
) -> torch.Tensor:
    """Eq 2a: ``C = sum_i w_i c_i + T_{K+1} c_bg`` per ray (R, C).

    ``values`` (R, S, C) with weights (R, S), or packed (M, C) with weights (M,) and ``ray``.
    With depths for ``values`` and the far plane for ``background`` it gives the depth map.
    """
    if ray is None:
        acc = (w[..., None] * values).sum(-2)
    else:
        acc = values.new_zeros(int(n_rays), values.shape[-1]).index_add(0, ray, w[:, None] * values)
    return acc + T_last[:, None] * background


def photometric_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq 3 as DVGO trains it: mean squared error over rays and channels (eq 3 divided by 3)."""
    return F.mse_loss(pred, target)


def entropy_loss(T_last: torch.Tensor) -> torch.Tensor:
    """Binary entropy of the background weight: pushes each ray to hit or miss cleanly."""
    p = T_last.clamp(1e-6, 1 - 1e-6)
    return -(p * torch.log(p) + (1 - p) * torch.log(1 - p)).mean()


def rgbper_loss(
    w: torch.Tensor, rgb: torch.Tensor, target: torch.Tensor, n_rays: int
) -> torch.Tensor:
    """DVGO's per-point colour loss ``sum_i w_i |c_i - C_gt|^2`` (weights detached), mean over
    ``n_rays`` rays; ``w`` (M,), ``rgb`` (M, 3) and ``target`` (M, 3) per sample, any layout."""
    err = ((rgb - target) ** 2).sum(-1)
    return (w.detach() * err).sum() / n_rays


def psnr_from_mse(mse: float | torch.Tensor) -> float:
    """``-10 log10(mse)`` for images in [0, 1]."""
    return float(-10.0 * math.log10(max(float(mse), 1e-12)))
