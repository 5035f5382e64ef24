"""tools/record_ssl_study.py: a finished A-E study becomes a recorded result (the table over
seeds, the loss curves, the report's claims checked); bad input is one line and exit 2."""

from __future__ import annotations

import importlib.util
import json

import pytest

from hw4lib import PROJECT_ROOT
from hw4lib.report import recorded, ssl_report

spec = importlib.util.spec_from_file_location(
    "record_ssl_study", PROJECT_ROOT / "tools/record_ssl_study.py"
)
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)

ACC = {
    "A": (0.50, 0.54),
    "B": (0.52, 0.52),
    "C": (0.60, 0.64),
    "D": (0.40, 0.50),
    "E": (0.55, 0.45),
}


def _run(folder, setting: str, acc: float, seconds: float) -> None:
    folder.mkdir(parents=True)
    # D's val loss bottoms out early and rises: it overfits early; the others keep falling
    vl = [1.0, 0.8, 0.9, 1.1] if setting == "D" else [1.0, 0.9, 0.8, 0.7]
    history = [
        {"epoch": e + 1, "train_loss": 1.0 - 0.1 * e, "val_loss": v, "val_acc": acc}
        for e, v in enumerate(vl)
    ]
    doc = {"kind": "finetune", "setting": setting, "best_val_acc": acc, "final_val_acc": acc}
    (folder / "run.json").write_text(json.dumps({**doc, "history": history, "seconds": seconds}))


@pytest.fixture
def study(tmp_path):
    runs = tmp_path / "runs"
    for seed, sub in ((0, runs), (1, runs / "seed1")):
        for s, accs in ACC.items():
            _run(sub / f"finetune_{s}", s, accs[seed], 30.0)
    (runs / "pretrain_byol").mkdir()
    (runs / "pretrain_byol" / "run.json").write_text('{"kind": "pretrain", "seconds": 300}')
    return tmp_path


def _args(tmp_path, runs="runs"):
    return [
        *("--name", "real", "--runs", str(tmp_path / runs), "--data", "real photos"),
        *("--command", "hw4 ssl study ...", "--root", str(tmp_path / "recorded")),
    ]


def test_a_finished_study_is_recorded_with_its_claims(study):
    assert tool.main(_args(study)) == 0
    root = study / "recorded"
    table, prov = recorded.load("ssl_ae_real", root)
    acc = dict(zip(table["setting"], table[ssl_report.OURS]))
    assert acc["C"] == pytest.approx(0.62) and acc["E"] == pytest.approx(0.50)
    sd = dict(zip(table["setting"], table["sd (seeds)"]))
    assert sd["A"] == pytest.approx(0.04 / 2**0.5)  # sample sd of two seeds
    assert prov["minutes"] == 10.0  # 10 fine-tunings x 30 s + 300 s of pre-training
    assert "D overfits early (seed 0): holds" in " ".join(prov["curve_findings"])
    assert "A overfits early (seed 0): does NOT hold" in " ".join(prov["curve_findings"])
    lines = ssl_report.recorded_findings(root)
    assert any("C > A): holds (C 0.620 vs A 0.520" in line for line in lines)
    assert any("E > A): does NOT hold" in line for line in lines)
    assert any("D overfits early" in line for line in lines)
    assert [len(objs) for objs in recorded.display_objects("ssl_ae", root)] == [3]  # + figure


def test_an_unfinished_study_is_one_line_and_writes_nothing(study, capsys):
    (study / "runs" / "finetune_E" / "run.json").unlink()
    (study / "runs" / "seed1" / "finetune_E" / "run.json").unlink()
    assert tool.main(_args(study)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no finished fine-tuning run of setting E" in err
    assert not (study / "recorded").exists()


def _made_elsewhere(tmp_path, lr_of_d: float = 3e-3):
    """A budget curve's A, C and E (seeds 0 and 1) and a control's B and D, in their own
    layouts, each run.json saying its setting, seed and training settings."""
    for seed in (0, 1):
        for s, accs in ACC.items():
            sub = "curve/seed{}/finetune_{}" if s in "ACE" else "control/seed{}/finetune_{}"
            folder = tmp_path / sub.format(seed, s + ("_2000" if s in "CE" else ""))
            _run(folder, s, accs[seed], 30.0)
            doc = json.loads((folder / "run.json").read_text())
            lr = lr_of_d if s == "D" else 3e-3
            doc["settings"] = {"seed": seed, "profile": "quick", "steps": 450, "lr": lr}
            (folder / "run.json").write_text(json.dumps(doc))
        (tmp_path / f"curve/seed{seed}/finetune_C_1000").mkdir()  # another budget: not taken


def _takes(tmp_path):
    c, k = tmp_path / "curve", tmp_path / "control"
    return [
        *("--seeds", "0,1", "--take", f"A={c}/seed{{seed}}/finetune_A"),
        *("--take", f"C={c}/seed{{seed}}/finetune_C_2*", "--take", f"E={c}/seed{{seed}}/*E_2000"),
        *("--take", f"B={k}/seed{{seed}}/finetune_B", "--take", f"D={k}/seed{{seed}}/finetune_D"),
    ]


def test_a_study_assembled_from_runs_elsewhere_is_recorded_as_one(tmp_path):
    _made_elsewhere(tmp_path)
    assert tool.main(_args(tmp_path, "assembled") + _takes(tmp_path)) == 0
    table, prov = recorded.load("ssl_ae_real", tmp_path / "recorded")
    acc = dict(zip(table["setting"], table[ssl_report.OURS]))
    assert acc == pytest.approx({"A": 0.52, "B": 0.52, "C": 0.62, "D": 0.45, "E": 0.50})
    assert set(table["seeds"]) == {2}
    assert prov["minutes"] == 5.0  # the ten fine-tunings copied, 30 s each


@pytest.mark.parametrize(
    "spoil, says",
    [
        (lambda t: _made_elsewhere(t, lr_of_d=3e-4), "lr = 0.0003, but setting A's run"),
        (lambda t: (_made_elsewhere(t), (t / "curve/seed1/finetune_C_2001").mkdir()), "2 folders"),
        (lambda t: None, "0 folders for seed 0"),
    ],
)
def test_a_bad_assembly_is_one_line_and_writes_nothing(tmp_path, capsys, spoil, says):
    spoil(tmp_path)
    assert tool.main(_args(tmp_path, "assembled") + _takes(tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and says in err, err
    assert not (tmp_path / "assembled").exists() and not (tmp_path / "recorded").exists()
