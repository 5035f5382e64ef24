"""Data-parallel pre-training: 2 CPU processes (gloo) launched by torchrun and by accelerate
launch, through the CLI, on a tiny corpus: the run finishes with one backbone and a record of 2
processes, both processes end with the same weights, a kill of the launcher and ``--resume``
(on 2 processes) repeat the uninterrupted run, a resume on 1 process is refused."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hw4lib import PROJECT_ROOT
from hw4lib.cli import main
from hw4lib.ssl import checkpoint as ckpt
from hw4lib.ssl.datasets import make_loader
from hw4lib.ssl.models import load_backbone_file
from hw4lib.ssl.pretrain import PAUSE_ENV


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **extra}
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), env.get("PYTHONPATH", "")])
    return env


def _args(data: Path, out: Path, *more: str) -> list[str]:
    return [
        "-m",
        "hw4lib",
        "ssl",
        "pretrain",
        "--data",
        str(data),
        "--out",
        str(out),
        "--method",
        "byol",
        "--profile",
        "smoke",
        "--device",
        "cpu",
        *more,
    ]


def _torchrun(data: Path, out: Path, *more: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_port()),
        *_args(data, out, *more),
    ]


def _accelerate(data: Path, out: Path, *more: str) -> list[str]:
    # --multi_gpu is accelerate's torchrun launcher; the processes run on the CPU (--device cpu)
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(_port()),
        *_args(data, out, *more),
    ]


def _run(cmd: list[str], **env: str) -> subprocess.CompletedProcess:
    p = subprocess.run(
        cmd, capture_output=True, text=True, env=_env(**env), cwd=PROJECT_ROOT, timeout=300
    )
    assert p.returncode == 0, p.stderr[-3000:]
    return p


def _files(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in run.iterdir()}


def test_each_process_takes_its_slice_of_the_one_process_batches():
    ds = torch.utils.data.TensorDataset(torch.arange(20), torch.zeros(20))
    one = make_loader(ds, 8, shuffle=True, drop_last=True, workers=0, device="cpu", seed=3)
    ranks = [
        make_loader(
            ds, 8, shuffle=True, drop_last=True, workers=0, device="cpu", seed=3, shard=(r, 2)
        )
        for r in range(2)
    ]
    for _epoch in range(3):  # the shared generator moves on the same way every epoch
        got = [[b[0].tolist() for b in r] for r in ranks]
        want = [b[0].tolist() for b in one]
        assert len(want) == 2 and [a + b for a, b in zip(*got)] == want
    # a replayed generator state replays the epoch (what a resume relies on)
    state = ranks[0].generator.get_state()
    first = [b[0].tolist() for b in ranks[0]]
    ranks[0].generator.set_state(state)
    assert [b[0].tolist() for b in ranks[0]] == first


@pytest.mark.parametrize(
    "env,want",
    [
        (
            {"ACCELERATE_USE_CPU": "True", "MASTER_ADDR": "127.0.0.1"},
            "accelerate launch --cpu started one",
        ),
        ({"ACCELERATE_MIXED_PRECISION": "bf16"}, "trains in float32 only"),
        ({"WORLD_SIZE": "2", "RANK": "5"}, "RANK=5"),
    ],
)
def test_launches_that_cannot_work_are_one_line_errors(
    env, want, data, tmp_path, monkeypatch, capsys
):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert main(_args(data, tmp_path / "run")[2:]) == 2
    err = capsys.readouterr().err.strip()
    assert want in err and "\n" not in err and not (tmp_path / "run").exists()


def test_finetuning_and_the_study_refuse_several_processes(data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for cmd in (["finetune", "--setting", "A"], ["study"]):
        assert (
            main(
                ["ssl", *cmd, "--data", str(data), "--profile", "smoke"]
                + (
                    ["--out", str(tmp_path / "ft")]
                    if cmd[0] == "finetune"
                    else ["--runs", str(tmp_path / "runs")]
                )
            )
            == 2
        )
        assert "runs as one process" in capsys.readouterr().err
    assert not (tmp_path / "ft").exists() and not (tmp_path / "runs").exists()


@pytest.mark.slow
@pytest.mark.ddp
def test_two_processes_train_one_model_and_resume_after_a_kill(data, tmp_path, monkeypatch, capsys):
    results = tmp_path / "results"
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    _run(_torchrun(data, whole))
    run = json.loads((whole / "run.json").read_text())
    assert run["processes"] == 2 and run["settings"]["processes"] == 2
    assert run["backend"] == "gloo" and run["batchnorm"].startswith("per-process BatchNorm")
    assert run["batch_per_process"] == 8 and run["steps"] == 6
    digests = run["rank_weights_sha1"]
    assert len(digests) == 2 and digests[0] == digests[1]  # one model in both processes
    assert [p.name for p in tmp_path.rglob("backbone*.pt")] == ["backbone.pt"]
    stored = list(results.rglob("pretrain_byol*.json"))
    assert len(stored) == 1 and json.loads(stored[0].read_text())["data"]["processes"] == 2

    # the same run, its launcher killed once step 3 (mid-epoch) is checkpointed
    p = subprocess.Popen(
        _torchrun(data, cut),
        env=_env(**{PAUSE_ENV: "3"}),
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not (cut / "last.pt").is_file() and p.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.2)
        p.send_signal(signal.SIGTERM)  # the launcher; it takes its workers down
        assert p.wait(timeout=120) != 0
    finally:
        try:  # anything of this launch still alive (its own process group)
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
    last = ckpt.load(cut / "last.pt")
    assert last["step"] == 3 and len(last["rng_ranks"]) == 2
    assert not (cut / "run.json").exists() and not (cut / "backbone.pt").exists()

    # resuming on one process: one line, exit 2, nothing touched
    files = _files(cut)
    assert main(_args(data, cut, "--resume")[2:]) == 2
    err = capsys.readouterr().err.strip()
    assert "settings.json" in err and "trained on 2 process(es)" in err and "\n" not in err
    assert _files(cut) == files

    # resumed on 2 processes (by accelerate launch if installed): it repeats the whole run
    try:
        import accelerate  # noqa: F401

        launch = _accelerate
    except ImportError:
        launch = _torchrun
    _run(launch(data, cut, "--resume"))
    again = json.loads((cut / "run.json").read_text())
    assert again["processes"] == 2
    assert [(r["step"], r["loss"], r["knn"]) for r in again["history"]] == [
        (r["step"], r["loss"], r["knn"]) for r in run["history"]
    ]
    assert again["rank_weights_sha1"] == digests
    a, b = (load_backbone_file(r / "backbone.pt")[1] for r in (whole, cut))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert sorted(p.parent.name for p in tmp_path.rglob("backbone*.pt")) == ["cut", "whole"]
