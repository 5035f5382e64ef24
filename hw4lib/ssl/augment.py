"""Per-sample augmentation of a whole batch on its device (crop, flip, colour, grey, blur).

byol-pytorch's default augmentation draws ONE random crop/jitter per batch, so both views of
every image in a batch share their geometry; BYOL (the paper, SimCLR) draws parameters per
image. This module does that with batched tensor ops (one ``grid_sample`` for every crop), so
it costs little on a CPU and nothing on a GPU, and is passed to ``BYOL(augment_fn=...)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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


#: BYOL/SimCLR's view distribution; supervised pre-training and fine-tuning: crop + flip only
BYOL_VIEW = AugmentSpec(blur_p=0.2)
LIGHT = AugmentSpec(crop_scale=(0.5, 1.0), jitter_p=0.0, gray_p=0.0)


def byol_view(cfg: SSLConfig) -> AugmentSpec:
    """BYOL's views with the profile's crop, hue, grayscale, blur and rotation strengths."""
    return AugmentSpec(
        crop_scale=(cfg.byol_crop_min, 1.0),
        hue=cfg.byol_hue,
        gray_p=cfg.byol_gray_p,
        blur_p=cfg.byol_blur_p,
        rotate=cfg.byol_rotate,
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


def gaussian_blur3(x: torch.Tensor) -> torch.Tensor:
    k = torch.tensor([0.27901, 0.44198, 0.27901], device=x.device, dtype=x.dtype)  # sigma 1
    k2 = (k[:, None] * k[None, :]).expand(x.shape[1], 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), k2, groups=x.shape[1])


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
            x = b * gaussian_blur3(x) + (1 - b) * x
        return normalize(x)
