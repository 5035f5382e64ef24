"""``tools/gpu_check.sh``: the CPU smoke run writes every key with sane numbers, no GPU without
``--smoke`` is one line and exit 2, and a failing section is recorded while the others run."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hw4lib.gpucheck import run, sections

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "gpu_check.sh"


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    # this interpreter's folder first: a checkout without .venv falls back to its python3
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": path, **env},
        timeout=300,
    )


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path_factory.mktemp("gpu_check") / "sub" / "gpu.json"
    p = _run(["--smoke", "--out", str(out)])
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p, json.loads(out.read_text())


def test_smoke_writes_every_key_with_finite_positive_numbers(smoke):
    _, r = smoke
    assert (r["mode"], r["device"], r["ok"], r["failed"]) == ("smoke", "cpu", True, [])
    for sec, keys in run.NUMERIC.items():
        assert r[sec]["ok"] is True, r[sec]
        for k in keys:
            v = r[sec][k]
            assert isinstance(v, (int, float)) and math.isfinite(v) and v > 0, (sec, k, v)
    # the smoke run forces the path CUDA takes: pure torch, compared against the CPU's
    assert r["env"]["device_path"].startswith("pure torch")
    assert r["env"]["lookup_ok"] is True
    assert r["render"]["psnr_db"] >= sections.PASS_DB and r["render"]["passed"] is True


def test_smoke_projections_follow_from_the_rates(smoke):
    _, r = smoke
    n, b = r["nerf"], r["byol"]
    coarse, fine = n["projected_steps"]
    assert (coarse, fine) == (5000, 20000)
    want = (coarse / n["coarse_it_s"] + fine / n["fine_it_s"]) / 60
    assert n["projected_minutes"] == pytest.approx(want)
    for k in ("fp32", "bf16_cl"):
        assert b[f"{k}_hours"] == pytest.approx(1000 * 38_400 / b[f"{k}_img_s"] / 3600)
    assert n["fine_grid"] == [16, 16, 16] and b["arch"] == "resnet10"


def test_smoke_prints_the_table(smoke):
    p, r = smoke
    for rows in run.ROWS.values():
        for _, label in rows:
            assert label in p.stdout, label
    assert "ok" in p.stdout.splitlines()[-2]


def test_no_cuda_without_smoke_is_one_line_and_exit_2(tmp_path):
    out = tmp_path / "gpu.json"
    p = _run(["--out", str(out)], CUDA_VISIBLE_DEVICES="")
    assert p.returncode == 2, p.stderr
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "no CUDA device is visible" in lines[0]
    assert not out.exists()


def test_a_failing_section_is_recorded_and_the_others_run(tmp_path, monkeypatch, capsys):
    ran = []

    def ok(name: str):
        def fn(dev, sizes, forced, ctx):
            ran.append(name)
            return {"x": 1.0}

        return fn

    def boom(dev, sizes, forced, ctx):
        ran.append("nerf")
        raise RuntimeError("out of memory")

    # render is the real one: without the nerf section's model it fails on its own
    checks = {"env": ok("env"), "nerf": boom, "render": sections.check_render, "byol": ok("byol")}
    monkeypatch.setattr(run, "CHECKS", checks)
    out = tmp_path / "gpu.json"
    assert run.main(["--smoke", "--out", str(out)]) == 1
    r = json.loads(out.read_text())
    assert ran == ["env", "nerf", "byol"]
    assert r["ok"] is False and r["failed"] == ["nerf", "render"]
    assert r["nerf"]["error"] == "RuntimeError: out of memory"
    assert "the nerf section did not finish" in r["render"]["error"]
    assert r["env"]["ok"] and r["byol"]["ok"] and r["byol"]["x"] == 1.0
    assert "FAILED: nerf, render" in capsys.readouterr().out


def test_a_render_below_the_pass_mark_fails(tmp_path, monkeypatch):
    def empty(dev, sizes, forced, ctx):
        return {}

    def low(dev, sizes, forced, ctx):
        return {"psnr_db": 40.0, "passed": False}

    checks = {"env": empty, "nerf": empty, "render": low, "byol": empty}
    monkeypatch.setattr(run, "CHECKS", checks)
    out = tmp_path / "gpu.json"
    assert run.main(["--smoke", "--out", str(out)]) == 1
    r = json.loads(out.read_text())
    assert r["failed"] == ["render"] and "40.0 dB < 50.0 dB" in r["render"]["error"]
