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
