"""Rays of pinhole cameras (OpenGL axes), the scene box, and point sampling along rays."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import torch

from ..data.blender import Cameras
from .kernels import extension

if TYPE_CHECKING:  # dvgo builds on this module
    from .dvgo import FreeSpaceMask


class Bounds(NamedTuple):
    """Where rays are sampled: inside the box ``[lo, hi]``, at distances ``[near, far]`` from
    their origins."""

    lo: torch.Tensor
    hi: torch.Tensor
    near: float
    far: float


def pixel_dirs(
    H: int, W: int, fx: float, fy: float, cx: float, cy: float, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """Camera-space directions (H, W, 3) through pixel centres; the camera looks down -z, y up."""
    j, i = torch.meshgrid(
        torch.arange(H, dtype=torch.float32, device=device) + 0.5,
        torch.arange(W, dtype=torch.float32, device=device) + 0.5,
        indexing="ij",
    )
    return torch.stack([(i - cx) / fx, -(j - cy) / fy, -torch.ones_like(i)], -1)


def rays_of_pose(c2w: torch.Tensor, dirs_cam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """World origins and unit directions of the rays ``dirs_cam`` (..., 3) of camera ``c2w``."""
    d = dirs_cam @ c2w[:3, :3].T
    d = d / d.norm(dim=-1, keepdim=True)
    return c2w[:3, 3].expand_as(d), d


def camera_rays(
    cams: Cameras, device: str | torch.device = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """All rays of all cameras: origins and unit directions, each (N, H, W, 3)."""
    dirs = pixel_dirs(cams.H, cams.W, cams.fx, cams.fy, cams.cx, cams.cy, device)
    os_, ds = zip(*(rays_of_pose(p.to(device), dirs) for p in cams.poses))
    return torch.stack(os_), torch.stack(ds)


def frustum_corners(cams: Cameras, near: float, far: float) -> torch.Tensor:
    """(N, 8, 3): each camera's frustum between ``near`` and ``far`` as 8 corners.

    A pinhole frustum slice is the convex hull of these points, so their box bounds every
    ray point at a distance in [near, far].
    """
    corners_px = torch.tensor([[0.0, 0.0], [cams.W, 0.0], [0.0, cams.H], [cams.W, cams.H]])
    d = torch.stack(
        [
            (corners_px[:, 0] - cams.cx) / cams.fx,
            -(corners_px[:, 1] - cams.cy) / cams.fy,
            -torch.ones(4),
        ],
        -1,
    )  # z = -1: depth 1 along the optical axis
    # near/far are distances along unit rays: every such point lies between the plane at the
    # corner rays' near depth (the smallest) and the plane at depth far (the largest)
    d_near = near / d.norm(dim=-1, keepdim=True)
    out = []
    for c2w in cams.poses:
        rot, o = c2w[:3, :3], c2w[:3, 3]
        out.append(torch.cat([o + (d * d_near) @ rot.T, o + (d * far) @ rot.T]))
    return torch.stack(out)


def scene_box(cams: Cameras, near: float, far: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The box holding every training ray between near and far (DVGO's coarse box)."""
    pts = frustum_corners(cams, near, far).reshape(-1, 3)
    return pts.min(0).values, pts.max(0).values


def ray_box(
    rays_o: torch.Tensor, rays_d: torch.Tensor, b: Bounds
) -> tuple[torch.Tensor, torch.Tensor]:
    """Entry and exit distances of each ray in the box, clipped to [near, far] (slab method).

    A ray that misses the box gets ``t_exit <= t_enter``.
    """
    inv = 1.0 / torch.where(rays_d.abs() < 1e-9, torch.full_like(rays_d, 1e-9), rays_d)
    t0 = (b.lo - rays_o) * inv
    t1 = (b.hi - rays_o) * inv
    t_enter = torch.minimum(t0, t1).amax(-1).clamp_min(b.near)
    t_exit = torch.maximum(t0, t1).amin(-1).clamp_max(b.far)
    return t_enter, t_exit


def sample_along(
    rays_o: torch.Tensor, rays_d: torch.Tensor, b: Bounds, step: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Points every ``step`` (world units) inside the bounds: ``pts (R, S, 3), t (R, S),
    valid (R, S)``.

    Samples start at each ray's box entry; S is the longest ray's count in this batch.
    """
    t_enter, t_exit = ray_box(rays_o, rays_d, b)
    length = (t_exit - t_enter).clamp_min(0)
    S = max(1, int(math.ceil(float(length.max()) / step)))
    k = torch.arange(S, device=rays_o.device, dtype=rays_o.dtype) + 0.5  # midpoints of steps
    t = t_enter[:, None] + k * step
    valid = t < t_exit[:, None]
    pts = rays_o[:, None, :] + rays_d[:, None, :] * t[..., None]
    return pts, t, valid


def nearest_occupied(
    occupied: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, pts: torch.Tensor
) -> torch.Tensor:
    """Nearest-voxel lookup of a boolean grid (X, Y, Z) over [lo, hi]; points outside -> False."""
    n = torch.tensor(occupied.shape, device=pts.device)
    u = (pts - lo) * ((n - 1) / (hi - lo))
    i = u.round().long()
    inside = ((i >= 0) & (i < n)).all(-1)
    i = torch.minimum(i.clamp_min(0), n - 1)
    flat = (i[:, 0] * n[1] + i[:, 1]) * n[2] + i[:, 2]
    return occupied.reshape(-1)[flat] & inside


#: the marcher's empty-space jumps: blocks of MARCH_BLOCK^3 mask voxels
MARCH_BLOCK = 16


def march(
    rays_o: torch.Tensor,
    rays_d: torch.Tensor,
    b: Bounds,
    step: float,
    mask: FreeSpaceMask | None = None,
    count_only: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The samples of :func:`sample_along` that are not known free space, packed.

    ``mask`` marks where something may be (None: keep every sample). Returns ``pts (M, 3),
    t (M,), ray (M,), count (R,)``: the kept samples ray by ray, in order along each ray, with
    their ray index, and each ray's number of them. On the CPU a compiled kernel marches each
    ray once without the dense ``(R, S)`` samples; elsewhere (or without a compiler) the same
    samples come from :func:`sample_along`.
    """
    ext = extension() if rays_o.device.type == "cpu" and rays_o.dtype == torch.float32 else None
    if ext is not None:
        t_enter, t_exit = ray_box(rays_o, rays_d, b)
        e = torch.empty(0, dtype=torch.uint8)
        occ, shape, blocks = mask.kernel_grids(MARCH_BLOCK) if mask is not None else (e, [], e)
        z = torch.zeros(3)
        mlo = mask.lo.float().cpu() if mask is not None else z
        mhi = mask.hi.float().cpu() if mask is not None else z
        pts, t, ray, count = ext.march(
            rays_o.contiguous(),
            rays_d.contiguous(),
            t_enter.contiguous(),
            t_exit.contiguous(),
            float(step),
            occ,
            shape,
            blocks,
            MARCH_BLOCK,
            mlo,
            mhi,
            count_only,
        )
        return pts, t, ray, count
    return march_torch(rays_o, rays_d, b, step, mask)


def march_torch(
    rays_o: torch.Tensor,
    rays_d: torch.Tensor,
    b: Bounds,
    step: float,
    mask: FreeSpaceMask | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`march` in tensor ops (any device): dense samples, then the valid and unknown ones."""
    pts, t, valid = sample_along(rays_o, rays_d, b, step)
    R, S = t.shape
    flat = valid.view(-1).nonzero()[:, 0]
    fpts = pts.view(-1, 3)[flat]
    if mask is not None:
        keep = mask.unknown(fpts)
        flat, fpts = flat[keep], fpts[keep]
    ray = torch.div(flat, S, rounding_mode="floor")
    return fpts, t.view(-1)[flat], ray, torch.bincount(ray, minlength=R)


def orbit_poses(n: int, radius: float = 4.031, elevation_deg: float = 30.0) -> torch.Tensor:
    """(n, 4, 4) camera-to-world poses circling the origin, looking at it (OpenGL axes, z up)."""
    poses = []
    el = math.radians(elevation_deg)
    for a in torch.linspace(0, 2 * math.pi, n + 1)[:-1].tolist():
        eye = torch.tensor(
            [
                radius * math.cos(el) * math.cos(a),
                radius * math.cos(el) * math.sin(a),
                radius * math.sin(el),
            ]
        )
        back = eye / eye.norm()  # camera +z points away from the target
        right = torch.linalg.cross(torch.tensor([0.0, 0.0, 1.0]), back)
        right = right / right.norm()
        up = torch.linalg.cross(back, right)
        m = torch.eye(4)
        m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, up, back, eye
        poses.append(m)
    return torch.stack(poses)
