"""PSNR/SSIM against closed forms and scikit-image; evaluate_images/evaluate_folders."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import structural_similarity

from hw4lib.errors import UserError
from hw4lib.metrics import evaluate_folders, evaluate_images, lpips_vgg, psnr, ssim, ssim_map
from hw4lib.metrics.evaluate import format_summary, image_on_background


@pytest.fixture
def no_lpips(tmp_path, monkeypatch):
    """An empty weights cache: LPIPS must come out missing (and fast); warnings re-armed."""
    monkeypatch.setenv("HW4_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(lpips_vgg, "_WARNED", False)


def _pair(h=40, w=48, seed=0, std=0.1):
    rng = np.random.default_rng(seed)
    a = rng.random((h, w, 3))
    return a, np.clip(a + rng.normal(0, std, a.shape), 0, 1)


# ----------------------------------------------------------------------------- PSNR


def test_psnr_closed_form_constant_error():
    gt = np.zeros((8, 9, 3))
    # MSE = 0.1^2 -> PSNR = -10 log10(0.01) = 20 dB exactly
    assert psnr(gt + 0.1, gt) == pytest.approx(20.0, abs=1e-9)
    assert psnr(gt + 0.5, gt) == pytest.approx(-20 * math.log10(0.5), abs=1e-9)


def test_psnr_hand_computed_mse_and_inputs():
    a, b = _pair()
    mse = np.mean((a - b) ** 2)
    assert psnr(a, b) == pytest.approx(-10 * np.log10(mse), rel=1e-12)
    assert psnr(torch.from_numpy(a).float(), torch.from_numpy(b).float()) == pytest.approx(
        psnr(a, b), rel=1e-5
    )
    assert psnr(a, a) == math.inf
    # uint8 is read as /255, as the course reads its PNGs
    u = (a * 255).round().astype(np.uint8)
    assert psnr(u, b) == pytest.approx(psnr(u / 255.0, b), rel=1e-12)


def test_psnr_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        psnr(np.zeros((4, 4, 3)), np.zeros((4, 5, 3)))


# ----------------------------------------------------------------------------- SSIM


def test_ssim_identical_is_one_and_symmetric():
    a, b = _pair()
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    assert ssim(a, b) == pytest.approx(ssim(b, a), abs=1e-14)
    assert ssim(a, b) < 0.99


def test_ssim_closed_form_constant_images():
    # constant images: all variances 0, so SSIM = (2 x y + C1) / (x^2 + y^2 + C1)
    x, y, c1 = 0.3, 0.7, 0.01**2
    img_x, img_y = np.full((20, 20, 3), x), np.full((20, 20, 3), y)
    assert ssim(img_x, img_y) == pytest.approx((2 * x * y + c1) / (x * x + y * y + c1), rel=1e-12)


def test_ssim_matches_scikit_image():
    """scikit-image filters with 'reflect' padding, then crops (11-1)/2 = 5 pixels per border
    before averaging: exactly the positions whose 11x11 window lies inside the image, i.e.
    our valid convolution. Its Gaussian (truncate 3.5 -> radius 5) is the same 11 taps. So the
    mean agrees to float64 rounding, and the interior of its full map equals our map; only
    the 5-pixel border of skimage's map (reflect-padded windows) differs, and it is unused."""
    for h, w, seed in [(32, 40, 0), (64, 64, 1), (23, 57, 2)]:
        a, b = _pair(h, w, seed)
        ref, full = structural_similarity(
            a,
            b,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1,
            channel_axis=-1,
            full=True,
        )
        assert ssim(a, b) == pytest.approx(ref, abs=1e-12)
        ours = ssim_map(a, b).permute(1, 2, 0).numpy()
        assert ours.shape == (h - 10, w - 10, 3)
        np.testing.assert_allclose(ours, full[5:-5, 5:-5], atol=1e-12)
        border = np.ones(full.shape[:2], bool)
        border[5:-5, 5:-5] = False
        assert np.abs(full[border].mean() - ours.mean()) > 0  # the border is really different


def test_ssim_small_image_error():
    with pytest.raises(ValueError, match="11x11"):
        ssim(np.zeros((10, 30, 3)), np.zeros((10, 30, 3)))


# ----------------------------------------------------------------------------- evaluation


def test_composite_rgba_on_background():
    rgba = np.array([[[255, 0, 0, 0], [0, 255, 0, 255], [0, 0, 255, 51]]], np.uint8)
    white = image_on_background(rgba, "white").numpy()
    np.testing.assert_allclose(white[0, 0], [1, 1, 1])
    np.testing.assert_allclose(white[0, 1], [0, 1, 0])
    np.testing.assert_allclose(white[0, 2], [0.8, 0.8, 1.0])  # a = 0.2 over white
    np.testing.assert_allclose(image_on_background(rgba, "black").numpy()[0, 2], [0, 0, 0.2])
    with pytest.raises(UserError, match="background"):
        image_on_background(rgba, "grey")


def test_evaluate_images_means_and_missing_lpips(no_lpips):
    pairs = [_pair(24, 24, s) for s in range(3)]
    with pytest.warns(RuntimeWarning, match="hw4 weights lpips"):
        res = evaluate_images([p for p, _ in pairs], [g for _, g in pairs], names=["a", "b", "c"])
    assert res["n"] == 3 and [r["name"] for r in res["images"]] == ["a", "b", "c"]
    assert res["images"][1]["psnr"] == pytest.approx(psnr(*pairs[1]))
    assert res["mean"]["ssim"] == pytest.approx(np.mean([ssim(p, g) for p, g in pairs]))
    assert res["lpips"] is None and res["mean"]["lpips"] is None
    assert all(r["lpips"] is None for r in res["images"])
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per process, not per call
        assert evaluate_images(pairs[0][:1], pairs[0][1:])["mean"]["lpips"] is None


def _save(path, arr):
    Image.fromarray(arr).save(path)


def _folders(tmp_path, names=("r_0.png", "r_1.png", "r_10.png"), size=(24, 20)):
    rng = np.random.default_rng(0)
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    gt.mkdir()
    h, w = size
    for name in names:
        rgba = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
        _save(gt / name, rgba)
        _save(pred / name, rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    return pred, gt


def test_evaluate_folders_rgba_gt_and_json(tmp_path, no_lpips):
    pred, gt = _folders(tmp_path)
    _save(gt / "r_0_depth_0000.png", np.zeros((5, 5), np.uint8))  # NeRF-synthetic extras
    (gt / "notes.txt").write_text("not an image")
    out = tmp_path / "out" / "metrics.json"
    with pytest.warns(RuntimeWarning):
        res = evaluate_folders(pred, gt, background="white", json_out=out)
    assert [r["name"] for r in res["images"]] == ["r_0.png", "r_1.png", "r_10.png"]
    # hand computation for r_1: gt RGBA composited on white, from the files themselves
    g = np.asarray(Image.open(gt / "r_1.png")).astype(np.float64) / 255
    p = np.asarray(Image.open(pred / "r_1.png")).astype(np.float64) / 255
    g_rgb = g[..., :3] * g[..., 3:] + (1 - g[..., 3:])
    assert res["images"][1]["psnr"] == pytest.approx(-10 * np.log10(np.mean((p - g_rgb) ** 2)))
    black = evaluate_folders(pred, gt, background="black")
    assert black["images"][1]["psnr"] != pytest.approx(res["images"][1]["psnr"])
    doc = json.loads(out.read_text())
    assert doc["mean"]["psnr"] == pytest.approx(res["mean"]["psnr"])
    assert doc["mean"]["lpips"] is None and doc["background"] == "white"
    assert [p.name for p in out.parent.iterdir()] == ["metrics.json"]  # no temp files left
    assert "missing" in format_summary(res)


def test_summary_says_pass_or_fail_against_the_course_marks():
    """PSNR >= 35 and SSIM >= 0.97 pass (the grader's marks); just under fails; None: missing."""
    from hw4lib.metrics.evaluate import pass_line

    assert pass_line({"psnr": 35.0, "ssim": 0.9699}) == (
        "course pass marks on val: PSNR pass (>= 35), SSIM fail (>= 0.97)"
    )
    assert pass_line({"psnr": 34.99, "ssim": 0.97}) == (
        "course pass marks on val: PSNR fail (>= 35), SSIM pass (>= 0.97)"
    )
    assert "SSIM missing" in pass_line({"psnr": 36.0, "ssim": None})
    res = {
        "images": [],
        "n": 0,
        "lpips": "vgg",
        "mean": {"psnr": 36.0, "ssim": 0.98, "lpips": 0.01},
    }
    assert format_summary(res).splitlines()[-1].endswith("PSNR pass (>= 35), SSIM pass (>= 0.97)")


def test_evaluate_folders_name_mismatch(tmp_path, no_lpips):
    pred, gt = _folders(tmp_path)
    (pred / "r_1.png").rename(pred / "r_7.png")
    out = tmp_path / "m.json"
    with pytest.raises(UserError) as e:
        evaluate_folders(pred, gt, json_out=out)
    msg = str(e.value)
    assert "\n" not in msg and str(pred) in msg and str(gt) in msg and "r_7.png" in msg
    assert not out.exists()


def test_evaluate_folders_size_mismatch(tmp_path, no_lpips):
    pred, gt = _folders(tmp_path)
    _save(pred / "r_10.png", np.zeros((12, 20, 3), np.uint8))
    with pytest.raises(UserError) as e:
        evaluate_folders(pred, gt)
    msg = str(e.value)
    assert "\n" not in msg and "r_10.png" in msg and "20x12" in msg and "20x24" in msg


def test_evaluate_folders_missing_or_empty(tmp_path, no_lpips):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="does not exist"):
        evaluate_folders(tmp_path / "nope", tmp_path / "empty")
    with pytest.raises(UserError, match="no .png"):
        evaluate_folders(tmp_path / "empty", tmp_path / "empty")
    pred, gt = _folders(tmp_path)
    with pytest.raises(UserError, match="background"):
        evaluate_folders(pred, gt, background="pink")
