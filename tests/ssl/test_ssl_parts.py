"""SSL building blocks: augmentation, kNN monitor, ResNet backbone files."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torchvision

from hw4lib.errors import UserError
from hw4lib.ssl import augment as A
from hw4lib.ssl.knn import knn_loo_accuracy, monitor_subset
from hw4lib.ssl.models import backbone_state, infer_arch, load_backbone_file, make_backbone


def test_normalize_matches_torchvision():
    x = torch.rand(2, 3, 5, 5)
    ref = torchvision.transforms.Normalize(A.IMAGENET_MEAN, A.IMAGENET_STD)(x)
    assert torch.allclose(A.normalize(x), ref, atol=1e-6)


def test_crop_is_drawn_per_sample_and_full_crop_is_identity():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 16, 16).expand(8, 3, 16, 16).contiguous()
    out = A.random_resized_crop(x, (0.2, 0.5), flip=True)
    # byol-pytorch's default draws one crop per batch; ours differ between samples
    assert not torch.allclose(out[0], out[1])
    # scale 1 with ratio 1 (w = h = 1, centre 0) reproduces the image exactly
    theta = torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]])
    grid = torch.nn.functional.affine_grid(theta, [1, 3, 16, 16], align_corners=False)
    same = torch.nn.functional.grid_sample(x[:1], grid, align_corners=False)
    assert torch.allclose(same, x[:1], atol=1e-5)


def _yiq(x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", A._YIQ, x)


def test_hue_rotation_preserves_gray_and_a_full_turn():
    spec = A.AugmentSpec(jitter_p=1.0, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.5)
    gray = torch.full((4, 3, 4, 4), 0.4)
    torch.manual_seed(1)
    assert torch.allclose(A.color_jitter(gray, spec), gray, atol=1e-5)  # no chroma to rotate
    # off (jitter_p=0): identity on coloured images
    x = torch.rand(4, 3, 4, 4)
    off = A.AugmentSpec(jitter_p=0.0)
    assert torch.allclose(A.color_jitter(x, off), x, atol=1e-5)
    # on: a coloured image's hue turns, by its own angle within +-hue of a turn, while its
    # luma and chroma strength stay (mid-range colours: nothing is clipped)
    hue = A.AugmentSpec(jitter_p=1.0, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.1)
    torch.manual_seed(2)
    x = 0.4 + 0.2 * torch.rand(256, 3, 4, 4)
    y = A.color_jitter(x, hue)
    a, b = _yiq(x), _yiq(y)
    assert torch.allclose(a[:, 0], b[:, 0], atol=1e-5)
    assert torch.allclose(a[:, 1:].norm(dim=1), b[:, 1:].norm(dim=1), atol=1e-5)
    turn = torch.atan2(b[:, 2], b[:, 1]) - torch.atan2(a[:, 2], a[:, 1])
    turn = torch.remainder(turn + math.pi, 2 * math.pi) - math.pi  # (-pi, pi]
    per_image = turn.mean(dim=(1, 2))
    assert torch.allclose(turn, per_image[:, None, None], atol=1e-3)  # one angle an image
    assert per_image.abs().max() <= 0.1 * 2 * math.pi + 1e-4
    assert per_image.std() > 0.2 and per_image.abs().max() > 0.5  # spread over the range


def test_brightness_factor_is_per_sample():
    spec = A.AugmentSpec(jitter_p=1.0, brightness=0.4, contrast=0.0, saturation=0.0, hue=0.0)
    x = torch.full((64, 3, 2, 2), 0.5)
    torch.manual_seed(0)
    y = A.color_jitter(x, spec)
    f = y[:, 0, 0, 0] / 0.5
    assert f.min() >= 0.6 - 1e-6 and f.max() <= 1.4 + 1e-6 and f.std() > 0.1


def test_batch_augment_output():
    torch.manual_seed(0)
    x = torch.rand(6, 3, 16, 16)
    aug = A.BatchAugment(A.BYOL_VIEW)
    y = aug(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    # normalised range: (0 - mean) / std .. (1 - mean) / std
    assert y.min() >= -0.485 / 0.229 - 1e-4 and y.max() <= (1 - 0.406) / 0.225 + 1e-4
    # a view is more than the normalised image, and a second call draws other views
    plain, again = A.normalize(x), aug(x)
    for i in range(len(x)):
        assert (y[i] - plain[i]).abs().mean() > 0.05, i
        assert (y[i] - again[i]).abs().mean() > 0.05, i
    # copies of one image in a batch get views of their own (drawn per sample)
    same = aug(x[:1].expand(6, -1, -1, -1))
    assert min((same[i] - same[j]).abs().mean() for i in range(6) for j in range(i)) > 0.05


def _coordinate_image(n: int, size: int) -> torch.Tensor:
    """n copies of an image whose red channel is each pixel's x and green its y coordinate."""
    u = (torch.arange(size) + 0.5) / size * 2 - 1  # pixel centres in [-1, 1]
    img = torch.stack(
        [u.expand(size, size), u[:, None].expand(size, size), torch.zeros(size, size)]
    )
    return img.expand(n, -1, -1, -1).contiguous()


def test_crop_areas_and_ratios_stay_in_the_asked_range():
    size, lo, hi = 64, 0.2, 0.5
    x = _coordinate_image(256, size)
    torch.manual_seed(3)
    out = A.random_resized_crop(x, (lo, hi), flip=False)
    # a crop of side fraction w spans 2 w (1 - 1/size) of the coordinate ramp: read w and h back
    span = 2 * (1 - 1 / size)
    w = (out[:, 0].amax(dim=(1, 2)) - out[:, 0].amin(dim=(1, 2))) / span
    h = (out[:, 1].amax(dim=(1, 2)) - out[:, 1].amin(dim=(1, 2))) / span
    area, ratio = w * h, w / h
    assert area.min() >= lo - 0.03 and area.max() <= hi + 0.03, (area.min(), area.max())
    assert area.min() < lo + 0.05 and area.max() > hi - 0.05  # the whole range is drawn
    assert ratio.min() >= 3 / 4 - 0.03 and ratio.max() <= 4 / 3 + 0.03
    # every crop lies inside the image
    assert out[:, :2].abs().max() <= 1


def test_knn_by_hand():
    # class 0 at 0/2/4 degrees, class 1 at 86/88/90 degrees, one class-1 stray at 30 degrees
    ang = torch.tensor([0.0, 2.0, 4.0, 86.0, 88.0, 90.0, 30.0]) * math.pi / 180
    feats = torch.stack([torch.cos(ang), torch.sin(ang)], 1) * torch.arange(1, 8)[:, None]
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    # k=1 and k=3: only the stray is wrong (its neighbours are class 0)
    assert knn_loo_accuracy(feats, labels, k=1) == pytest.approx(6 / 7)
    assert knn_loo_accuracy(feats, labels, k=3) == pytest.approx(6 / 7)
    # k=5: class-0 points see 2 class-0 + stray + 2 class-1 -> outvoted 2:3
    assert knn_loo_accuracy(feats, labels, k=5) == pytest.approx(3 / 7)
    assert monitor_subset(torch.tensor([2, 0, 2, 1, 0, 2]), 2).tolist() == [0, 1, 2, 3, 4]


def test_infer_arch():
    for arch in ("resnet10", "resnet18", "resnet34", "resnet50", "resnet101"):
        with torch.device("meta"):  # keys and shapes only: no weight initialisation
            sd = make_backbone(arch).state_dict()
        assert infer_arch(sd) == arch
    assert infer_arch({"weight": torch.zeros(1)}) is None


def test_backbone_file_roundtrip_and_user_resnet50(tmp_path):
    net = make_backbone("resnet18")
    torch.save(backbone_state(net), tmp_path / "b.pt")
    arch, state = load_backbone_file(tmp_path / "b.pt")
    assert arch == "resnet18" and torch.equal(state["conv1.weight"], net.conv1.weight)
    # a user's plain torchvision ResNet50 state dict, with its 1000-class fc and DDP prefixes
    with torch.device("meta"):
        r50 = torchvision.models.resnet50(weights=None)
    sd = r50.to_empty(device="cpu").state_dict()
    torch.save({f"module.{k}": v for k, v in sd.items()}, tmp_path / "r50.pt")
    arch, state = load_backbone_file(tmp_path / "r50.pt")
    assert arch == "resnet50" and not any(k.startswith("fc.") for k in state)


@pytest.mark.parametrize("content", ["notatorch", "dict", "wrongshape"])
def test_backbone_file_rejected(tmp_path, content):
    f = tmp_path / "bad.pt"
    if content == "notatorch":
        f.write_text("hello")
    elif content == "dict":
        torch.save({"encoder.weight": torch.zeros(3)}, f)
    else:
        sd = backbone_state(make_backbone("resnet18"))
        sd["conv1.weight"] = torch.zeros(1, 1, 1, 1)
        torch.save(sd, f)
    with pytest.raises(UserError) as e:
        load_backbone_file(f)
    assert str(f) in str(e.value) and "\n" not in str(e.value)


def test_crop_affine_turns_a_full_crop_by_exact_quarter_turns():
    x = torch.rand(2, 3, 16, 16)
    one, zero = torch.ones(2), torch.zeros(2)

    def warp(sign, angle):
        theta = A.crop_affine(one, one, zero, zero, sign * one, angle * one)
        grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
        return torch.nn.functional.grid_sample(x, grid, align_corners=False)

    assert torch.allclose(warp(1.0, 0.0), x, atol=1e-5)
    assert torch.allclose(warp(-1.0, 0.0), x.flip(3), atol=1e-5)
    assert torch.allclose(warp(1.0, math.pi / 2), torch.rot90(x, 1, (2, 3)), atol=1e-5)
    assert torch.allclose(warp(1.0, math.pi), x.flip(2, 3), atol=1e-5)
    # a half-size crop at the top-left quarter, unturned, is that quarter magnified 2x
    theta = A.crop_affine(0.5 * one, 0.5 * one, -0.5 * one, -0.5 * one, one, zero)
    grid = torch.nn.functional.affine_grid(theta, [2, 3, 8, 8], align_corners=False)
    quarter = torch.nn.functional.grid_sample(x, grid, align_corners=False)
    assert torch.allclose(quarter, x[:, :, :8, :8], atol=1e-5)


def test_rotated_views_differ_from_unrotated_ones_with_the_same_draws():
    x = torch.rand(4, 3, 16, 16)
    torch.manual_seed(1)
    plain = A.random_resized_crop(x, (1.0, 1.0), flip=False)
    torch.manual_seed(1)
    turned = A.random_resized_crop(x, (1.0, 1.0), flip=False, rotate=90.0)
    assert plain.shape == turned.shape == x.shape and not torch.allclose(plain, turned)


def test_decoded_corpora_are_shared_until_a_file_changes(tmp_path):
    import os

    from hw4lib.config import CorpusGen
    from hw4lib.data.corpus import generate_corpora
    from hw4lib.ssl.datasets import ImageSet

    d = generate_corpora(
        tmp_path / "d",
        CorpusGen(mini_per_class=1, office_train_per_class=1, office_val_per_class=1, mini_size=16),
        progress=False,
    )
    csv, imgs = d / "mini" / "train.csv", d / "mini" / "train"
    a, b = ImageSet(csv, imgs, 16, cache=True), ImageSet(csv, imgs, 16, cache=True)
    assert b.images is a.images  # decoded once
    assert ImageSet(csv, imgs, 8, cache=True).images.shape[-1] == 8  # another size: its own
    # an image rewritten in place (the folder's mtime moves when a file is replaced by rename)
    first = imgs / a.rows[0].filename
    tmp = first.with_suffix(".new")
    tmp.write_bytes(first.read_bytes())
    os.replace(tmp, first)
    os.utime(imgs, ns=(0, imgs.stat().st_mtime_ns + 10**9))
    c = ImageSet(csv, imgs, 16, cache=True)
    assert c.images is not a.images and torch.equal(c.images, a.images)


def test_gaussian_blur_matches_the_closed_form():
    # an impulse blurs into the normalised, sampled Gaussian of its own sigma
    x = torch.zeros(2, 1, 15, 15)
    x[:, :, 7, 7] = 1.0
    sigma = torch.tensor([0.6, 1.5])
    y = A.gaussian_blur(x, sigma)
    t = torch.arange(-7, 8, dtype=torch.float32)
    for i, s in enumerate(sigma):
        r = min(math.ceil(3 * 1.5), 15 // 2 - 1)  # the kernel's reach (the largest sigma's)
        k = torch.exp(-0.5 * (t / s) ** 2) * (t.abs() <= r)
        k = k / k.sum()
        assert torch.allclose(y[i, 0], k[:, None] * k[None, :], atol=1e-6), i
    # a constant image stays constant (reflected borders, normalised kernel)
    c = torch.full((3, 3, 9, 9), 0.3)
    assert torch.allclose(A.gaussian_blur(c, torch.tensor([0.5, 1.0, 2.0])), c, atol=1e-6)


def test_solarize_inverts_the_bright_half():
    x = torch.tensor([0.0, 0.2, 0.49, 0.5, 0.8, 1.0])
    assert torch.allclose(A.solarize(x), torch.tensor([0.0, 0.2, 0.49, 0.5, 0.2, 0.0]))


def test_byol_views_are_asymmetric_as_the_paper_has_them():
    from hw4lib.config import SSLConfig

    v1, v2 = A.byol_views(SSLConfig())
    assert (v1.blur_p, v1.solarize_p, v2.blur_p, v2.solarize_p) == (1.0, 0.0, 0.1, 0.2)
    assert v1.crop_scale == v2.crop_scale == (0.08, 1.0)
    assert (v1.brightness, v1.contrast, v1.saturation, v1.hue, v1.gray_p) == (
        0.4,
        0.4,
        0.2,
        0.1,
        0.2,
    )
    # always-solarised view: every bright pixel of a view is inverted (before normalising)
    torch.manual_seed(0)
    spec = A.AugmentSpec(crop_scale=(1.0, 1.0), flip=False, jitter_p=0.0, gray_p=0.0)
    x = torch.full((4, 3, 8, 8), 0.9)
    on = A.BatchAugment(replace(spec, solarize_p=1.0))(x)
    assert torch.allclose(on, A.normalize(torch.full_like(x, 0.1)), atol=1e-4)


def test_restat_batchnorm_averages_the_batch_statistics():
    from hw4lib.ssl.models import restat_batchnorm

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), torch.nn.BatchNorm2d(3)).eval()
    conv = net[0].weight.detach().clone()
    batches = [torch.randn(4, 3, 5, 5) * (i + 1) + i for i in range(3)]
    restat_batchnorm(net, batches)
    bn = net[1]
    with torch.no_grad():
        feats = [net[0](x) for x in batches]
    # the plain average of each batch's mean and unbiased variance (AdaBN), per channel
    mean = torch.stack([f.mean(dim=(0, 2, 3)) for f in feats]).mean(0)
    var = torch.stack([f.var(dim=(0, 2, 3), unbiased=True) for f in feats]).mean(0)
    assert torch.allclose(bn.running_mean, mean, atol=1e-5)
    assert torch.allclose(bn.running_var, var, atol=1e-4)
    # weights untouched, mode and momentum as they were
    assert torch.equal(net[0].weight, conv) and not bn.training and bn.momentum == 0.1
