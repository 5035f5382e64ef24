"""The budget curve's figure and table, from curve documents made here."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

from hw4lib.report.ssl_curve import budget_curve_figure, curve_table  # noqa: E402
from hw4lib.ssl.curve import summarize  # noqa: E402


def _doc(name: str) -> dict:
    rows = [
        {
            "seed": s,
            "byol_steps": b,
            "byol_minutes": b / 150,
            "A": 0.5,
            "C": 0.5 + b / 3000 + s / 100,
            "E": 0.45 + b / 3000,
        }
        for s in (0, 1)
        for b in (150, 450)
    ]
    return {"variant": name, "rows": rows, "summary": summarize(rows)}


def test_table_and_figure_name_each_data_set():
    docs = [_doc("mini60"), _doc("p2_dev")]
    t = curve_table(docs)
    assert list(t["data"]) == ["mini60", "mini60", "p2_dev", "p2_dev"]
    assert list(t["byol steps"]) == [150, 450, 150, 450]
    # C at 150 steps: 0.55 and 0.56 -> 0.555 ± 0.007, above A's 0.5 in both seeds
    assert t.loc[0, "C"] == "0.555 ± 0.007" and t.loc[0, "C > A"] == "2/2"
    assert t.loc[0, "E > A"] == "0/2"  # 0.5 vs A's 0.5: a tie is no win
    fig = budget_curve_figure(docs, "real photos: Tiny-ImageNet -> PACS cartoon")
    axes = fig.get_axes()
    assert len(axes) == 2  # one panel a data set, no twin axes
    assert [a.get_title() for a in axes] == ["mini60 (2 seeds)", "p2_dev (2 seeds)"]
    assert "PACS cartoon" in fig._suptitle.get_text()
    labels = axes[0].get_legend_handles_labels()[1]
    assert labels == ["A: from scratch", "C: BYOL, full fine-tuning", "E: BYOL, frozen + linear"]


def test_a_merged_curve_says_its_seeds_a_budget():
    doc = _doc("p2_dev")
    doc["rows"] = [r for r in doc["rows"] if (r["seed"], r["byol_steps"]) != (1, 450)]
    doc["summary"] = summarize(doc["rows"])
    assert [r["seeds"] for r in doc["summary"]] == [2, 1]
    (ax,) = budget_curve_figure([doc], "merged").get_axes()
    assert ax.get_title() == "p2_dev (1–2 seeds a budget)"
    assert list(curve_table([doc])["C > A"]) == ["2/2", "1/1"]


def test_a_recorded_curve_reads_back_with_its_provenance_and_findings(tmp_path):
    from hw4lib.report import recorded
    from hw4lib.report.ssl_curve import budget_findings, record_curve, recorded_curves

    doc = _doc("mini60")
    record_curve(
        doc, "mini60: 64 classes -> cartoon", "python tools/ssl_variants.py", 12.3, tmp_path
    )
    table, prov = recorded.load("ssl_curve_mini60", tmp_path)
    assert prov["data"] == "mini60: 64 classes -> cartoon" and prov["minutes"] == 12.3
    assert all(prov[k] for k in recorded.PROVENANCE) and "cores" in prov["cpu"]
    assert list(table["byol steps"]) == [150, 450]
    # a recorded result that is not a curve (an A-E table) is not read as one
    (tmp_path / "ssl_ae_other.csv").write_text("setting,val acc (ours)\nA,0.5\n")
    prov = dict.fromkeys(recorded.PROVENANCE, "x")
    (tmp_path / "ssl_ae_other.json").write_text(json.dumps(prov))
    (back,) = recorded_curves(tmp_path)
    assert back["summary"] == doc["summary"]
    # C beats A in both seeds at both budgets; E only at 450 (0.6 vs 0.5), ties A at 150
    (line,) = budget_findings([back])
    assert line.startswith("mini60: both hold in every seed from 450 BYOL steps")
    assert "150 steps (1.0 min): C>A 2/2, E>A 0/2" in line
    never = {**back, "summary": back["summary"][:1]}
    assert "do not both hold" in budget_findings([never])[0]


def test_curves_at_two_lrs_are_rows_and_their_sets_columns():
    docs = [_doc("p2_dev_lr0.0003"), _doc("photos7_lr0.0003"), _doc("p2_dev")]
    docs[0] |= {"finetune_lr": 3e-4, "set": "p2_dev"}
    docs[1] |= {"finetune_lr": 3e-4, "set": "photos7"}
    docs[2]["finetune_lr"] = 3e-3
    axes = budget_curve_figure(docs, "two lrs").get_axes()
    assert [a.get_title() for a in axes] == [
        "p2_dev (2 seeds)",  # the higher lr's row first
        "",  # no photos7 curve at lr 0.003: an empty panel, not a shifted one
        "p2_dev_lr0.0003 (2 seeds)",
        "photos7_lr0.0003 (2 seeds)",
    ]
    assert not axes[1].axison and axes[2].get_position().x0 == axes[0].get_position().x0
    assert list(curve_table(docs)["fine-tuning lr"]) == ["0.0003"] * 4 + ["0.003"] * 2
