"""`hw4 ssl ...` and hw4_2.sh: predict's csv contract, the table, and bad input (exit 2,
one line, nothing overwritten)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from hw4lib import PROJECT_ROOT
from hw4lib.cli import main
from hw4lib.config import get_profile
from hw4lib.ssl import finetune as FT
from hw4lib.ssl.finetune_run import finetune_run
from hw4lib.ssl.models import backbone_state, make_backbone
from hw4lib.ssl.predict import predict
from hw4lib.ssl.request import FinetuneRequest

CFG = replace(
    get_profile("smoke").ssl, image_size=16, cache_images=True, workers=0, finetune_batch=8
)


@pytest.fixture(scope="module")
def run(data, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cli") / "runs" / "finetune_A"
    req = FinetuneRequest("A", data=data, out=d, profile="smoke", device="cpu", epochs=1)
    finetune_run(req, cfg=CFG, progress=False)
    return d


def _read(p: Path) -> list[list[str]]:
    with open(p, newline="") as f:
        return list(csv.reader(f))


def _write(p: Path, rows: list[list[str]]) -> Path:
    with open(p, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return p


def test_predict_keeps_row_order_and_writes_class_names(data, run, tmp_path):
    val = _read(data / "office" / "val.csv")
    body = list(reversed(val[1:]))[:20]
    # the grader's csv: id,filename and an empty label column, rows in any order
    inp = _write(
        tmp_path / "in.csv", [["id", "filename", "label"]] + [[r[0], r[1], ""] for r in body]
    )
    out = tmp_path / "out.csv"
    assert (
        main(
            [
                "ssl",
                "predict",
                "--run",
                str(run),
                "--csv",
                str(inp),
                "--images",
                str(data / "office" / "val"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    got = _read(out)
    assert got[0] == ["id", "filename", "label"]
    assert [r[:2] for r in got[1:]] == [r[:2] for r in body]
    classes = torch.load(run / "best.pt", weights_only=True)["classes"]
    assert all(r[2] in classes for r in got[1:])
    # without a label column at all, and agreeing with the model's own argmax
    inp2 = _write(tmp_path / "in2.csv", [["id", "filename"]] + [r[:2] for r in body])
    r = predict(run, inp2, data / "office" / "val", tmp_path / "out2.csv")
    assert _read(tmp_path / "out2.csv") == got and "accuracy" not in r
    # the labels are the model's own answers: best.pt's network, argmax over its logits
    # computed here, named by its class list (and not all one class, or this proves little)
    assert [r[2] for r in got[1:]] == _argmax_labels(
        run, [r[1] for r in body], data / "office" / "val"
    )
    assert len({r[2] for r in got[1:]}) > 1
    # with true labels, predict reports the accuracy, which is the run's best val accuracy
    r = predict(run, data / "office" / "val.csv", data / "office" / "val", tmp_path / "o3.csv")
    assert r["rows"] == 65
    best = json.loads((run / "run.json").read_text())["best_val_acc"]
    assert r["accuracy"] == pytest.approx(best)


def _argmax_labels(run: Path, names: list[str], images: Path) -> list[str]:
    """What best.pt's network says about each image, computed apart from `predict`."""
    from PIL import Image
    from torchvision.models import resnet

    from hw4lib.ssl.models import make_classifier

    state = torch.load(run / "best.pt", weights_only=True)
    net = make_classifier(state["arch"], len(state["classes"]), head_norm=state["head_norm"])
    assert isinstance(net, resnet.ResNet)
    net.load_state_dict(state["model"])
    net.eval()
    size = state["image_size"]
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    out = []
    with torch.no_grad():
        for n in names:
            # the contract: transparency composited on white (the corpus has RGBA cut-outs)
            rgba = Image.open(images / n).convert("RGBA")
            img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255,) * 4), rgba)
            img = img.convert("RGB").resize((size, size), Image.BILINEAR)
            x = torch.tensor(list(img.getdata()), dtype=torch.float32).view(size, size, 3) / 255
            x = ((x - mean) / std).permute(2, 0, 1)[None]
            out.append(state["classes"][int(net(x).argmax())])
    return out


@pytest.mark.slow
def test_hw4_2_script(data, run, tmp_path):
    """As the course grades it: `bash hw4_2.sh <csv> <image folder> <output csv>`, run from
    elsewhere with relative paths; the csv it writes is the one `hw4 ssl predict` writes."""
    val = _read(data / "office" / "val.csv")
    inp = _write(
        tmp_path / "test.csv",
        [["id", "filename", "label"]] + [[r[0], r[1], ""] for r in reversed(val[1:])],
    )
    cli = tmp_path / "cli.csv"
    assert (
        main(
            [
                "ssl",
                "predict",
                "--run",
                str(run),
                "--csv",
                str(inp),
                "--images",
                str(data / "office" / "val"),
                "--out",
                str(cli),
            ]
        )
        == 0
    )
    # the project's .venv when there is one, else this interpreter's hw4 (a checkout without one)
    env = dict(
        os.environ,
        HW4_SSL_RUN=str(run),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    images = os.path.relpath(data / "office" / "val", tmp_path)
    p = subprocess.run(
        ["bash", str(PROJECT_ROOT / "hw4_2.sh"), "test.csv", images, "out/pred.csv"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    out = tmp_path / "out" / "pred.csv"
    assert out.read_bytes() == cli.read_bytes() and len(_read(out)) == 66
    p = subprocess.run(
        ["bash", str(PROJECT_ROOT / "hw4_2.sh"), "only-one"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 2 and "usage" in p.stderr


def _bad(capsys, argv: list[str], out: Path, must_name: str) -> None:
    out.write_text("previous\n")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and must_name in err, err
    assert out.read_text() == "previous\n"


@pytest.mark.parametrize(
    "case", ["no_filename", "missing_image", "corrupt_image", "unknown_label", "empty"]
)
def test_predict_bad_input(case, data, run, tmp_path, capsys):
    images = tmp_path / "imgs"
    images.mkdir()
    (images / "a.jpg").write_bytes(
        (data / "office" / "val" / _read(data / "office" / "val.csv")[1][1]).read_bytes()
    )
    rows = {
        "no_filename": [["id", "file"], ["0", "a.jpg"]],
        "missing_image": [["id", "filename"], ["0", "a.jpg"], ["1", "gone.jpg"]],
        "corrupt_image": [["id", "filename"], ["0", "a.jpg"], ["1", "bad.jpg"]],
        "unknown_label": [["id", "filename", "label"], ["0", "a.jpg", "a_class_never_seen"]],
        "empty": [["id", "filename", "label"]],
    }[case]
    (images / "bad.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    inp = _write(tmp_path / "in.csv", rows)
    name = {"missing_image": "gone.jpg", "corrupt_image": "bad.jpg"}.get(case, str(inp))
    _bad(
        capsys,
        [
            "ssl",
            "predict",
            "--run",
            str(run),
            "--csv",
            str(inp),
            "--images",
            str(images),
            "--out",
            str(tmp_path / "out.csv"),
        ],
        tmp_path / "out.csv",
        name,
    )


def test_finetune_rejects_a_non_resnet_backbone(data, tmp_path, capsys):
    bad = tmp_path / "vit.pt"
    torch.save({"encoder.layers.0.weight": torch.zeros(2, 2)}, bad)
    assert (
        main(
            [
                "ssl",
                "finetune",
                "--setting",
                "C",
                "--data",
                str(data),
                "--out",
                str(tmp_path / "C"),
                "--backbone",
                str(bad),
                "--profile",
                "smoke",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert str(bad) in err and "ResNet" in err and "\n" not in err
    assert not (tmp_path / "C").exists()


def test_finetune_resume_with_other_settings_is_refused(data, tmp_path, capsys):
    good = tmp_path / "r18.pt"
    torch.save(backbone_state(make_backbone("resnet18")), good)
    out = tmp_path / "D"
    base = [
        "ssl",
        "finetune",
        "--setting",
        "D",
        "--data",
        str(data),
        "--out",
        str(out),
        "--backbone",
        str(good),
        "--profile",
        "smoke",
    ]
    assert main(base) == 0
    assert "setting D: best val accuracy" in capsys.readouterr().out
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(base + ["--resume", "--epochs", "5"]) == 2
    err = capsys.readouterr().err
    assert "cannot resume with different settings" in err and "settings.json" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_table(run, capsys, tmp_path):
    assert main(["ssl", "table", "--runs", str(run.parent)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[1].startswith("A ") and len(lines) == 2
    empty = tmp_path / "none"
    empty.mkdir()
    assert main(["ssl", "table", "--runs", str(empty)]) == 2


def test_study_runs_its_jobs_side_by_side(data, tmp_path, capsys, monkeypatch):
    runs = tmp_path / "runs"
    study_args = ["ssl", "study", "--data", str(data), "--runs", str(runs)]
    study_args += ["--profile", "smoke", "--jobs", "2"]
    assert main(study_args) == 0
    out, log = capsys.readouterr()
    assert [line.split()[0] for line in out.strip().splitlines()[1:]] == list("ABCDE")
    events = [line.split("s  ", 1)[1] for line in log.splitlines() if "[hw4 ssl study]" in line]
    # both pre-trainings start before any task ends; C and E wait for BYOL, B and D for supervised
    assert events[:2] == ["start pretrain byol", "start pretrain supervised"]
    for setting, method in (("C", "byol"), ("E", "byol"), ("B", "supervised"), ("D", "supervised")):
        assert events.index(f"done pretrain {method}") < events.index(f"start finetune {setting}")
    # a second study finds every run finished with the same settings: read here, no workers
    from hw4lib.ssl import study

    calls = []
    real = study.run_tasks
    monkeypatch.setattr(
        study, "run_tasks", lambda ts, w, **kw: calls.append(w.count) or real(ts, w, **kw)
    )
    assert main(study_args) == 0
    assert calls == [1] and capsys.readouterr().out == out
    assert main(["ssl", "study", "--data", str(data), "--runs", str(runs), "--jobs", "0"]) == 2


def test_pretrain_from_the_command_line_with_init_and_a_step_budget(data, tmp_path, capsys):
    init = tmp_path / "init.pt"
    torch.save(backbone_state(make_backbone("resnet10")), init)
    out = tmp_path / "byol"
    assert (
        main(
            [
                "ssl",
                "pretrain",
                "--data",
                str(data),
                "--out",
                str(out),
                "--steps",
                "2",
                "--init",
                str(init),
                "--profile",
                "smoke",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert "byol pre-training: 2 steps" in capsys.readouterr().out
    assert (out / "backbone.pt").is_file()
    # another architecture's weights: one line naming the file, exit 2, nothing written
    bad = tmp_path / "r18.pt"
    torch.save(backbone_state(make_backbone("resnet18")), bad)
    assert (
        main(
            [
                "ssl",
                "pretrain",
                "--data",
                str(data),
                "--out",
                str(tmp_path / "x"),
                "--init",
                str(bad),
                "--profile",
                "smoke",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert str(bad) in err and "resnet18" in err and "\n" not in err
    assert not (tmp_path / "x").exists()


def _checkpoint_every_row(monkeypatch) -> None:
    """The smoke profile, with ``last.pt`` written at every history row instead of once a
    minute, so that a run that diverges has a last good checkpoint to keep."""
    from hw4lib.ssl import finetune_run as FR
    from hw4lib.ssl import pretrain_run as PR

    real = PR.get_profile

    def profile(name=None):
        p = real(name)
        return replace(p, ssl=replace(p.ssl, checkpoint_every_s=0.0))

    for entry in (PR, FR):  # each run folder's entry reads the profile
        monkeypatch.setattr(entry, "get_profile", profile)


def _one_line_exit_2(rc: int, err: str, run: Path, where: str) -> None:
    # stderr also holds the progress bars, closed by the exception: the error is its last line
    assert rc == 2 and "Traceback" not in err and err.count("error") == 1
    line = err.split("\n")[-2]
    assert err.endswith("\n") and line.startswith(f"error: {run}: "), err
    assert f"became NaN at {where}" in line and f"kept ({run / 'last.pt'})" in line


def _finite(state: dict) -> bool:
    return all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_a_nan_in_pretraining_is_one_line_exit_2_and_keeps_the_last_checkpoint(
    data, tmp_path, capsys, monkeypatch
):
    from hw4lib.ssl import pretrain as PT

    _checkpoint_every_row(monkeypatch)
    real, batches = PT.to_float, []

    def poisoned(x):  # the fourth batch onwards: a NaN loss from step 4
        batches.append(x)
        return real(x) * (float("nan") if len(batches) >= 4 else 1.0)

    monkeypatch.setattr(PT, "to_float", poisoned)
    out = tmp_path / "byol"
    args = ["ssl", "pretrain", "--data", str(data), "--out", str(out), "--steps", "6"]
    rc = main([*args, "--profile", "smoke", "--device", "cpu"])
    _one_line_exit_2(rc, capsys.readouterr().err, out, "step 4")
    last = torch.load(out / "last.pt", weights_only=True)
    assert last["step"] == 3 and _finite(last["model"])
    assert not (out / "backbone.pt").exists() and not (out / "run.json").exists()


def test_a_nan_in_finetuning_is_one_line_exit_2_and_keeps_best_and_last(
    data, tmp_path, capsys, monkeypatch
):
    _checkpoint_every_row(monkeypatch)
    real, epochs = FT._train_epoch, []

    def poisoned(run, net, loader, prepare, device):  # epoch 2's every batch gives NaN
        epochs.append(1)
        if len(epochs) == 2:
            prepare = (lambda p: lambda x: p(x) * float("nan"))(prepare)
        return real(run, net, loader, prepare, device)

    monkeypatch.setattr(FT, "_train_epoch", poisoned)
    out = tmp_path / "ftA"
    args = ["ssl", "finetune", "--setting", "A", "--data", str(data), "--out", str(out)]
    rc = main([*args, "--epochs", "2", "--profile", "smoke", "--device", "cpu"])
    _one_line_exit_2(rc, capsys.readouterr().err, out, "epoch 2")
    last = torch.load(out / "last.pt", weights_only=True)
    best = torch.load(out / "best.pt", weights_only=True)
    assert last["epoch"] == best["epoch"] == 1 and _finite(last["model"]) and _finite(best["model"])
    assert not (out / "run.json").exists()
