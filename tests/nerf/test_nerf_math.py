"""DVGO maths against closed forms, hand computations and reference implementations."""

from __future__ import annotations

import math

import pytest
import torch

from hw4lib.data.blender import Cameras
from hw4lib.nerf import grid as G
from hw4lib.nerf import kernels as K
from hw4lib.nerf import render as R
from hw4lib.nerf.activation2d import fit_image
from hw4lib.nerf.dvgo import (
    FreeSpaceMask,
    VoxelModel,
    free_space_mask,
    tight_box,
    view_encoding,
    voxel_centres,
)
from hw4lib.nerf.rays import (
    Bounds,
    frustum_corners,
    pixel_dirs,
    ray_box,
    rays_of_pose,
    scene_box,
)
from hw4lib.nerf.run import parse_voxels


def weights_by_cumprod(alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference: eqs 2a-2c literally, ``T_i = prod_{j<i}(1 - alpha_j)`` on dense (R, S)."""
    T = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha], -1), -1)
    return T[:, :-1] * alpha, T[:, -1]


def test_constant_slab_opacity_is_one_minus_exp():
    sigma, L, K = 1.7, 2.0, 64
    w, T_last = R.weights(torch.full((3, K), sigma * L / K))
    c = R.composite(w, torch.full((3, K, 3), 0.25), T_last, background=1.0)
    opacity = 1 - math.exp(-sigma * L)
    assert torch.allclose(w.sum(-1), torch.full((3,), opacity), atol=1e-6)
    assert torch.allclose(c, torch.full((3, 3), 0.25 * opacity + (1 - opacity)), atol=1e-6)


def test_packed_transmittance_equals_dense():
    g = torch.Generator().manual_seed(5)
    sd = torch.rand(6, 30, generator=g) * (torch.rand(6, 30, generator=g) > 0.4)
    sd[2] = 0  # a ray with no kept sample
    T, T_last = R.transmittance(sd)
    keep = (sd > 0).view(-1).nonzero()[:, 0]
    Tp, Tl = R.transmittance(sd.view(-1)[keep], keep // 30, 6)
    assert torch.allclose(Tp, T.view(-1)[keep], atol=1e-6)
    assert torch.allclose(Tl, T_last, atol=1e-6) and Tl[2] == 1


def test_weights_plus_final_transmittance_is_one_and_matches_cumprod():
    g = torch.Generator().manual_seed(0)
    sd = torch.rand(50, 40, generator=g) * torch.rand(50, 1, generator=g) * 0.5
    w, T_last = R.weights(sd)
    assert torch.allclose(w.sum(-1) + T_last, torch.ones(50), atol=1e-5)
    w2, T2 = weights_by_cumprod(R.alpha(sd, 1.0))
    assert torch.allclose(w, w2, atol=1e-6) and torch.allclose(T_last, T2, atol=1e-6)


def test_psnr_from_mse_by_hand():
    assert R.psnr_from_mse(0.01) == pytest.approx(20.0)
    assert R.psnr_from_mse(torch.tensor(1e-4)) == pytest.approx(40.0)
    assert R.psnr_from_mse(0.0) == pytest.approx(120.0)  # clamped at mse 1e-12, not inf


@pytest.mark.parametrize(
    "alpha_init,interval", [(1e-6, 0.5), (1e-2, 0.5), (1e-2, 0.137), (1e-4, 2)]
)
def test_low_density_shift_gives_alpha_init(alpha_init, interval):
    b = R.low_density_shift(alpha_init, interval)
    # eq 9 by hand: b = log((1 - a)^(-1/s) - 1)
    assert b == pytest.approx(math.log((1 - alpha_init) ** (-1 / interval) - 1), rel=1e-6)
    a = R.alpha_post(torch.zeros(5), b, interval)
    assert torch.allclose(a.double(), torch.full((5,), alpha_init, dtype=torch.double), rtol=1e-4)


def test_model_starts_at_alpha_init_everywhere():
    m = VoxelModel(-torch.ones(3), torch.ones(3), 8**3, 0.3, 1e-2, 0.5, 1e-4)
    a = m.voxel_alpha(m.interval)
    assert torch.allclose(a, torch.full_like(a, 1e-2), rtol=1e-4)


def _ext_or_torch():
    return ["torch"] + (["ext"] if K.extension() is not None else [])


def _lookup(path, grid, pts, lo, hi):
    if path == "torch":
        return G._TorchLookup.apply(grid, pts, lo, hi)
    return G.trilinear(grid, pts, lo, hi)


@pytest.mark.parametrize("path", _ext_or_torch())
def test_trilinear_equals_hand_computation(path):
    grid = torch.arange(8, dtype=torch.float32).view(2, 2, 2, 1) ** 2  # v(i,j,k) = (4i+2j+k)^2
    lo, hi = torch.zeros(3), torch.ones(3)
    x, y, z = 0.2, 0.7, 0.4
    want = sum(
        ((4 * i + 2 * j + k) ** 2) * (x if i else 1 - x) * (y if j else 1 - y) * (z if k else 1 - z)
        for i in (0, 1)
        for j in (0, 1)
        for k in (0, 1)
    )
    got = _lookup(path, grid, torch.tensor([[x, y, z]]), lo, hi)
    assert got.item() == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("path", _ext_or_torch())
def test_trilinear_matches_grid_sample_values_and_gradients(path):
    g = torch.Generator().manual_seed(1)
    grid = torch.randn(5, 7, 9, 3, generator=g).requires_grad_()  # distinct axis sizes: order!
    lo, hi = torch.tensor([-1.0, 0.0, 2.0]), torch.tensor([1.5, 1.0, 4.0])
    pts = lo + torch.rand(300, 3, generator=g) * (hi - lo)
    go = torch.randn(300, 3, generator=g)
    out = _lookup(path, grid, pts, lo, hi)
    (ga,) = torch.autograd.grad(out, grid, go)
    ref = G.trilinear_grid_sample(grid, pts, lo, hi)
    (gb,) = torch.autograd.grad(ref, grid, go)
    assert torch.allclose(out, ref, atol=1e-5)
    assert torch.allclose(ga, gb, atol=1e-4)


def test_sorted_lookup_equals_unsorted_and_sorts():
    g = torch.Generator().manual_seed(2)
    grid = torch.randn(20, 20, 20, 4, generator=g).requires_grad_()
    lo, hi = -torch.ones(3), torch.ones(3)
    pts = torch.rand(40000, 3, generator=g) * 2 - 1
    perm, sb, sp = G.sort_points(pts, lo, hi, (20, 20, 20))
    assert torch.equal(sp, pts[perm])
    assert ((sb[1:] >> 5) >= (sb[:-1] >> 5)).all()  # sorted by buckets of 32 voxels
    assert torch.equal(torch.sort(perm).values, torch.arange(40000))
    assert torch.equal(sb, G.base_voxel(pts, lo, hi, (20, 20, 20))[perm])
    go = torch.randn(40000, 4, generator=g)
    a = G.trilinear(grid, pts, lo, hi, order=True)
    (ga,) = torch.autograd.grad(a, grid, go)
    b = G.trilinear(grid, pts, lo, hi)
    (gb,) = torch.autograd.grad(b, grid, go)
    assert torch.allclose(a, b, atol=1e-6) and torch.allclose(ga, gb, atol=1e-3)


def test_upsampling_preserves_a_linear_field():
    lo, hi = torch.tensor([-1.0, -2.0, 0.0]), torch.tensor([1.0, 2.0, 3.0])
    coef = torch.tensor([0.3, -1.2, 2.0])

    def field(shape):
        return (voxel_centres(lo, hi, shape) @ coef + 0.5)[..., None]

    up = G.upsample(field((4, 5, 6)), (9, 11, 7))
    assert torch.allclose(up, field((9, 11, 7)), atol=1e-5)


def test_grid_shape_holds_about_num_voxels_of_cubes():
    lo, hi = torch.zeros(3), torch.tensor([1.0, 2.0, 4.0])
    shape = G.grid_shape(lo, hi, 8000)
    assert shape == (10, 20, 40)
    assert G.voxel_size(lo, hi, 8000) == pytest.approx(0.1)


def test_ray_box_slab():
    o = torch.tensor([[-5.0, 0.2, 0.3]])
    d = torch.tensor([[1.0, 0.0, 0.0]])
    t0, t1 = ray_box(o, d, Bounds(-torch.ones(3), torch.ones(3), 0.0, 100.0))
    assert t0.item() == pytest.approx(4.0) and t1.item() == pytest.approx(6.0)
    t0, t1 = ray_box(
        o, torch.tensor([[0.0, 1.0, 0.0]]), Bounds(-torch.ones(3), torch.ones(3), 0, 100)
    )
    assert t1.item() <= t0.item()  # misses


def _cams(n=3, size=20):
    from hw4lib.nerf.rays import orbit_poses

    f = 0.5 * size / math.tan(0.5 * 0.6911)
    return Cameras(
        orbit_poses(n, 4.0, 30.0),
        size,
        size,
        f,
        f,
        size / 2,
        size / 2,
        [f"r_{i}" for i in range(n)],
        None,
    )


def test_scene_box_holds_every_ray_between_near_and_far():
    cams = _cams()
    lo, hi = scene_box(cams, 2.0, 6.0)
    dirs = pixel_dirs(cams.H, cams.W, cams.fx, cams.fy, cams.cx, cams.cy).reshape(-1, 3)
    for p in cams.poses:
        o, d = rays_of_pose(p, dirs)
        for t in (2.0, 6.0):
            x = o + t * d
            assert (x >= lo - 1e-5).all() and (x <= hi + 1e-5).all()
    assert frustum_corners(cams, 2.0, 6.0).shape == (3, 8, 3)


def test_camera_looks_down_minus_z():
    # identity pose: the centre pixel's ray goes along -z
    d = pixel_dirs(2, 2, 1.0, 1.0, 1.0, 1.0)
    centre = d.mean((0, 1))
    assert centre[2] < 0 and abs(centre[0]) < 1e-6 and abs(centre[1]) < 1e-6
    assert d[0, 0, 1] > 0  # top row looks up (+y)


def test_view_counts_origin_seen_by_all():
    from hw4lib.nerf.raydata import view_counts

    cams = _cams(5)
    lo, hi = scene_box(cams, 2.0, 6.0)
    shape = G.grid_shape(lo, hi, 20**3)
    cnt = view_counts(cams, lo, hi, shape, 2.0, 6.0)
    xyz = voxel_centres(lo, hi, shape)
    centre = xyz.norm(dim=-1) < 0.3
    assert (cnt[centre] == 5).all()
    assert cnt.min() < 5


def test_free_space_mask_and_tight_box_follow_the_density():
    m = VoxelModel(-torch.ones(3), torch.ones(3), 21**3, 0.1, 1e-6, 0.5, 1e-7)
    xyz = voxel_centres(m.lo, m.hi, m.shape)
    with torch.no_grad():
        m.density[..., 0] = torch.where(
            (xyz - torch.tensor([0.3, 0.0, 0.0])).norm(dim=-1) < 0.25, 30.0, 0.0
        )
    lo, hi = tight_box(m, 1e-3)
    assert torch.allclose(lo, torch.tensor([0.0, -0.3, -0.3]), atol=0.11)
    assert torch.allclose(hi, torch.tensor([0.6, 0.3, 0.3]), atol=0.11)
    mask = free_space_mask(m, 1e-3)
    assert mask.unknown(torch.tensor([[0.3, 0.0, 0.0]])).item()
    assert not mask.unknown(torch.tensor([[-0.7, 0.5, 0.5]])).item()
    assert 0.9 < mask.fraction_free() < 1.0


def test_mask_refresh_frees_what_the_fine_grid_emptied_and_never_grows():
    """DVGO's refresh at a progressive scaling: unknown = old unknown AND (own alpha for one
    voxel step, max-pooled 3^3) >= thres. A ball of density inside a mask that only knows the
    half-space x > -0.5: after the refresh the ball and its one-voxel rim stay unknown, empty
    space turns free, and x < -0.5 stays free even where the grid is dense."""
    from hw4lib.nerf.dvgo import refresh_free_space

    lo, hi = -torch.ones(3), torch.ones(3)
    occ = voxel_centres(lo, hi, (9, 9, 9))[..., 0] > -0.5
    m = VoxelModel(lo, hi, 21**3, 0.1, 1e-2, 0.5, 1e-3, mask=FreeSpaceMask(occ, lo, hi))
    xyz = voxel_centres(m.lo, m.hi, m.shape)
    ball = xyz.norm(dim=-1) < 0.3
    with torch.no_grad():
        m.density[..., 0] = torch.where(ball | (xyz[..., 0] < -0.7), 10.0, -30.0)
    new = refresh_free_space(m, 1e-3)
    assert new.occupied.shape == m.shape  # now over the model's own grid
    assert new.occupied[ball].all()
    step = float((m.hi - m.lo)[0]) / (m.shape[0] - 1)
    rim = (xyz.norm(dim=-1) < 0.3 + 1.5 * step) & ~ball  # within the 3^3 max-pool
    far = xyz.norm(dim=-1) > 0.3 + 2.5 * step
    assert new.occupied[rim & (xyz[..., 0] > -0.4)].any()
    assert not new.occupied[far & (xyz[..., 0] > -0.4)].any()
    assert not new.occupied[xyz[..., 0] < -0.7].any()  # free before: stays free


def test_render_skips_free_space_and_matches_reference_composite():
    m = VoxelModel(-torch.ones(3), torch.ones(3), 16**3, 0.125, 1e-2, 0.5, 0.0)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        m.density.normal_(generator=g)
        m.color.normal_(generator=g)
    o = torch.tensor([[0.0, 0.0, 4.0], [0.1, -0.2, 4.0]])
    d = torch.nn.functional.normalize(torch.tensor([[0.0, 0.0, -1.0], [0.05, 0.02, -1.0]]), dim=-1)
    out = m.render(o, d, 1.0, 2.0, 6.0)
    # reference: every sample through grid_sample and the plain cumprod compositing
    from hw4lib.nerf.rays import sample_along

    pts, t, valid = sample_along(o, d, Bounds(m.lo, m.hi, 2.0, 6.0), m.step)
    raw = G.trilinear_grid_sample(m.density, pts.reshape(-1, 3), m.lo, m.hi).view(t.shape)
    a = R.alpha_post(raw, m.shift, m.interval) * valid
    w, T = weights_by_cumprod(a)
    rgb = torch.sigmoid(G.trilinear_grid_sample(m.color, pts.reshape(-1, 3), m.lo, m.hi)).view(
        *t.shape, 3
    )
    want = (w[..., None] * rgb).sum(1) + T[:, None]
    assert torch.allclose(out["rgb"], want, atol=1e-5)
    # depth: eq 2a with sample depths for colours and the far plane behind
    assert torch.allclose(out["depth"], (w * t).sum(1) + T * 6.0, atol=1e-4)
    # DVGO's per-point colour loss, by hand: mean over rays of sum_i w_i |c_i - C_gt|^2
    tgt = torch.tensor([[0.2, 0.4, 0.6], [0.9, 0.1, 0.5]])
    got = m.render(o, d, 1.0, 2.0, 6.0, target=tgt)["rgbper"]
    per = (w * ((rgb - tgt[:, None]) ** 2).sum(-1)).sum(1).mean()
    assert torch.allclose(got, per, atol=1e-5)


def test_view_encoding_and_voxel_parsing():
    e = view_encoding(torch.tensor([[0.0, 0.0, 1.0]]), 4)
    assert e.shape == (1, 27) and e[0, 2] == 1.0
    assert parse_voxels("180^3") == 180**3 and parse_voxels("5832000") == 5832000
    from hw4lib.errors import UserError

    with pytest.raises(UserError):
        parse_voxels("big")


def test_post_activation_fits_a_sharp_edge_better():
    yy, xx = torch.meshgrid(torch.arange(40.0), torch.arange(40.0), indexing="ij")
    img = ((xx - 20) ** 2 + (yy - 20) ** 2 < 13**2).float()[..., None].repeat(1, 1, 3)
    err = {m: float(((fit_image(img, m, iters=150) - img) ** 2).mean()) for m in ("pre", "post")}
    assert err["post"] < err["pre"]


def test_march_jumps_empty_blocks_without_losing_a_sample():
    """A sparse mask (70x61x66, most 16^3 blocks empty): the marcher's jumps over empty blocks
    keep exactly the samples of the dense sampling, at two steps."""
    from hw4lib.nerf.rays import MARCH_BLOCK, march, march_torch

    g = torch.Generator().manual_seed(5)
    o = torch.randn(3000, 3, generator=g)
    o = o / o.norm(dim=-1, keepdim=True) * 4
    d = torch.nn.functional.normalize(-o / 4 + 0.3 * torch.randn(3000, 3, generator=g), dim=-1)
    # a third of the blocks hold voxels, most of them on the block's faces: a jump that went
    # a voxel too far, or stopped a voxel short of a face, would drop or add samples
    B = MARCH_BLOCK
    occ = torch.zeros(70, 61, 66, dtype=torch.bool)
    idx = [torch.arange(n) % B for n in occ.shape]
    face = (idx[0][:, None, None] % (B - 1) == 0) | (idx[1][None, :, None] % (B - 1) == 0)
    face = face | (idx[2][None, None, :] % (B - 1) == 0)
    held = torch.rand(5, 4, 5, generator=g) < 0.35
    in_held = held.repeat_interleave(B, 0).repeat_interleave(B, 1).repeat_interleave(B, 2)
    occ = in_held[:70, :61, :66] & face & (torch.rand(occ.shape, generator=g) < 0.3)
    mask = FreeSpaceMask(occ, torch.tensor([-1.1, -0.9, -1.0]), torch.tensor([0.8, 1.2, 0.9]))
    blocks = mask.kernel_grids(MARCH_BLOCK)[2]
    assert 0.1 < blocks.float().mean() < 0.9  # some blocks to jump, some to search
    b = Bounds(-torch.ones(3), torch.ones(3), 2.0, 6.0)
    for step in (0.013, 0.05):
        got, want = march(o, d, b, step, mask), march_torch(o, d, b, step, mask)
        assert want[0].shape[0] > 300
        for x, y in zip(got, want):
            assert torch.equal(x, y)


def test_march_equals_dense_sampling_with_the_mask():
    """The compiled ray marcher keeps exactly the samples of sample_along that the free-space
    mask calls unknown, packed ray by ray (and the torch path agrees)."""
    from hw4lib.nerf.rays import march, march_torch, nearest_occupied, sample_along

    g = torch.Generator().manual_seed(5)
    o = torch.randn(300, 3, generator=g)
    o = o / o.norm(dim=-1, keepdim=True) * 4
    d = torch.nn.functional.normalize(-o / 4 + 0.3 * torch.randn(300, 3, generator=g), dim=-1)
    lo, hi = -torch.ones(3), torch.ones(3)
    occ = torch.rand(9, 7, 8, generator=g) < 0.3
    mlo, mhi = torch.tensor([-1.1, -0.9, -1.0]), torch.tensor([0.8, 1.2, 0.9])
    b, mask = Bounds(lo, hi, 2.0, 6.0), FreeSpaceMask(occ, mlo, mhi)
    pts, t, valid = sample_along(o, d, b, 0.05)
    keep = valid & nearest_occupied(occ, mlo, mhi, pts.reshape(-1, 3)).view(valid.shape)
    want_ray = keep.nonzero()[:, 0]
    for f in (march, march_torch):
        p, tt, ray, count = f(o, d, b, 0.05, mask)
        assert torch.equal(ray, want_ray)
        assert torch.equal(count, keep.sum(1))
        assert torch.allclose(p, pts[keep]) and torch.allclose(tt, t[keep])
    # without a mask every valid sample is kept
    p, tt, ray, count = march(o, d, b, 0.05)
    assert torch.equal(count, valid.sum(1)) and torch.allclose(tt, t[valid])
    assert torch.equal(march(o, d, b, 0.05, mask, count_only=True)[3], keep.sum(1))
