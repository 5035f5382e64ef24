"""Each DVGO training mechanism the report names, checked by what it does (a closed form or a
hand computation), so that switching one off fails a test: the view-count learning rate, the
entropy regulariser, the per-point colour loss with detached weights."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from hw4lib.config import get_profile
from hw4lib.nerf import render as R
from hw4lib.nerf import train as T
from hw4lib.nerf.dvgo import VoxelModel, voxel_centres

NEAR, FAR = 2.0, 6.0


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    from hw4lib.data.scene import generate_scene

    out = tmp_path_factory.mktemp("mech") / "hotdog"
    return generate_scene(out, "hotdog", size=16, n_train=6, n_val=1, supersample=1, progress=False)


def _job(scene: Path, run: Path) -> T.TrainSetup:
    from hw4lib.nerf.raydata import ray_data

    cfg = get_profile("smoke").nerf
    data = ray_data(scene, cfg, "white", 1, "cpu")
    return T.TrainSetup(run, data, cfg, "white", "cpu", progress=False)


class _Captured(Exception):
    pass


def test_the_coarse_stage_scales_each_voxels_step_by_its_view_count(scene, tmp_path, monkeypatch):
    """DVGO's coarse stage: a voxel seen by n_j of the training views takes n_j / n_max of
    Adam's step, so voxels few views constrain move less."""
    from hw4lib.nerf.raydata import view_counts

    job = _job(scene, tmp_path / "run")
    seen = {}

    def capture(job, model, st, name, state, ray_ids=None, pervoxel_lr=None):
        seen.update(model=model, st=st, lr=pervoxel_lr)
        raise _Captured

    monkeypatch.setattr(T, "train_stage", capture)
    state = {"stage": "coarse", "iter": 0, "history": T._new_history(), "timings": {}}
    with pytest.raises(_Captured):
        T.coarse_stage(job, state, None)
    m, lr = seen["model"], seen["lr"]
    n = len(job.data.cams.poses)
    counts = view_counts(job.data.cams, m.lo, m.hi, m.shape, job.cfg.near, job.cfg.far)
    assert lr is not None and lr.shape == m.shape
    assert counts.max() == n  # some voxel is seen by every view: its scale is 1
    assert torch.equal(lr, counts / n) and lr.min() < 1

    # one step: each voxel moves by its scale times the step it takes unscaled
    st = dataclasses.replace(seen["st"], weight_entropy=0.0, weight_rgbper=0.0)
    sel = torch.arange(0, job.data.rays_o.shape[0], 3)
    moved = {}
    for name, scale in (("plain", None), ("scaled", lr)):
        mm = copy.deepcopy(m)
        before = mm.density.detach().clone(), mm.color.detach().clone()
        T.optimise_step(mm, T.make_optimizer(mm, st), st, job, sel, scale, "test")
        moved[name] = [p.detach() - b for p, b in zip((mm.density, mm.color), before)]
    for plain, scaled in zip(moved["plain"], moved["scaled"]):
        assert plain.abs().max() > 0
        assert torch.allclose(scaled, plain * lr[..., None], atol=1e-7)


def test_the_entropy_term_pushes_each_ray_to_hit_or_miss(tmp_path, monkeypatch):
    """dH/dT = log((1 - T) / T) / N for the mean binary entropy H of the background weights T:
    descending on it, a ray mostly blocked (T < 0.5) gets more opaque and a ray mostly clear
    (T > 0.5) clearer; so does a DVGO step whose only loss is the entropy term."""
    p = torch.tensor([0.2, 0.4, 0.7, 0.9], requires_grad=True)
    R.entropy_loss(p).backward()
    want = torch.log((1 - p.detach()) / p.detach()) / 4
    assert torch.allclose(p.grad, want, atol=1e-6)

    m = VoxelModel(-torch.ones(3), torch.ones(3), 16**3, 0.125, 1e-2, 0.5, 0.0)
    xyz = voxel_centres(m.lo, m.hi, m.shape)
    with torch.no_grad():
        m.density[..., 0] = torch.where(xyz[..., 0] > 0, 1.5, 0.0)  # x > 0 denser
    rays_o = torch.tensor([[0.5, 0.0, 4.0], [-0.5, 0.0, 4.0]])
    rays_d = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0]])
    data = SimpleNamespace(rays_o=rays_o, rays_d=rays_d, target=torch.ones(2, 3))
    cfg = SimpleNamespace(near=NEAR, far=FAR)
    job = SimpleNamespace(data=data, bg=1.0, cfg=cfg, run=tmp_path, ck_path=tmp_path / "ck.pt")

    def t_last() -> torch.Tensor:
        with torch.no_grad():
            return m.render(rays_o, rays_d, 1.0, NEAR, FAR)["T_last"]

    before = t_last()
    assert before[0] < 0.5 < before[1]
    monkeypatch.setattr(T.R, "photometric_loss", lambda pred, target: (pred * 0).sum())
    st = dataclasses.replace(
        get_profile("smoke").nerf.coarse, weight_entropy=1.0, weight_rgbper=0.0, lr_grid=0.05
    )
    opt = T.make_optimizer(m, st)
    steps = [T.optimise_step(m, opt, st, job, torch.arange(2), None, "test") for _ in range(3)]
    after = t_last()
    assert after[0] < before[0] and after[1] > before[1]
    for loss, mse, out in steps:  # the loss is + weight_entropy * H, nothing else here
        assert mse == 0 and torch.allclose(loss, R.entropy_loss(out["T_last"]))


def test_the_per_point_colour_loss_leaves_the_density_alone():
    """DVGO's per-point rgb loss sum_i w_i |c_i - C|^2 trains colours only: its weights are
    detached, so its gradient w.r.t. the density grid is zero (and not w.r.t. the colours)."""
    m = VoxelModel(-torch.ones(3), torch.ones(3), 16**3, 0.125, 1e-2, 0.5, 0.0)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        m.density.normal_(generator=g)
        m.color.normal_(generator=g)
    o = torch.tensor([[0.0, 0.0, 4.0], [0.1, -0.2, 4.0]])
    d = torch.nn.functional.normalize(torch.tensor([[0.0, 0.0, -1.0], [0.05, 0.02, -1.0]]), dim=-1)
    tgt = torch.tensor([[0.2, 0.4, 0.6], [0.9, 0.1, 0.5]])
    out = m.render(o, d, 1.0, NEAR, FAR, target=tgt)
    out["rgbper"].backward()
    assert out["rgbper"] > 0 and m.color.grad.abs().max() > 0
    assert m.density.grad is None or not m.density.grad.any()
    # while the photometric loss of the same render does reach the density
    m.zero_grad()
    R.photometric_loss(m.render(o, d, 1.0, NEAR, FAR)["rgb"], tgt).backward()
    assert m.density.grad.abs().max() > 0
