"""DVGO end to end on a tiny generated scene: it learns, renders per the hw4_1 contract,
resumes, stops cleanly on NaN, and rejects bad input with one line and exit code 2."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
from pathlib import Path

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
    return generate_scene(
        out, "hotdog", size=32, n_train=12, n_val=3, supersample=1, progress=False
    )


@pytest.fixture(scope="module")
def run(scene, tmp_path_factory):
    """A smoke-profile run trained by the command line (`hw4 nerf train`), as a user would."""
    out = tmp_path_factory.mktemp("nerf") / "run"
    said = io.StringIO()
    with contextlib.redirect_stdout(said), contextlib.redirect_stderr(io.StringIO()):
        assert (
            main(
                [
                    "nerf",
                    "train",
                    "--data",
                    str(scene),
                    "--out",
                    str(out),
                    "--profile",
                    "smoke",
                    "--device",
                    "cpu",
                ]
            )
            == 0
        )
    res = json.loads((out / "done.json").read_text())
    # the one line it prints reports the run it wrote
    assert (
        said.getvalue().strip().splitlines()[-1].endswith(f"val PSNR {res['val_psnr']:.2f} dB")
    ), said.getvalue()
    assert (out / "fine.pt").is_file() and not (out / "checkpoint.pt").exists()
    return out, res


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(-10 * np.log10(np.mean((a.astype(np.float64) - b) ** 2)))


def _setup(scene: Path, run: Path, cfg):
    """The training loop's setup for a config of the test's own, on the CPU, without the run
    folder's lifecycle (``hw4lib.nerf.run.train_run``'s)."""
    from hw4lib.nerf import train as T
    from hw4lib.nerf.raydata import ray_data

    data = ray_data(scene, cfg, cfg.background, 1, "cpu")
    return T.TrainSetup(run, data, cfg, cfg.background, "cpu", progress=False)


def _render_args(run: Path, transforms: Path, out: Path, *extra: str) -> list[str]:
    """`hw4 nerf render --run RUN --transforms JSON --out DIR [extra]` as `main`'s arguments."""
    return [
        "nerf",
        "render",
        "--run",
        str(run),
        "--transforms",
        str(transforms),
        "--out",
        str(out),
        *extra,
    ]


def _val_truth(scene, n: int | None = None) -> tuple[list[str], np.ndarray]:
    """Names and ground-truth images (N, H, W, 3) in [0, 1] of the val split, on white."""
    from hw4lib.data.blender import load_split

    split = load_split(scene, "val")
    return split.cameras.names[:n], split.rgb("white").numpy()[:n]


def test_tiny_scene_is_learned(run):
    _, res = run
    h = res["history"]
    nc = res["coarse_iters"]
    assert nc > 0 and len(h["psnr"]) > nc
    first = np.mean(h["psnr"][:5])
    last_coarse = np.mean(h["psnr"][nc - 5 : nc])
    last = np.mean(h["psnr"][-5:])
    assert last_coarse > first + 3, (first, last_coarse)
    assert last > first + 4.5, (first, last)
    assert res["val_psnr"] > first + 3.5
    assert 0 < res["rays_kept"][0] <= res["rays_kept"][1]
    assert all(np.isfinite(h["loss"]))


def test_finished_run_is_reused(run, scene):
    from hw4lib.nerf.run import TrainRequest, train_run

    out, res = run
    again = train_run(TrainRequest(scene, out, "smoke", device="cpu"), progress=False)
    assert again["reused"] and again["history"]["psnr"] == res["history"]["psnr"]
    with pytest.raises(UserError, match="other settings"):
        train_run(TrainRequest(scene, out, "smoke", stepsize=2.0, device="cpu"), progress=False)


def test_a_run_that_cannot_read_its_data_leaves_the_folder_as_it_was(run, tmp_path):
    """The old run is cleared only once the new run's data has loaded (hw4lib.runs' lifecycle):
    even --force over a finished run keeps every file when the scene cannot be read."""
    import shutil

    from hw4lib.nerf.run import TrainRequest, train_run

    out = shutil.copytree(run[0], tmp_path / "run")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(UserError, match="transforms_train.json"):
        train_run(TrainRequest(tmp_path / "no_scene", out, "smoke", device="cpu", force=True))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_runs_ray_bounds_are_the_ones_it_trained_with(run):
    """Rendering, evaluation and the live view take near/far from the run's fine.pt; a
    fine.pt without them has the config's defaults, not numbers of their own."""
    from hw4lib.config import NerfConfig, get_profile
    from hw4lib.nerf.images import load_run, near_far

    _, meta = load_run(run[0])
    cfg = get_profile("smoke").nerf
    assert near_far(meta) == (meta["near"], meta["far"]) == (cfg.near, cfg.far)
    assert near_far({"near": 0.5, "far": 9.0}) == (0.5, 9.0)
    assert near_far({}) == (NerfConfig.near, NerfConfig.far)


def test_render_writes_one_png_per_frame_named_after_file_path(run, scene, tmp_path, capsys):
    out, _ = run
    dst = tmp_path / "renders"
    assert main(_render_args(out, scene / "transforms_val.json", dst, "--depth")) == 0
    names = sorted(p.name for p in dst.glob("*.png"))
    assert names == ["r_0.png", "r_1.png", "r_2.png"]
    im = Image.open(dst / "r_0.png")
    assert im.size == (32, 32) and im.mode == "RGB"
    assert (dst / "depth" / "r_0_depth.png").is_file()
    # the pixels: as close to the ground truth as the run's own val PSNR says (the same views
    # at the same size, up to 8-bit rounding), and far closer than a blank background image
    _, res = run
    names, gt = _val_truth(scene)
    got = [np.asarray(Image.open(dst / f"{n}.png"), np.float64) / 255 for n in names]
    psnrs = [_psnr(g, t) for g, t in zip(got, gt)]
    n_eval = len(psnrs) - 1  # the smoke profile's val PSNR covers the first 2 of 3 views
    assert abs(np.mean(psnrs[:n_eval]) - res["val_psnr"]) < 0.3, (psnrs, res["val_psnr"])
    blank = [_psnr(np.ones_like(t), t) for t in gt]
    assert min(p - b for p, b in zip(psnrs, blank)) > 3, (psnrs, blank)
    # rendering again into the same folder from the same run is fine; --size changes the size
    assert main(_render_args(out, scene / "transforms_val.json", dst, "--size", "20")) == 0
    assert Image.open(dst / "r_1.png").size == (20, 20)


@pytest.mark.slow
def test_hw4_1_script_renders_what_the_command_line_renders(run, scene, tmp_path):
    """As the course grades it: `bash hw4_1.sh <transforms json> <output folder>`, run from
    elsewhere with relative paths; its PNGs are byte for byte those of `hw4 nerf render`."""
    import subprocess
    import sys

    from hw4lib import PROJECT_ROOT

    out, _ = run
    cli = tmp_path / "cli"
    with contextlib.redirect_stderr(io.StringIO()):
        assert main(_render_args(out, scene / "transforms_val.json", cli)) == 0
    # the project's .venv when there is one, else this interpreter (a checkout without one)
    env = dict(
        os.environ,
        HW4_NERF_RUN=str(out),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    p = subprocess.run(
        [
            "bash",
            str(PROJECT_ROOT / "hw4_1.sh"),
            os.path.relpath(scene / "transforms_val.json", tmp_path),
            "graded",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    pngs = sorted(p.name for p in cli.glob("*.png"))
    assert pngs == ["r_0.png", "r_1.png", "r_2.png"]
    assert sorted(p.name for p in (tmp_path / "graded").glob("*.png")) == pngs
    for name in pngs:
        assert (tmp_path / "graded" / name).read_bytes() == (cli / name).read_bytes(), name
    p = subprocess.run(
        ["bash", str(PROJECT_ROOT / "hw4_1.sh"), "only-one"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 2 and "usage" in p.stderr


def test_render_refuses_a_folder_of_foreign_images(run, scene, tmp_path, capsys):
    out, _ = run
    dst = tmp_path / "foreign"
    dst.mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(dst / "r_0.png")
    before = (dst / "r_0.png").read_bytes()
    rc = main(_render_args(out, scene / "transforms_val.json", dst))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "already holds" in err[0]
    assert (dst / "r_0.png").read_bytes() == before


def test_render_bad_inputs_exit_2(run, scene, tmp_path, capsys):
    out, _ = run
    empty = tmp_path / "empty_run"
    empty.mkdir()
    cases = [
        _render_args(empty, scene / "transforms_val.json", tmp_path / "a"),
        _render_args(out, tmp_path / "missing.json", tmp_path / "b"),
    ]
    bad = tmp_path / "bad.json"
    bad.write_text('{"frames": 3}')
    cases.append(_render_args(out, bad, tmp_path / "c"))
    if not torch.cuda.is_available():
        cases.append(
            [
                "nerf",
                "train",
                "--data",
                str(scene),
                "--out",
                str(tmp_path / "d"),
                "--device",
                "cuda",
            ]
        )
    cases.append(
        ["nerf", "train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "e")]
    )
    cases.append(
        [
            "nerf",
            "train",
            "--data",
            str(scene),
            "--out",
            str(tmp_path / "f"),
            "--resume",
            "--profile",
            "smoke",
        ]
    )
    cases.append(
        [
            "nerf",
            "train",
            "--data",
            str(scene),
            "--out",
            str(tmp_path / "g"),
            "--fine-voxels",
            "lots",
            "--profile",
            "smoke",
        ]
    )
    for argv in cases:
        rc = main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2, argv
        assert len(err) == 1 and err[0].startswith("error: "), (argv, err)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_mask_refresh_runs_at_each_progressive_scaling(scene, tmp_path):
    """With ``mask_refresh`` the fine model ends with DVGO's refreshed mask over its own grid,
    never more unknown than the coarse one; without it, the coarse stage's mask stays."""
    from hw4lib.config import get_profile
    from hw4lib.nerf import train as T
    from hw4lib.nerf.dvgo import voxel_centres
    from hw4lib.nerf.saved import load_model

    cfg = get_profile("smoke").nerf
    cfg = dataclasses.replace(cfg, coarse=dataclasses.replace(cfg.coarse, iters=30))
    masks = {}
    for on in (False, True):
        c = dataclasses.replace(
            cfg, fine=dataclasses.replace(cfg.fine, iters=25, pg_scale=(10,), mask_refresh=on)
        )
        T.train(_setup(scene, tmp_path / str(on), c))
        masks[on] = load_model(tmp_path / str(on) / "fine.pt")
    coarse = load_model(tmp_path / "False" / "coarse.pt")
    off, on = masks[False], masks[True]
    assert off.mask.occupied.shape == coarse.shape
    assert on.mask.occupied.shape == on.shape != coarse.shape
    xyz = voxel_centres(on.lo, on.hi, on.shape).reshape(-1, 3)
    refreshed, before = on.mask.unknown(xyz), off.mask.unknown(xyz)
    assert not (refreshed & ~before).any()  # only ever shrinks


@pytest.mark.slow
def test_nan_loss_stops_and_keeps_the_last_checkpoint(scene, tmp_path, monkeypatch):
    from hw4lib.config import get_profile
    from hw4lib.nerf import render as R
    from hw4lib.nerf import train as T
    from hw4lib.nerf.saved import load_resume_checkpoint

    monkeypatch.setattr(T, "CKPT_EVERY", 5)
    calls = {"n": 0}
    real = R.photometric_loss

    def flaky(pred, target):
        calls["n"] += 1
        loss = real(pred, target)
        return loss * float("nan") if calls["n"] == 8 else loss

    monkeypatch.setattr(T.R, "photometric_loss", flaky)
    run = tmp_path / "run"

    cfg = get_profile("smoke").nerf
    cfg = dataclasses.replace(
        cfg,
        coarse=dataclasses.replace(cfg.coarse, iters=12),
        fine=dataclasses.replace(cfg.fine, iters=6, pg_scale=(3,)),
    )
    setup = _setup(scene, run, cfg)
    with pytest.raises(UserError, match="NaN"):
        T.train(setup)
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ck["state"]["iter"] == 5 and ck["state"]["stage"] == "coarse"
    assert not (run / "fine.pt").exists()
    # resume after the interruption: finishes, and continues the same history (the five
    # iterations before the checkpoint are kept, not trained again)
    kept = ck["state"]["history"]["loss"]
    calls["n"] = 0
    monkeypatch.setattr(
        T.R,
        "photometric_loss",
        lambda p, t: (calls.__setitem__("n", calls["n"] + 1), real(p, t))[1],
    )
    res = T.train(setup, load_resume_checkpoint(run / "checkpoint.pt"))
    assert calls["n"] == cfg.coarse.iters + cfg.fine.iters - 5
    assert len(res["history"]["loss"]) == cfg.coarse.iters + cfg.fine.iters
    assert res["history"]["loss"][:5] == kept
    assert (run / "fine.pt").is_file()
    # the loop ends marking training over; the run's lifecycle finishes it (done.json)
    assert torch.load(run / "checkpoint.pt", weights_only=True)["state"]["stage"] == T.TRAINED


@pytest.mark.slow
def test_resumed_run_repeats_the_uninterrupted_one(run, scene, tmp_path, monkeypatch, capsys):
    """Killed twice (in the coarse stage, then after the fine stage's progressive scaling) and
    resumed: it trains only what was left, and ends bit for bit where the fixture's
    uninterrupted run of the same settings ended."""
    from hw4lib.nerf import train as T
    from hw4lib.nerf.run import TrainRequest, train_run

    whole_dir, whole = run
    cut = tmp_path / "cut"
    monkeypatch.setattr(T, "CKPT_EVERY", 30)
    real_save, real_loss = T.atomic_save, T.R.photometric_loss
    kills = [("coarse", 60), ("fine", 30)]
    steps = {"n": 0}

    def save(obj, path):
        real_save(obj, path)
        if (
            Path(path).name == "checkpoint.pt"
            and kills
            and (obj["state"]["stage"], obj["state"]["iter"]) == kills[0]
        ):
            kills.pop(0)
            raise KeyboardInterrupt  # as a kill would, just after the checkpoint is on disk

    def loss(pred, target):
        steps["n"] += 1
        return real_loss(pred, target)

    monkeypatch.setattr(T, "atomic_save", save)
    monkeypatch.setattr(T.R, "photometric_loss", loss)
    coarse_iters, fine_iters = (
        whole["coarse_iters"],
        len(whole["history"]["loss"]) - whole["coarse_iters"],
    )
    req = TrainRequest(scene, cut, "smoke", device="cpu")
    with pytest.raises(KeyboardInterrupt):
        train_run(req, progress=False)
    assert steps["n"] == 60 and not (cut / "coarse.pt").exists()
    steps["n"] = 0
    with pytest.raises(KeyboardInterrupt):
        train_run(dataclasses.replace(req, resume=True), progress=False)
    assert steps["n"] == coarse_iters - 60 + 30
    steps["n"] = 0
    assert (
        main(
            [
                "nerf",
                "train",
                "--data",
                str(scene),
                "--out",
                str(cut),
                "--profile",
                "smoke",
                "--device",
                "cpu",
                "--resume",
            ]
        )
        == 0
    )
    assert steps["n"] == fine_iters - 30
    again = json.loads((cut / "done.json").read_text())
    for k in ("loss", "psnr", "points"):
        assert again["history"][k] == whole["history"][k], k
    assert again["val_psnr"] == whole["val_psnr"]
    a = torch.load(whole_dir / "fine.pt", weights_only=True)["state"]
    b = torch.load(cut / "fine.pt", weights_only=True)["state"]
    assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_a_run_stopped_in_its_val_render_resumes_with_the_render_alone(
    run, scene, tmp_path, monkeypatch
):
    """done.json is written once, val PSNR and all: a run killed after training, in the val
    render, is unfinished (not reused), and resumed it renders val without a training step."""
    from hw4lib import runs
    from hw4lib.nerf import run as J
    from hw4lib.nerf import train as T

    _, whole = run
    real_val, real_loss, real_write = J.val_psnr, T.R.photometric_loss, runs.atomic_write_text
    steps, renders, done_writes = [], [], []

    def loss(pred, target):
        steps.append(1)
        return real_loss(pred, target)

    def killed_val(*args, **kwargs):
        renders.append(1)
        raise KeyboardInterrupt  # as a kill would, half-way through the val render

    def write(path, text):
        done_writes.extend([1] if Path(path).name == "done.json" else [])
        real_write(path, text)

    monkeypatch.setattr(T.R, "photometric_loss", loss)
    monkeypatch.setattr(runs, "atomic_write_text", write)
    monkeypatch.setattr(J, "val_psnr", killed_val)
    cut = tmp_path / "cut"
    req = J.TrainRequest(scene, cut, "smoke", device="cpu")
    with pytest.raises(KeyboardInterrupt):
        J.train_run(req, progress=False)
    assert len(steps) == len(whole["history"]["loss"]) and renders == [1]
    assert (cut / "fine.pt").is_file() and not (cut / "done.json").exists() and done_writes == []
    fine = torch.load(cut / "fine.pt", weights_only=True)["state"]
    monkeypatch.setattr(J, "val_psnr", lambda *a, **k: (renders.append(1), real_val(*a, **k))[1])
    steps.clear()
    with pytest.raises(UserError, match="unfinished run.*--resume"):  # not reused as finished
        J.train_run(req, progress=False)
    res = J.train_run(dataclasses.replace(req, resume=True), progress=False)
    assert steps == [] and renders == [1, 1] and done_writes == [1]
    done = json.loads((cut / "done.json").read_text())
    assert done["val_psnr"] == res["val_psnr"] == whole["val_psnr"] and not done["reused"]
    for k in ("loss", "psnr", "points"):  # the history training recorded, kept
        assert done["history"][k] == whole["history"][k], k
    after = torch.load(cut / "fine.pt", weights_only=True)["state"]
    assert all(torch.equal(after[k], fine[k]) for k in fine)
    assert not (cut / "checkpoint.pt").exists()
    again = J.train_run(req, progress=False)
    assert again["reused"] and again["val_psnr"] == whole["val_psnr"] and done_writes == [1]


def test_eval_command_reports_metrics_and_rejects_mismatch(run, scene, tmp_path, capsys):
    out, _ = run
    dst = tmp_path / "pred"
    assert main(_render_args(out, scene / "transforms_val.json", dst)) == 0
    js = tmp_path / "m.json"
    assert (
        main(["nerf", "eval", "--pred", str(dst), "--gt", str(scene / "val"), "--json", str(js)])
        == 0
    )
    res = json.loads(js.read_text())
    # the metrics of what was rendered: each image's PSNR is the one computed here from the
    # files, and they beat a blank (background-only) image by far
    _, gt = _val_truth(scene)
    by_name = {r["name"]: r for r in res["images"]}
    assert sorted(by_name) == ["r_0.png", "r_1.png", "r_2.png"]
    for i, t in enumerate(gt):
        mine = _psnr(np.asarray(Image.open(dst / f"r_{i}.png"), np.float64) / 255, t)
        assert by_name[f"r_{i}.png"]["psnr"] == pytest.approx(mine, abs=0.05)
        assert mine > _psnr(np.ones_like(t), t) + 3
    assert res["mean"]["psnr"] == pytest.approx(np.mean([r["psnr"] for r in res["images"]]))
    os.remove(dst / "r_2.png")
    capsys.readouterr()
    assert main(["nerf", "eval", "--pred", str(dst), "--gt", str(scene / "val")]) == 2


def test_benchmarks_print_their_ratios(capsys, monkeypatch):
    """`hw4 bench grid` ends with `speed-up <x>x`, x = the median over interleaved rounds of
    grid_sample's time / ours; `bench nerf` prints one for each stage, the fine step's
    breakdown, and masked Adam's speed-up over dense Adam. First with real timings (smoke
    sizes), then with a clock whose three rounds give ratios 4, 3 and 8: the median (4.0) must
    be reported, not the mean (5.0) nor the ratio of the medians."""
    import argparse
    import re

    from hw4lib.nerf import bench as B

    grid_args = argparse.Namespace(res=16, channels=4, points=2000, repeats=3, device="cpu")
    nerf_args = argparse.Namespace(profile="smoke", repeats=1, device="cpu")
    assert B.bench_grid(grid_args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"speed-up \d+\.\dx", lines[-1])
    rounds = [float(x) for x in lines[-2].split(":")[0].split()[2:]]
    assert len(rounds) == 3
    assert float(lines[-1].split()[1][:-1]) == pytest.approx(sorted(rounds)[1], abs=0.051)
    assert B.bench_nerf(nerf_args) == 0
    out = capsys.readouterr().out
    speedups = [ln.split()[0] for ln in out.splitlines() if " speed-up " in ln]
    assert speedups == ["coarse", "fine", "fine"]  # the last: masked Adam against dense Adam
    # the breakdown names each labelled phase of VoxelModel.render with a time > 0
    for phase in (
        "march",
        "density",
        "weights",
        "features",
        "rgbnet",
        "composite",
        "backward",
        "optimizer",
    ):
        row = re.search(rf"^\s+{phase}\s+([\d.]+) ms", out, re.M)
        assert row and float(row.group(1)) > 0, phase

    fake = {
        "ours": [0.010, 0.020, 0.005],
        "grid_sample": [0.040, 0.060, 0.040],
        "ref": [0.040, 0.060, 0.040],
        "masked": [0.010, 0.010, 0.015],
        "dense": [0.030, 0.030, 0.030],
    }
    monkeypatch.setattr(
        B,
        "_rounds",
        lambda fns, repeats, dev: ([fn() for fn in fns.values()], {k: fake[k] for k in fns})[1],
    )
    assert B.bench_grid(grid_args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == "speed-up 4.0x"
    assert "per-round speed-ups 4.0 3.0 8.0: median 4.0x, spread 3.0-8.0x" in lines[-2]
    assert "   10.0 ms" in lines[-4] and "   40.0 ms" in lines[-3]  # the medians
    assert B.bench_nerf(nerf_args) == 0
    out = capsys.readouterr().out
    assert [
        ln.split()[-1] for ln in out.splitlines() if "speed-up" in ln and "round" not in ln
    ] == ["4.0x", "4.0x", "3.0x"]
    assert "25600 rays/s" in out and "6400 rays/s" in out  # 256 rays in 10 and 40 ms medians
