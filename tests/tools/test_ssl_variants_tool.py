"""tools/ssl_variants.py end to end on a tiny generated base: variants, curves, records."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from hw4lib import PROJECT_ROOT
from hw4lib.config import CorpusGen, get_profile
from hw4lib.data.corpus import generate_corpora
from hw4lib.report.recorded import load

SMOKE_LR = get_profile("smoke").ssl.finetune_lr


def _tool():
    spec = importlib.util.spec_from_file_location(
        "ssl_variants", PROJECT_ROOT / "tools" / "ssl_variants.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _tiny_base(root: Path) -> Path:
    return generate_corpora(
        root / "base",
        CorpusGen(mini_per_class=2, office_train_per_class=2, office_val_per_class=1, mini_size=16),
        progress=False,
    )


def _run_tool(*args: str) -> subprocess.CompletedProcess:
    """The tool as a user runs it: its exit code and its one-line errors."""
    tool = str(PROJECT_ROOT / "tools" / "ssl_variants.py")
    return subprocess.run([sys.executable, tool, *args], capture_output=True, text=True)


def test_curves_on_three_variants_share_the_resplit_pretraining(tmp_path, capsys):
    base = _tiny_base(tmp_path)
    out, rec = tmp_path / "out", tmp_path / "recorded"
    args = ["--base", str(base), "--out", str(out), "--budgets", "1,2", "--seeds", "0"]
    assert (
        _tool().main(
            args
            + [
                "--variants",
                "base,mini1,resplit3",
                "--profile",
                "smoke",
                "--record",
                str(rec),
                "--about",
                "tiny corpora",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 6 and all("C>A" in line for line in printed)  # 3 variants x 2 budgets
    for name in ("base", "mini1", "resplit3"):
        doc = json.loads((out / f"{name}.json").read_text())
        assert [r["byol_steps"] for r in doc["summary"]] == [1, 2]
        table, prov = load(f"ssl_curve_{name}", rec)
        assert prov["data"].startswith("tiny corpora: BYOL on ") and len(table) == 2
    # the cut corpus pre-trained on 1 image a class; the re-split reused the base's BYOL run
    assert "BYOL on 64 images (64 classes)" in load("ssl_curve_mini1", rec)[1]["data"]
    assert not (out / "runs" / "resplit3" / "seed0" / "pretrain_byol").exists()
    assert (out / "runs" / "base" / "seed0" / "pretrain_byol" / "backbone_step1.pt").is_file()

    # a longer run extends the recorded curve: its 2-step snapshot must equal the 2-step run
    longer = ["--base", str(base), "--out", str(tmp_path / "long"), "--budgets", "2,3"]
    more = ["--seeds", "0", "--variants", "base", "--profile", "smoke", "--merge", str(rec)]
    assert _tool().main(longer + more + ["--record", str(rec), "--about", "tiny corpora"]) == 0
    table, prov = load("ssl_curve_base", rec)
    assert list(table["byol steps"]) == [1, 2, 3]
    assert prov["merged_from"]["file"] == str(rec / "ssl_curve_base.json")
    assert prov["command"].endswith(f"--merge {rec}")

    # another fine-tuning lr: its own runs and curve beside the profile's, BYOL's run shared
    byol = out / "runs" / "base" / "seed0" / "pretrain_byol" / "run.json"
    before, curve = byol.stat().st_mtime_ns, (out / "base.json").read_bytes()
    again = args + ["--variants", "base", "--profile", "smoke", "--finetune-lr", "0.01"]
    assert _tool().main(again + ["--record", str(rec), "--about", "tiny corpora"]) == 0
    assert byol.stat().st_mtime_ns == before and (out / "base.json").read_bytes() == curve
    doc = json.loads((out / "base_lr0.01.json").read_text())
    assert doc["finetune_lr"] == 0.01 and json.loads(curve)["finetune_lr"] == SMOKE_LR
    assert doc["set"] == "base" and doc["variant"] == "base_lr0.01"
    for run in ("finetune_A_lr0.01", "finetune_C_1_lr0.01", "finetune_E_2_lr0.01"):
        settings = json.loads((out / "runs" / "base" / "seed0" / run / "settings.json").read_text())
        assert settings["lr"] == 0.01
    table, prov = load("ssl_curve_base_lr0.01", rec)
    assert "fine-tuning lr 0.01" in prov["data"] and "--finetune-lr 0.01" in prov["command"]


def test_an_unknown_variant_is_one_line_and_exit_2(tmp_path):
    out = tmp_path / "out"
    r = _run_tool("--base", str(tmp_path), "--out", str(out), "--variants", "miniabc")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines() == [
        f"error: --variants 'miniabc': unknown variant; use {tmp_path.name}, miniN, resplitK, "
        "photosK, heldoutK or generated"
    ]
    assert not (out / "data").exists()


def test_heldout_variant_takes_its_classes_out_of_the_pretraining_corpus(tmp_path):
    base = generate_corpora(
        tmp_path / "base",
        CorpusGen(mini_per_class=3, office_train_per_class=2, office_val_per_class=1, mini_size=16),
        progress=False,
    )
    tool = _tool()
    root = tool.variant_root("heldout2", base, tmp_path / "out", "smoke")
    assert root == tmp_path / "out" / "data" / "base-heldout2"
    assert not tool.on_base_pretraining("heldout2")  # its own corpus, so its own BYOL runs
    lines = (root / "mini" / "train.csv").read_text().splitlines()
    assert len(lines) - 1 == 3 * 62  # 64 classes of 3 images, less the 2 held out


def test_a_learning_rate_that_is_not_positive_is_said_before_anything_is_made(tmp_path):
    base = _tiny_base(tmp_path)
    out = tmp_path / "out"
    args = ["--base", str(base), "--out", str(out), "--variants", "mini1", "--profile", "smoke"]
    r = _run_tool(*args, "--finetune-lr", "0")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines() == [
        "error: --finetune-lr 0.0: give a positive learning rate, e.g. 0.003"
    ]
    assert not out.exists()


def test_a_missing_earlier_curve_is_said_before_anything_trains(tmp_path):
    base = _tiny_base(tmp_path)
    out, nowhere = tmp_path / "out", tmp_path / "nowhere"
    args = ["--base", str(base), "--out", str(out), "--variants", "base", "--profile", "smoke"]
    r = _run_tool(*args, "--merge", str(nowhere))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines() == [
        f"error: --merge {nowhere}: no base.json or ssl_curve_base.json there; give the --out "
        "or --record folder of the earlier curve"
    ]
    assert not (out / "runs").exists()
