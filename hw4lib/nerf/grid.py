"""Dense voxel grids and their trilinear lookup -- the hot path of DVGO.

A grid is a channels-last tensor ``(X, Y, Z, C)`` spanning the box ``[lo, hi]`` with a voxel
at each corner (``align_corners=True``: voxel ``(i, j, k)`` sits at ``lo + (i, j, k) * (hi -
lo) / (n - 1)``). Axis 0 is world x. ``F.grid_sample`` would see the same grid as ``(1, C, X,
Y, Z)`` = ``(N, C, D, H, W)`` and so wants its coordinates in the order ``(z, y, x)``.

Speed on a CPU: ``F.grid_sample`` forward+backward is slow (its backward scatters
element by element). Ours runs a small C++ kernel (``trilinear.cpp``, built on first use by
:mod:`.kernels`) that gathers 8 corner rows per point and, in the backward pass,
scatters the gradient with points *sorted by voxel* so the writes are cache-friendly and two
threads never touch the same voxel. When the kernel cannot be built (no compiler) or the
tensors live on a GPU, a pure-torch path (``F.embedding_bag`` forward, ``index_add_``
backward) gives the same numbers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .kernels import extension


def corner_weights(
    pts: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, shape: tuple[int, int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat indices ``(N, 8)`` of the 8 surrounding voxels and their trilinear weights.

    Points outside the box are clamped onto it. Corner order: (dx, dy, dz) in binary, z fastest.
    """
    n = torch.tensor(shape, device=pts.device)
    u = (pts - lo) * ((n - 1).to(pts.dtype) / (hi - lo))
    u = torch.minimum(u.clamp_min(0), (n - 1).to(pts.dtype))
    i0 = torch.minimum(u.floor().long(), n - 2).clamp_min(0)
    f = u - i0.to(u.dtype)
    base = (i0[:, 0] * shape[1] + i0[:, 1]) * shape[2] + i0[:, 2]
    offs = torch.tensor(
        [(a * shape[1] + b) * shape[2] + c for a in (0, 1) for b in (0, 1) for c in (0, 1)],
        device=pts.device,
    )
    fx, fy, fz = f.unbind(-1)
    wx = torch.stack([1 - fx, fx], -1)
    wy = torch.stack([1 - fy, fy], -1)
    wz = torch.stack([1 - fz, fz], -1)
    w = (wx[:, :, None, None] * wy[:, None, :, None] * wz[:, None, None, :]).reshape(-1, 8)
    return base[:, None] + offs, w


def base_voxel(
    pts: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, shape: tuple[int, int, int]
) -> torch.Tensor:
    """Flat index of each point's lower corner voxel (the key points are sorted by)."""
    n = torch.tensor(shape, device=pts.device)
    u = ((pts - lo) * ((n - 1).to(pts.dtype) / (hi - lo))).clamp_min(0)
    i0 = torch.minimum(u.long(), n - 2).clamp_min(0)
    return (i0[:, 0] * shape[1] + i0[:, 1]) * shape[2] + i0[:, 2]


def sort_points(
    pts: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, shape: tuple[int, int, int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(perm, bases, sorted_pts)``: the points reordered to walk the grid in memory order.

    ``sorted_pts = pts[perm]`` and ``bases`` their base voxels, non-decreasing up to runs of 32
    voxels (a bucketed counting sort on the CPU, a full sort elsewhere).
    """
    ext = extension() if pts.device.type == "cpu" else None
    if ext is not None:
        perm, sb, sp = ext.order(
            pts.float().contiguous(), lo.float().contiguous(), hi.float().contiguous(), list(shape)
        )
        return perm, sb, sp
    sb, perm = torch.sort(base_voxel(pts, lo, hi, shape))
    return perm, sb, pts[perm]


class _ExtLookup(torch.autograd.Function):
    @staticmethod
    def forward(ctx, grid, pts, lo, hi, perm, bases):
        ctx.save_for_backward(pts, lo, hi, perm, bases)
        ctx.shape = list(grid.shape)
        return extension().forward(grid, pts, lo, hi, perm)

    @staticmethod
    def backward(ctx, go):
        pts, lo, hi, perm, bases = ctx.saved_tensors
        gg = extension().backward(go.contiguous(), pts, lo, hi, ctx.shape, perm, bases)
        return gg, None, None, None, None, None


_SLOTS: dict[int, torch.Tensor] = {}  # backward_rows' scratch map per grid size, kept all -1


class _ExtRowsLookup(torch.autograd.Function):
    """The lookup whose gradient is sparse: only the voxels the points touch (:func:`trilinear`
    with ``sparse=True``)."""

    @staticmethod
    def forward(ctx, grid, pts, lo, hi):
        ctx.save_for_backward(pts, lo, hi)
        ctx.shape = list(grid.shape)
        e = pts.new_empty(0, dtype=torch.long)
        return extension().forward(grid, pts, lo, hi, e)

    @staticmethod
    def backward(ctx, go):
        pts, lo, hi = ctx.saved_tensors
        shape = ctx.shape
        n_vox = shape[0] * shape[1] * shape[2]
        if n_vox not in _SLOTS:
            _SLOTS[n_vox] = torch.full((n_vox,), -1, dtype=torch.int32)
        idx, rows = extension().backward_rows(go.contiguous(), pts, lo, hi, shape, _SLOTS[n_vox])
        return sparse_rows(idx, rows, shape), None, None, None


def sparse_rows(idx: torch.Tensor, rows: torch.Tensor, shape) -> torch.Tensor:
    """The gradient ``rows`` (K, C) of the flat voxels ``idx`` (K,), increasing, as a sparse COO
    tensor of the grid's ``shape`` (X, Y, Z, C); :func:`flat_rows` inverts it."""
    yz = shape[1] * shape[2]
    ijk = torch.stack([idx // yz, (idx // shape[2]) % shape[1], idx % shape[2]])
    return torch.sparse_coo_tensor(
        ijk, rows, tuple(shape), is_coalesced=True, check_invariants=False
    )


def flat_rows(grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(idx, rows)``: the flat voxel indices and gradient rows of a sparse grid gradient."""
    ijk, shape = grad._indices(), grad.shape
    return (ijk[0] * shape[1] + ijk[1]) * shape[2] + ijk[2], grad._values()


class _TorchLookup(torch.autograd.Function):
    @staticmethod
    def forward(ctx, grid, pts, lo, hi):
        idx, w = corner_weights(pts, lo, hi, tuple(grid.shape[:3]))
        ctx.save_for_backward(idx, w)
        ctx.shape = grid.shape
        flat = grid.reshape(-1, grid.shape[-1])
        return F.embedding_bag(idx, flat, per_sample_weights=w, mode="sum")

    @staticmethod
    def backward(ctx, go):
        idx, w = ctx.saved_tensors
        C = ctx.shape[-1]
        gg = go.new_zeros(int(torch.tensor(ctx.shape[:3]).prod()), C)
        for k in range(8):  # 8 (N, C) scatters: no (N, 8, C) temporary
            gg.index_add_(0, idx[:, k], go * w[:, k : k + 1])
        return gg.view(ctx.shape), None, None, None


def uses_extension(grid: torch.Tensor) -> bool:
    """Whether :func:`trilinear` takes the C++ path for this grid."""
    return grid.device.type == "cpu" and grid.dtype == torch.float32 and extension() is not None


def trilinear(
    grid: torch.Tensor,
    pts: torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
    order: tuple[torch.Tensor, torch.Tensor] | None | bool = None,
    sparse: bool = False,
) -> torch.Tensor:
    """Trilinear interpolation of ``grid`` (X, Y, Z, C) at world points ``pts`` (N, 3) -> (N, C).

    Outputs are in the order of ``pts``. ``order``: None visits points as given (right for
    samples along rays, which are already coherent); ``True`` sorts them by voxel first (right
    for scattered points on a grid larger than the cache); or a precomputed
    :func:`sort_points` result, shared between grids of one shape. Points outside the box are
    clamped onto it. Differentiable with respect to ``grid`` only; ``sparse``: the gradient is a
    sparse tensor over the voxels the points touch (C++ path, points as given; elsewhere dense).
    """
    pts = pts.to(grid.dtype).contiguous()
    lo = lo.to(grid.dtype).contiguous()
    hi = hi.to(grid.dtype).contiguous()
    if uses_extension(grid):
        grid = grid.contiguous()
        if sparse:
            return _ExtRowsLookup.apply(grid, pts, lo, hi)
        if order is True:
            order = sort_points(pts, lo, hi, tuple(grid.shape[:3]))
        if order is None or order is False:
            e = pts.new_empty(0, dtype=torch.long)
            return _ExtLookup.apply(grid, pts, lo, hi, e, e)
        perm, bases, spts = order
        return _ExtLookup.apply(grid, spts, lo, hi, perm, bases)
    return _TorchLookup.apply(grid, pts, lo, hi)


def trilinear_grid_sample(
    grid: torch.Tensor, pts: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor
) -> torch.Tensor:
    """The same lookup through ``F.grid_sample`` (reference and benchmark baseline)."""
    vol = grid.permute(3, 0, 1, 2)[None]  # (1, C, X, Y, Z) = (N, C, D, H, W)
    u = (pts - lo) / (hi - lo) * 2 - 1
    xyz = u.flip(-1).view(1, 1, 1, -1, 3)  # grid_sample wants (W, H, D) = (z, y, x)
    out = F.grid_sample(vol, xyz, mode="bilinear", align_corners=True, padding_mode="border")
    return out.view(grid.shape[-1], -1).t()


def upsample(grid: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """Resample a grid to ``shape`` over the same box by trilinear interpolation (align_corners)."""
    vol = grid.permute(3, 0, 1, 2)[None]
    out = F.interpolate(vol, size=tuple(shape), mode="trilinear", align_corners=True)
    return out[0].permute(1, 2, 3, 0).contiguous()


def grid_shape(lo: torch.Tensor, hi: torch.Tensor, num_voxels: int) -> tuple[int, int, int]:
    """Voxel counts per axis so the box holds about ``num_voxels`` cubic voxels (DVGO's rule)."""
    size = (hi - lo).double()
    voxel = (size.prod() / num_voxels) ** (1 / 3)
    return tuple(max(2, int(v)) for v in (size / voxel).round().long().tolist())


def voxel_size(lo: torch.Tensor, hi: torch.Tensor, num_voxels: int) -> float:
    """Edge length of one voxel when ``num_voxels`` cubic voxels fill the box."""
    return float(((hi - lo).double().prod() / num_voxels) ** (1 / 3))
