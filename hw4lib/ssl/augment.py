"""Per-sample augmentation of a whole batch on its device (crop, flip, colour, grey, blur,
solarisation).

byol-pytorch's default augmentation draws ONE random crop/jitter per batch, so both views of
every image in a batch share their geometry; BYOL (the paper, SimCLR) draws parameters per
image. This module does that with batched tensor ops (one ``grid_sample`` for every crop), so
it costs little on a CPU and nothing on a GPU, and is passed to ``BYOL(augment_fn=...)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from ..config import SSLConfig
from .datasets import IMAGENET_MEAN, IMAGENET_STD

# RGB <-> YIQ: a hue shift is a rotation of the (I, Q) chroma plane
_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


@dataclass(frozen=True)
class AugmentSpec:
    crop_scale: tuple[float, float] = (0.08, 1.0)
    flip: bool = True
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    gray_p: float = 0.2
    blur_p: float = 0.0
    rotate: float = 0.0  # max rotation of a view, degrees (uniform in +-rotate)
    solarize_p: float = 0.0


#: BYOL's first view (the paper's Table 6): always blurred, never solarised; the second view
#: is :func:`byol_views`'s. Supervised pre-training and fine-tuning: crop + flip only.
BYOL_VIEW = AugmentSpec(blur_p=1.0)
LIGHT = AugmentSpec(crop_scale=(0.5, 1.0), jitter_p=0.0, gray_p=0.0)


def byol_views(cfg: SSLConfig) -> tuple[AugmentSpec, AugmentSpec]:
    """BYOL's two view distributions from the profile (the one place view settings live):
    the same crop, colour and grey, blur and solarisation asymmetric between the views."""
    b, c, s, h = cfg.byol_jitter
    base = AugmentSpec(
        crop_scale=(cfg.byol_crop_min, 1.0),
        brightness=b,
        contrast=c,
        saturation=s,
        hue=h,
        gray_p=cfg.byol_gray_p,
        rotate=cfg.byol_rotate,
    )
    return tuple(
        replace(base, blur_p=blur, solarize_p=sol)
        for blur, sol in zip(cfg.byol_blur_p, cfg.byol_solarize_p)
    )


def spec_from_dict(d: dict) -> AugmentSpec:
    """An :class:`AugmentSpec` back from its ``asdict`` form in a run's settings."""
    return AugmentSpec(**{**d, "crop_scale": tuple(d["crop_scale"])})


def _uniform(n: int, lo: float, hi: float, device) -> torch.Tensor:
    return torch.empty(n, device=device).uniform_(lo, hi)


def crop_affine(
    w: torch.Tensor,
    h: torch.Tensor,
    cx: torch.Tensor,
    cy: torch.Tensor,
    sign: torch.Tensor,
    angle: torch.Tensor,
) -> torch.Tensor:
    """(n, 2, 3) ``affine_grid`` matrices of crops: width/height ``w``/``h`` and centre
    ``cx``/``cy`` in [-1, 1] image coordinates, mirrored where ``sign`` is -1, turned by
    ``angle`` (radians) about the centre: input = R(angle) @ diag(sign * w, h) @ output + centre.
    """
    c, s = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(w.shape[0], 2, 3, device=w.device, dtype=w.dtype)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 0, 2] = c * sign * w, -s * h, cx
    theta[:, 1, 0], theta[:, 1, 1], theta[:, 1, 2] = s * sign * w, c * h, cy
    return theta


def random_resized_crop(
    x: torch.Tensor, scale: tuple[float, float], flip: bool, rotate: float = 0.0
) -> torch.Tensor:
    """Per-sample RandomResizedCrop (ratio 3/4..4/3) + horizontal flip, output the input size;
    ``rotate`` > 0 also turns each crop about its centre by up to +-rotate degrees."""
    n, dev = x.shape[0], x.device
    area = _uniform(n, *scale, dev)
    logr = _uniform(n, math.log(3 / 4), math.log(4 / 3), dev)
    w = torch.sqrt(area * torch.exp(logr)).clamp(max=1.0)  # fractions of the side
    h = torch.sqrt(area / torch.exp(logr)).clamp(max=1.0)
    cx = (torch.rand(n, device=dev) * 2 - 1) * (1 - w)
    cy = (torch.rand(n, device=dev) * 2 - 1) * (1 - h)
    sign = torch.ones(n, device=dev)
    if flip:
        sign = torch.where(torch.rand(n, device=dev) < 0.5, -1.0, 1.0)
    # a turned crop's corners may leave the image: reflection padding fills them
    angle = torch.zeros(n, device=dev)
    if rotate > 0:
        angle = _uniform(n, -rotate, rotate, dev) * (math.pi / 180)
    theta = crop_affine(w, h, cx, cy, sign, angle).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _gray(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)


def color_jitter(x: torch.Tensor, spec: AugmentSpec) -> torch.Tensor:
    """Per-sample brightness, contrast, saturation and hue jitter, applied with prob. jitter_p."""
    n, dev = x.shape[0], x.device
    on = (torch.rand(n, device=dev) < spec.jitter_p).float()

    def factor(s: float) -> torch.Tensor:  # 1 where jitter is off
        return (1 + on * _uniform(n, -s, s, dev)).view(n, 1, 1, 1)

    x = (x * factor(spec.brightness)).clamp(0, 1)
    m = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - m) * factor(spec.contrast) + m).clamp(0, 1)
    g = _gray(x)
    x = ((x - g) * factor(spec.saturation) + g).clamp(0, 1)
    if spec.hue > 0:
        ang = on * _uniform(n, -spec.hue, spec.hue, dev) * 2 * math.pi
        c, s = torch.cos(ang), torch.sin(ang)
        rot = torch.zeros(n, 3, 3, device=dev, dtype=x.dtype)
        rot[:, 0, 0] = 1
        rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = c, -s, s, c
        yiq = _YIQ.to(dev, x.dtype)
        mat = torch.linalg.inv(yiq) @ rot @ yiq  # (n, 3, 3)
        x = torch.einsum("nij,njhw->nihw", mat, x).clamp(0, 1)
    return x


#: the paper's blur: sigma uniform in [0.1, 2.0] px at 224 px, scaled with the image side
BLUR_SIGMA_224 = (0.1, 2.0)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Each image blurred by a Gaussian of its own ``sigma`` (n,), in pixels: separable, with
    reflection at the borders, the kernel reaching 3 sigma of the largest. Summed tap by tap
    (a grouped convolution with one group per image is ~30x slower on a CPU)."""
    n, _, h, w = x.shape
    r = max(1, min(math.ceil(3 * float(sigma.max())), min(h, w) // 2 - 1))
    t = torch.arange(-r, r + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (t[None, :] / sigma[:, None].to(x.dtype)) ** 2)
    k = (k / k.sum(1, keepdim=True)).view(n, 1, 1, 1, 2 * r + 1)
    xp = F.pad(x, (r, r, r, r), mode="reflect")
    y = sum(k[..., j] * xp[..., j : j + w] for j in range(2 * r + 1))  # along x
    return sum(k[..., i] * y[..., i : i + h, :] for i in range(2 * r + 1))  # along y


def solarize(x: torch.Tensor) -> torch.Tensor:
    """Values at or above 0.5 inverted (torchvision's RandomSolarize at threshold 128)."""
    return torch.where(x >= 0.5, 1.0 - x, x)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """ImageNet mean/std normalisation (the report)."""
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def to_float(batch: torch.Tensor) -> torch.Tensor:
    """uint8 (N,3,H,W) -> float in [0, 1]."""
    return batch.float().div_(255.0)


def image_input(x: torch.Tensor) -> torch.Tensor:
    """A uint8 image batch as the network's input, unaugmented (evaluation, features)."""
    return normalize(to_float(x))


class BatchAugment(nn.Module):
    """x in [0,1] (N,3,H,W) -> an augmented, normalised view of each image."""

    def __init__(self, spec: AugmentSpec = BYOL_VIEW):
        super().__init__()
        self.spec = spec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.spec
        x = x.clamp(0, 1)
        x = random_resized_crop(x, s.crop_scale, s.flip, s.rotate)
        if s.jitter_p > 0:
            x = color_jitter(x, s)
        n = x.shape[0]
        if s.gray_p > 0:
            g = (torch.rand(n, 1, 1, 1, device=x.device) < s.gray_p).float()
            x = g * _gray(x).expand_as(x) + (1 - g) * x
        if s.blur_p > 0:
            b = (torch.rand(n, 1, 1, 1, device=x.device) < s.blur_p).float()
            lo, hi = (v * x.shape[-1] / 224 for v in BLUR_SIGMA_224)
            x = b * gaussian_blur(x, _uniform(n, lo, hi, x.device)) + (1 - b) * x
        if s.solarize_p > 0:
            o = (torch.rand(n, 1, 1, 1, device=x.device) < s.solarize_p).float()
            x = o * solarize(x) + (1 - o) * x
        return normalize(x)
