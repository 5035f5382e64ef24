"""The committed notebooks are the published quick report: real outputs, no smoke leftovers,
no widget state, no machine path (``hw4 report --publish`` writes them; this checks them).

``test_committed_notebook_is_the_published_report`` fails until ``make publish`` has written the
notebooks back; run it alone after publishing:

    HW4_PROFILE=smoke .venv/bin/python -m pytest tests/report/test_published_notebooks.py
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hw4lib import PROJECT_ROOT
from hw4lib.errors import UserError
from hw4lib.report import published

WIDGET = "application/vnd.jupyter.widget-view+json"


def _executed(profile: str = "quick") -> dict:
    """A notebook as papermill leaves it: injected parameters, timestamps, widgets, paths."""
    root = PROJECT_ROOT.resolve()
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "widgets": {"state": {}},
            "papermill": {"input_path": f"{root}/notebooks/x.ipynb"},
            "kernelspec": {"name": "hw4", "display_name": "hw4 (.venv)", "language": "python"},
        },
        "cells": [
            {
                "cell_type": "code",
                "id": "a",
                "metadata": {"tags": ["parameters"]},
                "source": 'profile = ""',
                "outputs": [],
                "execution_count": 1,
            },
            {
                "cell_type": "code",
                "id": "b",
                "metadata": {"tags": ["injected-parameters"]},
                "source": f'profile = "{profile}"',
                "outputs": [],
                "execution_count": 2,
            },
            {
                "cell_type": "code",
                "id": "c",
                "metadata": {"execution": {"iopub.status.idle": "2026"}, "papermill": {}},
                "source": "print(...)",
                "execution_count": 3,
                "outputs": [
                    {
                        "output_type": "stream",
                        "name": "stdout",
                        "text": f"profile: {profile}   run: {root}/runs/{profile}/nerf\n"
                        "cache: /root/.cache/torch/hub/vgg.pth\n",
                    },
                    {
                        "output_type": "display_data",
                        "metadata": {},
                        "data": {WIDGET: {"model_id": "1"}, "text/plain": "dvgo fine: 0%|"},
                    },
                    {
                        "output_type": "display_data",
                        "metadata": {},
                        # base64 may hold "/home": image data is never read as a path
                        "data": {"image/png": "iVBOR/home/tmp+AAA=", "text/plain": "<Figure>"},
                    },
                ],
            },
        ],
    }


def test_clean_strips_papermill_widgets_and_machine_paths():
    raw = _executed()
    found = published.problems(raw)
    for why in (
        "widget state in the metadata",
        "papermill metadata (its input and output paths)",
        "papermill's injected parameters cell",
        "execution metadata in a cell",
        "a widget output (renders as 'Loading widget...')",
    ):
        assert why in found
    assert any("machine path" in f and "/root/.cache" in f for f in found)
    nb = published.clean(raw)
    assert published.problems(nb) == []
    assert set(nb["metadata"]) == {"kernelspec", "hw4"} and nb["metadata"]["hw4"] == {
        "profile": "quick"
    }
    assert [c["id"] for c in nb["cells"]] == ["a", "c"]  # the source's parameters cell stays
    outs = nb["cells"][1]["outputs"]
    assert outs[0]["text"] == (
        "profile: quick   run: runs/quick/nerf\ncache: …/vgg.pth\n"  # project-relative
    )
    assert len(outs) == 2 and outs[1]["data"]["image/png"] == "iVBOR/home/tmp+AAA="
    assert nb["cells"][1]["metadata"] == {}


def test_smoke_outputs_are_refused():
    nb = published.clean(_executed("smoke"), "smoke")
    found = published.problems(nb)
    assert "outputs of profile 'smoke', not 'quick'" in found
    assert any("smoke-profile output: 'profile: smoke'" in f for f in found)
    table = {"output_type": "stream", "name": "stdout", "text": "[(0.5, '32^3'), (2.0, '32^3')]"}
    nb = published.clean(_executed())
    nb["cells"][1]["outputs"].append(table)
    assert published.problems(nb) == ["smoke-profile output: \"'32^3'\""]


def test_publish_writes_cleaned_notebooks_back(tmp_path):
    executed, dest = tmp_path / "reports", tmp_path / "notebooks"
    executed.mkdir()
    dest.mkdir()
    (executed / "02_x.ipynb").write_text(json.dumps(_executed()))
    (executed / "03_y.ipynb").write_text(json.dumps(_executed()))  # not committed: not written
    (dest / "02_x.ipynb").write_text("{}")
    assert published.publish_notebooks(executed, dest) == [dest / "02_x.ipynb"]
    assert published.problems(json.loads((dest / "02_x.ipynb").read_text())) == []
    assert not (dest / "03_y.ipynb").exists()
    (executed / "02_x.ipynb").write_text(json.dumps(_executed("smoke")))
    with pytest.raises(UserError, match="not published"):
        published.publish_notebooks(executed, dest)


@pytest.mark.parametrize(
    "nb", published.committed_notebooks(), ids=lambda p: p.name if hasattr(p, "name") else p
)
def test_committed_notebook_is_the_published_report(nb):
    """Fails until `make publish` has written the quick report's notebooks back."""
    assert published.problems(json.loads(nb.read_text())) == []


def test_report_page_is_exported_from_the_cleaned_notebook(tmp_path, monkeypatch):
    monkeypatch.setenv("HW4_CHROMIUM", str(tmp_path / "no-chromium"))  # no PDF: not tested here
    executed, dest = tmp_path / "reports", tmp_path / "figures"
    executed.mkdir()
    assert published.publish_report_page(executed, dest) == []  # no notebook 06: nothing
    (executed / "06_report.ipynb").write_text(json.dumps(_executed()))
    assert published.publish_report_page(executed, dest) == [dest / "report.html"]
    html = (dest / "report.html").read_text()
    assert "runs/quick/nerf" in html and str(PROJECT_ROOT.resolve()) not in html
    assert "/root/.cache" not in html and "dvgo fine: 0%" not in html
    assert [p.name for p in dest.iterdir()] == ["report.html"]  # the cleaned copy is gone


def test_a_clone_anywhere_is_scrubbed_to_project_relative_paths():
    """CI clones to a folder under no usual prefix (``/check/...``): its paths still go."""
    root = Path("/check/work/main")
    text = "run: /check/work/main/runs/quick/nerf\nelse: /check/other/x.pt\n"
    assert published.scrub(text, root) == "run: runs/quick/nerf\nelse: /check/other/x.pt\n"
    assert published.machine_path(root).search("see /check/work/main/a")
    assert not published.machine_path(root).search("iVBOR/check/work/main+AAA=")  # base64
