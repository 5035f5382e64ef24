"""The report's figures name their data and scale; the sweep figure has one axis per metric."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")  # no display: before pyplot is imported (by hw4lib.report.figures)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from hw4lib.config import get_profile  # noqa: E402
from hw4lib.data.generated import generated_root  # noqa: E402
from hw4lib.reference import DVGO_TABLE  # noqa: E402
from hw4lib.report import datadesc, figures, nerf_report, recorded  # noqa: E402

DATA = "generated hotdog, 100 px, 10 val views, 1300 fine steps"


def _texts(fig) -> str:
    """Every title, axis label, legend entry and tick label of ``fig``."""
    parts = [fig._suptitle.get_text() if fig._suptitle else ""]
    for ax in fig.axes:
        parts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        parts += [t.get_text() for t in ax.get_xticklabels()]
        if ax.get_legend():
            parts += [t.get_text() for t in ax.get_legend().get_texts()]
    for lg in fig.legends:
        parts += [t.get_text() for t in lg.get_texts()]
    return "\n".join(parts)


def _sweep_df() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "stepsize": [0.5, 2.0, 4.0, 0.5, 0.5],
            "fine_voxels": [80**3] * 3 + [60**3, 40**3],
            "fine_side": [80, 80, 80, 60, 40],
            "psnr": [30.1, 29.5, 28.0, 30.0, 29.2],
            "ssim": [0.95, 0.94, 0.92, 0.95, 0.94],
            "lpips": [0.05, 0.06, 0.08, 0.05, 0.06],
            "train_s": [60.0, 40.0, 30.0, 50.0, 45.0],
        }
    )


def test_sweep_figure_has_one_axis_per_metric_with_both_lines_and_a_legend():
    fig = figures.sweep_metrics(_sweep_df(), DATA, DVGO_TABLE)
    # 2 rows (step size, voxels) x 3 metrics; a twin axis would be a seventh, sharing x
    assert len(fig.axes) == 6
    for ax in fig.axes:
        assert len(ax._twinned_axes.get_siblings(ax)) == 1  # no twinx
        ours, report = ax.get_lines()[:2]
        # ours and the report's on the same y scale: the axis spans both
        lo, hi = ax.get_ylim()
        for line in (ours, report):
            y = np.asarray(line.get_ydata(), float)
            assert lo <= y.min() and y.max() <= hi
    psnr_step = fig.axes[0]
    assert psnr_step.get_ylabel().startswith("PSNR")
    assert list(psnr_step.get_lines()[1].get_ydata()) == [35.180, 32.386, 28.413]
    assert fig.legends, "the figure needs a legend telling ours from the report's"
    text = _texts(fig)
    assert DATA in fig._suptitle.get_text()
    assert f"ours ({DATA})" in text and "report: Blender hotdog, 800 px" in text
    assert "(report 160³)" in text  # the voxel axis names both counts
    plt.close(fig)


def _history(key, values):
    return [{"epoch": i + 1, key: v} for i, v in enumerate(values)]


def test_every_figure_names_its_data():
    runs = {
        s: {"history": [{"epoch": 1, "train_loss": 2, "val_loss": 2.1, "val_acc": 0.1}]}
        for s in "ABCDE"
    }
    byol = {"history": _history("loss", [4.0, 1.0]) + [{"epoch": 2, "knn": 0.2}]}
    sup = {"history": _history("loss", [4.2, 3.0]) + [{"epoch": 2, "knn": 0.4}]}
    img = np.zeros((8, 8, 3))
    fits = {
        m: {"image": img, "abs_error": np.ones((8, 8)), "psnr": 20.0} for m in ("pre", "in", "post")
    }
    ssl = "generated office corpus, 65 classes x 12 train / 3 val, ResNet10 at 64 px"
    made = [
        figures.pretrain_curves(byol, sup, ssl),
        figures.finetune_losses(runs, ssl),
        figures.finetune_accuracy(runs, ssl),
        figures.image_grid([img], ["x"], 1, DATA),
        figures.training_curves({"loss": [1, 0.5], "psnr": [10, 12], "seconds": [1, 2]}, 1, DATA),
        figures.activation_fits(img, fits, DATA),
        figures.val_renders([img], [img], [img[..., 0]], ["r_0"], DATA),
        figures.sweep_strip(
            [{"label": "step 4", "image": img, "psnr": 20, "seconds": 3}], img, "r_0", DATA
        ),
    ]
    for fig, data in zip(made, [ssl] * 3 + [DATA] * 5):
        assert data in fig._suptitle.get_text(), fig._suptitle.get_text()
        assert "Office-Home" not in _texts(fig)  # generated data is never called Office-Home
        plt.close(fig)
    with pytest.raises(ValueError, match="name the data"):
        figures.finetune_accuracy(runs, "")


def test_pretraining_losses_on_separate_axes():
    byol = {"history": _history("loss", [4.0, 1.0])}
    sup = {"history": _history("loss", [4.2, 3.0])}
    fig = figures.pretrain_curves(byol, sup, "d")
    loss_axes = [ax for ax in fig.axes if "loss" in ax.get_ylabel() or "entropy" in ax.get_ylabel()]
    assert [ax.get_ylabel() for ax in loss_axes] == ["BYOL loss (2 - 2 cos)", "cross-entropy"]
    assert all(len(ax.get_lines()) == 1 for ax in loss_axes)
    plt.close(fig)


def test_activation_figure_shows_the_target_and_a_colour_bar():
    img = np.random.default_rng(0).random((8, 8, 3))
    fits = {
        m: {"image": img, "abs_error": np.ones((8, 8)) * k, "psnr": 20.0}
        for k, m in enumerate(("pre", "in", "post"))
    }
    fig = figures.activation_fits(img, fits, DATA)
    titles = [ax.get_title() for ax in fig.axes]
    assert "target" in titles
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1 and bars[0].get_ylabel().startswith("|error|")
    # one colour scale for all three error maps: the largest error sets it
    maps = [ax.get_images()[0] for ax in fig.axes if ax.get_title().startswith("|error|")]
    assert {im.get_clim() for im in maps} == {(0.0, 2.0)}
    plt.close(fig)


def test_sampling_sketches_use_the_projects_sampler():
    fig = figures.sampling_sketches(steps=(0.5, 2.0, 4.0), cells=(8, 4))
    titles = [ax.get_title() for ax in fig.axes]
    counts = [int(t.split(": ")[1].split()[0]) for t in titles]
    # 8 voxels across: a step of 0.5 voxel gives 4x the samples of 2, 8x those of 4 (about)
    assert counts[0] > 3 * counts[1] > 0 and counts[1] >= counts[2]
    assert counts[3] == pytest.approx(2 * counts[4], abs=2)  # twice the voxels, twice the samples
    plt.close(fig)


def test_data_descriptions_from_profile_and_data_root(tmp_path):
    q = get_profile("quick")
    gen = generated_root() / "quick"
    assert datadesc.nerf_data(q, gen / "hotdog") == DATA
    assert datadesc.ssl_data(q, gen) == (
        "generated office corpus, 65 classes x 12 train / 3 val, ResNet10 at 64 px"
    )
    real = tmp_path / "p2_dev"
    (real / "office").mkdir(parents=True)
    (real / "office" / "train.csv").write_text("id,filename,label\n0,a.jpg,cat\n1,b.jpg,dog\n")
    (real / "office" / "val.csv").write_text("id,filename,label\n0,c.jpg,cat\n")
    text = datadesc.ssl_data(q, real)
    assert text == "p2_dev/office, 2 classes, 2 train / 1 val images, ResNet10 at 64 px"
    assert "generated" not in text and "Office-Home" not in text
    assert datadesc.record(tmp_path, "ssl", text) == text
    assert json.loads((tmp_path / "data.json").read_text()) == {"ssl": text}


def test_tables_name_their_data(tmp_path):
    t = nerf_report.sweep_table(_sweep_df(), DATA)
    assert (
        t.attrs["data"]
        == f"ours: {DATA}; report: Blender hotdog, 800 px, 50 val views, 20000 fine steps"
    )
    per = nerf_report.per_view_table(
        [
            {"name": "r_0", "psnr": 30, "ssim": 0.9, "lpips": None},
            {"name": "r_1", "psnr": 20, "ssim": 0.8},
        ],
        DATA,
    )
    assert per["view"].tolist() == ["r_1", "r_0"]  # the worst view first
    assert per.attrs["data"] == DATA


def test_recorded_tables_come_with_their_provenance(tmp_path):
    assert recorded.load("ssl_ae_real", tmp_path) is None
    pd.DataFrame({"setting": ["A"], "val acc": [0.5]}).to_csv(
        tmp_path / "ssl_ae_real.csv", index=False
    )
    with pytest.raises(Exception, match="without its provenance"):
        recorded.load("ssl_ae_real", tmp_path)
    prov = {
        "data": "p2_dev (real photos)",
        "command": "hw4 ssl study",
        "commit": "abc123",
        "date": "2026-12-01",
        "cpu": "test CPU",
    }
    (tmp_path / "ssl_ae_real.json").write_text(json.dumps(prov))
    with pytest.raises(Exception, match="lacks minutes"):
        recorded.load("ssl_ae_real", tmp_path)
    (tmp_path / "ssl_ae_real.json").write_text(json.dumps({**prov, "minutes": 12}))
    table, got = recorded.load("ssl_ae_real", tmp_path)
    assert table["val acc"].tolist() == [0.5] and got["minutes"] == 12
    shown = recorded.display_objects("ssl_", tmp_path)
    assert "recorded, not run now" in shown[0][0].data and "p2_dev" in shown[0][0].data
    assert len(shown[0]) == 2  # no figure recorded with it
    assert recorded.display_objects("nerf_", tmp_path) == []


def test_the_reports_claims_are_checked_on_each_recorded_ae_table(tmp_path):
    from hw4lib.report import ssl_report

    assert ssl_report.recorded_findings(tmp_path) == []
    table = pd.DataFrame(
        {"setting": list("ACE"), ssl_report.OURS: [0.517, 0.613, 0.568], "seeds": 3}
    )
    table.to_csv(tmp_path / "ssl_ae_real.csv", index=False)
    prov = {"data": "real photos", "command": "c", "commit": "x", "date": "d", "cpu": "c"}
    (tmp_path / "ssl_ae_real.json").write_text(json.dumps({**prov, "minutes": 1}))
    lines = ssl_report.recorded_findings(tmp_path)
    assert lines[0] == "ssl_ae_real (recorded, not run now: real photos):"
    assert "(C > A): holds (C 0.613 vs A 0.517" in lines[2]
    assert "(E > A): holds (E 0.568 vs A 0.517" in lines[3]
