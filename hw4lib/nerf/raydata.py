"""DVGO's training rays: every training pixel as a ray, how many views see each voxel (the
view-count learning rate) and which rays pass space the coarse stage did not find free; and
the training views' scene box and frustums, for a figure."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from ..config import NerfConfig, get_profile
from ..data.blender import load_split, read_transforms
from .dvgo import FreeSpaceMask, voxel_centres
from .rays import Bounds, camera_rays, frustum_corners, march, scene_box


@dataclasses.dataclass
class RayData:
    """Every training pixel as a ray: origins, unit directions and target colours, (P, 3) each."""

    rays_o: torch.Tensor
    rays_d: torch.Tensor
    target: torch.Tensor
    cams: Any
    size: tuple[int, int]  # training image size (H, W)
    orig_size: tuple[int, int]  # size of the images on disk


def ray_data(
    data_dir: Path, cfg: NerfConfig, background: str, downscale: float, device: str
) -> RayData:
    split = load_split(data_dir, "train", downscale=downscale, max_size=cfg.max_train_size)
    orig = read_transforms(Path(data_dir) / "transforms_train.json")
    o, d = camera_rays(split.cameras, device)
    tgt = split.rgb(background).to(device)
    return RayData(
        o.reshape(-1, 3),
        d.reshape(-1, 3),
        tgt.reshape(-1, 3),
        split.cameras,
        (split.cameras.H, split.cameras.W),
        (orig.H, orig.W),
    )


def view_counts(
    cams, lo: torch.Tensor, hi: torch.Tensor, shape: tuple[int, int, int], near: float, far: float
) -> torch.Tensor:
    """How many training views see each voxel: (X, Y, Z) counts.

    A voxel is seen by a view when some ray of the view passes it between near and far, i.e.
    when its centre projects inside the image (widened by one voxel) at a depth in [near, far].
    """
    xyz = voxel_centres(lo.cpu(), hi.cpu(), shape).reshape(-1, 3)
    vox = float(((hi - lo).cpu() / (torch.tensor(shape) - 1)).max())
    count = torch.zeros(xyz.shape[0])
    for c2w in cams.poses:
        rot, o = c2w[:3, :3], c2w[:3, 3]
        pc = (xyz - o) @ rot  # camera coordinates (OpenGL: looking down -z)
        z = -pc[:, 2]
        dist = (xyz - o).norm(dim=-1)
        zc = z.clamp_min(1e-6)
        u = cams.fx * pc[:, 0] / zc + cams.cx
        v = -cams.fy * pc[:, 1] / zc + cams.cy
        m = cams.fx * vox / zc  # one voxel in pixels: voxels straddling the border count
        seen = (
            (z > 0)
            & (dist >= near - vox)
            & (dist <= far + vox)
            & (u > -m)
            & (u < cams.W + m)
            & (v > -m)
            & (v < cams.H + m)
        )
        count += seen
    return count.view(shape).to(lo.device)


def rays_through_unknown(
    data: RayData, mask: FreeSpaceMask, b: Bounds, step: float, chunk: int = 65536
) -> torch.Tensor:
    """Indices of the training rays that pass some not-known-free space (the others are dropped)."""
    keep = []
    for s in range(0, data.rays_o.shape[0], chunk):
        o, d = data.rays_o[s : s + chunk], data.rays_d[s : s + chunk]
        *_, count = march(o, d, b, step, mask, count_only=True)
        keep.append((count > 0).nonzero()[:, 0] + s)
    return torch.cat(keep)


def box_and_frustums(
    data_dir: str | Path,
    profile: str | None = None,
    near: float | None = None,
    far: float | None = None,
) -> dict[str, torch.Tensor]:
    """Scene box corners (8, 3) and camera frustum corners (N, 8, 3) of the training views."""
    cfg = get_profile(profile).nerf
    near, far = near or cfg.near, far or cfg.far
    cams = read_transforms(Path(data_dir) / "transforms_train.json")
    lo, hi = scene_box(cams, near, far)
    corners = torch.stack(
        [
            torch.where(torch.tensor([a, b, c]).bool(), hi, lo)
            for a in (0, 1)
            for b in (0, 1)
            for c in (0, 1)
        ]
    )
    return {
        "box": corners,
        "lo": lo,
        "hi": hi,
        "frustums": frustum_corners(cams, near, far),
        "centres": cams.poses[:, :3, 3],
    }
