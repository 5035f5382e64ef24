"""Run folders never clobber a stranger's files: `hw4 nerf train`, `hw4 ssl pretrain` and
`hw4 ssl finetune` refuse a folder holding files they did not write, or another command's run
(one line naming a file, exit 2, every file unchanged); their own runs stay reusable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hw4lib.cli import main
from hw4lib.config import CorpusGen, get_profile
from hw4lib.errors import UserError
from hw4lib.runs import NERF_TRAIN, SSL_FINETUNE, SSL_PRETRAIN, check_run_dir

STRANGER = {"lr": 0.1, "comment": "my own experiment, not hw4's"}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    from hw4lib.data.corpus import generate_corpora
    from hw4lib.data.scene import generate_scene

    root = tmp_path_factory.mktemp("runfolders")
    corpora = generate_corpora(
        root / "corpora",
        CorpusGen(mini_per_class=1, office_train_per_class=1, office_val_per_class=1, mini_size=16),
        progress=False,
    )
    scene = generate_scene(
        root / "scene", "hotdog", size=16, n_train=2, n_val=1, supersample=1, progress=False
    )
    return {"ssl": corpora, "nerf": scene}


def _argv(command: str, data: dict[str, Path], out: Path) -> list[str]:
    return {
        "nerf train": [
            "nerf",
            "train",
            "--data",
            str(data["nerf"]),
            "--out",
            str(out),
            "--profile",
            "smoke",
            "--device",
            "cpu",
        ],
        "ssl pretrain": [
            "ssl",
            "pretrain",
            "--data",
            str(data["ssl"]),
            "--out",
            str(out),
            "--steps",
            "1",
            "--profile",
            "smoke",
            "--device",
            "cpu",
        ],
        "ssl finetune": [
            "ssl",
            "finetune",
            "--setting",
            "A",
            "--data",
            str(data["ssl"]),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--profile",
            "smoke",
            "--device",
            "cpu",
        ],
    }[command]


def _snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _refused(capsys, argv: list[str], folder: Path, names: str) -> str:
    before = _snapshot(folder)
    capsys.readouterr()
    assert main(argv) == 2, argv
    err = capsys.readouterr().err.strip().split("\r")[-1]  # after a loader's progress bar
    assert err.startswith("error: ") and "\n" not in err, err
    assert str(folder / names) in err, err
    assert _snapshot(folder) == before  # nothing written, deleted or renamed
    return err


def _settings(command: str, data: dict[str, Path]) -> dict:
    """The settings.json a real run of ``command`` would write (the smoke profile)."""
    prof = get_profile("smoke")
    if command == "nerf train":
        from hw4lib.nerf.run import TrainRequest, run_settings

        return run_settings(TrainRequest(data["nerf"], "unused", "smoke"))
    if command == "ssl pretrain":
        from hw4lib.ssl.pretrain_run import pretrain_settings

        return pretrain_settings("byol", data["ssl"], prof.ssl, "smoke", steps=1)
    from hw4lib.ssl.finetune_run import finetune_settings

    return finetune_settings("A", data["ssl"], None, prof.ssl, "smoke", epochs=1)


COMMANDS = ("nerf train", "ssl pretrain", "ssl finetune")
PRODUCT = {"nerf train": "fine.pt", "ssl pretrain": "backbone.pt", "ssl finetune": "best.pt"}


@pytest.mark.parametrize("command", COMMANDS)
def test_a_strangers_settings_and_notes_are_never_touched(command, data, tmp_path, capsys):
    out = tmp_path / "F"
    out.mkdir()
    (out / "settings.json").write_text(json.dumps(STRANGER))
    (out / "notes.txt").write_text("do not lose these\n")
    _refused(capsys, _argv(command, data, out), out, "notes.txt")
    # settings.json alone is refused as well: it is not this command's
    (out / "notes.txt").unlink()
    err = _refused(capsys, _argv(command, data, out), out, "settings.json")
    assert f"not a `hw4 {command}` run's settings" in err
    # --force starts over only the command's own run, never a stranger's folder
    if command != "nerf train":
        _refused(capsys, _argv(command, data, out) + ["--force"], out, "settings.json")


@pytest.mark.parametrize(
    ("command", "other"), [(c, o) for c in COMMANDS for o in COMMANDS if c != o]
)
def test_another_commands_run_is_refused(command, other, data, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "settings.json").write_text(json.dumps(_settings(other, data), default=str))
    # settings.json alone: named as the other command's
    err = _refused(capsys, _argv(command, data, out), out, "settings.json")
    assert f"the settings of a `hw4 {other}` run" in err
    # with its product beside it: that file is named first
    (out / PRODUCT[other]).write_bytes(b"weights")
    err = _refused(capsys, _argv(command, data, out), out, PRODUCT[other])
    assert f"a file of a `hw4 {other}` run" in err


def test_own_runs_and_torn_writes_pass_the_check(data, tmp_path):
    for kind, command in (
        (NERF_TRAIN, "nerf train"),
        (SSL_PRETRAIN, "ssl pretrain"),
        (SSL_FINETUNE, "ssl finetune"),
    ):
        d = tmp_path / command.replace(" ", "_")
        d.mkdir()
        check_run_dir(d, kind)  # empty
        (d / "settings.json").write_text(json.dumps(_settings(command, data), default=str))
        for name in kind.files - {"settings.json"}:
            (d / name).write_bytes(b"x")
        (d / f".{min(kind.files)}.ab_12cd.tmp").write_bytes(b"")  # a killed atomic write
        check_run_dir(d, kind)
        (d / "sub").mkdir()
        with pytest.raises(UserError, match="sub: not written by"):
            check_run_dir(d, kind)
    f = tmp_path / "a_file"
    f.write_text("")
    with pytest.raises(UserError, match="not a folder"):
        check_run_dir(f, NERF_TRAIN)
