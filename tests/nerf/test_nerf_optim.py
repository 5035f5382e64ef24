"""DVGO v2's masked Adam with sparse grid gradients, and error-guided ray draws: checked against
torch's Adam, the dense lookup's gradient, hand-built error maps, and an uninterrupted run."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from hw4lib.nerf import grid as G
from hw4lib.nerf import optim as O
from hw4lib.nerf.kernels import extension
from hw4lib.nerf.sampling import ErrorMap, draw_rays

needs_ext = pytest.mark.skipif(extension() is None, reason="C++ kernels unavailable")
LO, HI = torch.zeros(3), torch.tensor([1.0, 2.0, 1.5])


def test_masked_adam_is_torch_adam_when_every_gradient_is_nonzero():
    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randn(5, 4, 3, 2))
    b = torch.nn.Parameter(a.detach().clone())
    oa = O.MaskedAdam([{"params": [a], "lr": 0.1}], betas=(0.9, 0.99))
    ob = torch.optim.Adam([b], lr=0.1, betas=(0.9, 0.99))
    for _ in range(6):
        g = torch.randn_like(a)
        a.grad, b.grad = g.clone(), g.clone()
        oa.step()
        ob.step()
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("form", ["dense", "rows", "rows_torch"])
def test_masked_adam_leaves_zero_gradient_entries_alone(form, monkeypatch):
    """A value that moved once keeps still while its gradient is zero (torch's Adam would go on
    moving it by momentum); its moments stay too. As a dense gradient, or as listed rows (the
    C++ kernel and the torch path), a listed zero included."""
    if form == "rows_torch":
        monkeypatch.setattr(O, "extension", lambda: None)
    p = torch.nn.Parameter(torch.zeros(1, 2, 2, 1))

    def grad(values):
        if form == "dense":
            return torch.tensor(values).view(1, 2, 2, 1)
        return G.sparse_rows(torch.arange(4), torch.tensor(values)[:, None], (1, 2, 2, 1))

    opt = O.MaskedAdam([{"params": [p], "lr": 0.1}])
    p.grad = grad([1.0, 1.0, 0.0, 0.0])
    opt.step()
    after_one, m1 = p.detach().flatten().clone(), opt.state[p]["exp_avg"].flatten().clone()
    # by hand: step 1 moves a nonzero-gradient value by -lr (m_hat / sqrt(v_hat) = 1)
    torch.testing.assert_close(after_one, torch.tensor([-0.1, -0.1, 0.0, 0.0]))
    p.grad = grad([1.0, 0.0, 0.0, 0.0])
    opt.step()
    now = p.detach().flatten()
    assert now[1] == after_one[1] and opt.state[p]["exp_avg"].flatten()[1] == m1[1]
    assert now[0] < after_one[0] and (now[2:] == 0).all()


def test_masked_adam_refuses_a_sparse_gradient_in_a_plain_group():
    p = torch.nn.Parameter(torch.zeros(2, 2, 2, 1))
    opt = O.MaskedAdam([{"params": [p], "lr": 0.1, "skip_zero_grad": False}])
    p.grad = G.sparse_rows(torch.tensor([3]), torch.ones(1, 1), (2, 2, 2, 1))
    with pytest.raises(ValueError, match="skip_zero_grad"):
        opt.step()


@needs_ext
def test_sparse_lookup_gradient_is_the_dense_one_on_the_touched_voxels():
    torch.manual_seed(1)
    g = torch.randn(30, 20, 25, 5, requires_grad=True)
    pts = torch.rand(500, 3) * (HI - LO) * 1.1 - 0.05  # a few outside: clamped
    w = torch.randn(500, 5)
    (G.trilinear(g, pts, LO, HI) * w).sum().backward()
    dense, g.grad = g.grad.clone(), None
    (G.trilinear(g, pts, LO, HI, sparse=True) * w).sum().backward()
    assert g.grad.is_sparse
    torch.testing.assert_close(g.grad.to_dense(), dense, rtol=0, atol=1e-6)
    idx, rows = G.flat_rows(g.grad)
    assert (idx[1:] > idx[:-1]).all()  # distinct, in grid order
    touched = dense.reshape(-1, 5).abs().sum(-1) > 0
    assert touched[idx].sum() == touched.sum()  # every voxel with a gradient is listed
    assert (G._SLOTS[30 * 20 * 25] == -1).all()  # the scratch map is left clean


@needs_ext
def test_sparse_lookup_gradient_is_the_same_bits_on_one_thread_or_two():
    """Above 8192 points the threads split the voxels; each voxel still sums its points in
    input order, so the gradient is the serial one bit for bit (and the dense one)."""
    torch.manual_seed(3)
    g = torch.randn(40, 30, 50, 4, requires_grad=True)
    pts, w = torch.rand(20000, 3) * (HI - LO) + LO, torch.randn(20000, 4)
    grads = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            g.grad = None
            (G.trilinear(g, pts, LO, HI, sparse=True) * w).sum().backward()
            grads.append(G.flat_rows(g.grad))
    finally:
        torch.set_num_threads(threads)
    (one_i, one_r), (two_i, two_r) = grads
    assert torch.equal(one_i, two_i) and torch.equal(one_r, two_r)
    assert (two_i[1:] > two_i[:-1]).all()
    g.grad = None
    (G.trilinear(g, pts, LO, HI) * w).sum().backward()
    assert torch.equal(G.sparse_rows(two_i, two_r, g.shape).to_dense(), g.grad)


@needs_ext
@pytest.mark.parametrize("kernel", [True, False])
def test_sparse_steps_equal_dense_masked_steps(kernel, monkeypatch):
    """Masked Adam on sparse rows (C++ kernel, or the torch path) = on the dense gradient."""
    torch.manual_seed(2)
    g0 = torch.randn(6, 5, 4, 3)
    sp, de = (torch.nn.Parameter(g0.clone()) for _ in range(2))
    o_sp = O.MaskedAdam([{"params": [sp], "lr": 0.1}])
    o_de = O.MaskedAdam([{"params": [de], "lr": 0.1}])
    if not kernel:
        monkeypatch.setattr(O, "extension", lambda: None)
    lo, hi = torch.zeros(3), torch.ones(3)
    for _ in range(4):
        pts, w = torch.rand(40, 3) * 0.5, torch.randn(40, 3)
        o_sp.zero_grad()
        o_de.zero_grad()
        (G.trilinear(sp, pts, lo, hi, sparse=True) * w).sum().backward()
        (G.trilinear(de, pts, lo, hi) * w).sum().backward()
        o_sp.step()
        o_de.step()
    torch.testing.assert_close(sp, de, rtol=0, atol=1e-6)
    for k in ("exp_avg", "exp_avg_sq"):
        torch.testing.assert_close(o_sp.state[sp][k], o_de.state[de][k], rtol=0, atol=1e-6)
    assert torch.equal(sp.detach()[4:], g0[4:])  # never touched: never moved


def test_error_map_draws_in_proportion_to_tile_error():
    # 2 views of 4x4 pixels, tiles of 2x2: 8 tiles; rays of view 0 only
    ids = torch.arange(16)
    em = ErrorMap(ids, (4, 4), tile=2, refresh=1)
    assert em.tile_of.tolist()[:4] == [0, 0, 1, 1] and int(em.tile_of[15]) == 3  # 4 tiles
    em.update(ids, torch.where(em.tile_of == 0, 0.9, 0.1), rate=1)
    pos = em.draw(20000, torch.Generator().manual_seed(0))
    share = (em.tile_of[pos] == 0).float().mean()
    assert abs(float(share) - 4 * 0.9 / (4 * 0.9 + 12 * 0.1)) < 0.02  # each ray: its tile's error


def test_error_map_state_round_trip_repeats_the_draws():
    ids = torch.arange(0, 64, 3)
    a = ErrorMap(ids, (8, 8), tile=4, refresh=3)
    a.update(torch.arange(5), torch.rand(5))
    a.draw(10, torch.Generator().manual_seed(0))
    b = ErrorMap(ids, (8, 8), tile=4, refresh=3)
    b.load_state_dict(
        {k: v.clone() if torch.is_tensor(v) else v for k, v in a.state_dict().items()}
    )
    for _ in range(5):  # across a refresh
        ga, gb = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
        assert torch.equal(a.draw(50, ga), b.draw(50, gb))


def test_uniform_draws_are_the_plain_random_integers():
    """Without an error share the draws are the ones runs made before error maps existed."""
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(draw_rays(1000, 64, g1), torch.randint(0, 1000, (64,), generator=g2))
    em = ErrorMap(torch.arange(1000), (10, 100))
    pos = draw_rays(1000, 64, torch.Generator().manual_seed(3), em, share=0.25)
    assert pos.shape == (64,) and int(pos.max()) < 1000


@pytest.mark.slow
def test_masked_error_guided_run_resumes_bit_for_bit(tmp_path, monkeypatch):
    """Killed in the fine stage just after a checkpoint and resumed, a run with masked Adam and
    error-guided rays ends where the uninterrupted one did: optimizer moments and the error map
    travel in the checkpoint."""
    from hw4lib.config import get_profile
    from hw4lib.data.scene import generate_scene
    from hw4lib.nerf import train as T
    from hw4lib.nerf.raydata import ray_data
    from hw4lib.nerf.saved import load_resume_checkpoint

    scene = generate_scene(
        tmp_path / "s", "hotdog", size=32, n_train=8, n_val=2, supersample=1, progress=False
    )
    cfg = get_profile("smoke").nerf
    fine = dataclasses.replace(cfg.fine, iters=40, masked_adam=True, error_rays=0.5)
    cfg = dataclasses.replace(cfg, fine=fine)
    data = ray_data(scene, cfg, "white", 1, "cpu")

    def setup(name):
        return T.TrainSetup(tmp_path / name, data, cfg, "white", "cpu", progress=False)

    whole = T.train(setup("whole"))
    monkeypatch.setattr(T, "CKPT_EVERY", 25)
    real_save = T.atomic_save

    def save(obj, path):
        real_save(obj, path)
        if obj["state"].get("stage") == "fine" and obj["state"].get("iter") == 25:
            assert obj["state"]["errors"] is not None
            raise KeyboardInterrupt

    monkeypatch.setattr(T, "atomic_save", save)
    with pytest.raises(KeyboardInterrupt):
        T.train(setup("cut"))
    monkeypatch.setattr(T, "atomic_save", real_save)
    again = T.train(setup("cut"), load_resume_checkpoint(tmp_path / "cut" / "checkpoint.pt"))
    assert again["history"]["loss"] == whole["history"]["loss"]
    a = torch.load(tmp_path / "whole" / "fine.pt", weights_only=True)["state"]
    b = torch.load(tmp_path / "cut" / "fine.pt", weights_only=True)["state"]
    assert all(torch.equal(a[k], b[k]) for k in a)
