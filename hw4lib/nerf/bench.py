"""Benchmarks (``hw4 bench grid|nerf``): ratios measured in one run, on one machine.

* ``bench_grid``: our trilinear lookup, forward + backward, against ``F.grid_sample`` on the
  same grid and points; the last line is ``speed-up <x>x``.
* ``bench_nerf``: rays/s and points/s of a coarse and a fine DVGO training step (forward,
  backward, optimiser step), ours against a straightforward implementation of the same step
  (``grid_sample`` at every sample, no free-space or colour skipping).
"""
from __future__ import annotations

import dataclasses
import statistics
import time

import torch

from ..config import get_profile, resolve_device
from . import grid as G
from . import render as R
from .dvgo import VoxelModel, free_space_mask, view_encoding
from .rays import orbit_poses, pixel_dirs, rays_of_pose, sample_along
from .train import make_optimizer


def _sync(dev: str) -> None:
    if dev == "cuda":
        torch.cuda.synchronize()


def _time(fn, repeats: int, dev: str) -> float:
    fn()  # warm-up (and the kernel build)
    _sync(dev)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(dev)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def bench_grid(args) -> int:
    dev = resolve_device(getattr(args, "device", "auto"))
    res, C, N = int(args.res), int(args.channels), int(args.points)
    repeats = int(getattr(args, "repeats", 5))
    g = torch.Generator().manual_seed(0)
    grid = torch.randn(res, res, res, C, generator=g).to(dev).requires_grad_()
    lo, hi = -torch.ones(3, device=dev), torch.ones(3, device=dev)
    pts = (torch.rand(N, 3, generator=g) * 2 - 1).to(dev)
    go = torch.randn(N, C, generator=g).to(dev)

    def ours():
        grid.grad = None
        G.trilinear(grid, pts, lo, hi, order=True).backward(go)

    def ref():
        grid.grad = None
        G.trilinear_grid_sample(grid, pts, lo, hi).backward(go)

    path = "C++ kernel" if G.uses_extension(grid) else "torch (embedding_bag + index_add_)"
    print(f"trilinear lookup fwd+bwd: grid {res}^3 x {C}, {N} random points, device {dev}, "
          f"{torch.get_num_threads()} threads, ours = {path}")
    t_ours = _time(ours, repeats, dev)
    print(f"ours        {t_ours * 1e3:8.1f} ms  {N / t_ours / 1e6:6.2f} M points/s")
    t_ref = _time(ref, max(1, repeats // 2), dev)
    print(f"grid_sample {t_ref * 1e3:8.1f} ms  {N / t_ref / 1e6:6.2f} M points/s")
    print(f"speed-up {t_ref / t_ours:.1f}x")
    return 0


# -- training-step benchmark ---------------------------------------------------------------
def _blob_model(lo, hi, nv, base, st, feat_dim, mask=None) -> VoxelModel:
    m = VoxelModel(lo, hi, nv, base, st.alpha_init, st.stepsize, st.fast_color_thres, feat_dim,
                   st.rgbnet_width, st.rgbnet_depth, st.viewbase_pe, mask)
    from .dvgo import voxel_centres

    xyz = voxel_centres(lo, hi, m.shape)
    with torch.no_grad():  # a solid ball of radius 0.6: something to see and space to skip
        m.density[..., 0] = torch.where(xyz.norm(dim=-1) < 0.6, 30.0, -5.0)
    return m


def _reference_step(m: VoxelModel, ro, rd, tgt, bg, near, far) -> torch.Tensor:
    """The same training step with ``F.grid_sample`` at every sample, nothing skipped."""
    pts, t, valid = sample_along(ro, rd, m.lo, m.hi, near, far, m.step)
    nR, S = t.shape
    flat_pts = pts.reshape(-1, 3)
    raw = G.trilinear_grid_sample(m.density, flat_pts, m.lo, m.hi)[:, 0].view(nR, S)
    sd = R.density(raw, m.shift) * m.interval * valid
    feat = G.trilinear_grid_sample(m.color, flat_pts, m.lo, m.hi)
    if m.rgbnet is None:
        rgb = torch.sigmoid(feat)
    else:
        ve = view_encoding(rd, m.viewbase_pe)[:, None].expand(nR, S, -1).reshape(nR * S, -1)
        rgb = torch.sigmoid(m.rgbnet(torch.cat([feat, ve], -1)))
    w, T_last = R.weights(sd)
    c = R.composite(w, rgb.view(nR, S, 3), T_last, bg)
    return R.photometric_loss(c, tgt) + 0.01 * R.entropy_loss(T_last)


def bench_nerf(args) -> int:
    dev = resolve_device(getattr(args, "device", "auto"))
    cfg = get_profile(getattr(args, "profile", None) or "quick").nerf
    repeats = int(getattr(args, "repeats", 5))
    n_rays = int(getattr(args, "rays", 0) or cfg.coarse.n_rays)
    lo, hi = -1.5 * torch.ones(3), 1.5 * torch.ones(3)
    base = G.voxel_size(lo, hi, cfg.coarse.num_voxels)
    coarse = _blob_model(lo, hi, cfg.coarse.num_voxels, base, cfg.coarse, 0).to(dev)
    mask = free_space_mask(coarse)
    fine = _blob_model(-0.7 * torch.ones(3), 0.7 * torch.ones(3), cfg.fine.num_voxels, base,
                       cfg.fine, cfg.fine.feat_dim, mask).to(dev)
    g = torch.Generator().manual_seed(0)
    poses = orbit_poses(16)
    H = W = 100
    f = 0.5 * W / torch.tan(torch.tensor(0.6911 / 2)).item()
    dirs = pixel_dirs(H, W, f, f, W / 2, H / 2).reshape(-1, 3)
    k = torch.randint(0, 16, (n_rays,), generator=g)
    p = torch.randint(0, H * W, (n_rays,), generator=g)
    ro = torch.stack([rays_of_pose(poses[a], dirs[b:b + 1])[0][0] for a, b in zip(k, p)]).to(dev)
    rd = torch.stack([rays_of_pose(poses[a], dirs[b:b + 1])[1][0] for a, b in zip(k, p)]).to(dev)
    tgt = torch.rand(n_rays, 3, generator=g).to(dev)
    print(f"DVGO training step (forward, backward, Adam step), {n_rays} rays, "
          f"profile grids: coarse {coarse.shape}, fine {fine.shape}, device {dev}, "
          f"{torch.get_num_threads()} threads")
    for name, m, st in (("coarse", coarse, cfg.coarse), ("fine", fine, cfg.fine)):
        npts = {}
        # the optimiser step is part of a training step (lr 0: the grids stay as they are)
        st = dataclasses.replace(st, lr_grid=0.0, lr_mlp=0.0)
        opt_ours = make_optimizer(m, st)
        opt_ref = torch.optim.Adam(m.parameters(), lr=0.0, betas=(0.9, 0.99))

        def ours():
            m.zero_grad(set_to_none=True)
            out = m.render(ro, rd, 1.0, cfg.near, cfg.far, target=tgt)
            npts["n"] = out["n_points"]
            loss = R.photometric_loss(out["rgb"], tgt) + 0.01 * R.entropy_loss(out["T_last"]) \
                + 0.1 * out["rgbper"]
            loss.backward()
            opt_ours.step()

        def ref():
            m.zero_grad(set_to_none=True)
            _reference_step(m, ro, rd, tgt, 1.0, cfg.near, cfg.far).backward()
            opt_ref.step()

        _, t_all, valid = sample_along(ro, rd, m.lo, m.hi, cfg.near, cfg.far, m.step)
        n_all = int(valid.sum())
        t_o = _time(ours, repeats, dev)
        t_r = _time(ref, max(1, repeats // 2), dev)
        print(f"{name:6s} ours        {t_o * 1e3:8.1f} ms  {n_rays / t_o:9.0f} rays/s  "
              f"{npts['n'] / t_o / 1e6:6.2f} M points/s ({npts['n']} points after skipping)")
        print(f"{name:6s} grid_sample {t_r * 1e3:8.1f} ms  {n_rays / t_r:9.0f} rays/s  "
              f"{n_all / t_r / 1e6:6.2f} M points/s ({n_all} points)")
        print(f"{name:6s} speed-up {t_r / t_o:.1f}x")
    return 0
