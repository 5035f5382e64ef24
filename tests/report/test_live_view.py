"""The interactive layer of the notebooks and the report page: live curves (trainer rows in,
one throttled figure out), the view sliders' renders and their papermill fallback, embedded GIFs,
paths the page may print, and report.pdf."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace

import nbformat
import numpy as np
import pytest
import torch

from hw4lib import PROJECT_ROOT
from hw4lib.report import assemble, live, pdf, view


# -- live curves ---------------------------------------------------------------------------
class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def shown(monkeypatch):
    """Pretend to be a kernel; record what would be displayed and updated."""
    import IPython.display

    events: list[str] = []

    class Handle:
        def update(self, obj):
            events.append("update")

    def display(obj, display_id=False):
        events.append("display")
        return Handle() if display_id else None

    monkeypatch.setattr(live, "in_kernel", lambda: True)
    monkeypatch.setattr(IPython.display, "display", display)
    return events


def test_live_plot_draws_once_then_at_most_once_per_interval(shown):
    clock = _Clock()
    drawn = []

    def draw(rows):
        import matplotlib.pyplot as plt

        drawn.append(len(rows))
        clock.t += 0.01  # a draw costs 10 ms of the fake clock
        return plt.figure()

    plot = live.LivePlot(draw, interactive=True, min_interval=1.0, clock=clock)
    for i in range(1000):  # 1000 rows over 10 s
        plot({"i": i})
        clock.t += 0.01
    plot.finish()
    assert shown[0] == "display" and set(shown[1:]) == {"update"}  # one figure, updated
    assert drawn[0] == 1 and drawn[-1] == 1000  # drawn at the first row, and with all at the end
    assert 9 <= plot.redraws <= 12  # ~1 a second, not 1000
    assert len(plot.rows) == 1000


def test_slow_draws_wait_longer_so_they_cost_at_most_the_budget(shown):
    clock = _Clock()

    def draw(rows):
        import matplotlib.pyplot as plt

        clock.t += 0.5  # a slow draw: 0.5 s
        return plt.figure()

    plot = live.LivePlot(draw, interactive=True, min_interval=1.0, budget=0.05, clock=clock)
    for i in range(200):  # 200 s of training
        plot({"i": i})
        clock.t += 1.0
    assert plot.draw_seconds <= 0.06 * clock.t, (plot.redraws, plot.draw_seconds, clock.t)


def test_no_drawing_under_papermill_or_outside_a_kernel(shown, monkeypatch):
    plot = live.LivePlot(lambda rows: pytest.fail("drew"), interactive=False)
    for i in range(10):
        plot({"i": i})
    plot.finish()
    monkeypatch.setattr(live, "in_kernel", lambda: False)
    plot2 = live.LivePlot(lambda rows: pytest.fail("drew"), interactive=True)
    plot2({"i": 0})
    assert shown == [] and len(plot.rows) == 10


def test_rows_become_the_saved_figures_inputs():
    rows = [
        {"stage": "coarse", "loss": 0.5, "psnr": 3.0, "seconds": 0.1},
        {"stage": "coarse", "loss": 0.4, "psnr": 4.0, "seconds": 0.2},
        {"stage": "fine", "loss": 0.1, "psnr": 10.0, "seconds": 0.3},
    ]
    hist, coarse = live.dvgo_rows_to_history(rows)
    assert coarse == 2 and hist["psnr"] == [3.0, 4.0, 10.0] and hist["seconds"][-1] == 0.3
    fig = live.ssl_curves(interactive=False).draw(
        [
            {"series": "BYOL", "epoch": 1, "loss": 1.0, "knn": None},
            {"series": "sup", "epoch": 1, "loss": 2.0, "knn": 0.5},
        ]
    )
    # BYOL's loss and the supervised cross-entropy: one line on each of their own axes
    assert [len(ax.lines) for ax in fig.axes[:2]] == [1, 1]
    assert list(fig.axes[1].lines[0].get_ydata()) == [2.0]


# -- trainers call on_row ------------------------------------------------------------------
@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    from hw4lib.data.scene import generate_scene

    out = tmp_path_factory.mktemp("view") / "hotdog"
    return generate_scene(out, "hotdog", size=32, n_train=8, n_val=2, supersample=1, progress=False)


@pytest.fixture(scope="module")
def dvgo(scene, tmp_path_factory):
    from hw4lib.nerf.run import TrainRequest, train_run

    rows: list[dict] = []
    out = tmp_path_factory.mktemp("view") / "run"
    res = train_run(
        TrainRequest(scene, out, "smoke", device="cpu"), progress=False, on_row=rows.append
    )
    return out, res, rows


def test_dvgo_reports_every_iteration_as_a_row(dvgo):
    _, res, rows = dvgo
    hist = res["history"]
    assert len(rows) == len(hist["loss"])
    assert [r["stage"] for r in rows] == ["coarse"] * res["coarse_iters"] + ["fine"] * (
        len(rows) - res["coarse_iters"]
    )
    assert [r["psnr"] for r in rows] == hist["psnr"] and rows[-1]["iter"] == len(rows) - res[
        "coarse_iters"
    ]


def test_pretraining_reports_each_history_row(tmp_path):
    from hw4lib.config import CorpusGen, get_profile
    from hw4lib.data.corpus import generate_corpora
    from hw4lib.ssl.pretrain_run import pretrain_run
    from hw4lib.ssl.request import PretrainRequest

    data = generate_corpora(
        tmp_path / "data",
        CorpusGen(mini_per_class=1, office_train_per_class=1, office_val_per_class=1, mini_size=16),
        progress=False,
    )
    cfg = replace(
        get_profile("smoke").ssl,
        image_size=16,
        pretrain_batch=16,
        byol_hidden=32,
        byol_projection=16,
        knn_evals=1,
        workers=0,
        pretrain_steps=None,
        supervised_steps=None,
    )
    rows: list[dict] = []
    req = PretrainRequest("supervised", data=data, out=tmp_path / "sup", device="cpu", steps=4)
    s = pretrain_run(req, cfg=cfg, progress=False, on_row=rows.append)
    assert rows == [h for h in s["history"] if h["loss"] is not None] and rows


# -- the view ------------------------------------------------------------------------------
def test_camera_pose_circles_the_origin_and_looks_at_it():
    from hw4lib.nerf.rays import orbit_poses

    assert torch.allclose(view.camera_pose(0, 30, 4.0), orbit_poses(1, 4.0, 30)[0], atol=1e-6)
    p = view.camera_pose(90, 30, 4.0)
    eye = p[:3, 3]
    el = math.radians(30)
    assert torch.allclose(eye, torch.tensor([0.0, 4 * math.cos(el), 4 * math.sin(el)]), atol=1e-5)
    assert torch.allclose(-p[:3, 2], -eye / eye.norm(), atol=1e-6)  # looks down -z at the origin


def test_view_renders_what_the_model_sees_and_falls_back_to_a_strip(dvgo, scene):
    run, _, _ = dvgo
    v = view.SceneView(run, scene, size=24)
    rgb, depth = v.render(0, v.elevation, v.radius)
    assert rgb.shape == (24, 24, 3) and depth.shape == (24, 24) and rgb.dtype == np.uint8
    other, _ = v.render(90, v.elevation, v.radius)
    assert not np.array_equal(rgb, other)  # the azimuth moves the camera
    far, _ = v.render(0, v.elevation, 3 * v.radius)
    assert (far > 250).mean() > (rgb > 250).mean()  # further away: more background
    fig = view.show(run, scene, interactive=False, size=24)  # papermill: a fixed strip
    assert len([a for a in fig.axes if a.images]) == 12


def test_view_widget_rerenders_when_a_slider_moves(dvgo, scene):
    run, _, _ = dvgo
    box = view.SceneView(run, scene, size=16).widget()
    sliders, img, note = box.children
    first = img.value
    assert note.value.startswith("azimuth 0°") and first[:4] == b"\x89PNG"
    sliders.children[0].value = 45.0
    assert img.value != first and note.value.startswith("azimuth 45°")


# -- the report page -----------------------------------------------------------------------
def _export(tmp_path, outputs) -> str:
    from hw4lib.report.runner import export_html

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = outputs
    nb.cells = [cell]
    src = tmp_path / "page.ipynb"
    nbformat.write(nb, str(src))
    return export_html(src, tmp_path / "page.html").read_text()


def test_gif_is_embedded_in_the_exported_page(tmp_path):
    from IPython.core.formatters import format_display_data

    from hw4lib.report.figures import save_gif

    gif = save_gif([np.zeros((8, 8, 3)), np.ones((8, 8, 3))], tmp_path / "orbit.gif")
    data, _ = format_display_data(assemble.embedded_image(gif))
    html = _export(tmp_path, [nbformat.v4.new_output("display_data", data=data)])
    assert re.search(r"<img [^>]*src=\"data:image/gif;base64,", html)
    assert "IPython.core.display" not in html


def test_paths_on_the_page_are_never_this_machines(tmp_path, monkeypatch):
    from hw4lib.data.generated import generated_root
    from hw4lib.results import write_result

    assert assemble.shown_path(PROJECT_ROOT / "runs" / "quick" / "nerf") == "runs/quick/nerf"
    assert assemble.shown_path(generated_root() / "quick" / "hotdog") == "generated:quick/hotdog"
    assert assemble.shown_path("/somewhere/else/hw4_data") == "…/hw4_data"
    assert (
        assemble.shown_path("generated:smoke") == "generated:smoke"
        and assemble.shown_path(None) is None
    )
    write_result(
        "nerf/sweep_x",
        {"x": 1},
        profile="smoke",
        data_source=str(generated_root() / "smoke" / "hotdog"),
        device="cpu",
        seconds=1,
    )
    assert assemble.provenance("smoke")["data"].tolist() == ["generated:smoke/hotdog"]


def test_report_page_data_facts():
    nb = json.loads((PROJECT_ROOT / "notebooks" / "06_report.ipynb").read_text())
    text = "".join("".join(c["source"]) for c in nb["cells"])
    assert "50 train and 50 validation views" in text and "100 train" not in text


@pytest.mark.browser
@pytest.mark.skipif(pdf.find_chromium() is None, reason="no Chromium (apt-get install chromium)")
def test_report_pdf_is_printed_beside_the_html(tmp_path):
    html = tmp_path / "report.html"
    html.write_text("<html><body><h1>hw4</h1><p>report</p></body></html>")
    path, note = pdf.report_pdf(html)
    assert path == tmp_path / "report.pdf" and path.read_bytes()[:5] == b"%PDF-"
    assert note == "wrote report.pdf" and not list(tmp_path.glob(".*.tmp"))


def test_without_chromium_the_pdf_is_skipped_and_a_stale_one_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("HW4_CHROMIUM", str(tmp_path / "no-such-chromium"))
    html = tmp_path / "report.html"
    html.write_text("<html></html>")
    (tmp_path / "report.pdf").write_bytes(b"%PDF-old")
    path, note = pdf.report_pdf(html)
    assert path is None and not (tmp_path / "report.pdf").exists()
    assert note.startswith("report.pdf skipped: no Chromium") and "removed the older" in note
    assert "\n" not in note
