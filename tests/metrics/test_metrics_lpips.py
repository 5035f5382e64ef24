"""LPIPS(vgg, v0.1) with the real converted backbone, against a reference implementation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.models.vgg import cfgs, make_layers

from hw4lib import cli
from hw4lib.metrics import evaluate_images, load_lpips
from hw4lib.metrics.lpips_vgg import LPIPSMetric, distortions, reference_photo
from hw4lib.weights import lpips as W
from hw4lib.weights import vgg16 as V


@pytest.fixture(scope="module")
def metric(lpips_unavailable):
    """The real metric from the user's cache (`hw4 weights lpips`; obtained here if absent)."""
    if W.load_cached_features() is None:
        try:
            W.obtain_lpips_weights(log=lambda s: None)
        except W.WeightsUnavailable as e:
            lpips_unavailable(str(e))
    m = load_lpips("cpu")
    assert isinstance(m, LPIPSMetric)
    return m


@pytest.fixture(scope="module")
def photo():
    img = reference_photo(64)
    return img, distortions(img)


def _reference_lpips(features, lins, a: np.ndarray, b: np.ndarray) -> float:
    """LPIPS v0.1 written from the paper on torchvision's own VGG16 ``features`` module:
    scale to [-1,1], shift/scale, relu1_2..relu5_3, unit-normalise channels, squared
    difference, 1x1 linear weights, spatial mean, sum over layers."""
    vgg = make_layers(cfgs["D"]).eval()
    vgg.load_state_dict({k.removeprefix("features."): v for k, v in features.items()})
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    taps = (3, 8, 15, 22, 29)  # the ReLUs after conv1_2, conv2_2, conv3_3, conv4_3, conv5_3

    def feats(img):
        x = torch.from_numpy(np.asarray(img, np.float32)).permute(2, 0, 1)[None]
        x = ((2 * x - 1) - shift) / scale
        out = []
        for i, layer in enumerate(vgg):
            x = layer(x)
            if i in taps:
                out.append(x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
        return out

    with torch.no_grad():
        fa, fb = feats(a), feats(b)
        return sum(
            F.conv2d((x - y) ** 2, lins[f"lin{k}.model.1.weight"]).mean().item()
            for k, (x, y) in enumerate(zip(fa, fb))
        )


def test_backbone_is_the_cached_one_everywhere(metric):
    feats = W.load_cached_features()
    net = metric.model.net
    convs = [
        m
        for s in (net.slice1, net.slice2, net.slice3, net.slice4, net.slice5)
        for m in s
        if isinstance(m, torch.nn.Conv2d)
    ]
    assert len(convs) == 13
    for conv, idx in zip(convs, V.CONV_INDICES):
        assert torch.equal(conv.weight, feats[f"features.{idx}.weight"])
        assert torch.equal(conv.bias, feats[f"features.{idx}.bias"])
    ref = W.lpips_lin_weights()
    for k in range(5):
        assert torch.equal(metric.model.lins[k].model[-1].weight, ref[f"lin{k}.model.1.weight"])


def test_matches_reference_implementation(metric, photo):
    img, d = photo
    a, b = img / 255.0, d["noise"]
    ref = _reference_lpips(W.load_cached_features(), W.lpips_lin_weights(), a, b)
    assert metric(a, b) == pytest.approx(ref, rel=1e-4)


def test_behaves_like_a_trained_vgg(metric, photo):
    img, d = photo
    assert metric(img, img) == pytest.approx(0.0, abs=1e-7)
    blur, noise = metric(img, d["blur"]), metric(img, d["noise"])
    assert metric(d["blur"], img) == pytest.approx(blur, rel=1e-5)  # symmetric
    assert 0 < blur < noise < 1
    # a random backbone gives tiny distances for both (design note: 0.009 / 0.017)
    rand = LPIPSMetric(_random_vgg16_features(), "cpu")
    r_blur, r_noise = rand(img, d["blur"]), rand(img, d["noise"])
    assert blur > 4 * r_blur and noise > 4 * r_noise


def _random_vgg16_features(seed: int = 0) -> dict[str, torch.Tensor]:
    """What ``lpips.LPIPS(net='vgg', pnet_rand=True)`` uses: torchvision's VGG init
    (kaiming-normal fan-out, zero bias)."""
    torch.manual_seed(seed)
    layers = make_layers(cfgs["D"])
    for m in layers:
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            torch.nn.init.zeros_(m.bias)
    return {f"features.{k}": v for k, v in layers.state_dict().items()}


def test_evaluate_images_reports_lpips(metric, photo):
    img, d = photo
    res = evaluate_images(
        [d["blur"], d["noise"]], [img, img], names=["blur", "noise"], device="cpu"
    )
    assert res["lpips"] == "vgg-v0.1"
    assert res["images"][0]["lpips"] == pytest.approx(metric(d["blur"], img), rel=1e-6)
    assert res["mean"]["lpips"] == pytest.approx(
        (res["images"][0]["lpips"] + res["images"][1]["lpips"]) / 2
    )


def test_cli_weights_lpips_with_cache(metric, capsys):
    assert cli.main(["weights", "lpips"]) == 0
    out = capsys.readouterr().out
    assert "cached and verified" in out and "128 px photo: blur r=2" in out
