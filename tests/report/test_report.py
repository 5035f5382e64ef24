"""The report layer: tables, findings, the figure catalogue, provenance."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from hw4lib import PROJECT_ROOT
from hw4lib.report import assemble, catalog, datadesc, ssl_report
from hw4lib.report.tables import figures_dir, save_table, to_markdown
from hw4lib.results import write_result
from hw4lib.ssl import study


def test_figures_readme_lists_every_catalogued_item():
    published = PROJECT_ROOT / "figures"
    readme = (published / "README.md").read_text()
    assert readme == catalog.readme_text(datadesc.recorded(published))
    for it in catalog.ITEMS:
        assert f"`{it.stem}.{it.formats[0]}`" in readme


def test_runs_never_write_the_committed_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("HW4_FIGURES", raising=False)
    assert figures_dir("smoke") == tmp_path / "reports" / "smoke" / "figures"
    assert figures_dir("quick") == tmp_path / "reports" / "quick" / "figures"


def test_publish_copies_catalogued_files_only(tmp_path):
    src, dest = tmp_path / "run", tmp_path / "figures"
    src.mkdir()
    (src / "ssl_ae_table.md").write_text("new table")
    (src / "scratch.png").write_bytes(b"not catalogued")
    dest.mkdir()
    (dest / "activation_2d.png").write_bytes(b"kept")
    (dest / "ssl_ae_table.md").write_text("old table")
    assert catalog.publish(src, dest) == [dest / "ssl_ae_table.md"]
    assert (dest / "ssl_ae_table.md").read_text() == "new table"
    assert (dest / "activation_2d.png").read_bytes() == b"kept"  # absent from the run: kept
    assert not (dest / "scratch.png").exists()
    assert (dest / "README.md").read_text() == catalog.readme_text({})
    # what the items show travels with them: the notebooks' data.json, named in the README
    datadesc.record(src, "ssl", "generated office corpus, 65 classes x 12, ResNet10 at 64 px")
    assert dest / "data.json" in catalog.publish(src, dest)
    readme = (dest / "README.md").read_text()
    assert (
        "| 05_downstream_AE | generated office corpus, 65 classes x 12, ResNet10 at 64 px |"
        in readme
    )
    assert "Office-Home validation accuracy" not in readme
    assert not list(dest.glob("*.tmp"))


def test_publish_refuses_nothing_and_other_profiles(tmp_path, capsys):
    from hw4lib.cli import main
    from hw4lib.errors import UserError

    with pytest.raises(UserError, match="no figures or tables to publish"):
        catalog.publish(tmp_path, tmp_path / "figures")
    assert not (tmp_path / "figures").exists()
    assert main(["report", "--profile", "smoke", "--publish"]) == 2
    assert "quick profile's figures" in capsys.readouterr().err


def test_save_table_writes_three_formats(tmp_path):
    df = pd.DataFrame({"setting": ["A", "C"], "acc": [0.25, float("nan")]})
    with pytest.raises(ValueError, match="name the data"):
        save_table(df, "t", tmp_path)
    csv, md, tex = save_table(df, "t", tmp_path, data="generated hotdog, 100 px")
    assert pd.read_csv(csv)["setting"].tolist() == ["A", "C"]
    assert md.read_text().splitlines() == [
        "Data: generated hotdog, 100 px",
        "",
        "| setting | acc |",
        "|---|---|",
        "| A | 0.250 |",
        "| C | — |",
    ]
    assert "A & 0.250" in tex.read_text() and "--" in tex.read_text()
    assert tex.read_text().startswith("% data: generated hotdog, 100 px\n")
    df.attrs["data"] = "from the builder"  # the report's table builders set it
    assert save_table(df, "u", tmp_path)[1].read_text().startswith("Data: from the builder\n")
    assert to_markdown(df).count("\n") == 4


def _study(accs):
    return pd.DataFrame(
        {
            "setting": list(accs),
            "pre-training": "x",
            "fine-tuning": "y",
            "val_acc": list(accs.values()),
            "val_acc_std": 0.0,
            "seeds": 1,
        }
    )


def _ae(accs):
    return ssl_report.ae_table(_study(accs), data="generated office corpus, test")


def test_findings_check_each_claim_against_the_numbers(monkeypatch):
    lines = ssl_report.findings(_ae({"A": 0.2, "B": 0.3, "C": 0.5, "D": 0.35, "E": 0.1}))
    assert lines[0] == "best setting: C (0.500); the report's best is C (0.585)"
    assert "(C > A): holds (C 0.500 vs A 0.200; the report: C 0.585 vs A 0.162)" in lines[1]
    assert "(E > A): does NOT hold (E 0.100 vs A 0.200" in lines[2]
    assert "(E > D): does NOT hold" in lines[4]
    assert ssl_report.findings(_ae({"A": 0.2}))[1].endswith("not measured")
    # a tie is no win, though two means of the same counts differ in their last bit
    tie = ssl_report.findings(_ae({"A": 0.2, "B": 0.6095238095238095, "C": 0.6095238095238096}))
    assert "(C > B): does NOT hold (C 0.610 vs B 0.610" in tie[3]
    assert tie[0].startswith("best setting: B = C (0.610);")
    # the report's numbers are read from hw4lib.reference, never typed into the findings
    monkeypatch.setitem(ssl_report.AE_ACC, "B", 0.9)
    lines = ssl_report.findings(_ae({"A": 0.2, "B": 0.3, "C": 0.5}))
    assert lines[0].endswith("the report's best is B (0.900)")
    assert "the report: C 0.585 vs B 0.900" in lines[3]


def _run(val_loss, val_acc):
    return {
        "history": [
            {"epoch": e + 1, "val_loss": v, "val_acc": a}
            for e, (v, a) in enumerate(zip(val_loss, val_acc))
        ]
    }


def test_curve_findings_check_early_overfitting_and_instability():
    falling = _run([2.0, 1.5, 1.2, 1.0], [0.1, 0.2, 0.3, 0.35])
    early = _run([2.0, 1.0, 1.4, 1.8], [0.1, 0.3, 0.3, 0.3])
    shaky = _run([2.0, 1.5, 1.2, 1.1], [0.1, 0.5, 0.1, 0.5])
    runs = {"A": early, "B": falling, "C": falling, "D": shaky, "E": falling}
    lines = ssl_report.curve_findings(runs)
    assert lines[0] == (
        "A overfits early (seed 0): holds "
        "(lowest val loss 1.000 at epoch 2 of 4; 1.800 at the last)"
    )
    assert lines[1].startswith(
        "B overfits early (seed 0): does NOT hold (lowest val loss 1.000 at epoch 4"
    )
    assert lines[2].startswith("D overfits early (seed 0): does NOT hold")
    assert "least stable across epochs (seed 0): holds (sd D 0.231; A 0.100" in lines[3]
    assert (
        lines[4].startswith("D less stable than B")
        and ": holds (sd D 0.231 vs B 0.111)" in lines[4]
    )
    # lowest near the end (epoch 3 of 4) is not "early"; nor a minimum the curve stays at
    assert not ssl_report.overfits_early(_run([2.0, 1.5, 1.0, 1.1], [0.1] * 4))[0]
    assert not ssl_report.overfits_early(_run([2.0, 1.0, 1.0, 1.0], [0.1] * 4))[0]
    runs["A"] = shaky
    assert (
        "least stable across epochs (seed 0): does NOT hold" in ssl_report.curve_findings(runs)[3]
    )
    # findings() adds them when given the runs
    table = _ae({"A": 0.2, "B": 0.3, "C": 0.5, "D": 0.35, "E": 0.1})
    assert ssl_report.findings(table, runs)[5:] == ssl_report.curve_findings(runs)


def test_ae_table_puts_the_reports_numbers_beside_ours():
    t = _ae({"A": 0.2, "C": 0.5})
    assert t["val acc (report)"].tolist() == [0.162, 0.585]
    assert t["val acc (ours)"].tolist() == [0.2, 0.5]
    assert t.attrs["data"] == "ours: generated office corpus, test; report: " + ssl_report.AE_DATA
    assert "sd (seeds)" not in t.columns and t["seeds"].tolist() == [1, 1]  # one seed: no ±
    three = _study({"A": 0.2, "C": 0.5}).assign(val_acc_std=[0.01, 0.02], seeds=3)
    assert ssl_report.ae_table(three, "x")["sd (seeds)"].tolist() == [0.01, 0.02]
    # the raw rows carry no report numbers: they are added once, here
    assert not any("report" in c for c in _study({"A": 0.2}).columns)


def test_study_table_gives_mean_and_sample_sd_over_seeds(tmp_path):
    for seed, acc in enumerate((0.5, 0.6, 0.7)):
        d = tmp_path / f"seed{seed}" / "finetune_C"
        d.mkdir(parents=True)
        (d / "run.json").write_text(
            json.dumps(
                {"kind": "finetune", "setting": "C", "best_val_acc": acc, "final_val_acc": acc}
            )
        )
    row = study.table(tmp_path).iloc[0]
    assert row["seeds"] == 3 and row["val_acc"] == pytest.approx(0.6)
    assert row["val_acc_std"] == pytest.approx(0.1)  # sample sd (n - 1), by hand
    assert "report" not in study.table(tmp_path).columns
    text = ssl_report.format_table(ssl_report.ae_table(study.table(tmp_path), "x"))
    assert "0.600±0.100" in text and text.splitlines()[1].endswith("0.585")


def test_provenance_reads_every_manifest(tmp_path):
    write_result(
        "ssl/finetune_A",
        {"x": 1},
        profile="smoke",
        data_source="generated:smoke",
        device="cpu",
        seconds=2.0,
    )
    prov = assemble.provenance("smoke")
    assert prov["result"].tolist() == ["ssl/finetune_A"]
    assert prov.loc[0, "data"] == "generated:smoke" and prov.loc[0, "seconds"] == 2.0
    assert "scene_hotdog" in assemble.missing(tmp_path)
