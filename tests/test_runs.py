"""Run folders (`hw4lib.runs`). The one run-cache policy (`plan_run`): every branch, for each
command's run folder, on files alone (no training): reuse a finished run, resume an interrupted
one, start afresh, or refuse with one line that says how to go on, never changing the folder.
And through the commands: `hw4 nerf train`, `hw4 ssl pretrain` and `hw4 ssl finetune` never
clobber a stranger's files: they refuse a folder holding files they did not write, or another
command's run (one line naming a file, exit 2, every file unchanged); their own runs stay
reusable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hw4lib import runs
from hw4lib.cli import main
from hw4lib.config import CorpusGen, get_profile
from hw4lib.errors import UserError
from hw4lib.runs import (
    FRESH,
    NERF_TRAIN,
    RESUME,
    REUSE,
    SSL_FINETUNE,
    SSL_PRETRAIN,
    RunKind,
    check_run_dir,
    plan_run,
    settings_diff,
    start_fresh,
)

# settings each command's run would own (kind_of_settings), with one value to vary: lr
BASE = {
    runs.NERF_TRAIN: {"nerf": {"fine": {"stepsize": 0.5}}, "stepsize": 0.5, "fine_voxels": 8},
    runs.SSL_PRETRAIN: {"method": "byol"},
    runs.SSL_FINETUNE: {"setting": "A", "frozen": False},
}
KINDS = runs.KINDS
IDS = [k.command for k in KINDS]


def _settings(kind: RunKind, lr: float = 0.1) -> dict:
    return {**BASE[kind], "lr": lr, "data": Path("/data")}  # a Path, as the callers' have


def _run(
    tmp_path: Path,
    kind: RunKind,
    lr: float | None = 0.1,
    checkpoint: bool = False,
    finished: bool = False,
) -> Path:
    """A run folder as ``kind``'s command leaves it: settings (lr, or none), a checkpoint, a
    finished run's product and record."""
    run = tmp_path / "run"
    run.mkdir()
    if lr is not None:
        (run / "settings.json").write_text(json.dumps(_settings(kind, lr), default=str))
    if checkpoint:
        (run / kind.checkpoint).write_bytes(b"state")
    if finished:
        (run / kind.product).write_bytes(b"weights")
        (run / kind.done).write_text(json.dumps({"val": 1.5}))
    return run


def _files(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in run.iterdir()} if run.exists() else {}


def _plan(run: Path, kind: RunKind, lr: float = 0.1, **kw):
    """plan_run's verdict, checking it changed nothing in the folder."""
    before = _files(run)
    try:
        return plan_run(run, kind, _settings(kind, lr), **kw)
    finally:
        assert _files(run) == before


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_an_empty_or_missing_folder_starts_afresh(kind, tmp_path):
    for kw in ({}, {"cache": True}, {"force": True}):
        assert _plan(tmp_path / "new", kind, **kw).action == FRESH
        assert not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()
    assert _plan(tmp_path / "empty", kind).action == FRESH


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_a_finished_run_with_the_same_settings_is_reused(kind, tmp_path):
    run = _run(tmp_path, kind, checkpoint=kind.checkpoint == "last.pt", finished=True)
    for kw in ({}, {"cache": True}):
        plan = _plan(run, kind, **kw)
        assert plan.action == REUSE and plan.done == {"val": 1.5}
    # --resume of a finished run: its checkpoint when one is kept (it then trains nothing)
    assert _plan(run, kind, resume=True).action == (
        RESUME if kind.checkpoint == "last.pt" else REUSE
    )
    assert _plan(run, kind, force=True).action == FRESH
    # without its product the run is not finished
    (run / kind.product).unlink()
    assert _plan(run, kind, cache=True).action == (
        RESUME if kind.checkpoint == "last.pt" else FRESH
    )


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_an_interrupted_run_is_resumed_only_when_asked(kind, tmp_path):
    run = _run(tmp_path, kind, checkpoint=True)
    assert _plan(run, kind, resume=True).action == RESUME
    assert _plan(run, kind, cache=True).action == RESUME
    with pytest.raises(UserError, match=r"unfinished run with these settings; add --resume"):
        _plan(run, kind)
    with pytest.raises(
        UserError,
        match=r"cannot resume with different settings \(lr: 0\.1 -> "
        r"0\.2\)",
    ):
        _plan(run, kind, lr=0.2, resume=True)
    assert _plan(run, kind, force=True).action == FRESH
    (run / "settings.json").unlink()
    with pytest.raises(UserError, match=r"settings.json: missing, so the run cannot be checked"):
        _plan(run, kind, resume=True)


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_a_run_with_other_settings_is_refused_unless_replaced(kind, tmp_path):
    run = _run(tmp_path, kind, checkpoint=True, finished=True)
    with pytest.raises(UserError) as e:
        _plan(run, kind, lr=0.2)
    msg = str(e.value)
    assert msg.startswith(f"{run}: already holds a run with other settings (lr: 0.1 -> 0.2)")
    assert msg.endswith(kind.restart) and "\n" not in msg
    assert _plan(run, kind, lr=0.2, cache=True).action == FRESH
    assert _plan(run, kind, lr=0.2, force=True).action == FRESH
    # a product alone (its checkpoint gone) still counts as someone's run
    (run / kind.checkpoint).unlink()
    (run / kind.done).unlink()
    with pytest.raises(UserError, match="other settings"):
        _plan(run, kind, lr=0.2)


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_nothing_to_resume_is_one_line(kind, tmp_path):
    for run in (tmp_path / "new", _run(tmp_path, kind)):
        with pytest.raises(UserError, match=f"no {kind.checkpoint} to resume from; drop --resume"):
            _plan(run, kind, resume=True)


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_leftovers_of_this_very_run_without_a_checkpoint_start_afresh(kind, tmp_path):
    run = _run(tmp_path, kind)  # killed before its first checkpoint
    (run / kind.done).write_text("{}")  # (or its record torn from its product)
    assert _plan(run, kind).action == FRESH
    (run / "settings.json").unlink()  # leftovers whose settings are unknown
    with pytest.raises(UserError, match=r"other settings \(no settings.json\)"):
        _plan(run, kind)
    assert _plan(run, kind, cache=True).action == FRESH


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_a_strangers_folder_is_refused_even_with_force(kind, tmp_path):
    run = _run(tmp_path, kind, checkpoint=True)
    (run / "notes.txt").write_text("mine")
    for kw in ({}, {"force": True}, {"cache": True}, {"resume": True}):
        with pytest.raises(UserError, match="notes.txt: not written by"):
            _plan(run, kind, **kw)


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_start_fresh_clears_the_earlier_run_and_records_the_settings(kind, tmp_path):
    run = _run(tmp_path, kind, checkpoint=True, finished=True)
    for name in kind.files - {"settings.json"}:
        (run / name).write_bytes(b"old")
    start_fresh(run, kind)
    assert sorted(p.name for p in run.iterdir()) == ["settings.json"]
    start_fresh(run, kind, _settings(kind, 0.2))
    assert json.loads((run / "settings.json").read_text()) == {
        **BASE[kind],
        "lr": 0.2,
        "data": "/data",
    }
    # what it recorded is what plan_run compares against
    (run / kind.checkpoint).write_bytes(b"state")
    assert _plan(run, kind, lr=0.2, resume=True).action == RESUME


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_begin_resumes_from_the_checkpoint_or_clears_and_records(kind, tmp_path):
    """begin_run acts on the plan: a resume reads the checkpoint (by the command's own reader)
    and changes nothing; a fresh start clears the earlier run and records the new settings."""
    run = _run(tmp_path, kind, checkpoint=True)
    before, read = _files(run), []
    state = runs.begin_run(
        run, kind, runs.RunPlan(RESUME), _settings(kind), lambda p: read.append(p) or "state"
    )
    assert state == "state" and read == [run / kind.checkpoint] and _files(run) == before
    assert runs.begin_run(run, kind, runs.RunPlan(FRESH), _settings(kind, 0.2), read.append) is None
    assert sorted(_files(run)) == ["settings.json"] and len(read) == 1
    assert _plan(run, kind, lr=0.2).action == FRESH  # the new run's settings, nothing else


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_finish_writes_the_record_whole_and_drops_a_checkpoint_not_kept(kind, tmp_path):
    run = _run(tmp_path, kind, checkpoint=True)
    (run / kind.product).write_bytes(b"weights")
    record = {"val": 1.5, "data": Path("/data")}
    assert runs.finish_run(run, kind, record) is record
    assert json.loads((run / kind.done).read_text()) == {"val": 1.5, "data": "/data"}
    assert (run / kind.checkpoint).exists() == kind.keeps_checkpoint
    assert _plan(run, kind).action == REUSE  # finished: reused as it is


def test_checkpoint_clock_writes_every_n_iterations_or_seconds_and_at_the_end(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(runs.time, "perf_counter", lambda: now[0])
    clock = runs.CheckpointClock(every_s=60.0, every_iters=5)
    assert [it for it in range(1, 12) if clock.due(it)] == [5, 10]
    assert clock.due(7, final=True) and not clock.due(7)
    now[0] += 60.0  # a minute since the last write: due whatever the count
    assert clock.due(7) and clock.due()
    assert clock.restart() == 160.0 and not clock.due(7)
    every_time = runs.CheckpointClock(every_s=0.0)  # SSLConfig.checkpoint_every_s = 0
    assert every_time.due() and every_time.due(3)
    capped = runs.CheckpointClock(every_s=60.0, max_share=0.02)
    capped.restart(write_s=3.0)  # a 3 s write: the next one no sooner than 150 s on
    now[0] += 149.0
    assert not capped.due()
    now[0] += 1.0
    assert capped.due()
    capped.restart(write_s=0.1)  # a quick write: back to every minute
    now[0] += 60.0
    assert capped.due()


def test_settings_diff_names_nested_keys_and_shortens_values():
    old = {"a": 1, "nerf": {"fine": {"stepsize": 0.5}, "seed": 0}, "long": "x" * 80}
    new = {"a": 1, "nerf": {"fine": {"stepsize": 2.0}, "seed": 0}, "long": "y" * 80, "b": None}
    assert settings_diff(old, new) == [
        "b: (none) -> None",
        f"long: '{'x' * 36}... -> '{'y' * 36}...",
        "nerf.fine.stepsize: 0.5 -> 2.0",
    ]
    assert settings_diff(old, old) == []


# -- run folders through the commands --------------------------------------------------------
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


def _command_settings(command: str, data: dict[str, Path]) -> dict:
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
    (out / "settings.json").write_text(json.dumps(_command_settings(other, data), default=str))
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
        (d / "settings.json").write_text(json.dumps(_command_settings(command, data), default=str))
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
