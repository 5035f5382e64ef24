"""tools/record_nerf.py: a run measured on real data becomes a recorded result (summary,
per-view table, worst views) with its provenance; bad input is one line and exit 2."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from PIL import Image

from hw4lib import PROJECT_ROOT
from hw4lib.metrics import evaluate_folders
from hw4lib.report import recorded

spec = importlib.util.spec_from_file_location("record_nerf", PROJECT_ROOT / "tools/record_nerf.py")
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)


@pytest.fixture
def measured(tmp_path):
    """A finished run, 3 renders (view r_1 the worst) against RGBA ground truth, their eval."""
    rng = np.random.default_rng(0)
    gt_dir, pred_dir, run = tmp_path / "val", tmp_path / "pred", tmp_path / "run"
    for d in (gt_dir, pred_dir, run):
        d.mkdir()
    for i, noise in enumerate((2, 40, 8)):
        rgb = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        rgba = np.dstack([rgb, np.full((16, 16), 255, np.uint8)])
        Image.fromarray(rgba).save(gt_dir / f"r_{i}.png")
        bad = np.clip(rgb.astype(int) + rng.integers(-noise, noise + 1, rgb.shape), 0, 255)
        Image.fromarray(bad.astype(np.uint8)).save(pred_dir / f"r_{i}.png")
    ev = evaluate_folders(pred_dir, gt_dir, json_out=tmp_path / "eval.json", device="cpu")
    done = {"timings": {"coarse_s": 60.0, "fine_s": 600.0}, "seconds": 720.0}
    (run / "done.json").write_text(json.dumps(done))
    return tmp_path, ev


def _args(tmp_path, **over):
    a = {
        "--name": "scene",
        "--run": str(tmp_path / "run"),
        "--eval": str(tmp_path / "eval.json"),
        "--render-seconds": "30",
        "--data": "a real scene",
        "--command": "hw4 nerf train ...",
        "--root": str(tmp_path / "recorded"),
    }
    a.update(over)
    return [x for kv in a.items() for x in kv]


def test_a_measured_run_is_recorded_with_its_provenance(measured):
    tmp_path, ev = measured
    assert tool.main(_args(tmp_path)) == 0
    root = tmp_path / "recorded"
    assert recorded.names(root) == ["nerf_scene", "nerf_scene_views"]
    summary, prov = recorded.load("nerf_scene", root)
    row = summary.iloc[0]
    assert row["views"] == 3 and row["PSNR"] == pytest.approx(ev["mean"]["psnr"], abs=1e-4)
    assert row["train min (all)"] == 12.0 and row["fine min"] == 10.0
    assert row["render s/view"] == 10.0  # 30 s over 3 views
    assert not row["PSNR >= 35"]  # noisy renders fail the course's mark
    assert prov["minutes"] == 12.5 and prov["data"] == "a real scene"
    views, _ = recorded.load("nerf_scene_views", root)
    assert list(views["view"]) == ["r_1.png", "r_2.png", "r_0.png"]  # worst PSNR first
    assert (root / "nerf_scene_views.png").stat().st_size > 0
    shown = recorded.display_objects("nerf_", root)
    assert [len(s) for s in shown] == [2, 3]  # the per-view table comes with its figure


def test_bad_input_is_one_line_and_writes_nothing(measured, capsys):
    tmp_path, _ = measured
    (tmp_path / "eval.json").write_text('{"not": "an eval"}')
    assert tool.main(_args(tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "eval.json: not `hw4 nerf eval --json` output" in err
    assert tool.main(_args(tmp_path, **{"--run": str(tmp_path / "nowhere")})) == 2
    assert "done.json: cannot read" in capsys.readouterr().err
    assert not (tmp_path / "recorded").exists()


def test_moved_images_are_found_with_pred_and_gt_and_a_missing_one_writes_nothing(measured, capsys):
    tmp_path, _ = measured
    (tmp_path / "pred").rename(tmp_path / "renders")
    assert tool.main(_args(tmp_path)) == 2
    assert "pred: no such folder" in capsys.readouterr().err
    (tmp_path / "renders" / "r_1.png").rename(tmp_path / "r_1.png")  # the worst view is gone
    assert tool.main(_args(tmp_path, **{"--pred": str(tmp_path / "renders")})) == 2
    assert "r_1.png" in capsys.readouterr().err
    assert not (tmp_path / "recorded").exists() or not any((tmp_path / "recorded").iterdir())
    (tmp_path / "r_1.png").rename(tmp_path / "renders" / "r_1.png")
    args = _args(tmp_path, **{"--pred": str(tmp_path / "renders"), "--commit": "abc123"})
    assert tool.main(args) == 0
    assert recorded.load("nerf_scene", tmp_path / "recorded")[1]["commit"] == "abc123"
