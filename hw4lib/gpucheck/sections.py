"""The four sections of the GPU check (:mod:`hw4lib.gpucheck.run` runs them), each a function
``(device, sizes, smoke, context) -> results``:

* ``env``: the device's name and memory, torch/CUDA/cuDNN versions, whether the C++ kernels
  built, and which DVGO path the device takes (the kernels are CPU ops: on CUDA the grid
  lookup and the ray marcher run their pure-torch versions), checked by one lookup.
* ``nerf``: DVGO at the ``full`` profile on a generated 800 px scene, coarse and fine
  iterations a second as :func:`~hw4lib.nerf.train.coarse_stage` and
  :func:`~hw4lib.nerf.train.fine_stage` run them (fine at 160^3 throughout), and the minutes
  the profile's 5000 + 20000 steps would take at those rates.
* ``render``: one view of the fine model rendered by the device's path and by the CPU path
  (C++ kernels), same weights; their PSNR must reach :data:`PASS_DB`.
* ``byol``: BYOL on ResNet50 at 128 px, batch 64: images a second in fp32 and in bf16 autocast
  with channels-last, and the hours of the report's 1000 epochs over 38,400 images.

In the smoke run the device side is forced onto the pure-torch path, so that the CPU exercises
what CUDA runs.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import itertools
import os
import platform
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from ..config import NerfConfig

#: the render section's pass mark: PSNR between the device's and the CPU's render of one view
PASS_DB = 50.0
#: the report's BYOL pre-training: epochs over the full ``mini`` (64 classes x 600 images)
BYOL_EPOCHS, BYOL_IMAGES = 1000, 38_400
#: a PSNR of identical renders (MSE floored at 1e-12 by psnr_from_mse) reads this
IDENTICAL_DB = 120.0


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How big each section runs: the real check, or the CPU smoke run."""

    scene_px: int
    train_views: int
    coarse_voxels: int | None  # None: the full profile's (100^3)
    fine_voxels: int
    n_rays: int | None  # None: the full profile's (8192)
    warmup: int  # steps of each stage run before the timed ones
    steps: int  # timed steps of each stage
    byol_arch: str
    byol_px: int
    byol_batch: int
    byol_hidden: int | None  # None: the full profile's (4096)
    byol_projection: int | None  # None: the full profile's (256)
    byol_warmup: int
    byol_steps: int


FULL = Sizes(800, 3, None, 160**3, None, 5, 20, "resnet50", 128, 64, None, None, 3, 15)
SMOKE = Sizes(32, 2, 16**3, 16**3, 256, 1, 3, "resnet10", 32, 4, 64, 32, 1, 2)


@contextlib.contextmanager
def torch_path(on: bool) -> Iterator[None]:
    """With ``on``, DVGO's grid lookup and marcher take their pure-torch path on the CPU too:
    the path CUDA runs, so that the smoke run exercises it (module globals, restored after)."""
    from ..nerf import grid, rays

    saved = grid.extension, rays.extension
    if on:
        grid.extension = rays.extension = lambda: None
    try:
        yield
    finally:
        grid.extension, rays.extension = saved


def _sync(dev: str) -> None:
    if dev == "cuda":
        torch.cuda.synchronize()


# -- env ---------------------------------------------------------------------------------
def check_env(dev: str, sizes: Sizes, forced_torch: bool, ctx: dict) -> dict[str, Any]:
    """The device, versions, the kernels' build and the DVGO path the device takes."""
    from ..nerf import dvgo, rays  # noqa: F401  (the modules of the CUDA path import)
    from ..nerf import grid as G
    from ..nerf.kernels import extension

    ext = extension() is not None
    if dev == "cuda":
        props = torch.cuda.get_device_properties(0)
        name, mem = props.name, props.total_memory / 2**30
    else:  # the smoke run: the host's processor and memory
        name = f"cpu ({platform.processor() or platform.machine()}, smoke run)"
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    g = torch.Generator().manual_seed(0)
    grid = torch.randn(12, 10, 8, 5, generator=g).to(dev)
    pts = (torch.rand(1000, 3, generator=g) * 2 - 1).to(dev)
    lo, hi = -torch.ones(3, device=dev), torch.ones(3, device=dev)
    with torch_path(forced_torch):
        uses_ext = G.uses_extension(grid)
        ours = G.trilinear(grid, pts, lo, hi)
    ref = G.trilinear_grid_sample(grid, pts, lo, hi)
    err = float((ours - ref).abs().max())
    path = (
        "C++ kernels (trilinear.cpp, march.cpp)"
        if uses_ext
        else "pure torch (grid: embedding_bag + index_add_; marcher: march_torch)"
    )
    return {
        "device": dev,
        "device_name": name,
        "device_memory_gib": round(mem, 2),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "kernels_built": ext,
        # "high"/"medium" (TF32) would lower the render section's PSNR: recorded to tell why
        "matmul_precision": torch.get_float32_matmul_precision(),
        "device_path": path,
        "cpu_reference_path": "C++ kernels (trilinear.cpp, march.cpp)" if ext else "pure torch",
        # floored: the JSON's numbers stay positive when the lookup matches bit for bit
        "lookup_max_err": max(err, 1e-12),
        "lookup_ok": err < 1e-4,
    }


# -- nerf ------------------------------------------------------------------------------
def _rate(seconds: list[float], warmup: int) -> float:
    """Iterations a second over the timed tail of one stage's cumulative ``seconds``."""
    return (len(seconds) - warmup) / (seconds[-1] - seconds[warmup - 1])


def _timed_nerf(sizes: Sizes) -> tuple[NerfConfig, NerfConfig]:
    """The full profile's nerf settings, and the same with both stages ``warmup + steps``
    long at ``sizes``' grids and rays."""
    from ..config import get_profile

    full = get_profile("full").nerf
    n = sizes.warmup + sizes.steps
    coarse = dataclasses.replace(
        full.coarse,
        iters=n,
        num_voxels=sizes.coarse_voxels or full.coarse.num_voxels,
        n_rays=sizes.n_rays or full.coarse.n_rays,
    )
    # no progressive scaling: every timed fine step runs on the final grid
    fine = dataclasses.replace(
        full.fine, iters=n, num_voxels=sizes.fine_voxels, n_rays=sizes.n_rays or full.fine.n_rays
    )
    fine = dataclasses.replace(fine, pg_scale=())
    return full, dataclasses.replace(full, coarse=coarse, fine=fine)


def _train(
    dev: str, scene: Path, cfg: Any, run: Path, forced_torch: bool
) -> tuple[Any, dict[str, Any], Any, Any]:
    """Both stages of ``cfg`` on ``scene`` as training runs them: ``(job, state, the coarse
    grid, the fine model)``; the history in ``state`` times every step."""
    from ..nerf import grid as G
    from ..nerf.bench import _blob_model
    from ..nerf.raydata import ray_data
    from ..nerf.rays import scene_box
    from ..nerf.train import TrainSetup, _start, coarse_stage, fine_stage

    coarse, fine = cfg.coarse, cfg.fine
    torch.manual_seed(0)
    with torch_path(forced_torch):
        data = ray_data(scene, cfg, cfg.background, 1, dev)
        run.mkdir()
        job = TrainSetup(run, data, cfg, cfg.background, dev, progress=False)
        state, _ = _start(None, dev)
        lo, hi = scene_box(data.cams, cfg.near, cfg.far)
        base = G.voxel_size(lo, hi, coarse.num_voxels)
        # the coarse grid starts as `hw4 bench nerf`'s solid ball, so that the fine stage has a
        # box and free space to skip as after a trained coarse stage (a few steps learn none)
        ball = _blob_model(lo, hi, coarse.num_voxels, base, coarse, 0).to(dev)
        coarse_stage(job, state, ball)
        model = fine_stage(job, state, None, fine)
        _sync(dev)
    return job, state, ball, model


def check_nerf(dev: str, sizes: Sizes, forced_torch: bool, ctx: dict) -> dict[str, Any]:
    """Coarse and fine iterations a second of the full profile on a generated scene."""
    from ..data.scene import generate_scene

    full, cfg = _timed_nerf(sizes)
    n = sizes.warmup + sizes.steps
    work = Path(ctx["work"])
    t0 = time.perf_counter()
    scene = generate_scene(
        work / "scene",
        size=sizes.scene_px,
        n_train=sizes.train_views,
        n_val=1,
        supersample=1,
        progress=False,
    )
    scene_s = time.perf_counter() - t0
    job, state, ball, model = _train(dev, scene, cfg, work / "run", forced_torch)
    secs, pts = state["history"]["seconds"], state["history"]["points"]
    c_rate, f_rate = _rate(secs[:n], sizes.warmup), _rate(secs[n:], sizes.warmup)
    minutes = (full.coarse.iters / c_rate + full.fine.iters / f_rate) / 60
    ctx.update(model=model, scene=scene, bg=job.bg, near=cfg.near, far=cfg.far)
    return {
        "scene_px": sizes.scene_px,
        "train_views": sizes.train_views,
        "scene_seconds": round(scene_s, 2),
        "coarse_grid": list(ball.shape),
        "fine_grid": list(model.shape),
        "coarse_rays": cfg.coarse.n_rays,
        "fine_rays": cfg.fine.n_rays,
        "warmup_steps": sizes.warmup,
        "timed_steps": sizes.steps,
        "coarse_it_s": c_rate,
        "fine_it_s": f_rate,
        "fine_points_per_step": sum(pts[n + sizes.warmup :]) / sizes.steps,
        "fine_rays_kept": state["rays_kept"],
        "projected_steps": [full.coarse.iters, full.fine.iters],
        "projected_minutes": minutes,
    }


# -- render ----------------------------------------------------------------------------
def check_render(dev: str, sizes: Sizes, forced_torch: bool, ctx: dict) -> dict[str, Any]:
    """The nerf section's fine model rendering one val view on the device and on the CPU."""
    from ..data.blender import read_transforms
    from ..nerf.images import render_image
    from ..nerf.render import psnr_from_mse

    if "model" not in ctx:
        raise RuntimeError("no fine model: the nerf section did not finish")
    model = ctx["model"]
    cams = read_transforms(Path(ctx["scene"]) / "transforms_val.json")
    args = (cams, cams.poses[0], ctx["bg"], ctx["near"], ctx["far"])
    t0 = time.perf_counter()
    with torch_path(forced_torch):
        on_dev, _ = render_image(model, *args)
    _sync(dev)
    dev_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    on_cpu, _ = render_image(copy.deepcopy(model).cpu(), *args)
    cpu_s = time.perf_counter() - t0
    from ..nerf.kernels import extension

    mse = float(((on_dev - on_cpu) ** 2).mean())
    psnr = psnr_from_mse(mse)
    return {
        "px": [cams.H, cams.W],
        "psnr_db": psnr,
        "max_abs_diff": float((on_dev - on_cpu).abs().max()),
        "pass_db": PASS_DB,
        # without the kernels both renders take the torch path: a weaker comparison
        "cpu_path": "C++ kernels" if extension() is not None else "pure torch",
        "passed": psnr >= PASS_DB,
        "device_seconds": round(dev_s, 3),
        "cpu_seconds": round(cpu_s, 3),
    }


# -- byol ------------------------------------------------------------------------------
def _byol_step(s: dict, cfg: Any, dev: str, bf16: bool) -> Callable[[torch.Tensor], None]:
    """One BYOL step of the model pre-training builds: fp32, or bf16 autocast on channels-last
    tensors; waits for the GPU so that it can be timed."""
    from ..ssl.augment import to_float
    from ..ssl.pretrain_run import _build

    torch.manual_seed(0)
    model, _ = _build("byol", s, 0, torch.device(dev))
    fmt = torch.channels_last if bf16 else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.pretrain_lr, momentum=cfg.momentum)

    def step(x: torch.Tensor) -> None:
        x = to_float(x.to(dev, non_blocking=True)).contiguous(memory_format=fmt)
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=bf16):
            loss = model(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.update_moving_average()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"BYOL loss {float(loss)} ({'bf16' if bf16 else 'fp32'})")
        _sync(dev)

    return step


def check_byol(dev: str, sizes: Sizes, forced_torch: bool, ctx: dict) -> dict[str, Any]:
    """Images a second of a BYOL step in fp32 and in bf16 + channels-last, and the report's
    pre-training hours at each."""
    from ..config import get_profile
    from ..ssl.bench import _time_steps
    from ..ssl.pretrain_run import pretrain_settings

    full = get_profile("full").ssl
    cfg = dataclasses.replace(
        full,
        backbone=sizes.byol_arch,
        image_size=sizes.byol_px,
        pretrain_batch=sizes.byol_batch,
        byol_hidden=sizes.byol_hidden or full.byol_hidden,
        byol_projection=sizes.byol_projection or full.byol_projection,
    )
    s = pretrain_settings("byol", Path(ctx["work"]), cfg, "full")
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (cfg.pretrain_batch, 3, cfg.image_size, cfg.image_size), generator=g)
    x = x.to(torch.uint8)
    out: dict[str, Any] = {
        "arch": cfg.backbone,
        "image_px": cfg.image_size,
        "batch": cfg.pretrain_batch,
        "timed_steps": sizes.byol_steps,
        "epochs": BYOL_EPOCHS,
        "images": BYOL_IMAGES,
    }
    for key, bf16 in (("fp32", False), ("bf16_cl", True)):
        step = _byol_step(s, cfg, dev, bf16)
        rate = _time_steps(step, itertools.repeat(x), sizes.byol_steps, sizes.byol_warmup)
        out[f"{key}_img_s"] = rate
        out[f"{key}_hours"] = BYOL_EPOCHS * BYOL_IMAGES / rate / 3600
        del step
        if dev == "cuda":
            torch.cuda.empty_cache()
    return out
