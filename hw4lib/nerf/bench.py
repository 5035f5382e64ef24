"""Benchmarks (``hw4 bench grid|nerf``): ratios measured in one run, on one machine.

Both sides run in interleaved rounds (ours, reference, ours, ...); each round gives a ratio,
and the median of those, with their spread, is the result.

* ``bench_grid``: our trilinear lookup, forward + backward, against ``F.grid_sample`` on the
  same grid and points; the last line is ``speed-up <median>x``.
* ``bench_nerf``: rays/s and points/s of a coarse and a fine DVGO training step (forward,
  backward, optimiser step), ours against a straightforward implementation of the same step
  (``grid_sample`` at every sample, no free-space or colour skipping), and where a fine step's
  time goes (:func:`step_breakdown`).
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Callable

import torch
from torch.profiler import ProfilerActivity, profile

from ..config import DVGOStage, get_profile, resolve_device
from . import grid as G
from . import render as R
from .dvgo import VoxelModel, free_space_mask, view_encoding
from .rays import Bounds, orbit_poses, pixel_dirs, rays_of_pose, sample_along
from .train import make_optimizer, stage_loss


def _sync(dev: str) -> None:
    if dev == "cuda":
        torch.cuda.synchronize()


def _rounds(fns: dict[str, Callable[[], None]], repeats: int, dev: str) -> dict[str, list[float]]:
    """Seconds of each function in ``repeats`` interleaved rounds (a, b, a, b, ...), after one
    warm-up call each (and the kernel build): a machine that slows down or speeds up during
    the run weighs on both sides of every round's ratio alike."""
    for fn in fns.values():
        fn()
    _sync(dev)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            _sync(dev)
            times[k].append(time.perf_counter() - t0)
    return times


def _ratio_line(label: str, t_ref: list[float], t_ours: list[float]) -> tuple[str, float]:
    """``(line, median)`` of the per-round speed-ups ``t_ref / t_ours``, with their spread."""
    ratios = [r / o for r, o in zip(t_ref, t_ours)]
    med = statistics.median(ratios)
    return (
        f"{label}per-round speed-ups {' '.join(f'{x:.1f}' for x in ratios)}: median "
        f"{med:.1f}x, spread {min(ratios):.1f}-{max(ratios):.1f}x",
        med,
    )


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
    print(
        f"trilinear lookup fwd+bwd: grid {res}^3 x {C}, {N} random points, device {dev}, "
        f"{torch.get_num_threads()} threads, ours = {path}, {repeats} interleaved rounds"
    )
    t = _rounds({"ours": ours, "grid_sample": ref}, repeats, dev)
    for k in ("ours", "grid_sample"):
        med = statistics.median(t[k])
        print(f"{k:11s} {med * 1e3:8.1f} ms  {N / med / 1e6:6.2f} M points/s (median)")
    line, med = _ratio_line("", t["grid_sample"], t["ours"])
    print(line)
    print(f"speed-up {med:.1f}x")
    return 0


# -- training-step benchmark ---------------------------------------------------------------
def _blob_model(lo, hi, nv, base, st, feat_dim, mask=None) -> VoxelModel:
    m = VoxelModel(
        lo,
        hi,
        nv,
        base,
        st.alpha_init,
        st.stepsize,
        st.fast_color_thres,
        feat_dim,
        st.rgbnet_width,
        st.rgbnet_depth,
        st.viewbase_pe,
        mask,
    )
    from .dvgo import voxel_centres

    xyz = voxel_centres(lo, hi, m.shape)
    with torch.no_grad():  # a solid ball of radius 0.6: something to see and space to skip
        m.density[..., 0] = torch.where(xyz.norm(dim=-1) < 0.6, 30.0, -5.0)
    return m


def _reference_step(m: VoxelModel, ro, rd, tgt, bg, near, far) -> torch.Tensor:
    """The same training step with ``F.grid_sample`` at every sample, nothing skipped."""
    pts, t, valid = sample_along(ro, rd, Bounds(m.lo, m.hi, near, far), m.step)
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


def _bench_rays(n_rays: int, dev: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n_rays`` random rays of 16 orbit views at 100 px, and random target colours."""
    g = torch.Generator().manual_seed(0)
    poses = orbit_poses(16)
    H = W = 100
    f = 0.5 * W / torch.tan(torch.tensor(0.6911 / 2)).item()
    dirs = pixel_dirs(H, W, f, f, W / 2, H / 2).reshape(-1, 3)
    k = torch.randint(0, 16, (n_rays,), generator=g)
    p = torch.randint(0, H * W, (n_rays,), generator=g)
    ro = torch.stack([rays_of_pose(poses[a], dirs[b : b + 1])[0][0] for a, b in zip(k, p)]).to(dev)
    rd = torch.stack([rays_of_pose(poses[a], dirs[b : b + 1])[1][0] for a, b in zip(k, p)]).to(dev)
    tgt = torch.rand(n_rays, 3, generator=g).to(dev)
    return ro, rd, tgt


def bench_nerf(args) -> int:
    dev = resolve_device(getattr(args, "device", "auto"))
    cfg = get_profile(getattr(args, "profile", None) or "quick").nerf
    repeats = int(getattr(args, "repeats", 5))
    n_rays = int(getattr(args, "rays", 0) or cfg.coarse.n_rays)
    lo, hi = -1.5 * torch.ones(3), 1.5 * torch.ones(3)
    base = G.voxel_size(lo, hi, cfg.coarse.num_voxels)
    coarse = _blob_model(lo, hi, cfg.coarse.num_voxels, base, cfg.coarse, 0).to(dev)
    mask = free_space_mask(coarse, cfg.free_space_thres)
    fine = _blob_model(
        -0.7 * torch.ones(3),
        0.7 * torch.ones(3),
        cfg.fine.num_voxels,
        base,
        cfg.fine,
        cfg.fine.feat_dim,
        mask,
    ).to(dev)
    rays = _bench_rays(n_rays, dev)
    print(
        f"DVGO training step (forward, backward, Adam step), {n_rays} rays, "
        f"profile grids: coarse {coarse.shape}, fine {fine.shape}, device {dev}, "
        f"{torch.get_num_threads()} threads"
    )
    for name, m, st in (("coarse", coarse, cfg.coarse), ("fine", fine, cfg.fine)):
        _bench_step(name, m, st, Bounds(m.lo, m.hi, cfg.near, cfg.far), rays, repeats)
    _bench_masked(fine, cfg.fine, Bounds(fine.lo, fine.hi, cfg.near, cfg.far), rays, repeats)
    return 0


def _bench_masked(
    m: VoxelModel, st: DVGOStage, b: Bounds, rays: tuple[torch.Tensor, ...], repeats: int
) -> None:
    """The fine step with the profile's masked Adam (sparse grid gradients) against the same
    step with torch's dense Adam, in interleaved rounds."""
    steps = {}
    for key, masked in (("masked", True), ("dense", False)):
        s = dataclasses.replace(st, lr_grid=0.0, lr_mlp=0.0, masked_adam=masked)
        steps[key] = _training_step(m, make_optimizer(m, s), s, b, rays)
    t = _rounds(steps, repeats, rays[0].device.type)
    line, med = _ratio_line("fine   masked Adam vs dense Adam: ", t["dense"], t["masked"])
    print(line)
    print(f"fine   masked Adam speed-up {med:.1f}x")


def _training_step(
    m: VoxelModel,
    opt: torch.optim.Optimizer,
    st: DVGOStage,
    b: Bounds,
    rays: tuple[torch.Tensor, ...],
    seen: dict | None = None,
) -> Callable[[], None]:
    """One training step of ``m`` on ``rays`` with ``opt`` (from :func:`make_optimizer`, whose
    sparse or dense grid gradients it keeps) on the stage's loss; ``seen['n']``: the samples it
    rendered."""
    ro, rd, tgt = rays
    sparse = m.sparse_grad

    def step() -> None:
        m.sparse_grad = sparse
        m.zero_grad(set_to_none=True)
        out = m.render(ro, rd, 1.0, b.near, b.far, target=tgt)
        if seen is not None:
            seen["n"] = out["n_points"]
        stage_loss(out, tgt, st)[0].backward()
        opt.step()

    return step


def _bench_step(
    name: str, m: VoxelModel, st: DVGOStage, b: Bounds, rays: tuple[torch.Tensor, ...], repeats: int
) -> None:
    """Time one stage's training step, ours against :func:`_reference_step`, and print the
    rates, the per-round speed-ups and (the fine stage) where the step's time goes."""
    ro, rd, tgt = rays
    dev = ro.device.type
    npts = {}
    # the optimiser step is part of a training step (lr 0: the grids stay as they are)
    st = dataclasses.replace(st, lr_grid=0.0, lr_mlp=0.0)
    opt_ours = make_optimizer(m, st)
    opt_ref = torch.optim.Adam(m.parameters(), lr=0.0, betas=(0.9, 0.99))

    ours = _training_step(m, opt_ours, st, b, rays, npts)

    def ref():
        m.zero_grad(set_to_none=True)
        _reference_step(m, ro, rd, tgt, 1.0, b.near, b.far).backward()
        opt_ref.step()

    _, t_all, valid = sample_along(ro, rd, b, m.step)
    n_all = int(valid.sum())
    t = _rounds({"ours": ours, "ref": ref}, repeats, dev)
    t_o, t_r = statistics.median(t["ours"]), statistics.median(t["ref"])
    n_rays = ro.shape[0]
    print(
        f"{name:6s} ours        {t_o * 1e3:8.1f} ms  {n_rays / t_o:9.0f} rays/s  "
        f"{npts['n'] / t_o / 1e6:6.2f} M points/s ({npts['n']} points after skipping)"
    )
    print(
        f"{name:6s} grid_sample {t_r * 1e3:8.1f} ms  {n_rays / t_r:9.0f} rays/s  "
        f"{n_all / t_r / 1e6:6.2f} M points/s ({n_all} points)"
    )
    line, med = _ratio_line(f"{name:6s} ", t["ref"], t["ours"])
    print(line)
    if name == "fine":
        print_breakdown(step_breakdown(ours, repeats))
    print(f"{name:6s} speed-up {med:.1f}x")


#: the labelled parts of VoxelModel.render, in the order they run
PHASES = (
    "dvgo.march",
    "dvgo.density",
    "dvgo.weights",
    "dvgo.features",
    "dvgo.rgbnet",
    "dvgo.composite",
)


def step_breakdown(step: Callable[[], None], repeats: int) -> dict[str, float]:
    """Milliseconds per call of each part of a training ``step`` under the profiler: the
    forward's labelled phases (:data:`PHASES`), the backward pass (with its costliest autograd
    nodes as ``backward: <node>``) and the optimiser step."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(repeats):
            step()
    total = {e.key: e.cpu_time_total / 1e3 / repeats for e in prof.key_averages()}
    out = {k.removeprefix("dvgo."): total.get(k, 0.0) for k in PHASES}
    nodes = {
        k.split(": ", 1)[1]: v
        for k, v in total.items()
        if k.startswith("autograd::engine::evaluate_function: ")
    }
    out["backward"] = sum(nodes.values())
    for k, v in sorted(nodes.items(), key=lambda kv: -kv[1])[:4]:
        out[f"backward: {k}"] = v
    out["optimizer"] = sum(v for k, v in total.items() if k.startswith("Optimizer.step"))
    return out


def print_breakdown(parts: dict[str, float]) -> None:
    whole = sum(v for k, v in parts.items() if not k.startswith("backward: "))
    print(f"fine   step breakdown (profiler, ms per step; {whole:.1f} ms labelled):")
    for k, v in parts.items():
        share = f"{100 * v / whole:5.1f}%" if whole else "    -"
        print(f"         {k:34s} {v:8.1f} ms {share}")
