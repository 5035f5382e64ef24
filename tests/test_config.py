"""The profiles (smoke, quick, cpu800, byol2000, full) and their settings; the device choice."""

from __future__ import annotations

import pytest

from hw4lib.config import PROFILES, get_profile, profile_name, resolve_device
from hw4lib.errors import UserError


def test_profiles_and_env(monkeypatch):
    monkeypatch.delenv("HW4_PROFILE", raising=False)
    assert profile_name() == "quick"
    monkeypatch.setenv("HW4_PROFILE", "full")
    assert profile_name() == "full" and get_profile().name == "full"
    assert profile_name("smoke") == "smoke"  # the flag wins over the variable
    for name in PROFILES:
        assert get_profile(name).name == name
    choices = "smoke, quick, cpu800, byol2000, full"
    with pytest.raises(UserError, match=f"unknown profile 'fast'.*{choices}"):
        get_profile("fast")


def test_full_profile_keeps_the_reports_settings():
    full = get_profile("full")
    c, f = full.nerf.coarse, full.nerf.fine
    assert (c.iters, c.num_voxels, c.alpha_init, c.fast_color_thres) == (5000, 1024000, 1e-6, 1e-7)
    assert (f.iters, f.alpha_init, f.fast_color_thres, f.stepsize) == (20000, 1e-2, 1e-4, 0.5)
    assert [s for s, _ in full.nerf.sweep] == [0.5, 2.0, 4.0, 0.5, 0.5]
    # 160^3, not the table's 180^3: the report's text and configs (reference.DVGO_TABLE)
    assert f.num_voxels == 160**3 and f.mask_refresh
    assert [v for _, v in full.nerf.sweep] == [160**3, 160**3, 160**3, 120**3, 80**3]
    s = full.ssl
    assert (s.backbone, s.image_size, s.pretrain_batch, s.pretrain_lr) == (
        "resnet50",
        128,
        64,
        0.05,
    )
    assert (s.finetune_lr, s.finetune_gamma, s.finetune_batch, s.finetune_epochs) == (
        3e-4,
        0.998,
        16,
        100,
    )


def test_quick_fine_tunes_at_ten_times_the_reports_lr_for_its_short_budget():
    q, full = get_profile("quick").ssl, get_profile("full").ssl
    assert q.finetune_steps == 450 and q.finetune_lr == pytest.approx(10 * full.finetune_lr)
    assert q.finetune_head_lr is None  # D and E at the same lr as A-C


def test_cpu800_profile_is_800_px_on_a_finer_grid_at_the_reports_sample_spacing():
    p, full = get_profile("cpu800"), get_profile("full")
    assert p.nerf.max_train_size is None and p.scene.size == 800 and p.nerf.eval_views is None
    assert p.nerf.fine.num_voxels == 256**3 and p.nerf.coarse.num_voxels == 1024000
    # the samples along a ray are as far apart as the report's step 0.5 at 160^3 (a voxel's
    # side scales with num_voxels^(-1/3))
    spacing = p.nerf.fine.stepsize / round(p.nerf.fine.num_voxels ** (1 / 3))
    assert spacing == pytest.approx(full.nerf.fine.stepsize / 160)
    assert p.nerf.fine.masked_adam and full.nerf.fine.num_voxels == 160**3
    assert p.nerf.fine.lr_decay_steps == p.nerf.fine.iters  # lr x0.1 over the run, as DVGO's
    assert p.nerf.sweep == full.nerf.sweep and p.nerf.fine.mask_refresh
    assert get_profile("quick").nerf.fine.mask_refresh is False  # quick's numbers unchanged


def test_byol2000_is_quick_with_2000_steps_of_each_pre_training():
    from dataclasses import replace

    p, q = get_profile("byol2000"), get_profile("quick")
    assert (p.ssl.pretrain_steps, p.ssl.supervised_steps) == (2000, 2000)
    # every other setting is quick's: its A, C and E are the budget curve's points at 2000 steps
    assert replace(p.ssl, pretrain_steps=250, supervised_steps=200) == q.ssl
    assert (p.nerf, p.scene, p.corpus) == (q.nerf, q.scene, q.corpus)


def test_device_resolution(monkeypatch):
    import torch

    monkeypatch.delenv("HW4_DEVICE", raising=False)
    assert resolve_device("cpu") == "cpu"
    # this machine's answer: the GPU exactly when torch sees one
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(None) == resolve_device("auto")
    # both answers, whatever this machine has
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda" and resolve_device("cuda") == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    with pytest.raises(UserError, match="no CUDA GPU is visible"):
        resolve_device("cuda")
    monkeypatch.setenv("HW4_DEVICE", "cpu")
    assert resolve_device(None) == "cpu"
    with pytest.raises(UserError, match="unknown device"):
        resolve_device("tpu")
