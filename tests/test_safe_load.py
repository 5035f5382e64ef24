"""Opening someone else's run never runs their code: every checkpoint is read with
``torch.load(weights_only=True)`` (through ``hw4lib.results.load_checkpoint``).

A crafted pickle whose unpickling would create a marker file is put in a run as ``fine.pt``,
``checkpoint.pt``, ``last.pt``, ``best.pt`` or ``backbone.pt``; so are a truncated copy of the
genuine file and a genuine torch file that is not ours. Every command that reads that file
exits 2 with one line naming it, the marker never appears, and nothing in the run (or where
the command would write) is created, changed or deleted. Runs made by the current code still
load. The runs are tiny (smoke profile, 16 px data) and trained once for the whole module.
"""

from __future__ import annotations

import ast
import contextlib
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from hw4lib import PROJECT_ROOT
from hw4lib.cli import main
from hw4lib.config import CorpusGen
from hw4lib.errors import UserError


# -- the crafted file ----------------------------------------------------------------------
class _Payload:
    """Unpickling this calls ``exec``: the attack a shared checkpoint can carry."""

    def __init__(self, marker: Path):
        self.code = f"open({str(marker)!r}, 'w').close()"

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return exec, (self.code,)


def _write_bad(kind: str, path: Path, genuine: bytes, marker: Path) -> None:
    """Replace ``path`` with a bad file of ``kind``."""
    if kind == "payload":  # what torch.save writes (a zip), holding the payload
        torch.save({"state": _Payload(marker), "args": {}, "model": {}}, path)
    elif kind == "bare_pickle":  # torch's legacy format: a plain pickle stream
        path.write_bytes(pickle.dumps(_Payload(marker)))
    elif kind == "truncated":  # the genuine file, cut short (a torn copy or download)
        path.write_bytes(genuine[: len(genuine) // 2])
    elif kind == "foreign":  # a sound torch file that is not one of this project's
        torch.save({"weights": torch.zeros(3)}, path)
    else:
        raise AssertionError(kind)


def test_the_payload_is_live(tmp_path):
    """Guard against a vacuous test: an unrestricted load of either payload runs it."""
    for kind in ("payload", "bare_pickle"):
        marker = tmp_path / f"ran-{kind}"
        f = tmp_path / f"{kind}.pt"
        _write_bad(kind, f, b"", marker)
        with contextlib.suppress(Exception):  # the bare pickle then fails torch's magic check
            torch.load(f, map_location="cpu", weights_only=False)
        assert marker.exists(), kind


# -- tiny runs made by the current code, once for the module --------------------------------
@pytest.fixture(scope="module")
def nerf(tmp_path_factory) -> dict[str, Any]:
    """An interrupted DVGO run (``checkpoint.pt``) and the same run resumed to the end."""
    from hw4lib.data.scene import generate_scene
    from hw4lib.nerf import train as T
    from hw4lib.nerf.run import TrainRequest, train_run

    root = tmp_path_factory.mktemp("nerf")
    scene = generate_scene(
        root / "scene", "hotdog", size=16, n_train=4, n_val=1, supersample=1, progress=False
    )
    run = root / "run"
    # stop after the first checkpoint as a kill would (a NaN loss keeps checkpoint.pt)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(T, "CKPT_EVERY", 5)
        real, calls = T.R.photometric_loss, [0]

        def flaky(pred, target):
            calls[0] += 1
            loss = real(pred, target)
            return loss * float("nan") if calls[0] == 8 else loss

        mp.setattr(T.R, "photometric_loss", flaky)
        with pytest.raises(UserError, match="NaN"):
            train_run(TrainRequest(scene, run, "smoke", device="cpu"), progress=False)
    interrupted = root / "interrupted"
    shutil.copytree(run, interrupted)
    rc = main(
        [
            "nerf",
            "train",
            "--data",
            str(scene),
            "--out",
            str(run),
            "--resume",
            "--profile",
            "smoke",
            "--device",
            "cpu",
        ]
    )
    return {"scene": scene, "interrupted": interrupted, "finished": run, "resume_rc": rc}


@pytest.fixture(scope="module")
def ssl(tmp_path_factory) -> dict[str, Any]:
    """A one-epoch BYOL run and setting C fine-tuned from it, both through the CLI."""
    from hw4lib.data.corpus import generate_corpora

    root = tmp_path_factory.mktemp("ssl")
    data = generate_corpora(
        root / "data",
        CorpusGen(mini_per_class=1, office_train_per_class=1, office_val_per_class=1, mini_size=16),
        progress=False,
    )
    byol, fine = root / "byol", root / "C"
    rc_pre = main(
        [
            "ssl",
            "pretrain",
            "--data",
            str(data),
            "--out",
            str(byol),
            "--epochs",
            "1",
            "--profile",
            "smoke",
            "--device",
            "cpu",
        ]
    )
    rc_ft = main(
        [
            "ssl",
            "finetune",
            "--setting",
            "C",
            "--data",
            str(data),
            "--out",
            str(fine),
            "--backbone",
            str(byol),
            "--epochs",
            "1",
            "--profile",
            "smoke",
            "--device",
            "cpu",
        ]
    )
    return {"data": data, "byol": byol, "C": fine, "rc": (rc_pre, rc_ft)}


# -- each command that reads a run: (run to copy, file it reads, argv, where it would write) --
Argv = Callable[[Path, Path], list[str]]  # (the run's copy, a scratch folder) -> argv


def _cases(nerf: dict, ssl: dict) -> dict[str, tuple[Path, str, Argv, str | None]]:
    cpu = ["--device", "cpu"]
    data = str(ssl["data"])
    return {
        "nerf render": (
            nerf["finished"],
            "fine.pt",
            lambda run, tmp: (
                [
                    "nerf",
                    "render",
                    "--run",
                    str(run),
                    "--transforms",
                    str(nerf["scene"] / "transforms_val.json"),
                    "--out",
                    str(tmp / "out"),
                ]
                + cpu
            ),
            "out",
        ),
        "nerf train --resume": (
            nerf["interrupted"],
            "checkpoint.pt",
            lambda run, tmp: (
                [
                    "nerf",
                    "train",
                    "--data",
                    str(nerf["scene"]),
                    "--out",
                    str(run),
                    "--resume",
                    "--profile",
                    "smoke",
                ]
                + cpu
            ),
            None,
        ),
        "ssl pretrain --resume": (
            ssl["byol"],
            "last.pt",
            lambda run, tmp: (
                [
                    "ssl",
                    "pretrain",
                    "--data",
                    data,
                    "--out",
                    str(run),
                    "--epochs",
                    "1",
                    "--resume",
                    "--profile",
                    "smoke",
                ]
                + cpu
            ),
            None,
        ),
        "ssl finetune --resume": (
            ssl["C"],
            "last.pt",
            lambda run, tmp: (
                [
                    "ssl",
                    "finetune",
                    "--setting",
                    "C",
                    "--data",
                    data,
                    "--out",
                    str(run),
                    "--backbone",
                    str(ssl["byol"]),
                    "--epochs",
                    "1",
                    "--resume",
                    "--profile",
                    "smoke",
                ]
                + cpu
            ),
            None,
        ),
        "ssl finetune --backbone RUN": (
            ssl["byol"],
            "backbone.pt",
            lambda run, tmp: (
                [
                    "ssl",
                    "finetune",
                    "--setting",
                    "C",
                    "--data",
                    data,
                    "--out",
                    str(tmp / "out"),
                    "--backbone",
                    str(run),
                    "--epochs",
                    "1",
                    "--profile",
                    "smoke",
                ]
                + cpu
            ),
            "out",
        ),
        "ssl predict": (
            ssl["C"],
            "best.pt",
            lambda run, tmp: (
                [
                    "ssl",
                    "predict",
                    "--run",
                    str(run),
                    "--csv",
                    str(ssl["data"] / "office" / "val.csv"),
                    "--images",
                    str(ssl["data"] / "office" / "val"),
                    "--out",
                    str(tmp / "out.csv"),
                ]
                + cpu
            ),
            "out.csv",
        ),
    }


COMMANDS = [
    "nerf render",
    "nerf train --resume",
    "ssl pretrain --resume",
    "ssl finetune --resume",
    "ssl finetune --backbone RUN",
    "ssl predict",
]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize("kind", ["payload", "bare_pickle", "truncated", "foreign"])
@pytest.mark.parametrize("command", COMMANDS)
def test_a_bad_checkpoint_is_refused_and_never_run(command, kind, nerf, ssl, tmp_path, capsys):
    src, name, argv, writes = _cases(nerf, ssl)[command]
    run = tmp_path / "run"
    shutil.copytree(src, run)
    bad, marker = run / name, tmp_path / "MARKER-the-file-ran-code"
    _write_bad(kind, bad, (src / name).read_bytes(), marker)
    before = _snapshot(run)
    capsys.readouterr()

    try:
        rc: int | str = main(argv(run, tmp_path))
    except Exception as e:  # noqa: BLE001 -- an unsafe loader may then trip over what it got
        rc = repr(e)

    err = capsys.readouterr().err
    assert not marker.exists(), "loading the checkpoint ran code from it"
    assert rc == 2, (command, kind, err)
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and err.rstrip().endswith(errors[0]), err
    assert str(bad) in errors[0] and "Traceback" not in err, err
    if kind != "foreign":  # (a foreign file is refused by the checks of what it holds)
        assert "not a checkpoint this project wrote" in errors[0] and "damaged" in errors[0]
        assert ("truncated" if kind == "truncated" else "refused") in errors[0], errors[0]
    assert _snapshot(run) == before, "the run folder was changed"
    assert writes is None or not (tmp_path / writes).exists(), "output was written"


def test_a_truncated_dvgo_checkpoint_names_the_file_and_the_fix(nerf, tmp_path, capsys):
    """The related issue: --resume from a torn checkpoint.pt was a traceback and exit 1."""
    run = tmp_path / "run"
    shutil.copytree(nerf["interrupted"], run)
    ck = run / "checkpoint.pt"
    ck.write_bytes(ck.read_bytes()[:1000])
    capsys.readouterr()
    assert (
        main(
            [
                "nerf",
                "train",
                "--data",
                str(nerf["scene"]),
                "--out",
                str(run),
                "--resume",
                "--profile",
                "smoke",
                "--device",
                "cpu",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err == err.splitlines()[-1] and err.startswith(f"error: {ck}: damaged"), err
    assert f"delete {ck} and rerun without --resume" in err
    assert ck.stat().st_size == 1000  # kept, for the user to delete


# -- what the current code writes still loads ----------------------------------------------
def test_runs_made_by_the_current_code_load(nerf, ssl, tmp_path, capsys):
    assert nerf["resume_rc"] == 0 and ssl["rc"] == (0, 0)  # resume, --backbone RUN
    files = [
        nerf["interrupted"] / "checkpoint.pt",
        nerf["finished"] / "coarse.pt",
        nerf["finished"] / "fine.pt",
        ssl["byol"] / "last.pt",
        ssl["byol"] / "backbone.pt",
        ssl["C"] / "last.pt",
        ssl["C"] / "best.pt",
    ]
    for f in files:
        assert isinstance(torch.load(f, map_location="cpu", weights_only=True), dict), f
    data = ssl["data"]
    assert (
        main(
            [
                "nerf",
                "render",
                "--run",
                str(nerf["finished"]),
                "--transforms",
                str(nerf["scene"] / "transforms_val.json"),
                "--out",
                str(tmp_path / "r"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert (tmp_path / "r" / "r_0.png").is_file()
    assert (
        main(
            [
                "ssl",
                "predict",
                "--run",
                str(ssl["C"]),
                "--csv",
                str(data / "office" / "val.csv"),
                "--images",
                str(data / "office" / "val"),
                "--out",
                str(tmp_path / "p.csv"),
            ]
        )
        == 0
    )
    for src, argv in [
        (ssl["byol"], ["ssl", "pretrain", "--data", str(data)]),
        (
            ssl["C"],
            [
                "ssl",
                "finetune",
                "--setting",
                "C",
                "--data",
                str(data),
                "--backbone",
                str(ssl["byol"]),
            ],
        ),
    ]:
        run = tmp_path / src.name
        shutil.copytree(src, run)
        assert (
            main(
                argv
                + [
                    "--out",
                    str(run),
                    "--epochs",
                    "1",
                    "--resume",
                    "--profile",
                    "smoke",
                    "--device",
                    "cpu",
                ]
            )
            == 0
        ), capsys.readouterr().err


# -- the one loader --------------------------------------------------------------------------
def _torch_loads(path: Path) -> list[ast.Call]:
    tree = ast.parse(path.read_text())
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr == "load"
        and isinstance(n.func.value, ast.Name)
        and n.func.value.id == "torch"
    ]


def test_every_torch_load_is_weights_only_and_runs_use_the_one_loader():
    lib = PROJECT_ROOT / "hw4lib"
    for py in lib.rglob("*.py"):
        for call in _torch_loads(py):
            kw = {k.arg: k.value for k in call.keywords}
            wo = kw.get("weights_only")
            assert isinstance(wo, ast.Constant) and wo.value is True, (
                f"{py}:{call.lineno}: torch.load without weights_only=True"
            )
        if py.parent.name in ("nerf", "ssl"):  # run files: only via results.load_checkpoint
            assert not _torch_loads(py), f"{py}: call hw4lib.results.load_checkpoint instead"
