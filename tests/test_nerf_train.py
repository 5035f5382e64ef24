"""DVGO end to end on a tiny generated scene: it learns, renders per the hw4_1 contract,
resumes, stops cleanly on NaN, and rejects bad input with one line and exit code 2."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from hw4lib.cli import main
from hw4lib.errors import UserError


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    from hw4lib.data.scene import generate_scene

    out = tmp_path_factory.mktemp("nerf") / "hotdog"
    return generate_scene(out, "hotdog", size=32, n_train=12, n_val=3, supersample=1,
                          progress=False)


@pytest.fixture(scope="module")
def run(scene, tmp_path_factory):
    from hw4lib.nerf.jobs import train_run

    out = tmp_path_factory.mktemp("nerf") / "run"
    res = train_run(scene, out, "smoke", device="cpu", progress=False)
    return out, res


def test_tiny_scene_is_learned(run):
    _, res = run
    h = res["history"]
    nc = res["coarse_iters"]
    assert nc > 0 and len(h["psnr"]) > nc
    first = np.mean(h["psnr"][:5])
    last_coarse = np.mean(h["psnr"][nc - 5:nc])
    last = np.mean(h["psnr"][-5:])
    assert last_coarse > first + 3, (first, last_coarse)
    assert last > first + 4.5, (first, last)
    assert res["val_psnr"] > first + 3.5
    assert 0 < res["rays_kept"][0] <= res["rays_kept"][1]
    assert all(np.isfinite(h["loss"]))


def test_finished_run_is_reused(run, scene):
    from hw4lib.nerf.jobs import train_run

    out, res = run
    again = train_run(scene, out, "smoke", device="cpu", progress=False)
    assert again["reused"] and again["history"]["psnr"] == res["history"]["psnr"]
    with pytest.raises(UserError, match="other settings"):
        train_run(scene, out, "smoke", stepsize=2.0, device="cpu", progress=False)


def test_render_writes_one_png_per_frame_named_after_file_path(run, scene, tmp_path, capsys):
    out, _ = run
    dst = tmp_path / "renders"
    assert main(["nerf", "render", "--run", str(out), "--transforms",
                 str(scene / "transforms_val.json"), "--out", str(dst), "--depth"]) == 0
    names = sorted(p.name for p in dst.glob("*.png"))
    assert names == ["r_0.png", "r_1.png", "r_2.png"]
    im = Image.open(dst / "r_0.png")
    assert im.size == (32, 32) and im.mode == "RGB"
    assert (dst / "depth" / "r_0_depth.png").is_file()
    # rendering again into the same folder from the same run is fine; --size changes the size
    assert main(["nerf", "render", "--run", str(out), "--transforms",
                 str(scene / "transforms_val.json"), "--out", str(dst), "--size", "20"]) == 0
    assert Image.open(dst / "r_1.png").size == (20, 20)


def test_render_refuses_a_folder_of_foreign_images(run, scene, tmp_path, capsys):
    out, _ = run
    dst = tmp_path / "foreign"
    dst.mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(dst / "r_0.png")
    before = (dst / "r_0.png").read_bytes()
    rc = main(["nerf", "render", "--run", str(out), "--transforms",
               str(scene / "transforms_val.json"), "--out", str(dst)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "already holds" in err[0]
    assert (dst / "r_0.png").read_bytes() == before


def test_render_bad_inputs_exit_2(run, scene, tmp_path, capsys):
    out, _ = run
    empty = tmp_path / "empty_run"
    empty.mkdir()
    cases = [
        ["nerf", "render", "--run", str(empty), "--transforms", str(scene / "transforms_val.json"),
         "--out", str(tmp_path / "a")],
        ["nerf", "render", "--run", str(out), "--transforms", str(tmp_path / "missing.json"),
         "--out", str(tmp_path / "b")],
    ]
    bad = tmp_path / "bad.json"
    bad.write_text("{\"frames\": 3}")
    cases.append(["nerf", "render", "--run", str(out), "--transforms", str(bad),
                  "--out", str(tmp_path / "c")])
    if not torch.cuda.is_available():
        cases.append(["nerf", "train", "--data", str(scene), "--out", str(tmp_path / "d"),
                      "--device", "cuda"])
    cases.append(["nerf", "train", "--data", str(tmp_path / "nowhere"), "--out",
                  str(tmp_path / "e")])
    cases.append(["nerf", "train", "--data", str(scene), "--out", str(tmp_path / "f"),
                  "--resume", "--profile", "smoke"])
    cases.append(["nerf", "train", "--data", str(scene), "--out", str(tmp_path / "g"),
                  "--fine-voxels", "lots", "--profile", "smoke"])
    for argv in cases:
        rc = main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2, argv
        assert len(err) == 1 and err[0].startswith("error: "), (argv, err)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_nan_loss_stops_and_keeps_the_last_checkpoint(scene, tmp_path, monkeypatch):
    from hw4lib.config import get_profile
    from hw4lib.nerf import render as R
    from hw4lib.nerf import train as T

    monkeypatch.setattr(T, "CKPT_EVERY", 5)
    calls = {"n": 0}
    real = R.photometric_loss

    def flaky(pred, target):
        calls["n"] += 1
        loss = real(pred, target)
        return loss * float("nan") if calls["n"] == 8 else loss

    monkeypatch.setattr(T.R, "photometric_loss", flaky)
    run = tmp_path / "run"
    import dataclasses

    cfg = get_profile("smoke").nerf
    cfg = dataclasses.replace(cfg, coarse=dataclasses.replace(cfg.coarse, iters=12),
                              fine=dataclasses.replace(cfg.fine, iters=6, pg_scale=(3,)))
    with pytest.raises(UserError, match="NaN"):
        T.train(scene, run, cfg, device="cpu", progress=False)
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ck["state"]["iter"] == 5 and ck["state"]["stage"] == "coarse"
    assert not (run / "fine.pt").exists()
    # resume after the interruption: finishes, and continues the same history
    monkeypatch.setattr(T.R, "photometric_loss", real)
    res = T.train(scene, run, cfg, device="cpu", resume=True, progress=False)
    assert len(res["history"]["loss"]) == cfg.coarse.iters + cfg.fine.iters
    assert (run / "fine.pt").is_file() and not (run / "checkpoint.pt").exists()


def test_eval_command_reports_metrics_and_rejects_mismatch(run, scene, tmp_path, capsys):
    out, _ = run
    dst = tmp_path / "pred"
    assert main(["nerf", "render", "--run", str(out), "--transforms",
                 str(scene / "transforms_val.json"), "--out", str(dst)]) == 0
    js = tmp_path / "m.json"
    assert main(["nerf", "eval", "--pred", str(dst), "--gt", str(scene / "val"),
                 "--json", str(js)]) == 0
    res = json.loads(js.read_text())
    assert res["mean"]["psnr"] > 10
    os.remove(dst / "r_2.png")
    capsys.readouterr()
    assert main(["nerf", "eval", "--pred", str(dst), "--gt", str(scene / "val")]) == 2


def test_benchmarks_print_their_ratios(capsys):
    """`hw4 bench grid` ends with `speed-up <x>x`; `bench nerf` times both stages (smoke sizes)."""
    import argparse
    import re

    from hw4lib.nerf.bench import bench_grid, bench_nerf

    assert bench_grid(argparse.Namespace(res=16, channels=4, points=2000, repeats=1,
                                         device="cpu")) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(r"speed-up \d+\.\dx", last)
    assert bench_nerf(argparse.Namespace(profile="smoke", repeats=1, device="cpu")) == 0
    out = capsys.readouterr().out
    assert out.count("speed-up") == 2 and "coarse" in out and "fine" in out
