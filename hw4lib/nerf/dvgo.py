"""DVGO's two models: the coarse grids (density + rgb) and the fine grids (density + features
with a small rgb MLP), plus the coarse-to-fine hand-over (tight box, known-free-space mask).

Both stages share :class:`VoxelModel`; the coarse one has ``feat_dim == 0`` and reads colour
straight from a 3-channel grid (eqs 7a-b), the fine one feeds 12 interpolated features and the
view direction to the MLP (eqs 10a-b).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

# labels for hw4 bench nerf's breakdown of a step (nearly free while no profiler runs)
from torch.profiler import record_function as _phase

from . import grid as G
from . import render as R
from .rays import Bounds, march, nearest_occupied


def view_encoding(viewdirs: torch.Tensor, n_freq: int) -> torch.Tensor:
    """Positional encoding of unit view directions: ``[d, sin(2^k d), cos(2^k d)]`` ->
    3 + 6 n_freq."""
    freq = 2.0 ** torch.arange(n_freq, device=viewdirs.device, dtype=viewdirs.dtype)
    x = (viewdirs[..., None] * freq).flatten(-2)
    return torch.cat([viewdirs, torch.sin(x), torch.cos(x)], -1)


class FreeSpaceMask(nn.Module):
    """Boolean grid over a box: True where something may be (unknown), False = known free."""

    def __init__(self, occupied: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor):
        super().__init__()
        self.register_buffer("occupied", occupied.bool())
        self.register_buffer("lo", lo.float().clone())
        self.register_buffer("hi", hi.float().clone())

    def unknown(self, pts: torch.Tensor) -> torch.Tensor:
        """Nearest-voxel lookup; points outside the mask's box count as free."""
        return nearest_occupied(self.occupied, self.lo, self.hi, pts)

    def fraction_free(self) -> float:
        return float(1 - self.occupied.float().mean())

    def kernel_grids(self, block: int) -> tuple[torch.Tensor, list[int], torch.Tensor]:
        """What the ray marcher reads (CPU bytes, made once per mask, not once per step: a 320^3
        mask is 33 MB): the grid in 4^3 bricks (X/4, Y/4, Z/4, 4, 4, 4), its shape, and which
        ``block``^3 blocks of it hold an unknown voxel."""
        key = (self.occupied.data_ptr(), self.occupied._version, block)
        if getattr(self, "_kernel_key", None) != key:
            occ = self.occupied.cpu().to(torch.uint8)
            shape = list(occ.shape)
            pad = [a for n in reversed(shape) for a in (0, -n % 4)]
            bricks = F.pad(occ, pad)
            X, Y, Z = bricks.shape
            bricks = bricks.view(X // 4, 4, Y // 4, 4, Z // 4, 4).permute(0, 2, 4, 1, 3, 5)
            blocks = F.max_pool3d(occ[None, None].float(), block, ceil_mode=True)[0, 0]
            self._kernel_grids = (bricks.contiguous(), shape, blocks.to(torch.uint8).contiguous())
            self._kernel_key = key
        return self._kernel_grids


class VoxelModel(nn.Module):
    """Dense density grid + colour grid (+ rgb MLP when ``feat_dim > 0``) over the box [lo, hi]."""

    def __init__(
        self,
        lo: torch.Tensor,
        hi: torch.Tensor,
        num_voxels: int,
        base_voxel: float,
        alpha_init: float,
        stepsize: float,
        fast_color_thres: float,
        feat_dim: int = 0,
        rgbnet_width: int = 128,
        rgbnet_depth: int = 2,
        viewbase_pe: int = 4,
        mask: FreeSpaceMask | None = None,
    ):
        super().__init__()
        self.register_buffer("lo", lo.float().clone())
        self.register_buffer("hi", hi.float().clone())
        self.base_voxel = float(base_voxel)
        self.stepsize = float(stepsize)
        self.fast_color_thres = float(fast_color_thres)
        self.feat_dim = int(feat_dim)
        self.viewbase_pe = int(viewbase_pe)
        self.num_voxels = int(num_voxels)
        shape = G.grid_shape(self.lo, self.hi, num_voxels)
        self.density = nn.Parameter(torch.zeros(*shape, 1))
        self.color = nn.Parameter(torch.zeros(*shape, feat_dim if feat_dim else 3))
        # eq 9 is solved once, for the interval at construction; later rescaling keeps ``b``.
        self.alpha_init = float(alpha_init)
        self.shift = R.low_density_shift(alpha_init, self.interval)
        self.rgbnet = None
        if feat_dim:
            dims = [feat_dim + 3 + 6 * viewbase_pe] + [rgbnet_width] * rgbnet_depth
            layers: list[nn.Module] = []
            for a, b in zip(dims[:-1], dims[1:]):
                layers += [nn.Linear(a, b), nn.ReLU(inplace=True)]
            last = nn.Linear(dims[-1], 3)
            nn.init.constant_(last.bias, 0)
            self.rgbnet = nn.Sequential(*layers, last)
        self.mask = mask
        self.sparse_grad = False  # training's choice (nerf.train.make_optimizer), not saved

    # -- geometry ------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.density.shape[:3])

    @property
    def voxel_size(self) -> float:
        return G.voxel_size(self.lo, self.hi, self.num_voxels)

    @property
    def step(self) -> float:
        """Distance between samples along a ray (world units): stepsize * voxel size."""
        return self.stepsize * self.voxel_size

    @property
    def interval(self) -> float:
        """The step in base-voxel units: the ``delta`` of eq 2b."""
        return self.step / self.base_voxel

    def scale_volume(self, num_voxels: int) -> None:
        """Progressive scaling: resample the grids to ``num_voxels`` by trilinear upsampling."""
        self.num_voxels = int(num_voxels)
        shape = G.grid_shape(self.lo, self.hi, num_voxels)
        with torch.no_grad():
            self.density = nn.Parameter(G.upsample(self.density.data, shape))
            self.color = nn.Parameter(G.upsample(self.color.data, shape))

    def voxel_alpha(self, interval: float = 1.0) -> torch.Tensor:
        """Alpha of every voxel (X, Y, Z) for a step of ``interval`` base voxels."""
        return R.alpha(R.density(self.density.detach()[..., 0], self.shift), interval)

    # -- rendering: the report's eqs 7a-b (coarse) and 10a-b (fine) --------------------------
    def raw_density(self, pts: torch.Tensor) -> torch.Tensor:
        """Eqs 7a / 10a: ``interp(x, V^(density))`` at points (M, 3) -> (M,), before the
        activation (post-activation, eq 6c)."""
        return G.trilinear(self.density, pts, self.lo, self.hi, sparse=self.sparse_grad)[:, 0]

    def point_rgb(self, pts: torch.Tensor, viewenc: torch.Tensor | None) -> torch.Tensor:
        """Colour of points (M, 3). Coarse, eq 7b: ``sigmoid(interp(x, V^(rgb)))``. Fine, eq 10b:
        ``sigmoid(MLP(interp(x, V^(feat)), d))`` (the position enters through the features)."""
        with _phase("dvgo.features"):
            feat = G.trilinear(self.color, pts, self.lo, self.hi, sparse=self.sparse_grad)
        if self.rgbnet is None:
            return torch.sigmoid(feat)
        with _phase("dvgo.rgbnet"):
            return torch.sigmoid(self.rgbnet(torch.cat([feat, viewenc], -1)))

    def render(
        self,
        rays_o: torch.Tensor,
        rays_d: torch.Tensor,
        background: float,
        near: float,
        far: float,
        target: torch.Tensor | None = None,
    ) -> dict:
        """Render rays (R, 3) -> dict(rgb (R,3), T_last, depth, n_points, [rgbper]).

        Samples every ``step`` inside the box, drops known free space, composites (eqs 2a-c)
        and evaluates colour only where the weight exceeds ``fast_color_thres``.
        """
        with _phase("dvgo.march"):
            fpts, ft, ray_all, _ = march(
                rays_o, rays_d, Bounds(self.lo, self.hi, near, far), self.step, self.mask
            )
        nR = rays_o.shape[0]
        with _phase("dvgo.density"):
            sd = R.density(self.raw_density(fpts), self.shift) * self.interval  # eq 5 after 7a/10a
        with _phase("dvgo.weights"):
            w, T_last = R.weights(sd, ray_all, nR)  # eqs 2b, 2c
            sel = w.detach() > self.fast_color_thres
            cw, cpts, ray_id = w[sel], fpts[sel], ray_all[sel]
        viewenc = None
        if self.rgbnet is not None:
            viewenc = view_encoding(rays_d, self.viewbase_pe)[ray_id]
        rgb = self.point_rgb(cpts, viewenc)  # eq 7b / 10b
        with _phase("dvgo.composite"):
            out = {
                "rgb": R.composite(cw, rgb, T_last, background, ray_id, nR),  # eq 2a
                "T_last": T_last,
                "n_points": int(fpts.shape[0]),
                "n_color": int(cpts.shape[0]),
            }
            with torch.no_grad():
                out["depth"] = R.composite(
                    w.detach(), ft[:, None], T_last.detach(), far, ray_all, nR
                )[:, 0]
            if target is not None:
                out["rgbper"] = R.rgbper_loss(cw, rgb, target[ray_id], nR)
        return out


# -- coarse -> fine -----------------------------------------------------------------------
def voxel_centres(lo: torch.Tensor, hi: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """World positions (X, Y, Z, 3) of a grid's voxels."""
    axes = [torch.linspace(float(lo[a]), float(hi[a]), shape[a]) for a in range(3)]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1)


def tight_box(coarse: VoxelModel, thres: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Box of the coarse voxels whose alpha (one base voxel step) exceeds ``thres``."""
    alpha = coarse.voxel_alpha(1.0).cpu()
    xyz = voxel_centres(coarse.lo.cpu(), coarse.hi.cpu(), coarse.shape)[alpha > thres]
    if xyz.shape[0] == 0:  # nothing learned: keep the whole box
        return coarse.lo.cpu().clone(), coarse.hi.cpu().clone()
    pad = (coarse.hi.cpu() - coarse.lo.cpu()) / torch.tensor(coarse.shape).float()
    lo = torch.maximum(xyz.amin(0) - pad, coarse.lo.cpu())
    hi = torch.minimum(xyz.amax(0) + pad, coarse.hi.cpu())
    return lo, hi


def pooled_alpha(m: VoxelModel, interval: float, kernel: int = 3) -> torch.Tensor:
    """Each voxel's alpha (a step of ``interval`` base voxels), max-pooled over ``kernel``^3
    neighbours: (X, Y, Z). What both free-space masks threshold."""
    alpha = m.voxel_alpha(interval)[None, None]
    return F.max_pool3d(alpha, kernel, stride=1, padding=kernel // 2)[0, 0]


def free_space_mask(coarse: VoxelModel, thres: float, kernel: int = 3) -> FreeSpaceMask:
    """Known-free space: coarse alpha max-pooled over ``kernel``^3 voxels, below ``thres``."""
    return FreeSpaceMask(pooled_alpha(coarse, 1.0, kernel) >= thres, coarse.lo, coarse.hi)


def refresh_free_space(m: VoxelModel, thres: float) -> FreeSpaceMask:
    """DVGO's mask update at a progressive scaling: over ``m``'s own grid, unknown where the old
    mask said unknown and ``m``'s alpha for one voxel step, max-pooled over 3^3 voxels, is at
    least ``thres``. Only ever shrinks the unknown space."""
    xyz = voxel_centres(m.lo, m.hi, m.shape).reshape(-1, 3).to(m.lo.device)
    old = m.mask.unknown(xyz).view(m.shape)
    return FreeSpaceMask(old & (pooled_alpha(m, m.voxel_size / m.base_voxel) >= thres), m.lo, m.hi)
